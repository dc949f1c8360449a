"""ChainWriter: sequencing, hash links, leaf hashes, tree nodes and duplicate suppression."""

from __future__ import annotations

import hashlib
import json

import msgspec
from factories import incoming, make_decision
from reference_merkle import mth

from attestcore.records import RecentDecision
from attestcore.schemas import encode
from ledger.chain import DEDUP_WINDOW, ChainWriter, Incoming
from ledger.entry import GENESIS_PREV, EntrySource, decode_entry, encode_entry
from ledger.merkle import MerkleTree
from ledger.node_keys import LEVEL_SHIFT


def test_entries_are_linked_hashed_and_in_the_tree() -> None:
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    first = writer.append([incoming(i) for i in range(5)])
    second = writer.append([incoming(i) for i in range(5, 7)])
    rows = [bytes(b) for b in first.entries["entry"] + second.entries["entry"]]
    leaves = [hashlib.sha256(b"\x00" + row).digest() for row in rows]
    entries = [decode_entry(row) for row in rows]

    assert [e.seq for e in entries] == list(range(7))
    assert entries[0].prev == GENESIS_PREV
    assert all(entries[k].prev == leaves[k - 1].hex() for k in range(1, 7))
    assert first.entries["leaf_hash"] + second.entries["leaf_hash"] == [h.hex() for h in leaves]
    assert second.size == 7 and second.root == mth(rows)
    # docs/ledger-format.md "Entries": compact JSON, the entry's members sorted, the decision
    # in schema order, exactly as the detectors publish it
    parsed = json.loads(rows[0])
    assert rows[0] == json.dumps(parsed, separators=(",", ":")).encode()
    assert list(parsed) == sorted(parsed) and list(parsed["source"]) == sorted(parsed["source"])
    assert encode(make_decision(0)) in rows[0]
    assert all(encode_entry(entry) == row for entry, row in zip(entries, rows, strict=True))


def test_completed_nodes_are_returned_for_the_store() -> None:
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    result = writer.append([incoming(i) for i in range(4)])
    ids = {(key >> LEVEL_SHIFT, key & ((1 << LEVEL_SHIFT) - 1)) for key in result.node_keys}
    # 4 leaves, 2 level-1 nodes, 1 level-2 node (the root of a perfect tree of 4)
    assert ids == {(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (2, 0)}
    root_hash = result.node_hashes[result.node_keys.index(2 << LEVEL_SHIFT)]
    assert root_hash == result.root


def test_duplicate_decisions_are_recorded_once() -> None:
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    writer.append([incoming(i) for i in range(3)])
    replay = writer.append([incoming(1, offset=10), incoming(2, offset=11), incoming(3, 12)])
    assert (replay.appended, replay.duplicates, replay.size) == (1, 2, 4)
    assert replay.last_source is not None and replay.last_source.offset == 12


def other_event(i: int, offset: int) -> Incoming:
    """Decision i's id made from another event: the same event id, other event bytes."""
    decision = msgspec.structs.replace(
        make_decision(i), event_sha256="ef" * 32, score=0.95, outcome="block"
    )
    return Incoming(
        decision, EntrySource(cluster="k1", topic="decisions", partition=0, offset=offset)
    )


def test_another_event_with_a_logged_decision_id_is_a_conflict_not_an_entry() -> None:
    writer = ChainWriter(chain=3, tree=MerkleTree(), prev=None)
    writer.append([incoming(i) for i in range(3)])
    result = writer.append([incoming(1, offset=10), other_event(2, offset=11), incoming(3, 12)])
    assert (result.appended, result.duplicates, result.size) == (1, 1, 4)
    [logged] = [decode_entry(bytes(e)) for e in result.entries["entry"]]
    assert (logged.seq, logged.decision) == (3, make_decision(3))
    [conflict] = result.conflicts
    assert conflict.incoming.source.offset == 11
    assert (conflict.logged_event_sha256, conflict.logged_seq, conflict.chain) == ("cd" * 32, 2, 3)
    assert conflict.detail() == (
        f"event_id ev-2: event_sha256 {'ef' * 32} differs from {'cd' * 32}, logged in chain 3 seq 2"
    )
    # still a conflict when it comes again: the window keeps the logged event's digest
    again = writer.append([other_event(2, offset=13), incoming(2, offset=14)])
    assert (again.appended, again.duplicates, len(again.conflicts)) == (0, 1, 1)


def test_a_conflict_within_one_batch_keeps_the_first_event() -> None:
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    result = writer.append(
        [incoming(0), other_event(0, offset=1), incoming(0, offset=2), incoming(1, offset=3)]
    )
    assert (result.appended, result.duplicates, result.size) == (2, 1, 2)
    assert decode_entry(bytes(result.entries["entry"][0])).decision == make_decision(0)
    assert [(c.incoming.source.offset, c.logged_seq) for c in result.conflicts] == [(1, 0)]


def test_remembered_decisions_keep_their_event_digests() -> None:
    """What recovery reloads after a restart: replays are dropped, other events conflict."""
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    writer.remember(
        [RecentDecision(make_decision(i).decision_id, "cd" * 32, 40 + i) for i in range(3)]
    )
    result = writer.append([incoming(0, offset=50), other_event(1, offset=51), incoming(3, 52)])
    assert (result.appended, result.duplicates) == (1, 1)
    assert [(c.incoming.source.offset, c.logged_seq) for c in result.conflicts] == [(51, 41)]


def test_the_window_forgets_the_oldest_decisions_first() -> None:
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    writer.remember([RecentDecision(f"{k:064x}", "cd" * 32, k) for k in range(DEDUP_WINDOW)])
    writer.append([incoming(0)])
    assert len(writer.seen) == DEDUP_WINDOW
    assert f"{0:064x}" not in writer.seen and f"{1:064x}" in writer.seen
    assert writer.seen[make_decision(0).decision_id] == ("cd" * 32, 0)
