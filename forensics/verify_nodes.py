"""Stored tree nodes against the nodes recomputed from the entries.

The chain walk rebuilds the tree anyway: each appended leaf completes its leaf node and the
perfect subtrees above it (docs/ledger-format.md, "Tree and node addressing"). `StoredNodes`
compares exactly those with the stored ones, so checking the `nodes` table costs no extra
hashing. Stored nodes are read per level in key order, one page of consecutive indices per
query: the walk completes nodes of all levels interleaved, while one key-ordered stream would
hand over every leaf before the first level-1 node, so a single stream would have to buffer
the whole chain. Paging keeps at most one page per level in memory and reads every stored
node once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from forensics.report import FaultKind, Report
from ledger.merkle import Node, NodeId, compact_range_ids

NODE_PAGE = 8192
"""Indices of one level per query: about 1 MB per page as sent, and a chain of 1M entries
(2M nodes) takes ~250 queries, each a range of the `nodes` table's primary key."""


@runtime_checkable
class NodeSource(Protocol):
    """Where stored nodes are read from (`ClickHouseStore.nodes_in`, or a test fixture)."""

    def nodes_in(
        self, chain: int, level: int, first: int, stop: int
    ) -> Iterable[tuple[int, Sequence[bytes]]]:
        """(index, distinct stored hashes) of nodes (level, first <= index < stop), by index."""
        ...


@dataclass
class _Page:
    first: int
    stop: int
    hashes: dict[int, Sequence[bytes]] = field(default_factory=dict)


class StoredNodes:
    """Compares each node the walk completes with the stored one; reports `bad_node`.

    Only the lowest wrong node of a subtree is reported: above it every ancestor differs
    too, as a consequence. A leaf node that still equals the entry's stored `leaf_hash`
    column is not reported either: the entry changed, and that is reported as `bad_leaf`.
    A missing node is a fault only when a signed checkpoint covers its leaves
    (`required_size`); the sequencer writes the nodes of an unsigned tail again on restart.
    `leaf_stop` bounds the pages read, so a range check reads no node past its range.
    """

    def __init__(
        self,
        source: NodeSource,
        chain: int,
        report: Report,
        required_size: int,
        leaf_stop: int | None = None,
    ) -> None:
        self.source = source
        self.chain = chain
        self.report = report
        self.required_size = required_size
        self.leaf_stop = leaf_stop
        self._pages: dict[int, _Page] = {}
        self._wrong: set[NodeId] = set()

    def check(self, completed: Sequence[Node], column_leaf_hex: str) -> None:
        """Compare the nodes one appended leaf completed (its leaf first, then upwards)."""
        for node in completed:
            self._check_one(node, column_leaf_hex if node.level == 0 else None)

    def leaf_stored(self, index: int) -> bool:
        """Whether a leaf node is stored at `index` (a truncated tail leaves its nodes)."""
        return any(True for _ in self.source.nodes_in(self.chain, 0, index, index + 1))

    def _check_one(self, node: Node, column_leaf_hex: str | None) -> None:
        stored = self._stored(node.level, node.index)
        wrong_below = self._wrong_children(node)
        if len(stored) == 1 and stored[0] == node.hash:
            self.report.nodes += 1
            return
        where = f"node (level {node.level}, index {node.index})"
        if not stored:
            if (node.index + 1) << node.level <= self.required_size:
                self._fail(node, f"{where} is missing from the store")
            return
        self.report.nodes += 1
        if node.hash in stored:
            hexes = ", ".join(h.hex() for h in stored)
            self._fail(node, f"{where} is stored with different hashes: {hexes}")
            return
        self._wrong.add(node.id)
        if wrong_below:
            return  # a consequence of the wrong node below, which is reported
        if column_leaf_hex is not None and [h.hex() for h in stored] == [column_leaf_hex]:
            return  # the entry's bytes changed, not the node: reported as bad_leaf
        self._fail(
            node,
            f"stored {where} is {stored[0].hex()}, recomputed from the entries {node.hash.hex()}",
        )

    def _wrong_children(self, node: Node) -> bool:
        if node.level == 0:
            return False
        children = {(node.level - 1, 2 * node.index), (node.level - 1, 2 * node.index + 1)}
        wrong = bool(children & self._wrong)
        self._wrong -= children
        return wrong

    def _stored(self, level: int, index: int) -> Sequence[bytes]:
        page = self._pages.get(level)
        if page is None or not page.first <= index < page.stop:
            stop = index + NODE_PAGE
            if self.leaf_stop is not None:
                stop = min(stop, max(index + 1, self.leaf_stop >> level))
            page = _Page(index, stop, dict(self.source.nodes_in(self.chain, level, index, stop)))
            self._pages[level] = page
        return page.hashes.get(index, ())

    def _fail(self, node: Node, detail: str) -> None:
        self.report.fail(FaultKind.BAD_NODE, self.chain, node.index << node.level, detail)


def read_compact_range(
    source: NodeSource, chain: int, size: int, report: Report
) -> list[bytes] | None:
    """The stored compact range of `size` (one query per node, O(log size)); None, with a
    `bad_node` failure, when a node is missing or stored with different hashes."""
    hashes: list[bytes] = []
    for level, index in compact_range_ids(size):
        stored = dict(source.nodes_in(chain, level, index, index + 1)).get(index, ())
        where = f"compact-range node (level {level}, index {index}) of size {size}"
        if len(stored) != 1 or len(stored[0]) != 32:
            problem = "is missing" if not stored else "is not one 32-byte hash"
            report.fail(FaultKind.BAD_NODE, chain, index << level, f"{where} {problem}")
            return None
        hashes.append(stored[0])
    return hashes
