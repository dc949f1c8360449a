"""`forensic watch`: verifying a live ledger continuously, in work proportional to what is new.

A pass over every chain (the access chain too), then over the anchors:
1. The chain's latest checkpoint and every one signed since the last pass are read and their
   signatures checked (`check_checkpoints`). No new checkpoint: nothing to do for the chain.
   A latest checkpoint smaller than the verified size is `tree_shrunk`, one of the same size
   with another root `fork`.
2. The consistency proof from the verified size to the new one (RFC 9162 2.1.4.2), read from
   the stored tree nodes, must lead from the verified root to the new checkpoint's root:
   otherwise `inconsistent` (a node missing: `bad_node`).
3. The new entries, and only those, are walked exactly as `forensic verify` walks a chain
   (`ChainWalk`: leaf hashes, links, sequence numbers, columns, decision ids), from the
   verified tree: the root at every new checkpoint size must be the signed one.
4. Only when steps 1-3 found nothing does the chain's progress move to the new size
   (`ChainProgress.advance`); after a failure the next pass checks the same extension again,
   and counts its failures again, until it is repaired.
5. A slice of the already verified entries (`recheck` per chain and pass) is read again and
   each entry's bytes hashed: one that no longer hashes to the leaf verified before was
   rewritten since (`bad_leaf`). The whole chain is re-read every size / recheck passes.
Then every final anchor not verified yet is checked as `forensic verify` checks it (its root
from the checkpoint notes it names and, given a chain reader, the transaction on the EVM
chain); it is not checked again once it passed.

Entries beyond the latest checkpoint are not read: they are verified once a checkpoint covers
them (the sequencer signs one per batch). `forensic verify` remains the complete check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from anchoring.onchain import TxLookup
from attestcore.errors import AttestreamError, ProofError
from attestcore.records import StoredAnchor, StoredCheckpoint
from forensics.report import Failure, FaultKind, Report
from forensics.verify_anchor import check_anchor
from forensics.verify_chain import COL, ChainWalk, check_checkpoints
from forensics.watch_state import ChainProgress, SeenSince
from ledger.keys import NoteVerifier
from ledger.merkle import NodeId, consistency_proof, verify_consistency

K = FaultKind
# Verified entries re-read per chain and pass (step 5): 10,000 entries are about 3 MB from
# ClickHouse and 10 ms of hashing; at the default interval a chain of a million entries is
# re-read completely every 50 minutes.
DEFAULT_RECHECK = 10_000


class WatchSource(Protocol):
    """What the watch reads (the ClickHouse store, a fixture in tests)."""

    def chains(self) -> list[int]: ...
    def checkpoints(self, chain: int, latest_only: bool = False) -> list[StoredCheckpoint]: ...
    def checkpoints_in(
        self, chain: int, first_size: int, last_size: int
    ) -> list[StoredCheckpoint]: ...
    def checkpoint_at(self, chain: int, size: int) -> list[StoredCheckpoint]: ...
    def entry_rows(self, chain: int, start: int = 0, stop: int | None = None) -> Iterable[Any]: ...
    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]: ...
    def anchors(self) -> list[StoredAnchor]: ...


@dataclass
class PassResult:
    """What one pass verified: new entries, checkpoints and anchors, re-read entries."""

    entries: int = 0
    checkpoints: int = 0
    anchors: int = 0
    rechecked: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class _ChainNodes:
    """One chain's stored nodes as the `NodeReader` of `consistency_proof`."""

    source: WatchSource
    chain: int

    def read_nodes(self, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]:
        return self.source.read_nodes(self.chain, ids)


class LedgerWatch:
    """The verified state of a ledger, moved forward pass by pass (the module doc's steps)."""

    def __init__(
        self,
        source: WatchSource,
        verifiers: Sequence[NoteVerifier],
        chain_reader: TxLookup | None = None,
        min_confirmations: int = 0,
        recheck: int = DEFAULT_RECHECK,
    ) -> None:
        self.source = source
        self.verifiers = list(verifiers)
        self.chain_reader = chain_reader
        self.min_confirmations = min_confirmations
        self.recheck = recheck
        self.progress: dict[int, ChainProgress] = {}
        self.verified_anchors: set[str] = set()

    def verified_sizes(self) -> dict[int, int]:
        return {chain: p.size for chain, p in sorted(self.progress.items())}

    def run_pass(self) -> PassResult:
        """One pass over every chain and the new final anchors; raises only when the store
        cannot be read (ServiceUnavailableError), never for what it finds."""
        result = PassResult()
        for chain in self.source.chains():
            progress = self.progress.setdefault(chain, ChainProgress(chain))
            report = Report(chains=[chain])
            self._extend(progress, report, result)
            self._recheck(progress, report, result)
            result.failures += report.failures
        report = Report()
        self._anchors(report, result)
        result.failures += report.failures
        return result

    # --- steps 1-4 -------------------------------------------------------------------------
    def _extend(self, progress: ChainProgress, report: Report, result: PassResult) -> None:
        chain = progress.chain
        latest = self.source.checkpoints(chain, latest_only=True)
        if not latest:
            return
        newest = max(latest, key=lambda cp: cp.size)
        if newest.size <= progress.size:
            self._same_or_smaller(progress, newest, report)
            return
        signed = self.source.checkpoints_in(chain, progress.size + 1, newest.size)
        result.checkpoints += len(signed)
        roots = check_checkpoints(chain, signed, self.verifiers, report)  # step 1
        target = max(roots, default=0)
        if report.failures or target <= progress.size:
            return
        self._check_consistency(progress, target, roots[target], report)  # step 2
        tree = progress.working_tree()  # step 3
        walk = ChainWalk(chain, report, roots, tree=tree, prev=progress.prev)
        walk.seen_ids = SeenSince(progress.seen_ids)
        rows = list(self.source.entry_rows(chain, progress.size, target))
        walk.run(rows)
        result.entries += walk.count
        if walk.size < target and not walk.gap:
            report.fail(
                K.TRUNCATED,
                chain,
                walk.size,
                f"a signed checkpoint covers {target} entries, only {walk.size} remain",
            )
        if report.failures:
            return
        leaves = [hashlib.sha256(b"\x00" + bytes(row[COL["entry"]])).digest() for row in rows]
        progress.advance(walk.tree, leaves, set(walk.seen_ids))  # step 4

    def _same_or_smaller(
        self, progress: ChainProgress, newest: StoredCheckpoint, report: Report
    ) -> None:
        """Step 1 when no larger checkpoint appeared: the latest must be the verified one."""
        chain = progress.chain
        if newest.size < progress.size:
            report.fail(
                K.TREE_SHRUNK,
                chain,
                newest.size,
                f"the latest checkpoint has {newest.size} entries, {progress.size} were verified",
            )
            return
        roots = check_checkpoints(chain, [newest], self.verifiers, report)
        root = roots.get(newest.size)
        if root is not None and root != progress.root:
            report.fail(
                K.FORK,
                chain,
                newest.size,
                f"a checkpoint of the verified size {newest.size} has root {root.hex()},"
                f" {progress.root.hex()} was verified",
            )

    def _check_consistency(
        self, progress: ChainProgress, size: int, root: bytes, report: Report
    ) -> None:
        if progress.size == 0:
            return  # every tree extends the empty one: the walk checks the root
        try:
            proof = consistency_proof(progress.size, size, _ChainNodes(self.source, progress.chain))
        except ProofError as exc:
            report.fail(K.BAD_NODE, progress.chain, progress.size, str(exc))
            return
        try:
            verify_consistency(progress.size, size, proof, progress.root, root)
        except (AttestreamError, ValueError) as exc:
            report.fail(
                K.INCONSISTENT,
                progress.chain,
                progress.size,
                f"the checkpoint of size {size} does not extend the verified size"
                f" {progress.size}: {exc}",
            )

    # --- step 5 ----------------------------------------------------------------------------
    def _recheck(self, progress: ChainProgress, report: Report, result: PassResult) -> None:
        start, stop = progress.recheck_slice(self.recheck)
        if start == stop:
            return
        for row in self.source.entry_rows(progress.chain, start, stop):
            seq = row[COL["seq"]]
            if not start <= seq < stop:
                continue
            result.rechecked += 1
            leaf = hashlib.sha256(b"\x00" + bytes(row[COL["entry"]])).digest()
            if leaf != progress.leaf(seq):
                report.fail(
                    K.BAD_LEAF,
                    progress.chain,
                    seq,
                    f"entry {seq} hashes to {leaf.hex()}, {progress.leaf(seq).hex()} was"
                    " verified: its bytes were rewritten since",
                )

    # --- anchors ---------------------------------------------------------------------------
    def _anchors(self, report: Report, result: PassResult) -> None:
        for anchor in self.source.anchors():
            if anchor.tx_hash in self.verified_anchors:
                continue
            notes: dict[tuple[int, int], bytes] = {}
            for chain, size in anchor.checkpoints:
                for cp in self.source.checkpoint_at(chain, size):
                    notes[(chain, size)] = bytes(cp.note)
            before = len(report.failures)
            check_anchor(anchor, notes, self.chain_reader, report, self.min_confirmations)
            result.anchors += 1
            if len(report.failures) == before:
                self.verified_anchors.add(anchor.tx_hash)
