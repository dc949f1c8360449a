"""(d) The in-memory tree against raw SHA-256, and (e) where one entry's time goes. No I/O.

(d) `MerkleTree.extend_leaf_hashes` over n leaf hashes computes n - 1 interior hashes of 65
    bytes (RFC 9162 2.1.1: 0x01 || left || right), so its ceiling in leaves per second is the
    rate of a bare hashlib loop over 65-byte inputs.
(e) times, per entry, what the sequencer does between Kafka and ClickHouse: decoding and
    validating the decisions a batch at a time (`ledger.decision_batch`), then
    `ChainWriter.append` (entry encoding, leaf hash, columns, tree), and inside that the leaf
    hashing and the tree on their own.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attestcore.schemas import Decision
from ledger.batches import collector_paused
from ledger.chain import ChainWriter, Incoming
from ledger.decision_batch import decode_decisions
from ledger.entry import EntrySource
from ledger.merkle import MerkleTree, leaf_hash

RAW_INPUT_POOL = 65_536
"""Distinct 65-byte inputs the raw hash loop cycles through (6 MB; SHA-256 does not care
whether it has seen an input before, and a pool keeps memory flat at 2M hashes)."""


def leaf_hashes(count: int) -> list[bytes]:
    """`count` distinct 32-byte leaf hashes (built once, outside any timing)."""
    return [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(count)]


def time_tree(leaves: list[bytes]) -> float:
    """Seconds to append `leaves` to an empty tree (and take its root)."""
    started = time.perf_counter()
    tree = MerkleTree()
    tree.extend_leaf_hashes(leaves)
    tree.root()
    return time.perf_counter() - started


def time_raw_hashes(count: int) -> float:
    """Seconds for `count` SHA-256 digests of 65-byte inputs, in a bare loop."""
    pool = [b"\x01" + h + h for h in leaf_hashes(RAW_INPUT_POOL)]
    rounds, rest = divmod(count, len(pool))
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for _ in range(rounds):
        for data in pool:
            sha256(data).digest()
    for data in pool[:rest]:
        sha256(data).digest()
    return time.perf_counter() - started


@dataclass(frozen=True)
class EntryCosts:
    """Microseconds per entry."""

    decode_us: float
    append_us: float
    leaf_hash_us: float
    tree_us: float

    @property
    def total_us(self) -> float:
        return self.decode_us + self.append_us


def time_entry_costs(values: list[bytes], batch_max: int) -> EntryCosts:
    """The per-entry cost of the sequencer's pure work over `values`, batch by batch as the
    sequencer does it: only one batch of decoded decisions alive at a time, and the garbage
    collector paused while a batch is worked on (`ledger.batches.collector_paused`)."""
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    decode_s = append_s = 0.0
    entries: list[bytes] = []
    for first in range(0, len(values), batch_max):
        with collector_paused():
            started = time.perf_counter()
            decoded = decode_decisions(values[first : first + batch_max])
            decode_s += time.perf_counter() - started
            decisions = [d for d in decoded if isinstance(d, Decision)]
            items = [
                Incoming(d, EntrySource(cluster="bench", topic="decisions", partition=0, offset=i))
                for i, d in enumerate(decisions, first)
            ]
            started = time.perf_counter()
            result = writer.append(items)
            append_s += time.perf_counter() - started
            entries.extend(result.entries["entry"])
            del decoded, decisions, items, result
    hash_s, leaves = _timed(lambda: [leaf_hash(entry) for entry in entries])
    tree_s = time_tree(leaves)
    per_entry = 1e6 / len(values)
    return EntryCosts(
        decode_s * per_entry, append_s * per_entry, hash_s * per_entry, tree_s * per_entry
    )


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result
