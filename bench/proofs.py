"""(c) Inclusion proofs read from ClickHouse, against one trivial node read.

Each proof is `ledger.merkle.inclusion_proof` over `ledger.node_keys.ChainNodes`: one query for
the at most 2 log2(n) stored nodes it needs. The ceiling is the latency of the cheapest
possible read of the same table, one node by its key, so the ratio shows what the proof's
extra nodes and its planning cost on top of the round trip.

Proofs are timed once ClickHouse has finished merging the parts the ledger run just wrote
(a bounded wait, well under a second here): on 2 cores those merges would compete with every
query, and the tail would measure them rather than the proofs.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from attestcore.records import ENTRY_COLUMNS
from attestcore.waiting import poll_until
from ledger.merkle import inclusion_proof as build_inclusion_proof
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.node_keys import ChainNodes
from ledger.store import ClickHouseStore

CHAIN = 0
# Merging the parts of a 200,000-entry run takes a few seconds here; a minute means
# something else is merging, and the proofs are then timed anyway.
SETTLE_TIMEOUT_S = 60.0
SETTLE_POLL_S = 0.2


@dataclass(frozen=True)
class ProofTimes:
    proof_ms: list[float]
    single_read_ms: list[float]
    settle_s: float
    """How long the store's merges took to finish before the proofs were timed."""


def wait_for_merges(store: ClickHouseStore) -> float:
    """Wait (bounded) until no merge runs in the store's database; return the seconds waited."""
    started = time.perf_counter()
    poll_until(store.running_merges, lambda n: n == 0, SETTLE_TIMEOUT_S,
               interval_s=SETTLE_POLL_S)  # fmt: skip
    return time.perf_counter() - started


def time_proofs(store: ClickHouseStore, count: int, seed: int) -> ProofTimes:
    """`count` proofs of random leaves against the latest checkpoint, each verified (untimed)."""
    settle_s = wait_for_merges(store)
    checkpoint = store.latest_checkpoint(CHAIN)
    if checkpoint is None:
        raise AssertionError("no checkpoint to prove against")
    size, root = checkpoint.size, checkpoint.root
    nodes = ChainNodes(store, CHAIN)
    rng = random.Random(seed)
    proof_ms: list[float] = []
    single_ms: list[float] = []
    for _ in range(count):
        index = rng.randrange(size)
        started = time.perf_counter()
        proof = build_inclusion_proof(index, size, nodes)
        proof_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        leaf = nodes.read_nodes([(0, index)])[(0, index)]
        single_ms.append((time.perf_counter() - started) * 1000)
        verify_inclusion(index, size, leaf, proof, root)
    _check_leaf(store, size - 1, nodes)
    return ProofTimes(proof_ms, single_ms, settle_s)


def _check_leaf(store: ClickHouseStore, index: int, nodes: ChainNodes) -> None:
    """The stored leaf node is the hash of the stored entry (the proofs prove real entries)."""
    row = next(iter(store.entry_rows(CHAIN, index, index + 1)))
    entry = bytes(row[ENTRY_COLUMNS.index("entry")])
    if nodes.read_nodes([(0, index)])[(0, index)] != leaf_hash(entry):
        raise AssertionError(f"leaf {index} does not hash its entry")
