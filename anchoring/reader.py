"""Reading anchor transactions back from an EVM chain (for verification; it is also the
`TxLookup` that anchoring.proofs verifies against)."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3Exception

from anchoring.onchain import AccountTx, OnChainTx
from attestcore.errors import ServiceUnavailableError


class Web3ChainReader:
    def __init__(self, w3: Web3, endpoint: str) -> None:
        self.w3 = w3
        self.endpoint = endpoint

    def transaction(self, tx_hash: str) -> OnChainTx | None:
        try:
            tx: Any = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            receipt: Any = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        except (OSError, Web3Exception) as exc:
            raise ServiceUnavailableError("EVM JSON-RPC", self.endpoint, str(exc)) from exc
        return OnChainTx(
            input=bytes(tx["input"]),
            sender=str(tx["from"]),
            status=int(receipt["status"]),
            block_number=int(receipt["blockNumber"]),
            block_hash="0x" + bytes(receipt["blockHash"]).hex().removeprefix("0x"),
            nonce=int(tx["nonce"]),
        )

    def transaction_count(self, address: str, block: int) -> int:
        try:
            return int(self.w3.eth.get_transaction_count(address, block))  # type: ignore[arg-type]
        except (OSError, Web3Exception) as exc:
            raise ServiceUnavailableError("EVM JSON-RPC", self.endpoint, str(exc)) from exc

    def block_transactions(self, block: int) -> list[AccountTx]:
        try:
            found: Any = self.w3.eth.get_block(block, full_transactions=True)
        except (OSError, Web3Exception) as exc:
            raise ServiceUnavailableError("EVM JSON-RPC", self.endpoint, str(exc)) from exc
        return [
            AccountTx("0x" + bytes(tx["hash"]).hex().removeprefix("0x"), str(tx["from"]),
                      int(tx["nonce"]), bytes(tx["input"]))
            for tx in found["transactions"]
        ]  # fmt: skip

    def head_block_number(self) -> int:
        try:
            return int(self.w3.eth.block_number)
        except (OSError, Web3Exception) as exc:
            raise ServiceUnavailableError("EVM JSON-RPC", self.endpoint, str(exc)) from exc

    def network_chain_id(self) -> int:
        try:
            return int(self.w3.eth.chain_id)
        except (OSError, Web3Exception) as exc:
            raise ServiceUnavailableError("EVM JSON-RPC", self.endpoint, str(exc)) from exc
