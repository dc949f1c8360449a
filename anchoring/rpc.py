"""The EVM JSON-RPC client: every call the anchor service, the anchor proofs and the
verifiers make (`ChainClient` is the `anchoring.onchain.ChainReader` of a real network), each
retried with backoff and jitter.

A transport failure (connection refused, timeout, HTTP 429/5xx) is retried a few times within
the call, which rides out a node restart or a dropped keep-alive; if it persists the call
raises ServiceUnavailableError and the service's round ends (the run loop backs off and tries
again later). A JSON-RPC error answer (nonce too low, insufficient funds...) is not retried:
it is a verdict, handled by the caller where it expects one (a transaction not found, a
refused broadcast), and otherwise means the node cannot serve the call: ServiceUnavailableError
(exit 3), mapped in one place (`ChainClient._call`). web3's own HTTP retry is switched off so
that this is the one retry policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from hexbytes import HexBytes
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from web3 import Web3
from web3.exceptions import (
    BlockNotFound,
    ProviderConnectionError,
    RequestTimedOut,
    TooManyRequests,
    TransactionIndexingInProgress,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)

from anchoring.onchain import AccountTx, OnChainTx
from attestcore.errors import InsufficientFundsError, ServiceUnavailableError, WrongChainError

log = logging.getLogger("attestream.anchor")
T = TypeVar("T")

# A JSON-RPC call to a healthy node answers in well under a second; 10 s rides out a slow
# public endpoint without hanging a round.
RPC_TIMEOUT_S = 10.0
# Three tries 0.1-1 s apart cover a node restart or a reset connection; a longer outage is
# the run loop's business (it backs off up to a minute), so a round never stalls for long.
RPC_ATTEMPTS = 3
RPC_RETRY_INITIAL_S = 0.1
RPC_RETRY_MAX_S = 1.0
# Ten blocks (two minutes of Sepolia) of rewards: recent enough to follow a fee spike, long
# enough that one odd block does not set the tip.
FEE_HISTORY_BLOCKS = 10
REWARD_PERCENTILE = 50
TRANSIENT = (
    OSError,
    ProviderConnectionError,
    TooManyRequests,
    RequestTimedOut,
    TransactionIndexingInProgress,
)
ALREADY_KNOWN = ("already known", "already imported", "known transaction")


def hex0x(value: bytes | str) -> str:
    """0x-prefixed lower-case hex, the form we record hashes in."""
    text = value if isinstance(value, str) else bytes(value).hex()
    return "0x" + text.lower().removeprefix("0x")


def redact_url(url: str) -> str:
    """The URL without credentials, path or query: hosted endpoints carry an API key there
    (https://sepolia.infura.io/v3/<key>), and URLs end up in logs and status output."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str


@dataclass(frozen=True)
class Receipt:
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int = 0
    """Wei paid per unit of gas (EIP-1559 receipts; 0 when a node leaves it out)."""

    @property
    def fee_wei(self) -> int:
        """What the transaction cost its sender: gasUsed * effectiveGasPrice."""
        return self.gas_used * self.effective_gas_price


class RejectedTransaction(Exception):
    """The node answered a broadcast with a JSON-RPC error: this transaction is not in it."""


class ChainClient:
    """One EVM network: every call the anchor service and its verifiers make."""

    def __init__(self, rpc_url: str, chain_id: int) -> None:
        self.rpc_url = rpc_url
        self.endpoint = redact_url(rpc_url)
        self.chain_id = chain_id
        provider = Web3.HTTPProvider(
            rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}, exception_retry_configuration=None
        )
        self.w3 = Web3(provider)
        self._chain_checked = False

    def _call(
        self,
        what: str,
        fn: Callable[..., T],
        *args: Any,
        verdicts: tuple[type[Exception], ...] = (TransactionNotFound,),
    ) -> T:
        """`fn(*args)`, retried on transport errors. JSON-RPC errors of the `verdicts` types
        reach the caller; any other error answer (or web3 error) counts as the node being
        unusable: ServiceUnavailableError."""
        retrying = Retrying(
            stop=stop_after_attempt(RPC_ATTEMPTS),
            wait=wait_random_exponential(multiplier=RPC_RETRY_INITIAL_S, max=RPC_RETRY_MAX_S),
            retry=retry_if_exception_type(TRANSIENT),
            before_sleep=before_sleep_log(log, logging.DEBUG),
            reraise=True,
        )
        try:
            return retrying(fn, *args)
        except TRANSIENT as exc:
            # After an outage the endpoint may be another node: check its chain id again.
            self._chain_checked = False
            cause = self._scrub(f"{what}: {exc}")
            raise ServiceUnavailableError("EVM JSON-RPC", self.endpoint, cause) from None
        except verdicts:
            raise
        except Web3Exception as exc:
            message = self._scrub(f"{what} answered an error: {getattr(exc, 'message', exc)}")
            raise ServiceUnavailableError("EVM JSON-RPC", self.endpoint, message) from None

    def _scrub(self, text: str) -> str:
        # requests names the URL path in its errors; the path may hold an API key.
        path = urlsplit(self.rpc_url).path
        text = text.replace(self.rpc_url, self.endpoint)
        return text.replace(path, "/...") if path.strip("/") else text

    def check_chain(self) -> None:
        """ConfigError unless the endpoint serves the configured chain (checked once, and
        again after every outage)."""
        if self._chain_checked:
            return
        actual = self._call("eth_chainId", lambda: self.w3.eth.chain_id)
        if actual != self.chain_id:
            raise WrongChainError(
                f"the JSON-RPC at {self.endpoint} serves chain id {actual}, settings say"
                f" {self.chain_id} (ATTESTREAM_CHAIN_ID; Sepolia is 11155111)"
            )
        self._chain_checked = True

    # --- reads ---------------------------------------------------------------------------
    def head_block_number(self) -> int:
        return int(self._call("eth_blockNumber", lambda: self.w3.eth.block_number))

    def head(self) -> BlockRef:
        """The latest block's number and hash (one call)."""
        block: Any = self._call("eth_getBlockByNumber", self.w3.eth.get_block, "latest")
        return BlockRef(int(block["number"]), hex0x(block["hash"]))

    def block_hash(self, number: int) -> str | None:
        """The hash of the canonical block at `number`, None if there is none (any more)."""
        try:
            block: Any = self._call(
                "eth_getBlockByNumber", self.w3.eth.get_block, number, verdicts=(BlockNotFound,)
            )
        except BlockNotFound:
            return None
        return hex0x(block["hash"]) if block else None

    def network_chain_id(self) -> int:
        """The chain id the endpoint serves, checked to be the configured one (WrongChainError
        otherwise)."""
        self.check_chain()
        return self.chain_id

    def nonce(self, address: str, block: str | int = "latest") -> int:
        return int(
            self._call("eth_getTransactionCount", self.w3.eth.get_transaction_count, address, block)
        )

    def transaction_count(self, address: str, block: int) -> int:
        """The account's nonce after `block`: how many transactions it sent in 0..block."""
        return self.nonce(address, block)

    def block_transactions(self, block: int) -> list[AccountTx]:
        """The transactions of the canonical block at `block`."""
        found: Any = self._call("eth_getBlockByNumber", self.w3.eth.get_block, block, True)
        return [
            AccountTx(hex0x(tx["hash"]), str(tx["from"]), int(tx["nonce"]), bytes(tx["input"]))
            for tx in found["transactions"]
        ]

    def balance(self, address: str) -> int:
        return int(self._call("eth_getBalance", self.w3.eth.get_balance, address))

    def fee_history(self) -> tuple[list[int], list[list[int]]]:
        history: Any = self._call(
            "eth_feeHistory",
            self.w3.eth.fee_history,
            FEE_HISTORY_BLOCKS,
            "latest",
            [REWARD_PERCENTILE],
        )
        rewards = [[int(r) for r in block] for block in history.get("reward") or []]
        return [int(b) for b in history["baseFeePerGas"]], rewards

    def estimate_gas(self, tx: dict[str, Any]) -> int:
        return int(self._call("eth_estimateGas", self.w3.eth.estimate_gas, tx))

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of a mined transaction, None while it is not (or no longer) mined."""
        try:
            r: Any = self._call(
                "eth_getTransactionReceipt", self.w3.eth.get_transaction_receipt, HexBytes(tx_hash)
            )
        except TransactionNotFound:
            return None
        if r is None or r.get("blockNumber") is None:
            return None
        return Receipt(
            int(r["blockNumber"]),
            hex0x(r["blockHash"]),
            int(r["status"]),
            int(r["gasUsed"]),
            int(r.get("effectiveGasPrice") or 0),
        )

    def known(self, tx_hash: str) -> bool:
        """True if the node has the transaction (in its pool, or mined)."""
        try:
            self._call("eth_getTransactionByHash", self.w3.eth.get_transaction, HexBytes(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def transaction(self, tx_hash: str) -> OnChainTx | None:
        """The mined transaction with its receipt's status and block, None if not mined."""
        try:
            tx: Any = self._call(
                "eth_getTransactionByHash", self.w3.eth.get_transaction, HexBytes(tx_hash)
            )
        except TransactionNotFound:
            return None
        receipt = self.receipt(tx_hash)
        if receipt is None:
            return None
        return OnChainTx(
            bytes(tx["input"]),
            str(tx["from"]),
            receipt.status,
            receipt.block_number,
            receipt.block_hash,
            int(tx["nonce"]),
        )

    # --- writes --------------------------------------------------------------------------
    def send_raw(self, raw: bytes, sender: str) -> None:
        """Broadcast a signed transaction. A node that already has it is fine; any other
        refusal raises RejectedTransaction (InsufficientFundsError for an unfunded sender)."""
        try:
            self._call(
                "eth_sendRawTransaction",
                self.w3.eth.send_raw_transaction,
                raw,
                verdicts=(Web3RPCError,),
            )
        except Web3RPCError as exc:
            message = str(getattr(exc, "message", exc))
            if any(text in message.lower() for text in ALREADY_KNOWN):
                return
            if "insufficient funds" in message.lower():
                raise InsufficientFundsError(
                    f"the node refused the anchor transaction from {sender}: {message}."
                    " Fund the account (docs/operations.md)"
                ) from exc
            raise RejectedTransaction(message) from exc


def connect(rpc_url: str, chain_id: int) -> ChainClient:
    """A client of the endpoint, after checking it serves `chain_id` (WrongChainError) and
    answers (ServiceUnavailableError)."""
    client = ChainClient(rpc_url, chain_id)
    client.check_chain()
    return client
