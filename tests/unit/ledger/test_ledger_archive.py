"""Entry format 2 (decisions with investigation fields), format 1 still valid, and the event
archive's digest check and entity index rows (ledger/entry.py, ledger/archive.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from factories import PAYMENT, incoming, make_decision

from attestcore.errors import MalformedError
from attestcore.schemas import (
    BizStep,
    Decision,
    PaymentContext,
    ScanContext,
    encode,
)
from forensics.report import FaultKind, Report
from forensics.verify_archive import ContextCheck, check_archive
from ledger.archive import CONTEXT_COLUMNS, ArchivedEvent, EntityKind, archive_batch, entities
from ledger.chain import ChainWriter, Incoming
from ledger.entry import decode_entry, encode_entry
from ledger.merkle import MerkleTree

SCAN = ScanContext(
    epc="urn:epc:id:sgtin:0614141.812345.6789",
    gtin="80614141123458",
    biz_step=BizStep.RECEIVING,
    biz_location="urn:loc:dc-1",
    read_point="urn:loc:dc-1:dock-3",
)


def with_context(i: int, context: PaymentContext | ScanContext, event: bytes | None) -> Incoming:
    item = incoming(i)
    decision = msgspec.structs.replace(item.decision, context=context)
    return Incoming(decision, item.source, event)


def logged(items: list[Incoming]) -> list[bytes]:
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    return [bytes(e) for e in writer.append(items).entries["entry"]]


def test_a_decision_with_investigation_fields_is_a_format_2_entry() -> None:
    data = logged([with_context(0, PAYMENT, None), with_context(1, SCAN, None)])
    payment, scan = (json.loads(d) for d in data)
    assert payment["v"] == scan["v"] == 2
    assert payment["decision"]["context"] == {
        "kind": "payment",
        "customer_id": "C7",
        "terminal_id": "T42",
        "amount": 12.5,
        "currency": "EUR",
        "channel": "contactless",
        "mcc": "5411",
        "country": "DE",
    }
    assert scan["decision"]["context"]["gtin"] == "80614141123458"
    entries = [decode_entry(d) for d in data]
    assert entries[0].decision.context == PAYMENT and entries[1].decision.context == SCAN
    assert [encode_entry(e) for e in entries] == data, "the canonical bytes are stable"


def test_a_decision_without_them_is_the_format_1_entry_it_always_was() -> None:
    data = logged([incoming(0)])[0]
    assert b'"v":1}' in data and b"context" not in data
    assert encode(make_decision(0)) in data, "the decision's bytes are unchanged"
    assert decode_entry(data).decision.context is None


def test_mixed_formats_in_one_batch_link_and_keep_their_versions() -> None:
    data = logged([incoming(0), with_context(1, PAYMENT, None), incoming(2)])
    assert [json.loads(d)["v"] for d in data] == [1, 2, 1]
    leaf = [hashlib.sha256(b"\x00" + d).hexdigest() for d in data]
    assert [json.loads(d)["prev"] for d in data[1:]] == leaf[:2]


@pytest.mark.parametrize(
    ("version", "context", "reason"),
    [
        (1, PAYMENT, "format version 1 for a decision with"),
        (2, None, "format version 2 for a decision without"),
        (3, PAYMENT, "format version 3"),
    ],
)
def test_a_version_that_is_not_its_decisions_is_malformed(
    version: int, context: PaymentContext | None, reason: str
) -> None:
    item = with_context(0, PAYMENT, None) if context else incoming(0)
    entry = decode_entry(logged([item])[0])
    forged = encode_entry(msgspec.structs.replace(entry, v=version))
    with pytest.raises(MalformedError, match=reason):
        decode_entry(forged)


def test_an_unknown_context_kind_is_malformed() -> None:
    data = logged([with_context(0, PAYMENT, None)])[0].replace(
        b'"kind":"payment"', b'"kind":"wire"'
    )
    with pytest.raises(MalformedError, match="not a ledger entry"):
        decode_entry(data)


def event_for(decision: Decision, event: bytes) -> Decision:
    return msgspec.structs.replace(decision, event_sha256=hashlib.sha256(event).hexdigest())


def test_event_bytes_that_hash_to_the_digest_are_archived_with_their_source() -> None:
    event = b'{"event_id":"ev-0","terminal_id":"T42"}'
    item = with_context(0, PAYMENT, event)
    item = Incoming(event_for(item.decision, event), item.source, event)
    batch = archive_batch(3, 10, [item])
    assert batch.refused == [] and batch.archived == 1
    assert batch.archive["event"] == [event]
    assert batch.archive["event_sha256"] == [hashlib.sha256(event).hexdigest()]
    source = item.decision.source
    assert (batch.archive["topic"], batch.archive["partition"], batch.archive["offset"]) == (
        [source.topic],
        [source.partition],
        [source.offset],
    )


def test_event_bytes_that_do_not_hash_to_the_digest_are_refused_and_named() -> None:
    genuine, forged = b'{"amount":1.0}', b'{"amount":9999.0}'
    item = with_context(4, PAYMENT, forged)
    item = Incoming(event_for(item.decision, genuine), item.source, forged)
    batch = archive_batch(0, 7, [item])
    assert batch.archived == 0
    (refused,) = batch.refused
    assert (refused.chain, refused.seq, refused.event_id) == (0, 7, "ev-4")
    assert refused.actual_sha256 == hashlib.sha256(forged).hexdigest()
    assert hashlib.sha256(genuine).hexdigest() in refused.detail()
    assert len(batch.index["seq"]) == 3, "the decision is still indexed: its entry is logged"


def test_a_record_without_event_bytes_is_indexed_by_event_id_only() -> None:
    batch = archive_batch(0, 0, [incoming(5)])
    assert batch.archived == 0 and batch.refused == []
    assert batch.index["entity_kind"] == ["event_id"] and batch.index["entity_value"] == ["ev-5"]


def test_index_rows_name_each_entity_of_the_investigation_fields() -> None:
    payment, scan = with_context(0, PAYMENT, None), with_context(1, SCAN, None)
    assert entities(payment) == [
        (EntityKind.EVENT_ID, "ev-0"),
        (EntityKind.CUSTOMER, "C7"),
        (EntityKind.TERMINAL, "T42"),
    ]
    assert set(entities(scan)) == {
        (EntityKind.EVENT_ID, "ev-1"),
        (EntityKind.EPC, SCAN.epc),
        (EntityKind.GTIN, "80614141123458"),
        (EntityKind.BIZ_LOCATION, "urn:loc:dc-1"),
        (EntityKind.READ_POINT, "urn:loc:dc-1:dock-3"),
    }
    batch = archive_batch(2, 40, [payment, scan])
    assert batch.index["seq"] == [40] * 3 + [41] * 5
    assert batch.index["chain"] == [2] * 8
    assert set(batch.index["outcome"]) == {payment.decision.outcome, scan.decision.outcome}


class ArchiveRows:
    """The archive as a list of stored rows (what `ArchiveStore.archive_faults` reads)."""

    def __init__(self, rows: list[ArchivedEvent] | None) -> None:
        self.rows = rows

    def archive_faults(self) -> list[ArchivedEvent] | None:
        return None if self.rows is None else [r for r in self.rows if not r.digest_matches()]

    def context_rows(self, chain: int) -> Iterator[tuple[Any, ...]] | None:
        return None


def test_an_archived_event_whose_bytes_do_not_hash_to_its_key_is_bad_archive() -> None:
    genuine = b'{"event_id":"ev-1"}'
    key = hashlib.sha256(genuine).hexdigest()
    rows = [ArchivedEvent(key, "tx", 0, 1, genuine), ArchivedEvent(key, "tx", 0, 2, b"{}")]
    report = Report()
    check_archive(ArchiveRows(rows), report)
    assert report.archive_checked
    (failure,) = report.failures
    assert failure.kind == FaultKind.BAD_ARCHIVE and "tx/0@2" in failure.detail
    assert hashlib.sha256(b"{}").hexdigest() in failure.detail

    missing = Report()
    check_archive(ArchiveRows(None), missing)
    assert missing.ok and not missing.archive_checked


def context_rows(items: list[Incoming]) -> list[tuple[Any, ...]]:
    columns = archive_batch(0, 0, items).contexts
    return list(zip(*(columns[name] for name in CONTEXT_COLUMNS), strict=True))


def test_typed_context_rows_are_checked_against_the_entry_bytes() -> None:
    items = [with_context(0, PAYMENT, None), incoming(1), with_context(2, SCAN, None)]
    entries = [decode_entry(d) for d in logged(items)]
    rows = context_rows(items)
    assert [(r[1], r[3], r[6]) for r in rows] == [(0, "payment", 12.5), (2, "scan", 0.0)]

    def faults(stored: list[tuple[Any, ...]]) -> list[tuple[int | None, str]]:
        report = Report()
        check = ContextCheck(0, iter(stored), report)
        for seq, entry in enumerate(entries):
            check.check(seq, entry)
        check.finish()
        assert {f.kind for f in report.failures} <= {FaultKind.COLUMN_MISMATCH}
        return [(f.seq, f.detail) for f in report.failures]

    assert faults(rows) == []
    edited = list(rows[0])
    edited[CONTEXT_COLUMNS.index("amount")] = 1.25
    assert faults([tuple(edited), rows[1]]) == [
        (0, "entry_context columns differ from the entry bytes: amount")
    ]
    assert faults(rows[1:]) == [(0, "no entry_context row for the entry's investigation fields")]
    moved = list(rows[0])
    moved[1] = 1
    assert [seq for seq, _ in faults([rows[0], tuple(moved), rows[1]])] == [1]
    beyond = list(rows[1])
    beyond[1] = 9
    assert faults([*rows, tuple(beyond)]) == [(9, "an entry_context row for no entry of the walk")]
