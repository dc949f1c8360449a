"""What verification reports: the kinds of fault, one failure, and the report.

Every kind of fault is listed once, in `FaultKind`, and documented in docs/ledger-format.md,
"Verification" (a test checks that the two lists agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ledger.merkle import NodeId


class FaultKind(StrEnum):
    """Every way a stored ledger can fail verification (see docs/ledger-format.md)."""

    BAD_LEAF = "bad_leaf"
    BAD_ENTRY = "bad_entry"
    BROKEN_LINK = "broken_link"
    COLUMN_MISMATCH = "column_mismatch"
    DUPLICATE_DECISION = "duplicate_decision"
    GAP = "gap"
    FORK = "fork"
    ROOT_MISMATCH = "root_mismatch"
    TRUNCATED = "truncated"
    UNSIGNED_TAIL = "unsigned_tail"
    UNEXPLAINED_TAIL = "unexplained_tail"
    BAD_NODE = "bad_node"
    BAD_SIGNATURE = "bad_signature"
    BAD_CHECKPOINT = "bad_checkpoint"
    ANCHOR_MISMATCH = "anchor_mismatch"
    UNANCHORED = "unanchored"
    ANCHOR_MISSING = "anchor_missing"
    TREE_SHRUNK = "tree_shrunk"
    INCONSISTENT = "inconsistent"
    BAD_ARCHIVE = "bad_archive"
    TIMELINE_COPY_MISMATCH = "timeline_copy_mismatch"


@dataclass(frozen=True)
class Failure:
    kind: FaultKind
    chain: int | None
    seq: int | None
    detail: str


RANGE_TRUST = (
    "the tree before `from` is the stored compact range at that size, trusted and not"
    " recomputed: that is what makes a range check proportional to the range. Entries before"
    " `from - 1` and after `to` are not read; verify without a range to check them."
)


@dataclass(frozen=True)
class RangeInfo:
    """What a range verification started from and covered (`"range"` in the JSON report)."""

    chain: int
    first: int
    last: int
    start_root: bytes
    start_nodes: tuple[NodeId, ...]
    checkpoint_sizes: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "from": self.first,
            "to": self.last,
            "trusted_start": {
                "size": self.first,
                "root": self.start_root.hex(),
                "nodes": [list(node_id) for node_id in self.start_nodes],
            },
            "checkpoint_sizes": list(self.checkpoint_sizes),
            "trust": RANGE_TRUST,
        }


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    anchors: int = 0
    nodes: int = 0
    """Stored tree nodes compared with the ones recomputed from the entries."""
    chains: list[int] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    range: RangeInfo | None = None
    anchor_account: str | None = None
    """The anchor account whose transactions on the chain were counted (None: not checked)."""
    anchor_transactions: int | None = None
    """Its transaction count at the head block: every anchor among them needs a row."""
    tails_rederived: bool = False
    """True when unsigned tails were re-derived from Kafka (`forensics.verify_tail`)."""
    archive_checked: bool = False
    """True when the event archive was checked against its digests (`forensics.verify_archive`)."""

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, kind: FaultKind, chain: int | None, seq: int | None, detail: str) -> None:
        self.failures.append(Failure(kind, chain, seq, detail))

    def has(self, kind: FaultKind, chain: int) -> bool:
        return any(f.kind == kind and f.chain == chain for f in self.failures)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "anchors": self.anchors,
            "nodes": self.nodes,
            "chains": self.chains,
            "anchor_account": self.anchor_account,
            "anchor_transactions": self.anchor_transactions,
            # False offline: a deleted anchor row can only be seen on the chain.
            "anchor_account_checked": self.anchor_account is not None,
            # False offline or without Kafka: a forged tail of one batch's shape passes.
            "tails_rederived": self.tails_rederived,
            # False for a database from before the event archive.
            "archive_checked": self.archive_checked,
            "failures": [
                {"kind": f.kind.value, "chain": f.chain, "seq": f.seq, "detail": f.detail}
                for f in self.failures
            ],
        }
        if self.range is not None:
            data["range"] = self.range.to_json()
        return data
