"""The event archive against its keys: every archived event's bytes must hash to the digest
they are stored under (the `event_sha256` of the decisions made on that event).

An entry commits to its event only through that digest, so an archive row whose bytes do not
hash to it is not the event the decision was made on: a forged or damaged copy
(`bad_archive`, docs/ledger-format.md, "Verification"). The sequencer never writes one (it
refuses such bytes, ledger/archive.py); the comparison runs in the database, which returns
only the faulty rows.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from forensics.report import FaultKind, Report
from ledger.archive import ArchivedEvent


class ArchiveSource(Protocol):
    """Where the archive is read (ledger.archive_store.ArchiveStore)."""

    def archive_faults(self) -> list[ArchivedEvent] | None: ...


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
            FaultKind.BAD_ARCHIVE, None, None,
            f"the archived event {row.event_sha256} read at {row.topic}/{row.partition}"
            f"@{row.offset} has bytes that hash to {actual}",
        )  # fmt: skip
