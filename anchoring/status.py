"""What `attestream anchor status` shows and the service exports as gauges: the sender and its
balance, the last final anchor, transactions on their way, and what is not anchored yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from anchoring import metrics
from anchoring.fees import GWEI
from anchoring.lifecycle import TxState, max_sizes
from anchoring.rpc import ChainClient
from anchoring.store import AnchorRecords, ChainBacklog
from attestcore.errors import AttestreamError
from attestcore.records import StoredAnchor


@dataclass(frozen=True)
class InFlight:
    """A transaction sent and not final yet."""

    tx_hash: str
    state: str
    nonce: int
    age_s: float
    max_fee_gwei: float
    block_number: int


@dataclass
class AnchorStatus:
    network_chain_id: int
    rpc_url: str
    sender: str | None
    balance_wei: int | None = None
    head_block: int | None = None
    last_anchor: StoredAnchor | None = None
    in_flight: list[InFlight] = field(default_factory=list)
    chains: list[ChainBacklog] = field(default_factory=list)
    oldest_unanchored_age_s: float | None = None
    problems: list[str] = field(default_factory=list)
    """What could not be found out, and why (no key configured, JSON-RPC unreachable)."""

    def to_json(self) -> dict[str, Any]:
        last = self.last_anchor
        return {
            "network_chain_id": self.network_chain_id,
            "rpc_url": self.rpc_url,
            "sender": self.sender,
            "balance_wei": self.balance_wei,
            "balance_eth": None if self.balance_wei is None else self.balance_wei / 10**18,
            "head_block": self.head_block,
            "last_anchor": None
            if last is None
            else {
                "tx_hash": last.tx_hash,
                "block_number": last.block_number,
                "block_hash": last.block_hash,
                "final_at": last.anchored_at.isoformat() + "Z",
                "gas_used": last.gas_used,
                "checkpoints": [{"chain": c, "size": s} for c, s in last.checkpoints],
            },
            "pending": [vars(tx) for tx in self.in_flight],
            "chains": [
                {
                    "chain": b.chain,
                    "latest_size": b.latest_size,
                    "anchored_size": b.anchored_size,
                    "unanchored_checkpoints": b.unanchored_checkpoints,
                }
                for b in self.chains
            ],
            "oldest_unanchored_decision_age_s": self.oldest_unanchored_age_s,
            "problems": self.problems,
        }


def collect_status(
    records: AnchorRecords,
    chain: ChainClient | None,
    sender: str | None,
    now: float,
    watch_blocks: int = 64,
) -> AnchorStatus:
    """Everything from the store, plus the balance and head block when the chain answers."""
    status = AnchorStatus(records.network_chain_id, chain.endpoint if chain else "", sender)
    if chain is not None:
        try:
            status.head_block = chain.head_block_number()
            if sender is not None:
                status.balance_wei = chain.balance(sender)
        except AttestreamError as exc:
            status.problems.append(exc.diagnostics().splitlines()[0])
    final = records.final()
    status.last_anchor = final[-1] if final else None
    head = status.head_block if status.head_block is not None else 0
    for tx in records.open_transactions(head - watch_blocks):
        if tx.state != TxState.FINAL.value:
            status.in_flight.append(
                InFlight(
                    tx.tx_hash,
                    tx.state,
                    tx.nonce,
                    round(now - tx.event_ns / 1e9, 1),
                    tx.max_fee / GWEI,
                    tx.block_number,
                )
            )
    status.chains = records.backlog(max_sizes(final))
    oldest = [b.oldest_unanchored_logged_at for b in status.chains if b.oldest_unanchored_logged_at]
    if oldest:
        status.oldest_unanchored_age_s = round(now - min(oldest).replace(tzinfo=UTC).timestamp(), 1)
    return status


def publish(status: AnchorStatus) -> None:
    """The status as gauges (the service calls this every round)."""
    if status.balance_wei is not None:
        metrics.BALANCE.set(status.balance_wei)
    metrics.PENDING.set(sum(1 for tx in status.in_flight if tx.state == TxState.PENDING.value))
    for backlog in status.chains:
        metrics.UNANCHORED.labels(str(backlog.chain)).set(backlog.unanchored_checkpoints)
    metrics.OLDEST_UNANCHORED.set(status.oldest_unanchored_age_s or 0.0)
    if status.last_anchor is not None:
        metrics.LAST_BLOCK.set(status.last_anchor.block_number)
