"""RFC 6962 Merkle trees: hashing, an incremental tree, proofs from stored nodes, verification.

Everything follows RFC 9162 section 2.1 (the RFC 6962 tree with SHA-256); docs/ledger-format.md
describes the bytes for other implementers. A stored node is a *perfect* subtree named
(level, index), covering leaves [index * 2**level, (index + 1) * 2**level); level 0 holds the
leaf hashes. Nodes on the ragged right edge of a tree are never stored but recomputed from the
perfect nodes that tile them. A tree of size n is summarised by its *compact range* (one
perfect node per set bit of n), from which a restarted writer resumes. Proofs are assembled
from O(log n) stored nodes read in one batch through a `NodeReader`; verification computes a
root, then compares it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, NewType, Protocol

from attestcore.errors import MalformedError, ProofError, RootMismatchError, UsageError

LeafHash = NewType("LeafHash", bytes)
RootHash = NewType("RootHash", bytes)
NodeId = tuple[int, int]
"""(level, index) of a perfect subtree."""

HASH_SIZE = 32
_sha256 = hashlib.sha256

EMPTY_ROOT = RootHash(_sha256(b"").digest())
"""RFC 9162 2.1.1: MTH({}) = SHA-256() = e3b0c442...b855."""


def leaf_hash(data: bytes) -> LeafHash:
    """RFC 9162 2.1.1: the hash of one entry, SHA-256(0x00 || data)."""
    return LeafHash(_sha256(b"\x00" + data).digest())


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: the hash of an interior node, SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


@dataclass(frozen=True, slots=True)
class Node:
    """One stored node: the perfect subtree (level, index) and its hash."""

    level: int
    index: int
    hash: bytes

    @property
    def id(self) -> NodeId:
        return (self.level, self.index)


class NodeRun(NamedTuple):
    """Consecutive nodes of one level: (level, first_index + i) has hash hashes[i]."""

    level: int
    first_index: int
    hashes: list[bytes]

    def nodes(self) -> Iterator[Node]:
        for offset, node in enumerate(self.hashes):
            yield Node(self.level, self.first_index + offset, node)


class MerkleTree:
    """An append-only RFC 6962 tree that keeps only its compact range (O(log n) hashes)."""

    __slots__ = ("_size", "_peaks")

    def __init__(self) -> None:
        self._size = 0
        # _peaks[level] is the compact-range node at that level, None where bit `level` of
        # the size is 0. Ascending level is right to left in the tree.
        self._peaks: list[bytes | None] = []

    @property
    def size(self) -> int:
        return self._size

    def root(self) -> RootHash:
        """RFC 9162 2.1.1 MTH of the current size: the compact range folded from the right."""
        acc: bytes | None = None
        for peak in self._peaks:
            if peak is not None:
                acc = peak if acc is None else node_hash(peak, acc)
        return EMPTY_ROOT if acc is None else RootHash(acc)

    def compact_range(self) -> list[Node]:
        """The nodes a restarted writer needs (see `from_compact_range`), left to right."""
        return [
            Node(level, index, self._peak(level)) for level, index in compact_range_ids(self._size)
        ]

    @classmethod
    def from_compact_range(cls, size: int, hashes: Sequence[bytes]) -> MerkleTree:
        """Resume a tree of `size` leaves from the hashes of `compact_range_ids(size)`."""
        ids = compact_range_ids(size)
        if len(hashes) != len(ids):
            raise MalformedError(
                f"a tree of size {size} has {len(ids)} compact-range nodes, got {len(hashes)}"
            )
        tree = cls()
        tree._size = size
        tree._peaks = [None] * size.bit_length()
        for (level, _), node in zip(ids, hashes, strict=True):
            tree._peaks[level] = _checked_hash(node, f"compact-range node at level {level}")
        return tree

    def append(self, leaf: bytes) -> list[Node]:
        """Add one entry; return the nodes it completed (its leaf first, then upwards)."""
        return self.append_leaf_hash(leaf_hash(leaf))

    def append_leaf_hash(self, leaf: bytes) -> list[Node]:
        """Like `append`, for a leaf hash computed elsewhere."""
        index = self._size
        node = _checked_hash(leaf, "leaf hash")
        completed = [Node(0, index, node)]
        peaks = self._peaks
        level = 0
        # Each set low bit of the index is a waiting left sibling that is now complete.
        while (index >> level) & 1:
            node = node_hash(self._peak(level), node)
            peaks[level] = None
            level += 1
            completed.append(Node(level, index >> level, node))
        if level == len(peaks):
            peaks.append(node)
        else:
            peaks[level] = node
        self._size = index + 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[NodeRun]:
        """Add many entries; return the completed nodes as one run per level."""
        sha256 = _sha256
        return self._integrate([sha256(b"\x00" + leaf).digest() for leaf in leaves])

    def extend_leaf_hashes(self, leaf_hashes: Iterable[bytes]) -> list[NodeRun]:
        """Like `extend`, for leaf hashes computed elsewhere."""
        hashes = [_checked_hash(leaf, "leaf hash") for leaf in leaf_hashes]
        return self._integrate(hashes)

    def _integrate(self, hashes: list[bytes]) -> list[NodeRun]:
        # Level by level: the new nodes of one level pair up into the next one. At level L
        # they start at index size >> L; when that is odd their left sibling is the old
        # compact-range node of level L. An unpaired last node is the new one of level L.
        sha256 = _sha256
        peaks = self._peaks
        new_size = self._size + len(hashes)
        runs: list[NodeRun] = []
        level, first = 0, self._size
        while hashes:
            runs.append(NodeRun(level, first, hashes))
            if level == len(peaks):
                peaks.append(None)
            row = [self._peak(level), *hashes] if first & 1 else hashes
            peaks[level] = row[-1] if len(row) & 1 else None
            hashes = [
                sha256(b"\x01" + left + right).digest()
                for left, right in zip(row[0::2], row[1::2], strict=False)
            ]
            level, first = level + 1, first >> 1
        self._size = new_size
        return runs

    def _peak(self, level: int) -> bytes:
        peak = self._peaks[level]
        if peak is None:  # only reachable if _peaks and _size disagree
            raise AssertionError(f"no compact-range node at level {level}")
        return peak


# Which stored nodes a proof needs. A "plan" lists, per proof hash, the perfect nodes that
# tile it left to right: one node, or several for a subtree on the right edge of the tree.


def compact_range_ids(size: int) -> list[NodeId]:
    """The perfect nodes that tile the leaves [0, size), left to right (largest first)."""
    _check_request(size >= 0, f"tree size {size} is negative")
    return _tiling(0, size)


def _tiling(start: int, end: int) -> list[NodeId]:
    # Leaves [start, end) with start aligned to 2**(bit length of the width): the compact
    # range of the width, shifted right by start.
    ids: list[NodeId] = []
    width = end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if (width >> level) & 1:
            ids.append((level, start >> level))
            start += 1 << level
    return ids


def _inclusion_plan(index: int, size: int) -> list[list[NodeId]]:
    """RFC 9162 2.1.3.1 PATH(index, D[size]) as stored nodes, bottom to top."""
    _check_request(0 <= index < size, f"leaf index {index} is not in a tree of size {size}")
    plan: list[list[NodeId]] = []
    # Below the level where the paths to `index` and to the last leaf part, every level has
    # a sibling; only the highest of them can reach past the last leaf (a right-edge subtree).
    inner = (index ^ (size - 1)).bit_length()
    for level in range(inner):
        start = ((index >> level) ^ 1) << level
        plan.append(_tiling(start, min(start + (1 << level), size)))
    # Above it, the path runs along the right edge: only left siblings exist.
    level = inner
    while index >> level:
        if (index >> level) & 1:
            plan.append([(level, (index >> level) - 1)])
        level += 1
    return plan


def _consistency_plan(size1: int, size2: int) -> list[list[NodeId]]:
    """RFC 9162 2.1.4.1 PROOF(size1, D[size2]) as stored nodes."""
    _check_request(0 < size1 <= size2, f"no consistency proof from size {size1} to {size2}")
    if size1 == size2:
        return []
    # The last perfect node of the old tree, (level, size1 >> level - 1), is in both trees;
    # the proof is that node (omitted when it is the whole old tree, so its root) followed by
    # its inclusion path in the new tree, which is the leaf size1 - 1's path from `level` up.
    level = (size1 & -size1).bit_length() - 1
    plan = _inclusion_plan(size1 - 1, size2)[level:]
    if size1 != 1 << level:
        plan.insert(0, [(level, (size1 >> level) - 1)])
    return plan


def inclusion_proof_ids(index: int, size: int) -> list[NodeId]:
    """The stored nodes `inclusion_proof` reads: at most 2 log2(size) of them."""
    return _flatten(_inclusion_plan(index, size))


def consistency_proof_ids(size1: int, size2: int) -> list[NodeId]:
    """The stored nodes `consistency_proof` reads: at most 2 log2(size2) of them."""
    return _flatten(_consistency_plan(size1, size2))


class NodeReader(Protocol):
    """Where proofs read stored nodes: ClickHouse, an evidence bundle, a test dict."""

    def read_nodes(self, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]:
        """Return the hashes of the nodes it has among `ids` (one batch, any order)."""
        ...


class MemoryNodeStore:
    """A dict-backed `NodeReader` that is also written to, for tests and small tools."""

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        self._nodes: dict[NodeId, bytes] = {}
        self.add(nodes)

    def add(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            self._nodes[(node.level, node.index)] = node.hash

    def add_runs(self, runs: Iterable[NodeRun]) -> None:
        for run in runs:
            for offset, node in enumerate(run.hashes):
                self._nodes[(run.level, run.first_index + offset)] = node

    def read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return {node_id: self._nodes[node_id] for node_id in ids if node_id in self._nodes}

    def __len__(self) -> int:
        return len(self._nodes)


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 2.1.3.1 inclusion proof for leaf `index` in the tree of `size` leaves."""
    return _read_plan(_inclusion_plan(index, size), reader)


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 2.1.4.1 consistency proof from the tree of size1 leaves to size2."""
    return _read_plan(_consistency_plan(size1, size2), reader)


def tree_root(size: int, reader: NodeReader) -> RootHash:
    """The root of the tree of `size` leaves, from its O(log n) compact-range nodes."""
    if size == 0:
        return EMPTY_ROOT
    return RootHash(_read_plan([compact_range_ids(size)], reader)[0])


def _read_plan(plan: list[list[NodeId]], reader: NodeReader) -> list[bytes]:
    wanted = _flatten(plan)
    found = reader.read_nodes(wanted)
    missing = [node_id for node_id in wanted if node_id not in found]
    if missing:
        raise ProofError(f"tree nodes (level, index) missing from the store: {missing}")
    for node_id in wanted:
        _checked_hash(found[node_id], f"stored node {node_id}")
    return [_fold_right([found[node_id] for node_id in tiles]) for tiles in plan]


def _fold_right(hashes: list[bytes]) -> bytes:
    # A right-edge subtree from the perfect nodes that tile it (RFC 9162 2.1.1 recursion).
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


def _flatten(plan: list[list[NodeId]]) -> list[NodeId]:
    return list(dict.fromkeys(node_id for tiles in plan for node_id in tiles))


# Verification: compute, then compare.


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> RootHash:
    """The root that `proof` yields for `leaf` at `index` (RFC 9162 2.1.3.2, steps 1-4)."""
    if size <= 0:  # checked first: the empty tree includes nothing
        raise ProofError(f"no leaf is included in a tree of size {size}")
    if not 0 <= index < size:  # step 1
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_proof_hashes(proof, leaf)
    fn, sn, r = index, size - 1, leaf  # steps 2-3
    for p in proof:  # step 4
        if sn == 0:  # 4a
            raise _wrong_length(len(proof), _inclusion_length(index, size))
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c
    if sn != 0:  # step 5, first half
        raise _wrong_length(len(proof), _inclusion_length(index, size))
    return RootHash(r)


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise unless `proof` shows `leaf` at `index` in the tree of `size` with `root`."""
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    if calculated != root:  # step 5, second half
        raise RootMismatchError(root, calculated, f"inclusion of leaf {index} in size {size}")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise unless `proof` shows the tree (size1, root1) is a prefix of (size2, root2).

    Equal sizes need an empty proof and equal roots. From size 0 only size 0 is accepted
    (with the empty root): RFC 9162 2.1.4 defines proofs for 0 < size1, and any tree extends
    the empty one, so such a proof would show nothing.
    """
    if not 0 <= size1 <= size2:
        raise ProofError(f"size1 {size1} must be between 0 and size2 {size2}")
    if size1 == 0 and root1 != EMPTY_ROOT:  # size 0 first: its root is fixed
        raise RootMismatchError(root1, EMPTY_ROOT, "tree of size 0")
    if size1 == 0 < size2:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError(f"sizes are equal ({size1}) but the proof has {len(proof)} hashes")
        if root1 != root2:
            raise RootMismatchError(root2, root1, f"two roots of size {size1}")
        return
    first, second = _roots_from_consistency_proof(size1, size2, proof, root1)
    if first != root1:
        raise RootMismatchError(root1, first, f"consistency proof, tree of size {size1}")
    if second != root2:
        raise RootMismatchError(root2, second, f"consistency proof, tree of size {size2}")


def _roots_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    # RFC 9162 2.1.4.2 for 0 < size1 < size2, steps 1-6; the caller compares (step 7).
    want = _consistency_length(size1, size2)
    if not proof:  # step 1
        raise _wrong_length(0, want)
    _check_proof_hashes(proof)
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)  # step 2
    fn, sn = size1 - 1, size2 - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a
            raise _wrong_length(len(proof), want)
        if fn & 1 or fn == sn:  # 6b
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6c
    if sn != 0:  # step 7, last check
        raise _wrong_length(len(proof), want)
    return fr, sr


def _inclusion_length(index: int, size: int) -> int:
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_length(size1: int, size2: int) -> int:
    level = (size1 & -size1).bit_length() - 1
    whole = size1 == 1 << level
    return _inclusion_length(size1 - 1, size2) - level + (0 if whole else 1)


def _wrong_length(got: int, want: int) -> ProofError:
    return ProofError(f"wrong proof length: got {got} hashes, want {want}")


def _check_proof_hashes(proof: Sequence[bytes], leaf: bytes | None = None) -> None:
    named = [(f"proof hash {i}", value) for i, value in enumerate(proof)]
    for what, value in named if leaf is None else [("leaf hash", leaf), *named]:
        if len(value) != HASH_SIZE:
            raise ProofError(f"{what} has {len(value)} bytes, not {HASH_SIZE}")


def _checked_hash(value: bytes, what: str) -> bytes:
    if len(value) != HASH_SIZE:
        raise MalformedError(f"{what} has {len(value)} bytes, not {HASH_SIZE}")
    return bytes(value)


def _check_request(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)
