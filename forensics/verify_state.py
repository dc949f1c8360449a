"""Verification against what the verifier remembers (`forensics.trusted_state`).

For a whole ledger (`forensic verify`):
1. Before the walk, the latest signed checkpoint of every chain is read and opened with the
   trusted keys (`latest_checkpoints`). Reading them first means the walk checks them too:
   a checkpoint signed while the walk ran is never remembered unverified.
2. The ledger is verified as always (`forensics.verify.verify_ledger`).
3. Each one is compared with the remembered checkpoint of its (origin, key, chain): smaller is
   `tree_shrunk`, another root at the same size is `fork`, and a larger one must come with a
   consistency proof from the remembered size, read from the stored tree nodes, else it is
   `inconsistent` (`check_ledger_history`). A remembered chain of this origin and key that no
   longer has any checkpoint has shrunk to nothing.
4. Only if the report has no fault at all does the caller remember the new checkpoints.

For one proof file (`forensic verify-proof`), see `check_proof_history`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from attestcore.errors import AttestreamError, HistoryConflictError
from attestcore.records import StoredCheckpoint
from forensics.report import FaultKind, Report
from forensics.trusted_state import (
    SeenCheckpoint,
    TrustedState,
    check_against,
    seen_checkpoint,
)
from ledger.keys import NoteVerifier
from ledger.merkle import NodeId, consistency_proof
from ledger.node_keys import ChainNodes


class CheckpointSource(Protocol):
    """What the history check reads: chains, their latest checkpoints and tree nodes."""

    def chains(self) -> list[int]: ...
    def checkpoints(self, chain: int, latest_only: bool = False) -> list[StoredCheckpoint]: ...
    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]: ...


def latest_checkpoints(
    source: CheckpointSource, verifiers: Sequence[NoteVerifier]
) -> list[SeenCheckpoint]:
    """Step 1: the largest checkpoint of every chain that opens with a trusted key. One that
    does not open is left out here: the walk reports it (`bad_signature`, `bad_checkpoint`)."""
    seen = []
    for chain in source.chains():
        stored = sorted(source.checkpoints(chain, latest_only=True), key=lambda cp: cp.size)
        if not stored:
            continue
        try:
            seen.append(seen_checkpoint(chain, bytes(stored[-1].note), verifiers))
        except AttestreamError:
            continue
    return seen


@dataclass
class HistoryCheck:
    """What step 3 found: chains trusted for the first time, chains checked against memory."""

    first_use: list[SeenCheckpoint]
    checked: list[SeenCheckpoint]


def check_ledger_history(
    source: CheckpointSource,
    state: TrustedState,
    seen: Sequence[SeenCheckpoint],
    origin_prefix: str,
    verifiers: Sequence[NoteVerifier],
    report: Report,
) -> HistoryCheck:
    """Step 3: every fault goes into `report` (kind `tree_shrunk`, `fork`, `inconsistent`).
    `origin_prefix` is the log's configured origin (a chain's origin is `<prefix>/<chain>`)."""
    result = HistoryCheck([], [])
    for s in seen:
        remembered = state.remembered(s.checkpoint.origin, s.key, s.chain)
        if remembered is None:
            result.first_use.append(s)
            continue
        result.checked.append(s)
        proof = None
        try:
            if s.checkpoint.size > remembered.size:
                proof = consistency_proof(
                    remembered.size, s.checkpoint.size, ChainNodes(source, s.chain)
                )
            check_against(remembered, s.checkpoint, proof)
        except HistoryConflictError as exc:
            report.fail(FaultKind(exc.kind), s.chain, s.checkpoint.size, str(exc))
        except AttestreamError as exc:  # the stored tree cannot even give the proof
            report.fail(
                FaultKind.INCONSISTENT,
                s.chain,
                remembered.size,
                f"no consistency proof from the verified size {remembered.size} to"
                f" {s.checkpoint.size}: {exc}",
            )
    _check_vanished(state, seen, origin_prefix, verifiers, report)
    return result


def _check_vanished(
    state: TrustedState,
    seen: Sequence[SeenCheckpoint],
    origin_prefix: str,
    verifiers: Sequence[NoteVerifier],
    report: Report,
) -> None:
    """A remembered chain of this log (origin `<prefix>/<chain>`, signed by a key trusted now)
    that has no checkpoint left: its checkpoints were deleted, the tree shrank to nothing."""
    trusted = {f"{v.name}+{v.key_id:08x}" for v in verifiers}
    present = {s.chain for s in seen}
    for cp in state.checkpoints:
        ours = cp.origin == f"{origin_prefix}/{cp.chain}" and trusted & set(cp.key.split(","))
        if ours and cp.chain not in present:
            report.fail(
                FaultKind.TREE_SHRUNK,
                cp.chain,
                0,
                f"chain {cp.chain} of {cp.origin} has no signed checkpoint left, but one of"
                f" size {cp.size} was verified on {cp.verified_at}",
            )


@dataclass(frozen=True)
class ProofHistory:
    """How a proof file's checkpoint relates to the remembered one."""

    message: str
    advance: bool
    """True when the state should now remember the proof's checkpoint."""


def check_proof_history(
    state: TrustedState,
    seen: SeenCheckpoint,
    since_size: int | None,
    consistency: Sequence[bytes] | None,
) -> ProofHistory:
    """A proof file's checkpoint against the remembered one. Raises HistoryConflictError on
    a fork at the remembered size or a consistency proof (from `since_size`) that fails. An
    older checkpoint is no fault (auditors verify old proofs) and a newer one without a proof
    from the remembered size is accepted but not remembered, and said so."""
    cp = seen.checkpoint
    remembered = state.remembered(cp.origin, seen.key, seen.chain)
    where = f"chain {seen.chain} of {cp.origin}"
    if remembered is None:
        return ProofHistory(
            f"first use: trusting {where} at size {cp.size} (nothing remembered before)", True
        )
    if cp.size < remembered.size:
        return ProofHistory(
            f"the proof's checkpoint (size {cp.size}) is older than the remembered one (size"
            f" {remembered.size}): consistency with it was not checked",
            False,
        )
    if cp.size == remembered.size:
        check_against(remembered, cp, None)
        return ProofHistory(f"same checkpoint as remembered for {where} (size {cp.size})", False)
    if consistency is None or since_size != remembered.size:
        return ProofHistory(
            f"consistency with the remembered checkpoint (size {remembered.size}) was NOT"
            f" checked: the proof file carries no consistency proof from that size (`forensic"
            f" prove --since-size {remembered.size}` writes one)",
            False,
        )
    check_against(remembered, cp, consistency)
    return ProofHistory(
        f"consistent with the remembered checkpoint of {where} (size {remembered.size})", True
    )
