"""What `forensic watch` remembers of each chain between two passes (no I/O here).

Per chain: the size and root it verified (the tree as its compact range, RFC 9162 2.1.4:
enough to extend it and to check a consistency proof from it), the hash of the last verified
entry (the next entry's `prev`), the decision ids seen (a decision logged twice), and every
verified leaf hash, 32 bytes an entry, against which already verified entries are re-read a
slice per pass (`recheck_slice`): a rewrite of an old entry is found within
size / recheck passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.merkle import EMPTY_ROOT, MerkleTree, RootHash

LEAF_BYTES = 32


class SeenSince(set[str]):
    """The decision ids a walk adds, over those verified before (`base`, not copied): the
    walk sees both, and the progress takes the new ones only if the extension verified."""

    def __init__(self, base: set[str]) -> None:
        super().__init__()
        self.base = base

    def __contains__(self, item: object) -> bool:
        return item in self.base or super().__contains__(item)


@dataclass
class ChainProgress:
    """One chain as verified so far: everything below `size` has been checked once."""

    chain: int
    tree: MerkleTree = field(default_factory=MerkleTree)
    prev: bytes = bytes(LEAF_BYTES)
    """The leaf hash of entry `size - 1` (zeros for the empty chain), what entry `size`
    must link to."""
    leaves: bytearray = field(default_factory=bytearray)
    seen_ids: set[str] = field(default_factory=set)
    recheck_from: int = 0
    """Where the next re-read of verified entries starts."""

    @property
    def size(self) -> int:
        return self.tree.size

    @property
    def root(self) -> RootHash:
        return self.tree.root() if self.tree.size else EMPTY_ROOT

    def leaf(self, seq: int) -> bytes:
        """The leaf hash verified for entry `seq` (< size)."""
        return bytes(self.leaves[seq * LEAF_BYTES : (seq + 1) * LEAF_BYTES])

    def working_tree(self) -> MerkleTree:
        """A copy of the verified tree to extend; the progress moves only if all checks pass."""
        hashes = [node.hash for node in self.tree.compact_range()]
        return MerkleTree.from_compact_range(self.tree.size, hashes)

    def advance(self, tree: MerkleTree, leaves: list[bytes], new_ids: set[str]) -> None:
        """Take the tree of a verified extension: `leaves` are its new leaf hashes, `new_ids`
        the decision ids it logs. Work proportional to the extension."""
        if tree.size != self.size + len(leaves):
            raise ValueError(
                f"a tree of {tree.size} leaves does not extend {self.size} by {len(leaves)}"
            )
        self.tree = tree
        for leaf in leaves:
            self.leaves += leaf
        if leaves:
            self.prev = leaves[-1]
        self.seen_ids.update(new_ids)

    def recheck_slice(self, limit: int) -> tuple[int, int]:
        """The verified entries [start, stop) to re-read this pass, at most `limit`, going
        round the chain; (0, 0) when none."""
        if limit <= 0 or self.size == 0:
            return 0, 0
        start = self.recheck_from if self.recheck_from < self.size else 0
        stop = min(start + limit, self.size)
        self.recheck_from = stop
        return start, stop
