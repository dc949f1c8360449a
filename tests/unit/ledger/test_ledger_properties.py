"""The incremental tree and the stored-node proofs agree with the literal RFC 6962 text
(reference_merkle.py): roots, completed nodes, inclusion paths and consistency proofs, for
every size from 0, every index and every pair of sizes, then on random shapes (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_merkle import mth, path, proof

from attestcore.errors import VerificationError
from ledger.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    MerkleTree,
    compact_range_ids,
    consistency_proof,
    consistency_proof_ids,
    inclusion_proof,
    inclusion_proof_ids,
    root_from_inclusion_proof,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

EXHAUSTIVE_SIZE = 34  # past 32, so trees of 1 to 5 levels and every ragged right edge
ENTRIES = [b"entry %d" % i for i in range(EXHAUSTIVE_SIZE)]


def _store(entries: list[bytes]) -> MemoryNodeStore:
    store = MemoryNodeStore()
    tree = MerkleTree()
    for entry in entries:
        store.add(tree.append(entry))
    return store


STORE = _store(ENTRIES)  # nodes of the largest tree serve every smaller size too


def _perfect_nodes(entries: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect subtree of the tree, by definition: MTH of an aligned power-of-two range."""
    nodes = {}
    level = 0
    while 1 << level <= len(entries):
        width = 1 << level
        for index in range(len(entries) // width):
            nodes[(level, index)] = mth(entries[index * width : (index + 1) * width])
        level += 1
    return nodes


@pytest.mark.parametrize("size", range(EXHAUSTIVE_SIZE + 1))
def test_roots_and_nodes_match_the_rfc(size: int) -> None:
    entries = ENTRIES[:size]
    tree = MerkleTree()
    appended = {node.id: node.hash for entry in entries for node in tree.append(entry)}
    assert tree.size == size
    assert tree.root() == mth(entries)
    assert appended == _perfect_nodes(entries)
    assert tree_root(size, STORE) == mth(entries)
    resumed = MerkleTree.from_compact_range(size, [n.hash for n in tree.compact_range()])
    assert resumed.root() == mth(entries)
    assert [n.id for n in tree.compact_range()] == compact_range_ids(size)
    assert len(compact_range_ids(size)) == size.bit_count()


def test_empty_tree() -> None:
    # printf '' | sha256sum -> e3b0c442...b855
    assert MerkleTree().root() == EMPTY_ROOT == mth([])
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, EXHAUSTIVE_SIZE + 1))
def test_every_inclusion_proof_matches_path(size: int) -> None:
    entries = ENTRIES[:size]
    root = mth(entries)
    for index in range(size):
        got = inclusion_proof(index, size, STORE)
        assert got == path(index, entries)
        leaf = mth(entries[index : index + 1])
        verify_inclusion(index, size, leaf, got, root)
        assert root_from_inclusion_proof(index, size, leaf, got) == root
        assert len(inclusion_proof_ids(index, size)) <= 2 * max(1, math.ceil(math.log2(size)))


@pytest.mark.parametrize("size2", range(1, EXHAUSTIVE_SIZE + 1))
def test_every_consistency_proof_matches_proof(size2: int) -> None:
    root2 = mth(ENTRIES[:size2])
    for size1 in range(1, size2 + 1):
        got = consistency_proof(size1, size2, STORE)
        assert got == proof(size1, ENTRIES[:size2])
        verify_consistency(size1, size2, got, mth(ENTRIES[:size1]), root2)
        assert len(consistency_proof_ids(size1, size2)) <= 2 * math.ceil(math.log2(size2) + 1)


def _flip(hashes: list[bytes], position: int, bit: int) -> list[bytes]:
    changed = bytearray(hashes[position])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*hashes[:position], bytes(changed), *hashes[position + 1 :]]


@settings(max_examples=60, deadline=None)
@given(
    leaves=st.lists(st.binary(max_size=40), min_size=1, max_size=300),
    batches=st.lists(st.integers(min_value=0, max_value=50), max_size=12),
    data=st.data(),
)
def test_random_trees(leaves: list[bytes], batches: list[int], data: st.DataObject) -> None:
    # Grow the same tree in random batches, resuming from the compact range between them.
    tree, store, done = MerkleTree(), MemoryNodeStore(), 0
    for batch in [*batches, len(leaves)]:
        chunk = leaves[done : done + batch]
        store.add_runs(tree.extend(chunk))
        done += len(chunk)
        tree = MerkleTree.from_compact_range(tree.size, [n.hash for n in tree.compact_range()])
        assert tree.root() == mth(leaves[:done])
    assert done == len(leaves)
    assert store.read_nodes(list(_perfect_nodes(leaves))) == _perfect_nodes(leaves)
    assert len(store) == len(_perfect_nodes(leaves))  # and nothing else was emitted

    size = data.draw(st.integers(min_value=1, max_value=len(leaves)), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    size1 = data.draw(st.integers(min_value=1, max_value=size), label="size1")
    root, root1 = mth(leaves[:size]), mth(leaves[:size1])
    leaf = mth(leaves[index : index + 1])

    inclusion = inclusion_proof(index, size, store)
    assert inclusion == path(index, leaves[:size])
    verify_inclusion(index, size, leaf, inclusion, root)
    consistency = consistency_proof(size1, size, store)
    assert consistency == proof(size1, leaves[:size])
    verify_consistency(size1, size, consistency, root1, root)

    # Any flipped bit in any proof hash is caught.
    if inclusion:
        spot = data.draw(st.integers(0, len(inclusion) - 1)), data.draw(st.integers(0, 255))
        with pytest.raises(VerificationError):
            verify_inclusion(index, size, leaf, _flip(inclusion, *spot), root)
    if consistency:
        spot = data.draw(st.integers(0, len(consistency) - 1)), data.draw(st.integers(0, 255))
        with pytest.raises(VerificationError):
            verify_consistency(size1, size, _flip(consistency, *spot), root1, root)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=1, max_value=2**62), data=st.data())
def test_proof_shape_for_huge_trees(size: int, data: st.DataObject) -> None:
    # No tree is built: the node ids alone must stay O(log n) and inside the tree.
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    size1 = data.draw(st.integers(min_value=1, max_value=size))
    bound = 2 * size.bit_length() + 2
    for ids in (inclusion_proof_ids(index, size), consistency_proof_ids(size1, size)):
        assert len(ids) <= bound
        assert all((i + 1) << level <= size for level, i in ids)
