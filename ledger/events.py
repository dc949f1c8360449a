"""What the sequencer reports while it works: batch outcomes, events turned into metrics by
`ledger run`, and the records it dead-letters with their reason."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Message

from ledger.chain import EventConflict


class RejectReason(str, enum.Enum):
    """Why a record of the decisions topic is dead-lettered (`attestream-dlq-reason`); bounded,
    so also a metric label. docs/operations.md, "Ledger sequencer"."""

    NOT_A_DECISION = "not_a_decision"
    """The record does not parse as a decision (`docs/schemas/decision.json`)."""
    CONFLICTING_EVENT_ID = "conflicting_event_id"
    """Its decision id is logged already for another event: a second, different event that
    reused the `event_id` (its `event_sha256` differs). Never logged, never dropped silently."""


OnReject = Callable[[Message, RejectReason, str], None]
"""Called with each rejected record, the reason and a detail (what a dead letter carries)."""


@dataclass(frozen=True)
class BatchOutcome:
    chain: int
    appended: int
    duplicates: int
    size: int
    fenced: bool = False
    conflicts: tuple[EventConflict, ...] = ()
    """Decisions set aside as conflicting events; dead-lettered before the batch is written
    (step 0b of ledger/sequencer.py)."""


class SequencerEvents:
    """What the sequencer reports while it works (no-ops here); `ledger run` turns these into
    Prometheus metrics."""

    def batch_logged(self, outcome: BatchOutcome) -> None:
        """One chain's share of a batch went through steps 0-2 (or was fenced)."""

    def entries_durable(self, decided_at: Sequence[datetime]) -> None:
        """Step 1 inserted a chain's new entries, of decisions made at `decided_at`."""

    def batch_done(self, seconds: float) -> None:
        """A consumed batch went through step 3, `seconds` after it was consumed."""

    def checkpoint_signed(self, chain: int, size: int) -> None:
        """A checkpoint was stored (step 2, or R4 on assignment)."""

    def chain_released(self, chain: int) -> None:
        """This process no longer writes `chain` (revoked, lost or fenced)."""

    def chain_resumed(self, chain: int, size: int, unsigned: int) -> None:
        """A chain was assigned and rebuilt; `unsigned` entries had no checkpoint yet."""

    def signing_refused(self, chain: int, kind: str) -> None:
        """R3 found a chain it cannot re-derive: nothing was signed, the sequencer stops."""

    def writer_fenced(self, chain: int) -> None:
        """Step 0 found that another writer has written the chain: this one stopped."""

    def commit_failed(self) -> None:
        """Step 3 failed (harmless: the next start resumes from the log, not the offsets)."""

    def dependency(self, name: str, reachable: bool) -> None:
        """ClickHouse or Kafka stopped (False) or started again (True) answering."""

    def events_archived(self, chain: int, archived: int, refused: int) -> None:
        """Step 1 archived `archived` events of a chain's batch and refused `refused` whose
        bytes do not hash to their decision's `event_sha256` (their entries are logged)."""

    def session_started(self) -> None:
        """The store answered and the consumer joined the group: the sequencer works."""
