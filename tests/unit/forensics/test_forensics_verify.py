"""Verification over an in-memory ledger: one tampered fixture per kind of fault."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest
from memory_ledger import (
    COL,
    SIGNER,
    STRANGER,
    MemoryLedger,
    build,
    checkpoint,
    kinds,
    rehash,
)

from anchoring.calldata import anchor_root, encode_calldata
from anchoring.onchain import AccountTx
from attestcore.records import StoredAnchor
from forensics.verify import OnChainTx, verify_ledger


def test_an_untouched_ledger_verifies() -> None:
    report = verify_ledger(build(), [SIGNER.verifier()])
    assert report.ok, report.failures
    assert (report.entries, report.checkpoints, report.chains) == (9, 2, [0])


def test_changed_entry_bytes() -> None:
    ledger = build()
    row = ledger.rows[0][5]
    row[COL["entry"]] = row[COL["entry"]].replace(b'"approve"', b'"review"')
    assert {("bad_leaf", 0, 5), ("column_mismatch", 0, 5)} <= kinds(ledger)


def test_changed_column_with_bytes_kept() -> None:
    ledger = build()
    ledger.rows[0][2][COL["outcome"]] = b"block"
    assert kinds(ledger) == {("column_mismatch", 0, 2)}


def test_rehashed_forgery_breaks_the_next_link_and_the_root() -> None:
    ledger = build()
    row = ledger.rows[0][3]
    row[COL["entry"]] = row[COL["entry"]].replace(b'"approve"', b'"review"')
    row[COL["outcome"]] = b"review"
    rehash(row)
    found = kinds(ledger)
    assert ("broken_link", 0, 4) in found
    assert ("root_mismatch", 0, 3) in found


def test_deleted_entry_is_a_gap() -> None:
    ledger = build()
    del ledger.rows[0][6]
    assert ("gap", 0, 6) in kinds(ledger)


def test_inserted_entry_with_a_taken_seq_is_a_fork() -> None:
    ledger = build()
    ledger.rows[0].append(list(ledger.rows[0][7]))
    assert ("fork", 0, 7) in kinds(ledger)


def test_truncated_tail_is_reported() -> None:
    ledger = build()
    del ledger.rows[0][7:]
    assert ("truncated", 0, 7) in kinds(ledger)


def test_checkpoint_by_an_untrusted_key() -> None:
    ledger = build()
    good = ledger.cps[0][1]
    ledger.cps[0][1] = checkpoint(0, good.size, good.root, signer=STRANGER)
    assert kinds(ledger) == {("bad_signature", 0, 9)}


class Chain:
    """A ChainReader over the transactions `txs` (by hash), `head` the newest block."""

    def __init__(self, txs: dict[str, OnChainTx], head: int = 7) -> None:
        self.txs = txs
        self.head = head

    def head_block_number(self) -> int:
        return self.head

    def transaction(self, tx_hash: str) -> OnChainTx | None:
        return self.txs.get(tx_hash)

    def transaction_count(self, address: str, block: int) -> int:
        return sum(
            1 for tx in self.txs.values() if tx.sender == address and tx.block_number <= block
        )

    def block_transactions(self, block: int) -> list[AccountTx]:
        return [
            AccountTx(tx_hash, tx.sender, tx.nonce, tx.input)
            for tx_hash, tx in self.txs.items()
            if tx.block_number == block
        ]

    def network_chain_id(self) -> int:
        return 31337


def anchored(ledger: MemoryLedger) -> tuple[StoredAnchor, OnChainTx]:
    latest = ledger.cps[0][-1]
    root = anchor_root([latest.note])
    anchor = StoredAnchor(
        datetime(2025, 3, 4),
        root,
        31337,
        "0xaa",
        7,
        "0xbb",
        "0xSender",
        "success",
        21_592,
        ((0, latest.size),),
    )
    return anchor, OnChainTx(encode_calldata(root), "0xsender", 1, 7, "0xBB")


def test_anchor_checks_pass_and_fail() -> None:
    ledger = build()
    anchor, tx = anchored(ledger)
    ledger.anchor_list = [anchor]
    assert kinds(ledger, chain_reader=Chain({"0xaa": tx})) == set()
    assert kinds(ledger, chain_reader=Chain({})) == {("unanchored", None, None)}
    other = dataclasses.replace(tx, input=encode_calldata(b"\x00" * 32))
    assert ("anchor_mismatch", None, None) in kinds(ledger, chain_reader=Chain({"0xaa": other}))
    moved = dataclasses.replace(tx, block_hash="0xcc")
    assert kinds(ledger, chain_reader=Chain({"0xaa": moved})) == {("anchor_mismatch", None, None)}


class OtherNetwork(Chain):
    """A reader of Sepolia, given a ledger anchored on anvil (chain id 31337)."""

    def network_chain_id(self) -> int:
        return 11155111


def test_an_anchor_on_another_network_is_a_mismatch() -> None:
    ledger = build()
    anchor, tx = anchored(ledger)
    ledger.anchor_list = [anchor]
    report = verify_ledger(ledger, [SIGNER.verifier()], OtherNetwork({"0xaa": tx}))
    assert [(f.kind, f.detail) for f in report.failures] == [
        (
            "anchor_mismatch",
            "anchor 0xaa: the chain reader serves chain id 11155111, the anchor is on 31337",
        )
    ]


@pytest.mark.parametrize("field", ["root", "checkpoints"])
def test_anchor_record_tampered(field: str) -> None:
    ledger = build()
    anchor, _ = anchored(ledger)
    value: Any = b"\x11" * 32 if field == "root" else ((0, 4),)
    ledger.anchor_list = [dataclasses.replace(anchor, **{field: value})]
    assert any(kind == "anchor_mismatch" for kind, _, _ in kinds(ledger))


def test_report_json_shape() -> None:
    report = verify_ledger(build(), [SIGNER.verifier()])
    data = report.to_json()
    assert data["ok"] is True and data["entries"] == 9 and data["failures"] == []


def test_anchor_needs_its_confirmations() -> None:
    ledger = build()
    anchor, tx = anchored(ledger)  # mined in block 7
    ledger.anchor_list = [anchor]
    report = verify_ledger(ledger, [SIGNER.verifier()], Chain({"0xaa": tx}, head=8), 3)
    assert [(f.kind, f.detail.split(": ")[-1]) for f in report.failures] == [
        ("unanchored", "2 of 3 confirmations so far")
    ]
    assert verify_ledger(ledger, [SIGNER.verifier()], Chain({"0xaa": tx}, head=9), 3).ok
