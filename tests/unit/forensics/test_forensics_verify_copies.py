"""The entity index's timeline copies against the entry bytes and the archived events
(forensics/verify_copies.py): the sequencer's own copies pass; an edited field, a copy moved
to another entity or seq, and a moved position are each `timeline_copy_mismatch`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta

import msgspec
from search_ledger import START, payment, scan

from attestcore.schemas import Decision
from forensics.report import FaultKind, Report
from forensics.verify_copies import CopyCheck, check_copy_positions
from ledger.archive import CopyPosition, StoredCopy, archive_batch
from ledger.chain import ChainWriter, Incoming
from ledger.entry import Entry, EntrySource, decode_entry
from ledger.merkle import MerkleTree
from ledger.timeline_copy import decode_copy, encode_copy

EPC = "urn:epc:id:sgtin:0614141.812345.6789"
COLUMN = {"step": "timeline_step"}
"""The index column of a `StoredCopy` field, where the names differ."""


def logged() -> tuple[list[Entry], list[StoredCopy], dict[str, bytes]]:
    """A payment and a scan as the sequencer logs them: entries, the index rows that carry
    a copy (by seq, as a verifier reads them), and the archived events by digest."""
    made: list[tuple[Decision, bytes]] = [
        payment(0, "C1", "T1", 0.2, lat=48.1, lon=11.5),
        scan(1, EPC, START + timedelta(hours=1), 52.5, 13.4, "urn:loc:dc", score=0.95),
    ]
    items = [
        Incoming(d, EntrySource(cluster="k", topic="decisions", partition=0, offset=i), e)
        for i, (d, e) in enumerate(made)
    ]
    written = ChainWriter(chain=0, tree=MerkleTree(), prev=None).append(items).entries
    entries = [decode_entry(bytes(e)) for e in written["entry"]]
    index = archive_batch(0, 0, items).index
    rows = [
        StoredCopy._make(row)
        for row in zip(*(index[COLUMN.get(n, n)] for n in StoredCopy._fields), strict=True)
        if row[-1]
    ]
    events = {hashlib.sha256(e).hexdigest(): e for _, e in made}
    return entries, sorted(rows, key=lambda r: (r.seq, r.entity_kind)), events


def walk(entries: list[Entry], rows: list[StoredCopy]) -> list[tuple[int | None, str]]:
    report = Report()
    check = CopyCheck(0, iter(rows), report)
    for seq, entry in enumerate(entries):
        check.check(seq, entry)
    check.finish()
    assert {f.kind for f in report.failures} <= {FaultKind.TIMELINE_COPY_MISMATCH}
    return [(f.seq, f.detail) for f in report.failures]


def edited(row: StoredCopy, **changes: object) -> StoredCopy:
    copy = decode_copy(row.step)
    assert copy is not None
    return row._replace(step=encode_copy(msgspec.structs.replace(copy, **changes)))


def test_the_sequencers_copies_match_their_entries() -> None:
    entries, rows, _ = logged()
    assert [(r.seq, r.entity_kind) for r in rows] == [
        (0, "customer"),
        (0, "terminal"),
        (1, "biz_location"),
        (1, "epc"),
        (1, "read_point"),
    ]
    assert walk(entries, rows) == []


def test_an_edited_copy_is_a_timeline_copy_mismatch() -> None:
    entries, rows, _ = logged()
    epc = rows[3]
    assert walk(entries, [*rows[:3], edited(epc, outcome="authentic"), rows[4]]) == [
        (1, f"the epc {EPC} row: differs from the entry bytes: timeline_step.outcome")
    ]
    assert walk(entries, [*rows[:3], edited(epc, score=0.01, reasons=[]), rows[4]]) == [
        (
            1,
            f"the epc {EPC} row: differs from the entry bytes:"
            " timeline_step.score, timeline_step.reasons",
        )
    ]
    wrong_column = epc._replace(outcome="authentic")
    assert walk(entries, [*rows[:3], wrong_column, rows[4]]) == [
        (1, f"the epc {EPC} row: differs from the entry bytes: outcome")
    ]
    damaged = epc._replace(step=b'{"lat":')
    assert walk(entries, [*rows[:3], damaged, rows[4]]) == [
        (1, f"the epc {EPC} row: the timeline copy is not a copy of a decision")
    ]


def test_a_copy_under_another_entity_or_seq_is_a_timeline_copy_mismatch() -> None:
    entries, rows, _ = logged()
    elsewhere = rows[0]._replace(entity_value="C2")
    assert walk(entries, [elsewhere, *rows[1:]]) == [
        (0, "the customer C2 row: the entry's decision names no such entity")
    ]
    # The payment's copy on the scan's seq, and one beyond the chain's last entry.
    moved = rows[0]._replace(seq=1, entity_value=EPC, entity_kind="epc")
    beyond = rows[4]._replace(seq=7)
    found = walk(entries, [*rows, moved, beyond])
    assert found[0][0] == 1 and "timeline_step.event_sha256" in found[0][1]
    assert found[1:] == [(7, "a timeline copy for no entry of the walk")]


class Positions:
    """What the database's position comparison would select: the copies whose position is
    not their archived event's (`ArchiveStore.copy_position_faults`)."""

    def __init__(self, rows: list[StoredCopy], events: dict[str, bytes]) -> None:
        self.rows = rows
        self.events = events

    def copy_position_faults(self) -> list[CopyPosition] | None:
        return [
            CopyPosition(
                0, r.seq, r.entity_kind, r.entity_value, r.step, self.events.get(c.event_sha256)
            )
            for r in self.rows
            if (c := decode_copy(r.step)) is not None
        ]

    def timeline_copy_rows(self, chain: int) -> Iterator[StoredCopy] | None:
        return iter(self.rows)


def test_a_moved_position_is_a_timeline_copy_mismatch() -> None:
    _, rows, events = logged()
    report = Report()
    check_copy_positions(Positions(rows, events), report)
    assert report.ok, "candidates whose position is the event's are no fault"

    moved = edited(rows[3], lat=40.4, lon=-3.7)
    unarchived = edited(rows[0], lat=None, lon=None)
    report = Report()
    check_copy_positions(Positions([unarchived, rows[2], moved], {}), report)
    assert [(f.kind, f.seq, f.detail) for f in report.failures] == [
        (
            FaultKind.TIMELINE_COPY_MISMATCH,
            1,
            "the biz_location urn:loc:dc row: its timeline copy places the event at 52.5,"
            " 13.4, the archived event at no position",
        ),
        (
            FaultKind.TIMELINE_COPY_MISMATCH,
            1,
            f"the epc {EPC} row: its timeline copy places the event at 40.4, -3.7, the"
            " archived event at no position",
        ),
    ]
    report = Report()
    check_copy_positions(Positions([moved], events), report)
    assert [f.detail for f in report.failures] == [
        f"the epc {EPC} row: its timeline copy places the event at 40.4, -3.7, the archived"
        " event at 52.5, 13.4"
    ]
