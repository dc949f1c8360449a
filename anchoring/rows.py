"""Anchor rows and back: a `StoredAnchor` as the `anchors` table holds it (anchoring/schema.py).
Pure conversions, no client; hashes and raw transactions are stored as hex text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attestcore.records import StoredAnchor


def anchor_row(anchor: StoredAnchor) -> tuple[Any, ...]:
    """One row in `anchoring.schema.ANCHOR_COLUMNS` order."""
    chains = [c for c, _ in anchor.checkpoints]
    sizes = [s for _, s in anchor.checkpoints]
    return (anchor.anchored_at, anchor.root.hex(), anchor.network_chain_id, anchor.tx_hash,
            anchor.block_number, anchor.block_hash, anchor.sender, anchor.status,
            anchor.gas_used, chains, sizes, anchor.state, anchor.event_ns, anchor.attempt,
            anchor.nonce, anchor.max_fee, anchor.priority_fee, anchor.raw_tx.hex(),
            anchor.detail)  # fmt: skip


def anchor_from_row(row: Mapping[str, Any]) -> StoredAnchor:
    """A stored anchor from its row, keyed by column name."""
    return StoredAnchor(
        anchored_at=row["anchored_at"], root=bytes.fromhex(row["root"]),
        network_chain_id=row["network_chain_id"], tx_hash=row["tx_hash"],
        block_number=row["block_number"], block_hash=row["block_hash"], sender=row["sender"],
        status=row["status"], gas_used=row["gas_used"],
        checkpoints=tuple(zip(row["cp_chains"], row["cp_sizes"], strict=True)),
        state=row["state"], event_ns=row["event_ns"], attempt=row["attempt"],
        nonce=row["nonce"], max_fee=row["max_fee"], priority_fee=row["priority_fee"],
        raw_tx=bytes.fromhex(row["raw_tx"]), detail=row["detail"],
    )  # fmt: skip
