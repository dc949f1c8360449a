"""Every anchor transaction of the anchor account needs its row: a chain of blocks in memory
stands in for the EVM node (the real one is tested in tests/integration/test_tamper.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime

from memory_ledger import SIGNER, MemoryLedger, build

from anchoring.calldata import anchor_root, encode_calldata
from anchoring.onchain import AccountTx
from attestcore.records import StoredAnchor
from forensics.report import Report
from forensics.verify import OnChainTx, verify_ledger
from forensics.verify_account import FINALITY_GRACE_BLOCKS

ACCOUNT = "0xAnchorAccount"
OTHER = "0xSomeoneElse"
HEAD = 1000


@dataclass
class Blocks:
    """Transactions by block number; counts calls the way a JSON-RPC node would bill them."""

    mined: list[tuple[int, AccountTx]] = field(default_factory=list)
    head: int = HEAD
    count_calls: int = 0

    def send(self, block: int, sender: str, data: bytes) -> AccountTx:
        nonce = sum(1 for _, tx in self.mined if tx.sender == sender)
        tx = AccountTx(f"0x{len(self.mined):064x}", sender, nonce, data)
        self.mined.append((block, tx))
        return tx

    def head_block_number(self) -> int:
        return self.head

    def network_chain_id(self) -> int:
        return 31337

    def transaction(self, tx_hash: str) -> OnChainTx | None:
        for block, tx in self.mined:
            if tx.tx_hash == tx_hash:
                return OnChainTx(tx.input, tx.sender, 1, block, f"0xb{block}", tx.nonce)
        return None

    def transaction_count(self, address: str, block: int) -> int:
        self.count_calls += 1
        return sum(1 for b, tx in self.mined if tx.sender == address and b <= block)

    def block_transactions(self, block: int) -> list[AccountTx]:
        return [tx for b, tx in self.mined if b == block]


def anchor_row(ledger: MemoryLedger, tx: AccountTx, block: int) -> StoredAnchor:
    latest = ledger.cps[0][-1]
    return StoredAnchor(
        datetime(2025, 3, 4),
        anchor_root([latest.note]),
        31337,
        tx.tx_hash,
        block,
        f"0xb{block}",
        tx.sender,
        "success",
        22_480,
        ((0, latest.size),),
    )


def anchored_ledger() -> tuple[MemoryLedger, Blocks, list[StoredAnchor]]:
    """Nonce 0 moves funds (no anchor), nonces 1 and 2 are anchors with rows, and another
    account's transactions share the blocks."""
    ledger, chain = build(), Blocks()
    root = anchor_root([ledger.cps[0][-1].note])
    chain.send(3, ACCOUNT, b"")
    chain.send(3, OTHER, encode_calldata(root))
    rows = [
        anchor_row(ledger, chain.send(block, ACCOUNT, encode_calldata(root)), block)
        for block in (40, 700)
    ]
    chain.send(800, OTHER, b"\x01")
    ledger.anchor_list = list(rows)
    return ledger, chain, rows


def verify(ledger: MemoryLedger, chain: Blocks, confirmations: int = 2) -> Report:
    return verify_ledger(ledger, [SIGNER.verifier()], chain, confirmations, ACCOUNT)


def missing(report: Report) -> list[str]:
    return [f.detail for f in report.failures if f.kind == "anchor_missing"]


def test_every_anchor_with_its_row_and_a_transfer_verify() -> None:
    ledger, chain, _ = anchored_ledger()
    report = verify(ledger, chain)
    assert report.ok, report.failures
    assert (report.anchor_account, report.anchor_transactions) == (ACCOUNT, 3)
    assert report.to_json()["anchor_account_checked"] is True


def test_a_deleted_anchor_row_is_anchor_missing_with_its_nonce() -> None:
    ledger, chain, rows = anchored_ledger()
    ledger.anchor_list = [rows[1]]
    report = verify(ledger, chain)
    assert [f.kind for f in report.failures] == ["anchor_missing"]
    assert missing(report)[0].startswith("nonce 1: anchor transaction 0x")
    # Bounded: the count at the head, then for each nonce without a row (the transfer, nonce
    # 0, and the anchor, nonce 1) one binary search below the block of nonce 2.
    assert chain.count_calls <= 1 + 2 * math.ceil(math.log2(700 + 1))


def test_every_anchor_row_deleted_is_caught() -> None:
    ledger, chain, _ = anchored_ledger()
    ledger.anchor_list = []
    report = verify(ledger, chain)
    assert [d.split(":")[0] for d in missing(report)] == ["nonce 1", "nonce 2"]
    assert not report.ok


def test_an_anchor_younger_than_its_confirmations_is_in_flight() -> None:
    ledger, chain, rows = anchored_ledger()
    ledger.anchor_list = [rows[0]]
    chain.head = 700 + 2 + FINALITY_GRACE_BLOCKS - 2
    assert verify(ledger, chain).ok
    chain.head += 1
    assert [d.split(":")[0] for d in missing(verify(ledger, chain))] == ["nonce 2"]


def test_an_anchor_row_of_another_account_is_a_mismatch() -> None:
    ledger, chain, rows = anchored_ledger()
    root = rows[0].root
    foreign = chain.send(900, OTHER, encode_calldata(root))
    ledger.anchor_list = [*rows, replace(anchor_row(ledger, foreign, 900))]
    report = verify(ledger, chain)
    assert [f.kind for f in report.failures] == ["anchor_mismatch"]
    assert "not by the anchor account" in report.failures[0].detail


def test_without_the_account_the_chain_is_not_searched() -> None:
    ledger, chain, rows = anchored_ledger()
    ledger.anchor_list = [rows[1]]
    report = verify_ledger(ledger, [SIGNER.verifier()], chain, 2)
    assert report.ok and chain.count_calls == 0
    assert report.to_json()["anchor_account_checked"] is False
