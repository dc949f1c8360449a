"""The ledger's records as the store holds them and everything above it reads them: entry
columns, checkpoints, anchors, chain heads. Plain values, no storage client: the verifier,
recovery and the proofs use them without loading a database driver. The tables themselves are
described in docs/ledger-format.md and docs/architecture.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

ENTRY_COLUMNS = (
    "chain", "seq", "leaf_hash", "prev", "entry", "decision_id", "event_id", "entity_id",
    "detector", "outcome", "score", "model_sha256", "event_time", "decided_at", "logged_at",
    "source_cluster", "source_topic", "source_partition", "source_offset",
)  # fmt: skip

TIME_COLUMNS = frozenset({"event_time", "decided_at", "logged_at"})
"""The entry columns ClickHouse holds as DateTime (whole seconds)."""


@dataclass(frozen=True)
class StoredCheckpoint:
    chain: int
    size: int
    root: bytes
    note: bytes
    source_cluster: str
    source_offset: int


@dataclass(frozen=True)
class StoredAnchor:
    anchored_at: datetime
    root: bytes
    network_chain_id: int
    tx_hash: str
    block_number: int
    block_hash: str
    sender: str
    status: str
    gas_used: int
    checkpoints: tuple[tuple[int, int], ...]
    """(chain, size) of each checkpoint committed to, in chain order."""
    state: str = "final"
    """Lifecycle state of the transaction as of this row (anchoring/lifecycle.py)."""
    event_ns: int = 0
    """When this state was recorded (ns since the epoch); orders a transaction's rows."""
    attempt: str = ""
    """The anchor attempt: a transaction and its fee-bumped replacements (same nonce)."""
    nonce: int = 0
    max_fee: int = 0
    priority_fee: int = 0
    raw_tx: bytes = b""
    """The signed transaction, so a restarted service can tell it apart and resend it."""
    detail: str = ""


class OwnershipMarks(NamedTuple):
    """What a sequencer's fence reads before each write (see ledger/sequencer.py, step 0)."""

    checkpoints: int
    """Checkpoint rows of the chain at or beyond the size asked about."""
    max_size: int
    """The largest of their sizes (0 when there are none)."""
    entries: int
    """Entries of the chain at or beyond the size asked about."""


class RecentDecision(NamedTuple):
    """A logged decision as a resumed writer's duplicate window holds it."""

    decision_id: str
    event_sha256: str
    seq: int


@dataclass(frozen=True)
class ChainHead:
    """What a writer needs to resume a chain: the last entry and where its source was."""

    size: int
    last_leaf_hash: bytes | None
    source_cluster: str
    source_offset: int


class EntryOutcome(NamedTuple):
    """A logged decision's detector, event and outcome (the demo's quality figures)."""

    detector: str
    event_id: str
    outcome: str


class ChainTail(NamedTuple):
    """What of one chain lies beyond a tree size (the anchor backlog reads it)."""

    checkpoints: int
    """Checkpoints larger than the size."""
    max_size: int
    """The largest checkpoint size (0 when there is none beyond)."""
    entries: int
    """Entries at or beyond the size."""
    oldest_logged_at: datetime | None
    """When the first of those entries was logged (None: there is none)."""
