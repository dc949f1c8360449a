"""Anchors: the root over checkpoint notes, recomputed, and the transaction on the EVM chain."""

from __future__ import annotations

from collections.abc import Mapping

from anchoring.anchor_check import Finding, RecordedAnchor, check_anchor_tx
from anchoring.calldata import anchor_root
from anchoring.onchain import OnChainTx, TxLookup
from attestcore.records import StoredAnchor
from forensics.report import FaultKind, Report

K = FaultKind
FAULTS: dict[Finding, FaultKind] = {
    Finding.NOT_FOUND: K.UNANCHORED,
    Finding.UNCONFIRMED: K.UNANCHORED,
}
"""The fault each finding of `anchoring.anchor_check` is; any other is `anchor_mismatch`
(a reorg too: the block the anchor records is no longer canonical)."""


def check_anchor(
    anchor: StoredAnchor,
    notes: Mapping[tuple[int, int], bytes],
    chain_reader: TxLookup | None,
    report: Report,
    min_confirmations: int = 0,
) -> OnChainTx | None:
    """Recompute the anchor's root from the checkpoint notes it names; with a chain reader,
    compare it with the transaction on the EVM chain (`anchoring.anchor_check`: the network,
    calldata, status, sender and block), which must be buried under at least
    `min_confirmations` blocks (counting its own). Returns that transaction (None: not read,
    not found, or on another network) so the account check can place it by its nonce."""

    def fail(
        kind: FaultKind, detail: str, chain: int | None = None, seq: int | None = None
    ) -> None:
        report.fail(kind, chain, seq, f"anchor {anchor.tx_hash}: {detail}")

    missing = [key for key in anchor.checkpoints if key not in notes]
    if missing:
        chain, size = missing[0]
        fail(K.ANCHOR_MISMATCH, f"names checkpoint size {size} that the store lacks", chain, size)
        return None if chain_reader is None else chain_reader.transaction(anchor.tx_hash)
    root = anchor_root([notes[key] for key in anchor.checkpoints])
    if root != anchor.root:
        fail(K.ANCHOR_MISMATCH, f"root {anchor.root.hex()} != recomputed {root.hex()}")
    if chain_reader is None:
        return None
    check = check_anchor_tx(chain_reader, RecordedAnchor.of(anchor, root), min_confirmations)
    for finding in check.findings:
        fail(FAULTS.get(finding.kind, K.ANCHOR_MISMATCH), finding.detail)
    return check.tx
