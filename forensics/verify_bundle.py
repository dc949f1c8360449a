"""Checking a case bundle with nothing but the file and the log's verifier key.

Every check runs and every failure is reported with its kind and the chain and entry it
concerns (docs/ledger-format.md, "Case bundles"): per chain the checkpoint's signature, size
and origin and its anchor proof (and, given a `TxLookup`, the anchor transaction on the EVM
chain); per entry its bytes, its position and its inclusion proof, rebuilt from the bundle's
nodes, against its chain's signed root; per archived event its digest against the one its
decisions logged; and that the entries are what the manifest says was selected. Loads no
storage, broker or chain client (the EVM look-up is the caller's).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from anchoring.onchain import TxLookup
from anchoring.proofs import AnchorProof, require_anchor_tx, verify_anchor_proof_offline
from attestcore.errors import (
    AnchorNotFoundError,
    AnchorReorgedError,
    AnchorUnconfirmedError,
    MalformedError,
    ProofError,
    VerificationError,
)
from attestcore.schemas import Decision
from forensics.case_bundle import (
    DEFAULT_MAX_ENTRIES,
    BundleStore,
    CaseBundleFile,
    ChainEvidence,
    Exporter,
    Selection,
    build_case_bundle,
)
from ledger.entry import decode_entry
from ledger.keys import NoteVerifier
from ledger.merkle import MemoryNodeStore, Node, inclusion_proof, leaf_hash, verify_inclusion
from ledger.note import Checkpoint, open_note

_FAULTS = (VerificationError, MalformedError)
_ANCHOR_KINDS = (AnchorNotFoundError, AnchorReorgedError, AnchorUnconfirmedError)


@dataclass(frozen=True)
class BundleFailure:
    kind: str
    chain: int | None
    seq: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ChainVerdict:
    chain: int
    tree_size: int
    origin: str = ""
    signed_by: list[str] = field(default_factory=list)
    anchor_tx: str | None = None
    anchor_checked_on_chain: bool = False
    ok: bool = False
    """The checkpoint's signature, size and origin verified (its anchor may still fail)."""


@dataclass
class BundleReport:
    format: str
    manifest: dict[str, Any]
    chains: list[ChainVerdict] = field(default_factory=list)
    entries: int = 0
    events: int = 0
    failures: list[BundleFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, kind: str, chain: int | None, seq: int | None, detail: str) -> None:
        self.failures.append(BundleFailure(kind, chain, seq, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "format": self.format,
            "entries": self.entries,
            "events": self.events,
            "chains": [dict(c.__dict__) for c in self.chains],
            "manifest": self.manifest,
            "failures": [f.to_json() for f in self.failures],
        }


def verify_case_bundle(
    bundle: CaseBundleFile,
    verifiers: Sequence[NoteVerifier],
    tx_lookup: TxLookup | None = None,
    min_confirmations: int = 1,
) -> BundleReport:
    """Check everything the bundle claims; with `tx_lookup`, also each anchor transaction on
    the EVM chain (a chain without an anchor proof then fails: `unanchored`). The report
    lists every failure; an unreachable RPC raises (nothing was checked on the chain)."""
    report = BundleReport(bundle.format, msgspec.to_builtins(bundle.manifest))
    _check_counts(bundle, report)
    chains: dict[int, tuple[Checkpoint, MemoryNodeStore]] = {}
    seen_tx: dict[str, VerificationError | MalformedError | None] = {}
    for evidence in bundle.chains:
        if any(c.chain == evidence.chain for c in report.chains):
            report.fail("malformed", evidence.chain, None, "the chain appears twice")
            continue
        verdict = ChainVerdict(evidence.chain, evidence.tree_size)
        report.chains.append(verdict)
        opened = _open_checkpoint(evidence, verifiers, verdict, report)
        if opened is not None:
            chains[evidence.chain] = opened
            _check_anchor(
                evidence, verifiers, verdict, report, tx_lookup, min_confirmations, seen_tx
            )
    logged = _check_entries(bundle, chains, report)
    _check_events(bundle, logged, report)
    return report


def export_case_bundle(
    store: BundleStore,
    selection: Selection,
    exporter: Exporter,
    verifiers: Sequence[NoteVerifier],
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> CaseBundleFile:
    """`build_case_bundle`, then the bundle checked as its recipient will check it: one that
    would not verify is never handed out (VerificationError naming the first failure)."""
    case = build_case_bundle(store, selection, exporter, max_entries)
    report = verify_case_bundle(case, verifiers)
    if not report.ok:
        first = report.failures[0]
        raise VerificationError(
            f"the bundle would not verify ({len(report.failures)} failure(s), first: {first.kind}"
            f" chain {first.chain} seq {first.seq}: {first.detail}). The stored ledger may have"
            " been altered: run `attestream forensic verify`"
        )
    return case


def _open_checkpoint(
    evidence: ChainEvidence,
    verifiers: Sequence[NoteVerifier],
    verdict: ChainVerdict,
    report: BundleReport,
) -> tuple[Checkpoint, MemoryNodeStore] | None:
    """The chain's signed checkpoint and its nodes, or None (and a failure) if it fails."""
    chain = evidence.chain
    try:
        opened = open_note(evidence.checkpoint.encode("utf-8", "surrogatepass"), verifiers)
        checkpoint = Checkpoint.parse(opened.body)
    except _FAULTS as exc:
        report.fail(exc.kind, chain, None, f"checkpoint: {exc}")
        return None
    verdict.origin, verdict.signed_by = checkpoint.origin, opened.signed_by
    if checkpoint.size != evidence.tree_size:
        report.fail(
            "bad_checkpoint",
            chain,
            None,
            f"the bundle says tree size"
            f" {evidence.tree_size}, the signed checkpoint {checkpoint.size}",
        )
        return None
    if not checkpoint.origin.endswith(f"/{chain}"):
        detail = f"the checkpoint is of log {checkpoint.origin!r}, not of chain {chain}"
        report.fail("bad_checkpoint", chain, None, detail)
        return None
    ids = Counter((n.level, n.index) for n in evidence.nodes)
    twice = sorted(node for node, count in ids.items() if count > 1)
    if twice:
        report.fail("malformed", chain, None, f"tree nodes (level, index) given twice: {twice}")
        return None
    nodes = MemoryNodeStore(Node(n.level, n.index, bytes.fromhex(n.hash)) for n in evidence.nodes)
    verdict.ok = True
    return checkpoint, nodes


def _check_anchor(
    evidence: ChainEvidence,
    verifiers: Sequence[NoteVerifier],
    verdict: ChainVerdict,
    report: BundleReport,
    tx_lookup: TxLookup | None,
    min_confirmations: int,
    seen_tx: dict[str, VerificationError | MalformedError | None],
) -> None:
    chain = evidence.chain
    if evidence.anchor is None:
        if tx_lookup is not None:
            detail = "the bundle holds no anchor proof for this chain (not anchored yet?)"
            report.fail(AnchorNotFoundError.kind, chain, None, detail)
        return
    proof = AnchorProof.from_file(evidence.anchor)
    verdict.anchor_tx = proof.tx_hash
    try:
        if proof.chain != chain:
            raise VerificationError(f"the anchor proof is for chain {proof.chain}")
        open_note(proof.anchored_checkpoint, verifiers)
        verify_anchor_proof_offline(proof, evidence.checkpoint.encode("utf-8", "surrogatepass"))
    except _FAULTS as exc:
        kind = exc.kind if isinstance(exc, _ANCHOR_KINDS) else "anchor_mismatch"
        report.fail(kind, chain, None, f"anchor proof: {exc}")
        return
    if tx_lookup is None:
        return
    if proof.tx_hash not in seen_tx:  # chains anchored together share one transaction
        try:
            require_anchor_tx(tx_lookup, proof.recorded(), min_confirmations)
            seen_tx[proof.tx_hash] = None
        except _FAULTS as exc:
            seen_tx[proof.tx_hash] = exc
    failed = seen_tx[proof.tx_hash]
    if failed is None:
        verdict.anchor_checked_on_chain = True
    else:
        kind = failed.kind if isinstance(failed, _ANCHOR_KINDS) else "anchor_mismatch"
        report.fail(kind, chain, None, f"anchor transaction: {failed}")


def _check_entries(
    bundle: CaseBundleFile,
    chains: dict[int, tuple[Checkpoint, MemoryNodeStore]],
    report: BundleReport,
) -> dict[str, list[tuple[int, int]]]:
    """Check each entry; return the event digests the entries' decisions logged, with the
    (chain, seq) of each entry logging one. (An entry whose inclusion fails still counts
    there, so its failure is reported once, not again as an unreferenced event or id.)"""
    selection = bundle.manifest.selection
    listed = set(selection.ids) if selection.ids is not None else None
    declared = {c.chain for c in bundle.chains}
    logged: dict[str, list[tuple[int, int]]] = {}
    positions: set[tuple[int, int]] = set()
    matched_ids: set[str] = set()
    for item in bundle.entries:
        chain, seq = item.chain, item.seq
        if (chain, seq) in positions:
            report.fail("malformed", chain, seq, "the entry appears twice")
            continue
        positions.add((chain, seq))
        if chain not in declared:
            report.fail("malformed", chain, seq, "the bundle holds no checkpoint of its chain")
        decision = _decode_entry(item.entry, chain, seq, report)
        if decision is None:
            continue
        logged.setdefault(decision.event_sha256, []).append((chain, seq))
        ids = {decision.decision_id, decision.event_id}
        matched_ids |= ids
        outside = None
        if selection.filter is not None and not selection.filter.matches(decision):
            outside = "does not meet the bundle's query"
        if listed is not None and ids.isdisjoint(listed):
            outside = "is not in the bundle's id list"
        if outside is not None:
            report.fail(
                "outside_selection", chain, seq, f"decision {decision.decision_id} {outside}"
            )
        if chain in chains and _included(item.entry, chain, seq, *chains[chain], report):
            report.entries += 1
    for missing in [i for i in selection.ids or () if i not in matched_ids]:
        report.fail("missing_id", None, None, f"no entry of the bundle has the listed id {missing}")
    return logged


def _decode_entry(entry: bytes, chain: int, seq: int, report: BundleReport) -> Decision | None:
    """The entry's decision if its bytes parse and claim its position; else None, and the
    failure."""
    try:
        decoded = decode_entry(entry)
    except MalformedError as exc:
        report.fail("bad_entry", chain, seq, str(exc))
        return None
    if (decoded.chain, decoded.seq) != (chain, seq):
        report.fail(
            "bad_entry",
            chain,
            seq,
            f"the entry's bytes are chain {decoded.chain} seq {decoded.seq}",
        )
        return None
    return decoded.decision


def _included(
    entry: bytes,
    chain: int,
    seq: int,
    checkpoint: Checkpoint,
    nodes: MemoryNodeStore,
    report: BundleReport,
) -> bool:
    """Whether the entry's inclusion proof, rebuilt from the bundle's nodes, yields the
    signed root (else the failure is reported)."""
    try:
        if seq >= checkpoint.size:
            raise ProofError(f"seq {seq} is not in the checkpoint's tree of size {checkpoint.size}")
        try:
            path = inclusion_proof(seq, checkpoint.size, nodes)
        except ProofError as exc:
            raise ProofError(str(exc).replace("from the store", "from the bundle")) from None
        verify_inclusion(seq, checkpoint.size, leaf_hash(entry), path, checkpoint.root)
    except _FAULTS as exc:
        report.fail(exc.kind, chain, seq, f"inclusion under the signed checkpoint: {exc}")
        return False
    return True


def _check_events(
    bundle: CaseBundleFile, logged: dict[str, list[tuple[int, int]]], report: BundleReport
) -> None:
    seen: set[str] = set()
    for item in bundle.events:
        digest = item.event_sha256.lower()
        users = logged.get(digest, [])
        chain, seq = users[0] if users else (None, None)
        if digest in seen:
            report.fail("malformed", chain, seq, f"event {digest} appears twice")
            continue
        seen.add(digest)
        actual = hashlib.sha256(item.event).hexdigest()
        if actual != digest:
            report.fail(
                "bad_event",
                chain,
                seq,
                f"the archived event's bytes hash to {actual},"
                f" its decision logged event_sha256 {digest}",
            )
        elif not users:
            report.fail(
                "bad_event", None, None, f"event {digest} is logged by no entry of the bundle"
            )
        else:
            report.events += 1


def _check_counts(bundle: CaseBundleFile, report: BundleReport) -> None:
    counts = bundle.manifest.counts
    actual = {
        "entries": len(bundle.entries),
        "chains": len(bundle.chains),
        "events": len(bundle.events),
        "nodes": sum(len(c.nodes) for c in bundle.chains),
        "anchored_chains": sum(1 for c in bundle.chains if c.anchor is not None),
    }
    for name, value in actual.items():
        if getattr(counts, name) != value:
            report.fail(
                "malformed",
                None,
                None,
                f"the manifest counts {getattr(counts, name)} {name}, the bundle holds {value}",
            )
