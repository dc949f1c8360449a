"""The event archive against its keys, and the typed investigation columns against the
entries.

Every archived event's bytes must hash to the digest they are stored under (the
`event_sha256` of the decisions made on that event). Every `entry_context` row must hold the
investigation fields of the format-2 entry at its (chain, seq), exactly, and every format-2
entry must have one (`ContextCheck`, run during the chain walk: `column_mismatch`).

An entry commits to its event only through that digest, so an archive row whose bytes do not
hash to it is not the event the decision was made on: a forged or damaged copy
(`bad_archive`, docs/ledger-format.md, "Verification"). The sequencer never writes one (it
refuses such bytes, ledger/archive.py); the comparison runs in the database, which returns
only the faulty rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Protocol

from forensics.report import FaultKind, Report
from ledger.archive import CONTEXT_COLUMNS, ArchivedEvent, context_values
from ledger.entry import Entry


class ArchiveSource(Protocol):
    """Where the archive is read (ledger.archive_store.ArchiveStore)."""

    def archive_faults(self) -> list[ArchivedEvent] | None: ...
    def context_rows(self, chain: int) -> Iterator[tuple[Any, ...]] | None: ...


def check_archive(source: ArchiveSource, report: Report) -> None:
    """Report each archived event whose bytes do not hash to its key; note whether the
    archive was there to check."""
    faults = source.archive_faults()
    report.archive_checked = faults is not None
    for row in faults or ():
        actual = hashlib.sha256(row.event).hexdigest()
        if actual == row.event_sha256:
            continue  # the database's answer is re-checked here: only what we hash counts
        report.fail(
            FaultKind.BAD_ARCHIVE,
            None,
            None,
            f"the archived event {row.event_sha256} read at {row.topic}/{row.partition}"
            f"@{row.offset} has bytes that hash to {actual}",
        )


_SEQ = CONTEXT_COLUMNS.index("seq")


class RowCheck(Protocol):
    """Rows derived from the entries, checked as the chain walk reaches each entry."""

    def check(self, seq: int, entry: Entry | None) -> None: ...
    def finish(self) -> None: ...


class RowChecks:
    """Several `RowCheck`s run together by one walk."""

    def __init__(self, checks: list[RowCheck]) -> None:
        self.checks = checks

    def check(self, seq: int, entry: Entry | None) -> None:
        for check in self.checks:
            check.check(seq, entry)

    def finish(self) -> None:
        for check in self.checks:
            check.finish()


class ContextCheck:
    """A chain's `entry_context` rows (by seq) against its entries, as the walk reaches them."""

    def __init__(self, chain: int, rows: Iterator[tuple[Any, ...]], report: Report) -> None:
        self.chain = chain
        self.rows = rows
        self.report = report
        self.pending = next(rows, None)

    def check(self, seq: int, entry: Entry | None) -> None:
        """Entry `seq` (None: its bytes do not parse, already a fault) against its rows."""
        self._stray(seq)
        rows = []
        while self.pending is not None and self.pending[_SEQ] == seq:
            rows.append(self.pending)
            self.pending = next(self.rows, None)
        if entry is None:
            return
        context = entry.decision.context
        if context is None:
            if rows:
                self._fail(seq, "an entry_context row for an entry without investigation fields")
            return
        expected = {"decision_id": entry.decision.decision_id, **context_values(context)}
        if not rows:
            self._fail(seq, "no entry_context row for the entry's investigation fields")
        for row in rows:
            stored = dict(zip(CONTEXT_COLUMNS, row, strict=True))
            wrong = [name for name, value in expected.items() if stored[name] != value]
            if wrong:
                self._fail(
                    seq, "entry_context columns differ from the entry bytes: " + ", ".join(wrong)
                )

    def finish(self) -> None:
        """After the walk: rows beyond the chain's last entry."""
        self._stray(1 << 63)

    def _stray(self, before: int) -> None:
        while self.pending is not None and self.pending[_SEQ] < before:
            self._fail(self.pending[_SEQ], "an entry_context row for no entry of the walk")
            self.pending = next(self.rows, None)

    def _fail(self, seq: int, detail: str) -> None:
        self.report.fail(FaultKind.COLUMN_MISMATCH, self.chain, seq, detail)
