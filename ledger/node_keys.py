"""Tree nodes as the store keys them: one UInt64 per node, `level << 56 | index`.

(A tuple key of mixed integer widths fails in an `IN` on ClickHouse 18.16, so a node is
addressed by one number.) Pure: the chain writer and recovery use it without the store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ledger.merkle import NodeId, NodeRun

LEVEL_SHIFT = 56
"""Tree node key = level << 56 | index: 2^56 leaves per chain is far beyond any real log."""


def node_key(level: int, index: int) -> int:
    return (level << LEVEL_SHIFT) | index


def node_rows(runs: Iterable[NodeRun]) -> tuple[list[int], list[bytes]]:
    """Flatten the tree's completed-node runs into (node keys, hashes) for `insert_nodes`."""
    keys: list[int] = []
    hashes: list[bytes] = []
    for run in runs:
        base = node_key(run.level, run.first_index)
        keys.extend(range(base, base + len(run.hashes)))
        hashes.extend(run.hashes)
    return keys, hashes


class NodeStore(Protocol):
    """A store of tree nodes, every chain's: ClickHouse, or an in-memory ledger in tests."""

    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]: ...


class ChainNodes:
    """One chain's stored tree nodes as the `ledger.merkle.NodeReader` that proofs read from:
    each proof's O(log n) nodes in one query."""

    def __init__(self, store: NodeStore, chain: int) -> None:
        self.store = store
        self.chain = chain

    def read_nodes(self, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]:
        return self.store.read_nodes(self.chain, ids)
