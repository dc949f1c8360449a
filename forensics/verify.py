"""Verify a whole ledger by recomputing everything from the stored bytes.

For each chain: every entry's leaf hash, its link to the previous entry, its sequence
number, the agreement of its searchable columns with its bytes, the stored tree nodes
against the ones recomputed from the entries, the Merkle root at every checkpoint size, every
checkpoint's signature, and that the chain ends where its checkpoints say. For each anchor:
its root recomputed from the checkpoint notes it names and, when a chain reader is given, the
transaction's calldata, status and sender on the EVM chain; given the anchor account too,
that every anchor transaction of that account on the chain has its row
(`forensics.verify_account`). Entries past the last checkpoint are a crash window or not
(`forensics.verify_tail`, re-derived from Kafka when given). Given the event archive,
every archived event's bytes against their digest (`forensics.verify_archive`), and the
entity index's timeline copies against the entries and events (`forensics.verify_copies`).
Each fault
is named with its (chain, seq) and kind (`FaultKind`, documented in docs/ledger-format.md,
"Verification"); the walk then continues so one report lists every kind found. `verify_range` (in
`forensics.verify_range`) checks a slice of one chain in time proportional to the slice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from anchoring.onchain import ChainReader, OnChainTx
from attestcore.records import StoredAnchor, StoredCheckpoint
from forensics.report import Failure, FaultKind, RangeInfo, Report
from forensics.verify_account import check_anchor_account
from forensics.verify_anchor import check_anchor
from forensics.verify_archive import (
    ArchiveSource,
    ContextCheck,
    RowCheck,
    RowChecks,
    check_archive,
)
from forensics.verify_chain import ChainWalk, check_checkpoints
from forensics.verify_copies import CopyCheck, CopySource, check_copy_positions
from forensics.verify_nodes import NodeSource, StoredNodes
from forensics.verify_tail import TailCheck, check_tail
from ledger.keys import NoteVerifier

__all__ = [
    "ChainReader",
    "Failure",
    "FaultKind",
    "LedgerSource",
    "OnChainTx",
    "RangeInfo",
    "Report",
    "TailCheck",
    "verify_ledger",
]

K = FaultKind
DEFAULT_TAIL_CHECK = TailCheck(batch_max=10_000)
"""The sequencer's default `ledger_batch_max`, not re-derived: callers pass their own."""


class LedgerSource(Protocol):
    """What verification reads: the ClickHouse store, or a fixture in tests. A source that
    also has `nodes_in` (a `NodeSource`) gets its stored tree nodes checked too."""

    def chains(self) -> list[int]: ...
    def entry_rows(self, chain: int, start: int = 0, stop: int | None = None) -> Iterable[Any]: ...
    def checkpoints(self, chain: int, latest_only: bool = False) -> list[StoredCheckpoint]: ...
    def anchors(self) -> list[StoredAnchor]: ...


def verify_ledger(
    source: LedgerSource,
    verifiers: Sequence[NoteVerifier],
    chain_reader: ChainReader | None = None,
    min_confirmations: int = 0,
    anchor_account: str | None = None,
    tail_check: TailCheck = DEFAULT_TAIL_CHECK,
    archive: ArchiveSource | None = None,
) -> Report:
    """Verify every chain and anchor of `source`. With a chain reader and the anchor account
    (the verifier's own setting, never read from the store), also demand a stored anchor for
    every anchor transaction that account has on the chain. `tail_check` holds the
    verifier's own `ledger_batch_max` and, optionally, Kafka to re-derive unsigned tails;
    `archive`, the event archive to check against its digests."""
    report = Report(chains=source.chains(), tails_rederived=tail_check.rederiver is not None)
    notes: dict[tuple[int, int], bytes] = {}
    ends: dict[int, int] = {}
    for chain in report.chains:
        checkpoints = source.checkpoints(chain)
        report.checkpoints += len(checkpoints)
        roots = check_checkpoints(chain, checkpoints, verifiers, report)
        notes.update({(cp.chain, cp.size): cp.note for cp in checkpoints})
        nodes = None
        if isinstance(source, NodeSource):
            nodes = StoredNodes(source, chain, report, required_size=max(roots, default=0))
        contexts = _row_checks(archive, chain, report)
        walk = ChainWalk(chain, report, roots, nodes=nodes, contexts=contexts)
        walk.run(source.entry_rows(chain))
        if contexts is not None and not walk.gap:
            contexts.finish()
        report.entries += walk.count
        if not walk.gap:  # after a gap nothing was walked: its end says nothing
            _check_chain_end(source, walk, roots, checkpoints, tail_check)
            ends[chain] = walk.size
    anchors = source.anchors()
    report.anchors = len(anchors)
    on_chain = []
    for anchor in anchors:
        _check_anchor_coverage(source, anchor, ends, report)
        tx = check_anchor(anchor, notes, chain_reader, report, min_confirmations)
        on_chain.append((anchor, tx))
    if chain_reader is not None and anchor_account is not None:
        seen = check_anchor_account(
            anchor_account, on_chain, chain_reader, report, min_confirmations
        )
        report.anchor_account, report.anchor_transactions = seen.account, seen.transactions
    if archive is not None:
        check_archive(archive, report)
        if isinstance(archive, CopySource):
            check_copy_positions(archive, report)
    return report


def _row_checks(archive: ArchiveSource | None, chain: int, report: Report) -> RowChecks | None:
    """The chain's investigation columns and, from a source that has them, timeline copies,
    each checked against the entries as the walk reaches them."""
    if archive is None:
        return None
    checks: list[RowCheck] = []
    rows = archive.context_rows(chain)
    if rows is not None:
        checks.append(ContextCheck(chain, rows, report))
    copies = archive.timeline_copy_rows(chain) if isinstance(archive, CopySource) else None
    if copies is not None:
        checks.append(CopyCheck(chain, copies, report))
    return RowChecks(checks) if checks else None


def _check_chain_end(
    source: LedgerSource,
    walk: ChainWalk,
    roots: dict[int, bytes],
    checkpoints: list[StoredCheckpoint],
    tail_check: TailCheck,
) -> None:
    """Truncation: a signed checkpoint, or a stored leaf node, beyond the last entry. A tail:
    entries beyond every stored checkpoint, a crash window (a writer that stopped between
    writing a batch and signing it) or not (rows inserted by hand): `forensics.verify_tail`."""
    chain, size, report = walk.chain, walk.size, walk.report
    beyond = [s for s in roots if s > size]
    if beyond:
        report.fail(
            K.TRUNCATED,
            chain,
            size,
            f"a signed checkpoint covers {max(beyond)} entries, only {size} remain",
        )
    elif walk.nodes is not None and walk.nodes.leaf_stored(size) and _ends_at(source, chain, size):
        report.fail(
            K.TRUNCATED,
            chain,
            size,
            f"the tree nodes hold leaf {size}, but the chain's entries end before it",
        )
    covered = max((cp.size for cp in checkpoints), default=0)
    if size > covered and _latest_size(source, chain) < size:
        check_tail(source, chain, size, checkpoints, tail_check, report)


def _check_anchor_coverage(
    source: LedgerSource, anchor: StoredAnchor, ends: dict[int, int], report: Report
) -> None:
    """An anchor committing to more entries than remain shows a truncated tail, even when the
    checkpoints beyond the cut were deleted too."""
    for chain, size in anchor.checkpoints:
        left = ends.get(chain)
        if left is None or size <= left or report.has(K.TRUNCATED, chain):
            continue
        if _ends_at(source, chain, left):
            report.fail(
                K.TRUNCATED,
                chain,
                left,
                f"anchor {anchor.tx_hash} commits to {size} entries, only {left} remain",
            )


def _ends_at(source: LedgerSource, chain: int, size: int) -> bool:
    """Still no entry `size`: rules out a batch appended while the walk ran (live ledger)."""
    return not any(True for _ in source.entry_rows(chain, size, size + 1))


def _latest_size(source: LedgerSource, chain: int) -> int:
    """The largest checkpoint size now: one signed while the walk ran covers the tail."""
    return max((cp.size for cp in source.checkpoints(chain, latest_only=True)), default=0)
