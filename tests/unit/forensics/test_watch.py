"""`forensic watch` on the in-memory ledger: each pass verifies what is new, and only that;
a fault found is reported on every pass until repaired, and the verified state stays put."""

from __future__ import annotations

from typing import Any

import pytest
from memory_ledger import COL, SIGNER, STRANGER, MemoryLedger, build, checkpoint

from forensics.watch import LedgerWatch, PassResult
from forensics.watch_state import ChainProgress
from ledger.merkle import MerkleTree

SIZES = (4, 9, 13, 16)


class Growing:
    """A ledger of which only the first checkpoints (and their entries) are visible yet."""

    def __init__(self, sizes: tuple[int, ...] = SIZES) -> None:
        self.ledger = build(sizes)
        self.rows = list(self.ledger.rows[0])
        self.cps = list(self.ledger.cps[0])

    def show(self, size: int) -> MemoryLedger:
        self.ledger.rows[0] = [r for r in self.rows if r[COL["seq"]] < size]
        self.ledger.cps[0] = [cp for cp in self.cps if cp.size <= size]
        return self.ledger


def found(result: PassResult) -> set[tuple[str, int | None, int | None]]:
    return {(f.kind, f.chain, f.seq) for f in result.failures}


def watch(ledger: MemoryLedger, recheck: int = 0) -> LedgerWatch:
    return LedgerWatch(ledger, [SIGNER.verifier()], recheck=recheck)


def entry_reads(ledger: MemoryLedger) -> list[tuple[Any, ...]]:
    return [r for r in ledger.reads if r[0] == "entries"]


def test_a_second_pass_verifies_only_the_new_entries() -> None:
    growing = Growing()
    ledger = growing.show(9)
    watcher = watch(ledger)
    first = watcher.run_pass()
    assert first.ok, first.failures
    assert (first.entries, first.checkpoints) == (9, 2)
    assert watcher.verified_sizes() == {0: 9}
    ledger.reads.clear()
    growing.show(16)
    second = watcher.run_pass()
    assert second.ok, second.failures
    assert (second.entries, second.checkpoints) == (7, 2)
    assert watcher.verified_sizes() == {0: 16}
    assert entry_reads(ledger) == [("entries", 0, 9, 16)]
    ledger.reads.clear()
    third = watcher.run_pass()  # nothing new: nothing read but the latest checkpoint
    assert (third.ok, third.entries, third.checkpoints) == (True, 0, 0)
    assert entry_reads(ledger) == []


def test_the_verified_root_is_the_signed_one() -> None:
    ledger = build(SIZES)
    watcher = watch(ledger)
    watcher.run_pass()
    expected = MerkleTree()
    expected.extend(row[COL["entry"]] for row in ledger.rows[0])
    assert watcher.progress[0].root == expected.root() == ledger.cps[0][-1].root


def test_a_rewritten_new_entry_fails_every_pass_and_stops_the_progress() -> None:
    growing = Growing()
    watcher = watch(growing.show(9))
    assert watcher.run_pass().ok
    ledger = growing.show(16)
    row = ledger.row(11)
    row[COL["entry"]] = row[COL["entry"]].replace(b'"approve"', b'"review"')
    first = found(watcher.run_pass())
    assert ("bad_leaf", 0, 11) in first and ("broken_link", 0, 12) in first
    # The same faults again, and nothing more: the failed extension's decision ids were not
    # taken as verified (they would be "logged twice" now).
    assert found(watcher.run_pass()) == first
    assert watcher.verified_sizes() == {0: 9}
    assert len(watcher.progress[0].seen_ids) == 9


def test_a_rewritten_verified_entry_is_found_when_it_is_read_again() -> None:
    ledger = build(SIZES)
    watcher = watch(ledger, recheck=10)
    assert watcher.run_pass().ok  # verifies 16, re-reads 0..9
    row = ledger.row(12)
    row[COL["entry"]] = row[COL["entry"]].replace(b'"approve"', b'"review"')
    second = watcher.run_pass()  # re-reads 10..15
    assert second.rechecked == 6
    assert found(second) == {("bad_leaf", 0, 12)}
    assert watcher.run_pass().rechecked == 10  # round again from 0


def test_a_checkpoint_signed_by_another_key_is_not_trusted() -> None:
    growing = Growing()
    watcher = watch(growing.show(9))
    watcher.run_pass()
    ledger = growing.show(13)
    forged = ledger.cps[0][-1]
    ledger.cps[0][-1] = checkpoint(0, forged.size, forged.root, STRANGER)
    assert found(watcher.run_pass()) == {("bad_signature", 0, 13)}
    assert watcher.verified_sizes() == {0: 9}


def test_a_shrunk_tree_and_a_fork_of_the_verified_size() -> None:
    growing = Growing()
    watcher = watch(growing.show(13))
    watcher.run_pass()
    ledger = growing.show(9)
    assert found(watcher.run_pass()) == {("tree_shrunk", 0, 9)}
    ledger.cps[0] = [*ledger.cps[0], checkpoint(0, 13, bytes(32))]
    assert found(watcher.run_pass()) == {("fork", 0, 13)}


def test_a_tree_node_contradicting_the_verified_root_is_inconsistent() -> None:
    growing = Growing()
    watcher = watch(growing.show(9))
    watcher.run_pass()
    ledger = growing.show(16)
    ledger.set_node(3, 0, bytes(32))  # the node over entries 0..7, in the proof from 9 to 16
    assert ("inconsistent", 0, 9) in found(watcher.run_pass())
    assert watcher.verified_sizes() == {0: 9}


def test_recheck_slices_go_round_the_chain() -> None:
    progress = ChainProgress(0)
    tree = MerkleTree()
    leaves = [bytes([i]) * 32 for i in range(5)]
    tree.extend_leaf_hashes(leaves)
    progress.advance(tree, leaves, set())
    assert [progress.recheck_slice(2) for _ in range(4)] == [(0, 2), (2, 4), (4, 5), (0, 2)]
    assert progress.leaf(3) == leaves[3] and progress.prev == leaves[4]
    assert progress.recheck_slice(0) == (0, 0)
    with pytest.raises(ValueError, match="does not extend"):
        progress.advance(MerkleTree(), leaves, set())
