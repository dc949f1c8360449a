"""Verify a range of one chain, entries first..last, in time proportional to the range.

1. The tree of size `first` is taken from its stored compact range (`compact_range_ids`, at
   most log2(first) + 1 nodes, `MerkleTree.from_compact_range`), and the link into the range
   from the hash of entry `first - 1`'s stored bytes. These are trusted, not recomputed: that
   is the price of not reading the whole chain, and the report says so (`RangeInfo`).
2. Every checkpoint whose size is in (first, last + 1] is read and its signature checked.
3. Entries first..last are walked exactly as in a whole-chain verification (bytes, links,
   columns, completed tree nodes against the stored ones, roots at the checkpoint sizes).

A range beyond what the chain claims (its entries and signed checkpoints), or of a chain that
does not exist, is a usage error: it would verify nothing. Nothing before entry `first - 1`
or after entry `last` is read: no entry, no checkpoint, and
no stored node outside the compact range and the nodes the range completes. Decisions
logged twice are only found within the range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from attestcore.errors import UsageError
from attestcore.records import StoredCheckpoint
from forensics.report import FaultKind, RangeInfo, Report
from forensics.verify_chain import COL, ChainWalk, check_checkpoints
from forensics.verify_nodes import NodeSource, StoredNodes, read_compact_range
from ledger.keys import NoteVerifier
from ledger.merkle import MerkleTree, compact_range_ids

K = FaultKind


class RangeSource(NodeSource, Protocol):
    """What a range verification reads: entries, checkpoints and nodes by key range."""

    def entry_rows(self, chain: int, start: int = 0, stop: int | None = None) -> Iterable[Any]: ...
    def chain_extent(self, chain: int) -> int: ...
    def checkpoints_in(
        self, chain: int, first_size: int, last_size: int
    ) -> list[StoredCheckpoint]: ...


def verify_range(
    source: RangeSource, verifiers: Sequence[NoteVerifier], chain: int, first: int, last: int
) -> Report:
    """Check entries first..last (inclusive) of `chain`; see the module doc for the steps."""
    if not 0 <= first <= last:
        raise UsageError(f"a range needs 0 <= from <= to, got from {first}, to {last}")
    _check_exists(source, chain, last)
    report = Report(chains=[chain])
    start = _trusted_start(source, chain, first, report)  # step 1
    if start is None:
        return report
    tree, prev = start
    checkpoints = source.checkpoints_in(chain, first + 1, last + 1)  # step 2
    report.checkpoints = len(checkpoints)
    roots = check_checkpoints(chain, checkpoints, verifiers, report)
    report.range = RangeInfo(
        chain,
        first,
        last,
        tree.root(),
        tuple(compact_range_ids(first)),
        tuple(cp.size for cp in checkpoints),
    )
    nodes = StoredNodes(source, chain, report, max(roots, default=0), leaf_stop=last + 1)
    walk = ChainWalk(chain, report, roots, tree=tree, prev=prev, nodes=nodes)  # step 3
    walk.run(source.entry_rows(chain, first, last + 1))
    report.entries = walk.count
    beyond = [size for size in roots if size > walk.size]
    if beyond and not walk.gap:
        report.fail(
            K.TRUNCATED,
            chain,
            walk.size,
            f"a signed checkpoint covers {max(beyond)} entries, only {walk.size} remain",
        )
    return report


def _check_exists(source: RangeSource, chain: int, last: int) -> None:
    """UsageError unless the chain claims entry `last` (in its entries or a signed checkpoint):
    a range that does not exist verified nothing, so it must not say VERIFIED. Entries missing
    below a signed size are still checked: that is truncation, a verification failure."""
    extent = source.chain_extent(chain)
    if extent == 0:
        raise UsageError(f"chain {chain} does not exist in this ledger (no entry, no checkpoint)")
    if last >= extent:
        raise UsageError(
            f"chain {chain} has entries 0..{extent - 1}: the range up to {last} goes beyond it"
        )


def _trusted_start(
    source: RangeSource, chain: int, first: int, report: Report
) -> tuple[MerkleTree, bytes] | None:
    """The tree of size `first` and the leaf hash entry `first` must link to; None, with the
    failure reported, when the store lacks them."""
    if first == 0:
        return MerkleTree(), bytes(32)
    hashes = read_compact_range(source, chain, first, report)
    if hashes is None:
        return None
    rows = list(source.entry_rows(chain, first - 1, first))
    if not rows:
        report.fail(
            K.GAP,
            chain,
            first - 1,
            f"entry {first - 1}, which entry {first} links to, is missing",
        )
        return None
    prev = hashlib.sha256(b"\x00" + rows[0][COL["entry"]]).digest()
    return MerkleTree.from_compact_range(first, hashes), prev
