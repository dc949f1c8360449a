"""Re-deriving logged entries from their recorded source: the decisions topic.

Every entry records where the sequencer read its decision (cluster, topic, partition,
offset). Reading those records again and comparing the decisions they carry with the ones the
entries hold tells whether the entries are what the topic said, without trusting the database
that stores them. The sequencer does this before it signs entries that no checkpoint of its
own covers, and `forensic verify --kafka` does it for a chain's unsigned tail
(docs/ledger-format.md, "Verification").

Decisions are compared in their canonical encoding (`ledger.entry.encode_decision`), so a
record whose decision is equal but encoded differently still matches, and any changed member
(an outcome, a score, a reason) does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from attestcore.errors import MalformedError
from ledger.entry import Entry, decode_decision, encode_decision


@dataclass(frozen=True)
class Mismatch:
    """An entry the topic does not back: its seq and why."""

    seq: int
    reason: str
    unreadable: bool = False
    """No record to compare with (another cluster, or no record at the offset), as opposed
    to a record that carries another decision."""


class Rederiver(Protocol):
    """Re-derives entries from their recorded source (`ledger.topic_records.KafkaRederiver`,
    or a test's in-memory topic)."""

    def rederive(self, entries: Sequence[Entry]) -> list[Mismatch]: ...


def foreign(entries: Sequence[Entry], cluster_id: str) -> list[Mismatch]:
    """The entries read from another Kafka cluster than `cluster_id` (a broker reset since):
    they cannot be re-derived."""
    return [
        Mismatch(
            e.seq,
            f"read from Kafka cluster {e.source.cluster!r}, not {cluster_id!r}",
            unreadable=True,
        )
        for e in entries
        if e.source.cluster != cluster_id
    ]


def compare(entries: Sequence[Entry], records: Mapping[int, bytes]) -> list[Mismatch]:
    """Each entry's decision against the record value at its source offset (`records`, by
    offset, of the entries' one topic partition); a missing record is `unreadable`."""
    mismatches = []
    for entry in entries:
        where = f"{entry.source.topic}/{entry.source.partition}@{entry.source.offset}"
        value = records.get(entry.source.offset)
        if value is None:
            mismatches.append(Mismatch(entry.seq, f"no record at {where}", unreadable=True))
            continue
        try:
            read = encode_decision(decode_decision(value))
        except MalformedError:
            read = b""
        if read != encode_decision(entry.decision):
            mismatches.append(
                Mismatch(entry.seq, f"the record at {where} carries another decision")
            )
    return mismatches
