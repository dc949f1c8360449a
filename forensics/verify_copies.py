"""The entity index's timeline copies against the entry bytes and the archived events.

A timeline shows each decision from the copy its index row carries (`ledger.timeline_copy`),
so a copy edited in the database would show an investigator a decision the ledger never
logged. Every copy must therefore be the one the sequencer derives from the entry at its
(chain, seq), on a row of an entity that entry's decision names (`CopyCheck`, run during the
chain walk), and state its archived event's position, or none when the event is not
archived (`check_copy_positions`). A difference is `timeline_copy_mismatch`
(docs/ledger-format.md, "Verification"). Rows without a copy (written before it existed)
are read from the entries by a timeline and need no check here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from forensics.report import FaultKind, Report
from ledger.archive import CopyPosition, StoredCopy, decision_entities
from ledger.entry import Entry
from ledger.timeline_copy import (
    Position,
    decode_copy,
    differing_fields,
    event_position,
    timeline_copy,
)


@runtime_checkable
class CopySource(Protocol):
    """Where the copies are read (ledger.archive_store.ArchiveStore)."""

    def timeline_copy_rows(self, chain: int) -> Iterator[StoredCopy] | None: ...
    def copy_position_faults(self) -> list[CopyPosition] | None: ...


class CopyCheck:
    """A chain's timeline copies (by seq) against its entries, as the walk reaches them."""

    def __init__(self, chain: int, rows: Iterator[StoredCopy], report: Report) -> None:
        self.chain = chain
        self.rows = rows
        self.report = report
        self.pending = next(rows, None)

    def check(self, seq: int, entry: Entry | None) -> None:
        """Entry `seq` (None: its bytes do not parse, already a fault) against its copies."""
        self._stray(seq)
        rows = []
        while self.pending is not None and self.pending.seq == seq:
            rows.append(self.pending)
            self.pending = next(self.rows, None)
        if entry is None:
            return
        for row in rows:
            wrong = copy_faults(row, entry)
            if wrong:
                self._fail(seq, f"the {row.entity_kind} {row.entity_value} row: {wrong}")

    def finish(self) -> None:
        """After the walk: copies beyond the chain's last entry."""
        self._stray(1 << 63)

    def _stray(self, before: int) -> None:
        while self.pending is not None and self.pending.seq < before:
            self._fail(self.pending.seq, "a timeline copy for no entry of the walk")
            self.pending = next(self.rows, None)

    def _fail(self, seq: int, detail: str) -> None:
        self.report.fail(FaultKind.TIMELINE_COPY_MISMATCH, self.chain, seq, detail)


def copy_faults(row: StoredCopy, entry: Entry) -> str | None:
    """What is wrong with one stored copy of `entry`'s decision (None: nothing). The
    position is not in the entry: `check_copy_positions` compares it with the event."""
    decision = entry.decision
    if (row.entity_kind, row.entity_value) not in {
        (kind.value, value) for kind, value in decision_entities(decision)
    }:
        return "the entry's decision names no such entity"
    columns = {
        # Read as the walk reads the entries' time columns (forensics/verify_chain.py).
        "event_time": int(row.event_time.timestamp()) == int(decision.event_time.timestamp()),
        "decision_id": row.decision_id == decision.decision_id,
        "detector": row.detector == decision.detector.value,
        "outcome": row.outcome == decision.outcome,
    }
    stored = decode_copy(row.step)
    if stored is None:
        return "the timeline copy is not a copy of a decision"
    expected = timeline_copy(decision, stored.position)
    wrong = [name for name, same in columns.items() if not same]
    wrong += [f"timeline_step.{name}" for name in differing_fields(stored, expected)]
    return "differs from the entry bytes: " + ", ".join(wrong) if wrong else None


def check_copy_positions(source: CopySource, report: Report) -> None:
    """Report each copy whose position is not its archived event's (none when the event is
    not archived). The database selects the candidates; each is decoded again here, and
    only what this check decodes counts."""
    for row in source.copy_position_faults() or ():
        stored = decode_copy(row.step)
        if stored is None:
            continue  # the walk names a copy that does not decode
        actual = event_position(row.event)
        if stored.position == actual:
            continue
        report.fail(
            FaultKind.TIMELINE_COPY_MISMATCH,
            row.chain,
            row.seq,
            f"the {row.entity_kind} {row.entity_value} row: its timeline copy places the event"
            f" at {_where(stored.position)}, the archived event at {_where(actual)}",
        )


def _where(position: Position | None) -> str:
    return "no position" if position is None else f"{position.lat}, {position.lon}"
