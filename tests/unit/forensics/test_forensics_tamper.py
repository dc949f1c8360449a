"""The tamper kinds of tests/integration/test_tamper.py, on the in-memory ledger: each fault is
named with its exact (kind, chain, seq), and nothing else is reported."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from memory_ledger import COL, SIGNER, STRANGER, MemoryLedger, build, checkpoint, kinds

from anchoring.calldata import anchor_root
from attestcore.records import StoredAnchor
from forensics.report import FaultKind
from forensics.verify import verify_ledger

DOC = Path(__file__).parents[3] / "docs" / "ledger-format.md"
KEYS = ("chain", "seq")


def swap_entries(ledger: MemoryLedger, a: int, b: int) -> None:
    """Swap every column but (chain, seq), as an SQL UPDATE of the sorting key cannot."""
    row_a, row_b = ledger.row(a), ledger.row(b)
    for name, i in COL.items():
        if name not in KEYS:
            row_a[i], row_b[i] = row_b[i], row_a[i]


def test_changed_bytes_blame_the_entry_not_the_tree_nodes() -> None:
    ledger = build()
    row = ledger.row(5)
    row[COL["entry"]] = row[COL["entry"]].replace(b'"approve"', b'"review"')
    found = kinds(ledger)
    assert {("bad_leaf", 0, 5), ("column_mismatch", 0, 5), ("broken_link", 0, 6)} <= found
    assert {kind for kind, _, _ in found} == {
        "bad_leaf",
        "column_mismatch",
        "broken_link",
        "root_mismatch",
    }


def test_reordered_entries_break_the_links_and_the_roots() -> None:
    ledger = build()
    swap_entries(ledger, 3, 4)
    assert kinds(ledger) == {
        ("bad_entry", 0, 3),
        ("bad_entry", 0, 4),
        ("broken_link", 0, 3),
        ("broken_link", 0, 4),
        ("broken_link", 0, 5),
        ("root_mismatch", 0, 3),
        ("root_mismatch", 0, 8),
        ("bad_node", 0, 3),
        ("bad_node", 0, 4),
    }


def test_an_altered_tree_node_is_named_once_with_its_first_leaf() -> None:
    ledger = build()
    ledger.set_node(2, 1, b"\x11" * 32)  # covers leaves 4..7
    report = verify_ledger(ledger, [SIGNER.verifier()])
    assert {(f.kind, f.chain, f.seq) for f in report.failures} == {("bad_node", 0, 4)}
    assert "level 2, index 1" in report.failures[0].detail


def test_an_altered_leaf_node() -> None:
    ledger = build()
    ledger.set_node(0, 6, b"\x22" * 32)
    assert kinds(ledger) == {("bad_node", 0, 6)}


def test_duplicate_nodes_identical_are_fine_different_are_a_fault() -> None:
    ledger = build()
    nodes = ledger.node_rows[0]
    nodes.append(next(row for row in nodes if row[0] == 1 << 56 | 0))  # (1, 0) twice, same
    assert kinds(ledger) == set()
    nodes.append((1 << 56 | 3, b"\x33" * 32))  # (1, 3) twice, different
    assert kinds(ledger) == {("bad_node", 0, 6)}


def test_a_missing_node_under_a_signed_checkpoint() -> None:
    ledger = build()
    ledger.drop_nodes(lambda level, index: (level, index) != (1, 1))
    assert kinds(ledger) == {("bad_node", 0, 2)}


def test_a_node_not_hex_is_a_bad_node() -> None:
    ledger = build()
    ledger.set_node(0, 1, b"not hex at all")
    assert kinds(ledger) == {("bad_node", 0, 1)}


def test_a_source_without_nodes_is_verified_without_them() -> None:
    class NoNodes:
        def __init__(self, inner: MemoryLedger) -> None:
            self.chains, self.entry_rows = inner.chains, inner.entry_rows
            self.checkpoints, self.anchors = inner.checkpoints, inner.anchors

    ledger = build()
    ledger.set_node(2, 1, b"\x11" * 32)
    report = verify_ledger(NoNodes(ledger), [SIGNER.verifier()])
    assert report.ok and report.nodes == 0
    assert verify_ledger(build(), [SIGNER.verifier()]).nodes == 9 + 4 + 2 + 1


def test_entries_past_the_last_checkpoint_are_an_unsigned_tail() -> None:
    ledger = build((4, 9, 12))
    del ledger.cps[0][-1]  # rows 9..11 as a forger appends them: linked, no checkpoint
    ledger.drop_nodes(lambda level, index: (index + 1) << level <= 9)
    assert kinds(ledger) == {("unsigned_tail", 0, 9)}


def test_a_batch_signed_while_verifying_is_not_an_unsigned_tail() -> None:
    class Live(MemoryLedger):
        def checkpoints(self, chain: int, latest_only: bool = False) -> list[Any]:
            cps = super().checkpoints(chain)
            return cps[-1:] if latest_only else cps[:-1]  # signed after the first read

    ledger = build((4, 9, 12))
    live = Live()
    live.rows, live.cps, live.node_rows = ledger.rows, ledger.cps, ledger.node_rows
    assert kinds(live) == set()


def test_truncated_tail_shown_by_the_tree_nodes() -> None:
    ledger = build()
    ledger.rows[0] = [r for r in ledger.rows[0] if r[COL["seq"]] < 7]
    del ledger.cps[0][-1]
    assert kinds(ledger) == {("truncated", 0, 7), ("unsigned_tail", 0, 4)}


def test_truncated_tail_shown_by_an_anchor() -> None:
    ledger = build()
    note = ledger.cps[0][-1].note
    ledger.anchor_list = [
        StoredAnchor(
            datetime(2025, 3, 4),
            anchor_root([note]),
            31337,
            "0xaa",
            7,
            "0xbb",
            "0xs",
            "success",
            21_592,
            ((0, 9),),
        )
    ]
    ledger.rows[0] = [r for r in ledger.rows[0] if r[COL["seq"]] < 7]
    del ledger.cps[0][-1]
    ledger.drop_nodes(lambda level, index: (index + 1) << level <= 7)
    assert kinds(ledger) == {
        ("truncated", 0, 7),
        ("anchor_mismatch", 0, 9),
        ("unsigned_tail", 0, 4),
    }


def test_an_edited_checkpoint_note_fails_its_signature() -> None:
    ledger = build()
    cp = ledger.cps[0][0]
    lines = cp.note.split(b"\n")
    lines[2] = lines[2][:-2] + (b"A=" if lines[2][-2:] != b"A=" else b"B=")
    ledger.cps[0][0] = dataclasses.replace(cp, note=b"\n".join(lines))
    assert kinds(ledger) == {("bad_signature", 0, 4)}


def test_a_checkpoint_by_an_untrusted_key_leaves_no_unsigned_tail() -> None:
    ledger = build()
    ledger.cps[0][1] = checkpoint(0, 9, ledger.cps[0][1].root, signer=STRANGER)
    assert kinds(ledger) == {("bad_signature", 0, 9)}


def test_every_fault_kind_is_documented_in_one_place() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Verification\n", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert documented == [kind.value for kind in FaultKind]
