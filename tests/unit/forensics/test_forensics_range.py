"""Range verification on the in-memory ledger: what it checks, and what it does not read."""

from __future__ import annotations

import pytest
from memory_ledger import COL, SIGNER, MemoryLedger, build

from attestcore.errors import UsageError
from forensics.report import RANGE_TRUST, Report
from forensics.verify_range import verify_range
from ledger.merkle import MerkleTree

SIZES = (4, 9, 13, 16)


def check(ledger: MemoryLedger, first: int, last: int) -> Report:
    return verify_range(ledger, [SIGNER.verifier()], 0, first, last)


def found(report: Report) -> set[tuple[str, int | None, int | None]]:
    return {(f.kind, f.chain, f.seq) for f in report.failures}


def test_a_range_verifies_and_reports_its_trusted_start() -> None:
    ledger = build(SIZES)
    report = check(ledger, 5, 12)
    assert report.ok, report.failures
    assert (report.entries, report.checkpoints) == (8, 2)
    assert report.range is not None
    expected_start = MerkleTree()
    expected_start.extend(row[COL["entry"]] for row in ledger.rows[0][:5])
    data = report.to_json()["range"]
    assert data["from"] == 5 and data["to"] == 12
    assert data["trusted_start"] == {
        "size": 5,
        "root": expected_start.root().hex(),
        "nodes": [[2, 0], [0, 4]],
    }
    assert data["checkpoint_sizes"] == [9, 13]
    assert data["trust"] == RANGE_TRUST


def test_a_range_from_zero_starts_from_the_empty_tree() -> None:
    report = check(build(SIZES), 0, 15)
    assert report.ok, report.failures
    assert (report.entries, report.checkpoints) == (16, 4)


def test_a_tamper_inside_the_range_is_found() -> None:
    ledger = build(SIZES)
    row = ledger.row(7)
    row[COL["entry"]] = row[COL["entry"]].replace(b'"approve"', b'"review"')
    assert {("bad_leaf", 0, 7), ("broken_link", 0, 8), ("root_mismatch", 0, 8)} <= found(
        check(ledger, 5, 12)
    )


def test_an_altered_node_inside_the_range_is_found() -> None:
    ledger = build(SIZES)
    ledger.set_node(1, 4, b"\x44" * 32)  # leaves 8, 9
    assert found(check(ledger, 5, 12)) == {("bad_node", 0, 8)}


def test_nothing_outside_the_range_is_read() -> None:
    ledger = build(SIZES)
    for seq in (2, 14):  # before `from - 1`, after `to`
        row = ledger.row(seq)
        row[COL["entry"]] = row[COL["entry"]].replace(b'"approve"', b'"review"')
    ledger.set_node(0, 14, b"\x55" * 32)
    ledger.set_node(2, 3, b"\x55" * 32)
    ledger.cps[0][-1] = ledger.cps[0][0]  # size 16 replaced
    report = check(ledger, 5, 12)
    assert report.ok, report.failures
    entries = [r for r in ledger.reads if r[0] == "entries"]
    assert entries == [("entries", 0, 4, 5), ("entries", 0, 5, 13)]
    assert [r for r in ledger.reads if r[0] == "checkpoints"] == [("checkpoints", 0, 6, 13)]
    for _, _, level, first, stop in (r for r in ledger.reads if r[0] == "nodes"):
        assert (stop << level) <= 13, (level, first, stop)


def test_a_truncated_range_is_reported() -> None:
    ledger = build(SIZES)
    ledger.rows[0] = [r for r in ledger.rows[0] if r[COL["seq"]] < 10]
    assert found(check(ledger, 5, 12)) == {("truncated", 0, 10)}


def test_a_gap_inside_the_range() -> None:
    ledger = build(SIZES)
    ledger.rows[0] = [r for r in ledger.rows[0] if r[COL["seq"]] != 6]
    assert found(check(ledger, 5, 12)) == {("gap", 0, 6)}


def test_the_trusted_start_is_checked_by_the_signed_roots_in_the_range() -> None:
    ledger = build(SIZES)
    ledger.set_node(2, 0, b"\x66" * 32)  # in the compact range of size 5
    # Also the stored node (3, 0) over leaves 0..7, which leaf 7 completes, disagrees with
    # the one folded from the altered start.
    assert found(check(ledger, 5, 12)) == {
        ("root_mismatch", 0, 8),
        ("root_mismatch", 0, 12),
        ("bad_node", 0, 0),
    }


def test_a_missing_start_is_reported_and_nothing_walked() -> None:
    ledger = build(SIZES)
    ledger.drop_nodes(lambda level, index: (level, index) != (2, 0))
    report = check(ledger, 5, 12)
    assert found(report) == {("bad_node", 0, 0)}
    assert report.entries == 0
    ledger = build(SIZES)
    ledger.rows[0] = [r for r in ledger.rows[0] if r[COL["seq"]] != 4]
    assert found(check(ledger, 5, 12)) == {("gap", 0, 4)}


@pytest.mark.parametrize(("first", "last"), [(5, 4), (-1, 3)])
def test_an_empty_or_negative_range_is_a_usage_error(first: int, last: int) -> None:
    with pytest.raises(UsageError, match="0 <= from <= to"):
        check(build(SIZES), first, last)


@pytest.mark.parametrize(
    ("chain", "first", "last", "message"),
    [
        (7, 0, 5, "chain 7 does not exist in this ledger"),
        (0, 10, 16, r"chain 0 has entries 0\.\.15: the range up to 16 goes beyond it"),
    ],
)
def test_a_range_that_does_not_exist_is_a_usage_error(
    chain: int, first: int, last: int, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        verify_range(build(SIZES), [SIGNER.verifier()], chain, first, last)


def test_a_range_up_to_a_signed_size_whose_entries_are_gone_is_truncation() -> None:
    ledger = build(SIZES)
    ledger.rows[0] = [r for r in ledger.rows[0] if r[COL["seq"]] < 10]
    assert found(check(ledger, 5, 15)) == {("truncated", 0, 10)}
