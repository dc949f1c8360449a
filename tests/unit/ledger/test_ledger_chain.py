"""ChainWriter: sequencing, hash links, leaf hashes, tree nodes and duplicate suppression."""

from __future__ import annotations

import hashlib
import json

from factories import incoming, make_decision
from reference_merkle import mth  # type: ignore[import-not-found]

from ledger.chain import ChainWriter
from ledger.entry import GENESIS_PREV, decode_entry, encode_entry
from ledger.merkle import MerkleTree
from ledger.store import LEVEL_SHIFT
from streams.schemas import encode


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
