"""The anchor service: every interval, one EVM transaction over all chains' latest checkpoints.

Anchoring never blocks the ledger: it only reads checkpoints that the sequencer already made
durable, and a failed or slow chain RPC only delays the next anchor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.exceptions import TimeExhausted, Web3Exception

from anchoring.calldata import anchor_root, encode_calldata
from attestream.errors import ConfigError, ServiceUnavailableError
from ledger.store import ClickHouseStore, StoredAnchor, StoredCheckpoint

log = logging.getLogger("attestream.anchor")

# A JSON-RPC call to a healthy node answers in well under a second; 10 s rides out a slow
# public endpoint without hanging the loop.
RPC_TIMEOUT_S = 10.0
# Sepolia produces a block every 12 s; three blocks' worth before we stop waiting this round.
RECEIPT_TIMEOUT_S = 40.0
RECEIPT_POLL_S = 0.2
MAX_FEE_CAP_WEI = 200 * 10**9
"""Never pay more than 200 gwei per gas for an anchor (override per network in settings)."""


@dataclass(frozen=True)
class AnchorReceipt:
    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    status: str


def connect(rpc_url: str, expected_chain_id: int) -> Web3:
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
    try:
        actual = w3.eth.chain_id
    except (OSError, Web3Exception, ValueError) as exc:
        raise ServiceUnavailableError("EVM JSON-RPC", rpc_url, str(exc)) from exc
    if actual != expected_chain_id:
        raise ConfigError(
            f"the JSON-RPC at {rpc_url} serves chain id {actual}, settings say {expected_chain_id}"
        )
    return w3


class AnchorService:
    def __init__(
        self,
        store: ClickHouseStore,
        w3: Web3,
        private_key: str,
        chain_id: int,
        on_anchor: Callable[[StoredAnchor], None] | None = None,
    ) -> None:
        self.store = store
        self.w3 = w3
        self.chain_id = chain_id
        try:
            self._account = Account.from_key(private_key)
        except (ValueError, TypeError) as exc:
            # The message must not echo the key.
            raise ConfigError("the anchor signing key is not a valid secp256k1 key") from exc
        self.sender: str = self._account.address
        self._on_anchor = on_anchor or (lambda anchor: None)

    def latest_checkpoints(self) -> list[StoredCheckpoint]:
        found = (self.store.latest_checkpoint(chain) for chain in self.store.chains())
        return [cp for cp in found if cp is not None]

    def pending_checkpoints(self) -> list[StoredCheckpoint] | None:
        """The checkpoints to anchor now, or None when the last anchor already covers them."""
        latest = self.latest_checkpoints()
        if not latest:
            return None
        covered = {cp for anchor in self.store.anchors() if anchor.status == "success"
                   for cp in [anchor.checkpoints]}  # fmt: skip
        wanted = tuple((cp.chain, cp.size) for cp in latest)
        return None if wanted in covered else latest

    def anchor_once(self) -> StoredAnchor | None:
        checkpoints = self.pending_checkpoints()
        if checkpoints is None:
            return None
        root = anchor_root([cp.note for cp in checkpoints])
        receipt = self._send(encode_calldata(root))
        anchor = StoredAnchor(
            anchored_at=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
            root=root,
            network_chain_id=self.chain_id,
            tx_hash=receipt.tx_hash,
            block_number=receipt.block_number,
            block_hash=receipt.block_hash,
            sender=self.sender,
            status=receipt.status,
            gas_used=receipt.gas_used,
            checkpoints=tuple((cp.chain, cp.size) for cp in checkpoints),
        )
        self.store.insert_anchor(anchor)
        self._on_anchor(anchor)
        log.info("anchored %d checkpoint(s) in %s (block %d)", len(checkpoints),
                 receipt.tx_hash, receipt.block_number)  # fmt: skip
        return anchor

    def _fees(self) -> dict[str, int]:
        """EIP-1559 fees: twice the latest base fee plus the suggested tip, under a cap."""
        history: Any = self.w3.eth.fee_history(1, "latest", [50])
        base = int(history["baseFeePerGas"][-1])
        tip = min(int(self.w3.eth.max_priority_fee), MAX_FEE_CAP_WEI // 2)
        max_fee = min(2 * base + tip, MAX_FEE_CAP_WEI)
        return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": min(tip, max_fee)}

    def _send(self, data: bytes) -> AnchorReceipt:
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "from": self.sender,
            "to": self.sender,  # a self-transfer of 0 wei: the calldata is the anchor
            "value": 0,
            "data": data,
            "nonce": self.w3.eth.get_transaction_count(self.sender, "pending"),
            "type": 2,
            **self._fees(),
        }
        tx["gas"] = self.w3.eth.estimate_gas(tx)
        signed = self._account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt: Any = self.w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=RECEIPT_POLL_S
        )
        return AnchorReceipt(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex().removeprefix("0x"),
            block_number=int(receipt["blockNumber"]),
            block_hash="0x" + bytes(receipt["blockHash"]).hex().removeprefix("0x"),
            gas_used=int(receipt["gasUsed"]),
            status="success" if receipt["status"] == 1 else "reverted",
        )

    def run(self, interval_s: float, stop: Callable[[], bool], once: bool = False) -> None:
        while not stop():
            started = time.monotonic()
            try:
                self.anchor_once()
            except (OSError, Web3Exception, TimeExhausted, ServiceUnavailableError) as exc:
                log.warning("anchoring failed this interval, will retry: %s", exc)
            if once:
                return
            remaining = interval_s - (time.monotonic() - started)
            while remaining > 0 and not stop():
                time.sleep(min(remaining, 0.2))
                remaining -= 0.2
