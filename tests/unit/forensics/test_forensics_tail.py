"""Entries past the last checkpoint, on the in-memory ledger: a crash window is
`unsigned_tail`, every other shape is `unexplained_tail`, and a tail re-derived from its
source is `unexplained_tail` at each entry the source does not back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from factories import incoming, make_decision
from memory_ledger import COL, SIGNER, MemoryLedger, build, checkpoint, kinds, rows_of

from forensics.verify import verify_ledger
from forensics.verify_tail import TailCheck
from ledger.chain import ChainWriter, Incoming
from ledger.entry import Entry, EntrySource, encode_decision
from ledger.merkle import MerkleTree
from ledger.rederive import Mismatch

BATCH = 5


def ledger_with_tail(tail: Sequence[Incoming], signed: int = 4) -> MemoryLedger:
    """`signed` entries under a checkpoint (offsets 0..signed-1), then `tail` in one batch."""
    ledger = MemoryLedger()
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    for items in ([incoming(i) for i in range(signed)], tail):
        result = writer.append(items)
        ledger.rows.setdefault(0, []).extend(rows_of(result.entries))
        ledger.node_rows.setdefault(0, []).extend(
            zip(result.node_keys, result.node_hashes, strict=True)
        )
        if items is not tail and signed:
            ledger.cps.setdefault(0, []).append(checkpoint(0, result.size, result.root))
    return ledger


def at(i: int, offset: int, cluster: str = "k1", partition: int = 0) -> Incoming:
    source = EntrySource(cluster=cluster, topic="decisions", partition=partition, offset=offset)
    return Incoming(make_decision(i), source)


def check(
    ledger: MemoryLedger, topic: Topic | None = None
) -> set[tuple[str, int | None, int | None]]:
    return kinds(ledger, tail_check=TailCheck(BATCH, topic))


class Topic:
    """The decisions topic as a test knows it: offset -> decision (a `Rederiver`)."""

    def __init__(self, records: dict[int, bytes]) -> None:
        self.records = records
        self.asked: list[int] = []

    def rederive(self, entries: Sequence[Entry]) -> list[Mismatch]:
        self.asked += [e.seq for e in entries]
        return [
            Mismatch(e.seq, f"offset {e.source.offset}")
            for e in entries
            if self.records.get(e.source.offset) != encode_decision(e.decision)
        ]


def test_one_batch_after_the_checkpoint_is_an_unsigned_tail() -> None:
    ledger = ledger_with_tail([incoming(i) for i in range(4, 9)])
    assert check(ledger) == {("unsigned_tail", 0, 4)}


def test_more_than_one_batch_is_an_unexplained_tail() -> None:
    ledger = ledger_with_tail([incoming(i) for i in range(4, 10)])
    assert check(ledger) == {("unexplained_tail", 0, 4)}
    assert kinds(ledger, tail_check=TailCheck(BATCH + 1)) == {("unsigned_tail", 0, 4)}


def test_a_chain_without_any_checkpoint() -> None:
    assert check(ledger_with_tail([incoming(i) for i in range(5)], signed=0)) == {
        ("unsigned_tail", 0, 0)
    }
    ledger = ledger_with_tail([incoming(i) for i in range(9)], signed=0)
    assert check(ledger) == {("unexplained_tail", 0, 0)}


def test_rows_of_two_inserts_are_an_unexplained_tail() -> None:
    ledger = ledger_with_tail([incoming(i) for i in range(4, 7)])
    ledger.row(6)[COL["logged_at"]] = datetime(2031, 1, 1, tzinfo=UTC)
    assert check(ledger) == {("unexplained_tail", 0, 4)}


def test_offsets_that_do_not_increase_are_an_unexplained_tail() -> None:
    ledger = ledger_with_tail([at(4, 7), at(5, 6)])
    assert check(ledger) == {("unexplained_tail", 0, 4)}
    ledger = ledger_with_tail([at(4, 7), at(5, 7)])
    assert check(ledger) == {("unexplained_tail", 0, 4)}


def test_offsets_at_or_before_the_checkpoints_are_an_unexplained_tail() -> None:
    # The checkpoint of size 4 records source offset 3, as the last signed entry has.
    assert check(ledger_with_tail([at(4, 3), at(5, 8)])) == {("unexplained_tail", 0, 4)}
    assert check(ledger_with_tail([at(4, 4), at(5, 8)])) == {("unsigned_tail", 0, 4)}


def test_another_cluster_or_partition_is_an_unexplained_tail() -> None:
    assert check(ledger_with_tail([at(4, 4, cluster="k2")])) == {("unexplained_tail", 0, 4)}
    assert check(ledger_with_tail([at(4, 4, partition=1)])) == {("unexplained_tail", 0, 4)}
    mixed = ledger_with_tail([at(4, 4), at(5, 5, cluster="k2")])
    assert check(mixed) == {("unexplained_tail", 0, 4)}


def test_an_unexplained_tail_says_why() -> None:
    ledger = ledger_with_tail([at(4, 2), at(5, 1)])
    report = verify_ledger(ledger, [SIGNER.verifier()], tail_check=TailCheck(BATCH))
    (failure,) = report.failures
    assert "entries 4..5 are covered by no checkpoint" in failure.detail
    assert "does not increase from 2 to 1 at entry 5" in failure.detail
    assert "not beyond the checkpoint's source offset 3" in failure.detail


def test_a_tail_rederived_from_its_topic() -> None:
    tail = [incoming(i) for i in range(4, 8)]
    records = {item.source.offset: encode_decision(item.decision) for item in tail}
    topic = Topic(records)
    ledger = ledger_with_tail(tail)
    assert check(ledger, topic) == {("unsigned_tail", 0, 4)}
    assert topic.asked == [4, 5, 6, 7]
    records[5] = encode_decision(make_decision(55))
    del records[7]
    assert check(ledger, topic) == {("unexplained_tail", 0, 5), ("unexplained_tail", 0, 7)}


def test_a_tail_of_the_wrong_shape_is_not_rederived() -> None:
    topic = Topic({})
    ledger = ledger_with_tail([incoming(i) for i in range(4, 11)])
    assert check(ledger, topic) == {("unexplained_tail", 0, 4)}
    assert topic.asked == []


def test_a_signed_chain_has_no_tail_to_rederive() -> None:
    topic = Topic({})
    assert check(build(), topic) == set()
    assert topic.asked == []
