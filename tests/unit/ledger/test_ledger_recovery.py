"""Rebuilding a chain writer from the store (ledger.recovery), on an in-memory store: the
resumed writer continues exactly as an uninterrupted one would, after a crash in any window
of the order of durability, and refuses a chain it cannot trust."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec
import pytest
from factories import incoming, make_decision

from attestcore.records import ENTRY_COLUMNS, ChainHead, RecentDecision, StoredCheckpoint
from ledger.chain import AppendResult, ChainWriter, Incoming
from ledger.entry import decode_entry
from ledger.merkle import MerkleTree, NodeId
from ledger.node_keys import LEVEL_SHIFT, node_key
from ledger.recovery import ChainStateError, recover_chain

COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}


class MemoryStore:
    """The reads and writes of `RecoveryStore`, over lists and dicts, for one chain."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.nodes: dict[int, bytes] = {}
        self.checkpoints: list[StoredCheckpoint] = []

    # what the sequencer writes, step by step
    def insert_entries(self, columns: Mapping[str, Sequence[Any]]) -> None:
        columns_in_order = [columns[name] for name in ENTRY_COLUMNS]
        self.rows.extend(list(row) for row in zip(*columns_in_order, strict=True))

    def insert_nodes(self, chain: int, keys: Sequence[int], hashes: Sequence[bytes]) -> None:
        self.nodes.update(zip(keys, hashes, strict=True))

    def checkpoint(self, result: AppendResult) -> None:
        self.checkpoints.append(StoredCheckpoint(0, result.size, result.root, b"", "k1", 0))

    # what recovery reads
    def latest_checkpoint(self, chain: int) -> StoredCheckpoint | None:
        return max(self.checkpoints, key=lambda cp: cp.size, default=None)

    def head(self, chain: int) -> ChainHead:
        if not self.rows:
            return ChainHead(0, None, "", -1)
        last = max(self.rows, key=lambda row: row[COL["seq"]])
        return ChainHead(
            last[COL["seq"]] + 1,
            bytes.fromhex(last[COL["leaf_hash"]]),
            last[COL["source_cluster"]],
            last[COL["source_offset"]],
        )

    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        found = {node: self.nodes.get(node_key(*node)) for node in ids}
        return {node: value for node, value in found.items() if value is not None}

    def entry_rows(self, chain: int, start: int = 0) -> Iterator[list[Any]]:
        return iter(
            sorted((r for r in self.rows if r[COL["seq"]] >= start), key=lambda r: r[COL["seq"]])
        )

    def recent_decisions(self, chain: int, limit: int) -> list[RecentDecision]:
        ordered = sorted(self.rows, key=lambda r: r[COL["seq"]], reverse=True)
        return [
            RecentDecision(
                r[COL["decision_id"]],
                decode_entry(bytes(r[COL["entry"]])).decision.event_sha256,
                r[COL["seq"]],
            )
            for r in ordered[:limit]
        ]


def fresh_writer() -> ChainWriter:
    return ChainWriter(chain=0, tree=MerkleTree(), prev=None)


def logged(store: MemoryStore, writer: ChainWriter, numbers: range, steps: int = 2) -> None:
    """Append decisions and make `steps` of them durable: 1 = entries and nodes only (a crash
    between steps 1 and 2), 0 = entries only (a crash between the two inserts of step 1)."""
    result = writer.append([incoming(i) for i in numbers])
    store.insert_entries(result.entries)
    if steps >= 1:
        store.insert_nodes(0, result.node_keys, result.node_hashes)
    if steps >= 2:
        store.checkpoint(result)


@pytest.mark.parametrize("steps", [2, 1, 0], ids=["checkpointed", "no-checkpoint", "no-nodes"])
def test_a_resumed_writer_continues_like_an_uninterrupted_one(steps: int) -> None:
    store, reference, writer = MemoryStore(), fresh_writer(), fresh_writer()
    logged(store, writer, range(0, 11))
    logged(store, writer, range(11, 20), steps=steps)
    reference.append([incoming(i) for i in range(20)])

    recovered = recover_chain(store, 0)
    assert recovered.unsigned == (0 if steps == 2 else 9)
    assert recovered.head.source_offset == 19
    assert (recovered.writer.size, recovered.writer.tree.root()) == (20, reference.tree.root())
    # the tail's nodes are stored again, so proofs reach every entry
    assert {node_key(0, 19), node_key(2, 4)} <= set(store.nodes)
    # the next batch comes out byte for byte as without the crash, replays dropped
    replayed = [incoming(i, offset=20 + i) for i in (3, 19)]
    after = recovered.writer.append([*replayed, *(incoming(i) for i in range(20, 25))])
    expected = reference.append([incoming(i) for i in range(20, 25)])
    assert (after.appended, after.duplicates) == (5, 2)
    assert after.entries["entry"] == expected.entries["entry"]
    assert after.root == expected.root


def test_an_empty_chain_resumes_at_genesis() -> None:
    recovered = recover_chain(MemoryStore(), 0)
    assert (recovered.writer.size, recovered.writer.prev, recovered.unsigned) == (0, None, 0)
    assert recovered.head.source_offset == -1


def test_a_checkpoint_beyond_the_head_is_refused() -> None:
    store = MemoryStore()
    logged(store, fresh_writer(), range(0, 8))
    del store.rows[5:]
    with pytest.raises(ChainStateError, match="covers 8 entries but the store holds 5"):
        recover_chain(store, 0)


def test_nodes_that_do_not_give_the_signed_root_are_refused() -> None:
    store = MemoryStore()
    logged(store, fresh_writer(), range(0, 6))
    store.nodes[node_key(1, 2)] = bytes(32)  # compact range of 6: (2, 0) and (1, 2)
    with pytest.raises(ChainStateError, match="give root"):
        recover_chain(store, 0)


def test_a_missing_compact_range_node_is_refused() -> None:
    store = MemoryStore()
    logged(store, fresh_writer(), range(0, 6))
    del store.nodes[2 << LEVEL_SHIFT]
    with pytest.raises(ChainStateError, match=r"lacks tree nodes \[\(2, 0\)\]"):
        recover_chain(store, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("gap", "a gap before seq 5"),
        ("fork", "two entries claim seq 3"),
    ],
)
def test_a_gap_or_a_fork_in_the_tail_is_refused(change: str, message: str) -> None:
    store, writer = MemoryStore(), fresh_writer()
    logged(store, writer, range(0, 2))
    logged(store, writer, range(2, 6), steps=1)
    if change == "gap":
        store.rows = [r for r in store.rows if r[COL["seq"]] != 4]
    else:
        store.rows.append(list(store.rows[3]))
    with pytest.raises(ChainStateError, match=message):
        recover_chain(store, 0)


def test_a_resumed_writer_still_knows_the_logged_event_digests() -> None:
    store, writer = MemoryStore(), fresh_writer()
    logged(store, writer, range(0, 12))
    resumed = recover_chain(store, 0).writer
    changed = msgspec.structs.replace(make_decision(5), event_sha256="ef" * 32)
    result = resumed.append(
        [Incoming(changed, incoming(5, offset=20).source), incoming(5, offset=21), incoming(12)]
    )
    assert (result.appended, result.duplicates) == (1, 1)
    assert [
        (c.incoming.source.offset, c.logged_event_sha256, c.logged_seq) for c in result.conflicts
    ] == [(20, "cd" * 32, 5)]
