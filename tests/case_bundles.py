"""Case bundles built from an in-memory ledger of two chains (`memory_ledger`), anchored
together, for the tests of `forensics.verify_bundle` and of the standalone verifier."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from memory_ledger import COL, MemoryLedger, build

from anchoring.calldata import anchor_root
from attestcore.records import StoredAnchor
from forensics.case_bundle import (
    CaseBundleFile,
    Exporter,
    Selection,
    build_case_bundle,
    dump_case_bundle,
)

EXPORTER = Exporter(
    "investigator",
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "attestream 0.1.0",
    "case 17: chargebacks",
)
SENDER = "0x00000000000000000000000000000000000000Aa"
TX = "0x" + "ab" * 32
BLOCK = "0x" + "cd" * 32
Json = dict[str, Any]


def two_chains() -> MemoryLedger:
    """Chain 0 logs decisions 0..12 (checkpoints 4, 9, 13), chain 1 decisions 100..106
    (checkpoints 3, 7), each decision with its event archived; one final anchor commits to
    the checkpoints (0, 9) and (1, 7)."""
    ledger = build((4, 9, 13), chain=0, archive=True)
    build((3, 7), chain=1, ledger=ledger, first_decision=100, archive=True)
    notes = [ledger.checkpoint_at(chain, size)[0].note for chain, size in ((0, 9), (1, 7))]
    ledger.anchor_list.append(
        StoredAnchor(
            datetime(2026, 1, 1, tzinfo=UTC),
            anchor_root(notes),
            31337,
            TX,
            7,
            BLOCK,
            SENDER,
            "success",
            22_480,
            ((0, 9), (1, 7)),
        )
    )
    return ledger


def decision_id(ledger: MemoryLedger, chain: int, seq: int) -> str:
    return str(ledger.row(seq, chain)[COL["decision_id"]].decode())


POSITIONS = [(0, 1), (0, 2), (0, 3), (0, 7), (1, 0), (1, 4), (1, 5), (1, 6)]


def by_ids(ledger: MemoryLedger, positions: list[tuple[int, int]] = POSITIONS) -> CaseBundleFile:
    ids = [decision_id(ledger, chain, seq) for chain, seq in positions]
    return build_case_bundle(ledger, Selection(ids=ids), EXPORTER)


def as_json(bundle: CaseBundleFile) -> Json:
    data: Json = json.loads(dump_case_bundle(bundle))
    return data
