"""Rebuilding one chain's writer from what ClickHouse holds (the sequencer's recovery).

Run when a partition is assigned, before anything is read from it (steps R1 and R2 of the
sequencer's module doc):
  R1. read the chain head (its last entry) and the latest checkpoint;
  R2. rebuild the tree from the checkpoint's O(log n) compact-range nodes, check that they
      fold to the signed root, then re-hash the entries logged after the checkpoint (a crash
      between steps 1 and 2 of a batch) from their stored bytes and write their tree nodes
      again (the nodes table collapses identical rows).
The recent decision ids are reloaded with their event digests, so that after a restart
replays are still dropped and a different event reusing an event id is still a conflict.
Anything that does not add up (a checkpoint beyond the head, a gap or a fork in the tail)
raises `ChainStateError`: the sequencer refuses to extend a chain it cannot trust.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from attestcore.errors import VerificationError
from attestcore.records import ENTRY_COLUMNS, ChainHead, RecentDecision, StoredCheckpoint
from ledger.chain import DEDUP_WINDOW, ChainWriter
from ledger.merkle import MerkleTree, NodeId, compact_range_ids
from ledger.node_keys import node_rows

RECOVERY_ID_WINDOW = DEDUP_WINDOW
"""How many recent decisions (id, event digest, seq) a resumed writer reloads for its
duplicate window: as many as it keeps while running."""

_SEQ = ENTRY_COLUMNS.index("seq")
_ENTRY = ENTRY_COLUMNS.index("entry")


class ChainStateError(VerificationError):
    """The stored chain is not one a writer can extend; `attestream forensic verify` says why."""

    kind = "chain_state"

    def diagnostics(self) -> str:
        return f"{self}\nRun `attestream forensic verify` to locate the fault."


class RecoveryStore(Protocol):
    """The reads and writes recovery needs (ClickHouseStore, or an in-memory fake in tests)."""

    def latest_checkpoint(self, chain: int) -> StoredCheckpoint | None: ...
    def head(self, chain: int) -> ChainHead: ...
    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> dict[NodeId, bytes]: ...
    def entry_rows(self, chain: int, start: int = 0) -> Iterable[Sequence[Any]]: ...
    def insert_nodes(self, chain: int, keys: Sequence[int], hashes: Sequence[bytes]) -> None: ...
    def recent_decisions(self, chain: int, limit: int) -> list[RecentDecision]: ...


@dataclass
class RecoveredChain:
    writer: ChainWriter
    head: ChainHead
    checkpoint: StoredCheckpoint | None
    """The latest stored checkpoint, whose compact range the tree was rebuilt from."""
    tail: list[bytes]
    """Leaf hashes of the entries after it, re-hashed from their stored bytes."""

    @property
    def checkpointed(self) -> int:
        """Tree size of the latest stored checkpoint (0 when there is none)."""
        return self.checkpoint.size if self.checkpoint else 0

    @property
    def unsigned(self) -> int:
        """Entries durable without a checkpoint over them (a crash between steps 1 and 2)."""
        return self.writer.size - self.checkpointed


def recover_chain(store: RecoveryStore, chain: int) -> RecoveredChain:
    """Steps R1 and R2: the writer that continues `chain` exactly where the store ends."""
    checkpoint = store.latest_checkpoint(chain)  # R1
    head = store.head(chain)
    tree = _checkpointed_tree(store, chain, checkpoint, head)  # R2
    tail = _tail_leaves(store, chain, tree.size)
    if tree.size + len(tail) != head.size:  # only if someone wrote while we read
        raise ChainStateError(
            f"chain {chain}: the head is entry {head.size - 1} but the entries read reach"
            f" {tree.size + len(tail) - 1}"
        )
    store.insert_nodes(chain, *node_rows(tree.extend_leaf_hashes(tail)))
    prev = tail[-1] if tail else head.last_leaf_hash
    writer = ChainWriter(chain=chain, tree=tree, prev=prev)
    writer.remember(reversed(store.recent_decisions(chain, RECOVERY_ID_WINDOW)))
    return RecoveredChain(writer, head, checkpoint, tail)


def _checkpointed_tree(
    store: RecoveryStore, chain: int, checkpoint: StoredCheckpoint | None, head: ChainHead
) -> MerkleTree:
    if checkpoint is None or checkpoint.size == 0:
        return MerkleTree()
    if checkpoint.size > head.size:
        raise ChainStateError(
            f"chain {chain}: a signed checkpoint covers {checkpoint.size} entries but the store"
            f" holds {head.size}"
        )
    ids = compact_range_ids(checkpoint.size)
    nodes = store.read_nodes(chain, ids)
    missing = [node for node in ids if node not in nodes]
    if missing:
        raise ChainStateError(
            f"chain {chain}: the store lacks tree nodes {missing} of checkpoint size"
            f" {checkpoint.size}"
        )
    tree = MerkleTree.from_compact_range(checkpoint.size, [nodes[node] for node in ids])
    if tree.root() != checkpoint.root:
        raise ChainStateError(
            f"chain {chain}: the stored nodes of size {checkpoint.size} give root"
            f" {tree.root().hex()}, the checkpoint signs {checkpoint.root.hex()}"
        )
    return tree


def _tail_leaves(store: RecoveryStore, chain: int, start: int) -> list[bytes]:
    """Leaf hashes of the entries from `start` on, recomputed from their stored bytes."""
    leaves: list[bytes] = []
    for row in store.entry_rows(chain, start):
        seq = row[_SEQ]
        if seq != start + len(leaves):
            what = "two entries claim" if seq < start + len(leaves) else "a gap before"
            raise ChainStateError(f"chain {chain}: {what} seq {seq}")
        leaves.append(hashlib.sha256(b"\x00" + bytes(row[_ENTRY])).digest())
    return leaves
