"""Anchors: the root over checkpoint notes, recomputed, and the transaction on the EVM chain."""

from __future__ import annotations

from collections.abc import Mapping

from anchoring.calldata import anchor_root, decode_calldata
from anchoring.onchain import ChainReader, OnChainTx
from attestcore.errors import MalformedError
from attestcore.records import StoredAnchor
from forensics.report import FaultKind, Report

K = FaultKind


def check_anchor(
    anchor: StoredAnchor,
    notes: Mapping[tuple[int, int], bytes],
    chain_reader: ChainReader | None,
    report: Report,
    min_confirmations: int = 0,
) -> OnChainTx | None:
    """Recompute the anchor's root from the checkpoint notes it names; with a chain reader,
    compare it with the transaction on the EVM chain, which must be buried under at least
    `min_confirmations` blocks (counting its own). Returns that transaction (None: not read
    or not found) so the account check can place it by its nonce."""

    def fail(
        kind: FaultKind, detail: str, chain: int | None = None, seq: int | None = None
    ) -> None:
        report.fail(kind, chain, seq, f"anchor {anchor.tx_hash}: {detail}")

    missing = [key for key in anchor.checkpoints if key not in notes]
    if missing:
        chain, size = missing[0]
        fail(K.ANCHOR_MISMATCH, f"names checkpoint size {size} that the store lacks", chain, size)
        return _read(anchor, chain_reader)
    root = anchor_root([notes[key] for key in anchor.checkpoints])
    if root != anchor.root:
        fail(K.ANCHOR_MISMATCH, f"root {anchor.root.hex()} != recomputed {root.hex()}")
    if chain_reader is None:
        return None
    tx = chain_reader.transaction(anchor.tx_hash)
    faults = _transaction_faults(anchor, root, tx)
    for kind, detail in faults:
        fail(kind, detail)
    if not faults and min_confirmations > 0:
        depth = chain_reader.head_block_number() - anchor.block_number + 1
        if depth < min_confirmations:
            fail(K.UNANCHORED, f"{depth} of {min_confirmations} confirmations so far")
    return tx


def _read(anchor: StoredAnchor, chain_reader: ChainReader | None) -> OnChainTx | None:
    return None if chain_reader is None else chain_reader.transaction(anchor.tx_hash)


def _transaction_faults(
    anchor: StoredAnchor, root: bytes, tx: OnChainTx | None
) -> list[tuple[FaultKind, str]]:
    """The transaction must exist, carry `root` in its calldata, have succeeded, and match
    the recorded sender and block."""
    if tx is None:
        return [(K.UNANCHORED, "transaction not found on the chain")]
    try:
        on_chain = decode_calldata(tx.input)
    except MalformedError as exc:
        return [(K.ANCHOR_MISMATCH, str(exc))]
    faults: list[tuple[FaultKind, str]] = []
    if on_chain != root:
        detail = f"calldata root {on_chain.hex()} != recomputed {root.hex()}"
        faults.append((K.ANCHOR_MISMATCH, detail))
    if tx.status != 1:
        faults.append((K.ANCHOR_MISMATCH, "transaction reverted"))
    if tx.sender.lower() != anchor.sender.lower():
        faults.append((K.ANCHOR_MISMATCH, f"sent by {tx.sender}, recorded sender {anchor.sender}"))
    if tx.block_number != anchor.block_number:
        faults.append(
            (K.ANCHOR_MISMATCH, f"now in block {tx.block_number}, recorded {anchor.block_number}")
        )
    if tx.block_hash.lower() != anchor.block_hash.lower():
        faults.append(
            (K.ANCHOR_MISMATCH, f"now in block {tx.block_hash}, recorded {anchor.block_hash}")
        )
    return faults
