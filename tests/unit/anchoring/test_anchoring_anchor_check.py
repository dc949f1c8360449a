"""The one anchor-transaction check (`anchoring.anchor_check`): one broken chain per finding,
and what each caller makes of it (verify-proof raises, forensic verify reports a fault)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from anchoring.anchor_check import (
    AnchorTxCheck,
    Finding,
    RecordedAnchor,
    check_anchor_tx,
    root_finding,
)
from anchoring.calldata import anchor_root, encode_calldata
from anchoring.onchain import OnChainTx
from anchoring.proofs import require_anchor_tx
from attestcore.errors import (
    AnchorMismatchError,
    AnchorNotFoundError,
    AnchorReorgedError,
    AnchorUnconfirmedError,
)
from attestcore.records import StoredAnchor
from forensics.report import Report
from forensics.verify_anchor import check_anchor

NOTE = b"example.org/log/0\n5\n...\n"
ROOT = anchor_root([NOTE])
SENDER = "0x00000000000000000000000000000000000000Aa"
TX = "0x" + "ab" * 32
BLOCK = "0x" + "cd" * 32
RECORDED = RecordedAnchor(31337, TX, ROOT, SENDER, 7, BLOCK)


@dataclass
class Chain:
    """A TxLookup over one transaction; it counts the head look-ups."""

    tx: OnChainTx | None = field(
        default_factory=lambda: OnChainTx(encode_calldata(ROOT), SENDER.lower(), 1, 7, BLOCK)
    )
    head: int = 8
    chain_id: int = 31337
    head_reads: int = 0

    def transaction(self, tx_hash: str) -> OnChainTx | None:
        return self.tx if tx_hash == TX else None

    def head_block_number(self) -> int:
        self.head_reads += 1
        return self.head

    def network_chain_id(self) -> int:
        return self.chain_id


def broken(change: dict[str, Any]) -> Chain:
    chain = Chain()
    name, value = next(iter(change.items()))
    if name in ("tx", "head", "chain_id"):
        return dataclasses.replace(chain, **change)
    assert chain.tx is not None
    return dataclasses.replace(chain, tx=dataclasses.replace(chain.tx, **{name: value}))


def kinds(check: AnchorTxCheck) -> list[Finding]:
    return [finding.kind for finding in check.findings]


def test_a_transaction_as_recorded_has_no_finding() -> None:
    chain = Chain()
    check = check_anchor_tx(chain, RECORDED, min_confirmations=2)
    assert check.ok and check.confirmations == 2 and check.tx == chain.tx
    # Block hashes are compared as hex, whatever their case.
    upper = dataclasses.replace(RECORDED, block_hash=BLOCK.upper().replace("0X", "0x"))
    assert check_anchor_tx(chain, upper, min_confirmations=2).ok


# One broken chain per finding: (what changes, the finding, words of its detail, the error
# verify-proof raises, the fault forensic verify reports).
FINDINGS = [
    ({"chain_id": 11155111}, Finding.OTHER_NETWORK,
     "serves chain id 11155111, the anchor is on 31337", AnchorMismatchError, "anchor_mismatch"),
    ({"tx": None}, Finding.NOT_FOUND, "is not on chain 31337", AnchorNotFoundError,
     "unanchored"),
    ({"input": b"\x00" * 37}, Finding.NOT_ANCHOR_CALLDATA, "not attestream anchor calldata",
     AnchorMismatchError, "anchor_mismatch"),
    ({"input": encode_calldata(b"\x11" * 32)}, Finding.OTHER_ROOT,
     f"carries root {'11' * 32}, expected {ROOT.hex()}", AnchorMismatchError, "anchor_mismatch"),
    ({"status": 0}, Finding.REVERTED, "reverted", AnchorMismatchError, "anchor_mismatch"),
    ({"sender": "0x" + "00" * 19 + "bb"}, Finding.OTHER_SENDER,
     f"sent by 0x{'00' * 19}bb, not by the recorded sender {SENDER}", AnchorMismatchError,
     "anchor_mismatch"),
    ({"block_hash": "0x" + "ee" * 32}, Finding.REORGED,
     f"now in block 7 (0x{'ee' * 32}), not in the recorded block 7 ({BLOCK})",
     AnchorReorgedError, "anchor_mismatch"),
    ({"block_number": 9}, Finding.OTHER_BLOCK_NUMBER, f"block {BLOCK} is number 9, the anchor"
     " records 7", AnchorMismatchError, "anchor_mismatch"),
    ({"head": 7}, Finding.UNCONFIRMED, "1 of 2 confirmations so far", AnchorUnconfirmedError,
     "unanchored"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "kind", "detail", "error", "fault"), FINDINGS,
                         ids=[f[1].value for f in FINDINGS])  # fmt: skip
def test_each_difference_is_one_finding(
    change: dict[str, Any], kind: Finding, detail: str, error: type[Exception], fault: str
) -> None:
    check = check_anchor_tx(broken(change), RECORDED, min_confirmations=2)
    assert kinds(check) == [kind]
    assert detail in check.findings[0].detail
    with pytest.raises(error, match=TX if kind != Finding.OTHER_NETWORK else "11155111"):
        require_anchor_tx(broken(change), RECORDED, min_confirmations=2)
    stored = StoredAnchor(datetime(2025, 3, 4), ROOT, 31337, TX, 7, BLOCK, SENDER, "success",
                          22_480, ((0, 5),))  # fmt: skip
    report = Report()
    check_anchor(stored, {(0, 5): NOTE}, broken(change), report, min_confirmations=2)
    assert [(f.kind, f.detail) for f in report.failures] == [
        (fault, f"anchor {TX}: {check.findings[0].detail}")
    ]


def test_other_network_reads_nothing_else() -> None:
    chain = broken({"chain_id": 1})
    check = check_anchor_tx(chain, RECORDED, min_confirmations=2)
    assert check.tx is None and check.confirmations is None and chain.head_reads == 0


def test_several_differences_are_all_found_and_the_first_is_raised() -> None:
    chain = Chain()
    assert chain.tx is not None
    chain.tx = dataclasses.replace(chain.tx, input=encode_calldata(b"\x22" * 32), status=0,
                                   sender="0xOther", block_hash="0xee", block_number=8)  # fmt: skip
    check = check_anchor_tx(chain, RECORDED, min_confirmations=2)
    assert kinds(check) == [Finding.OTHER_ROOT, Finding.REVERTED, Finding.OTHER_SENDER,
                            Finding.REORGED]  # fmt: skip
    assert chain.head_reads == 0, "confirmations are not counted for a transaction that differs"
    with pytest.raises(AnchorMismatchError, match="carries root 2222"):
        require_anchor_tx(chain, RECORDED, min_confirmations=2)


def test_calldata_that_is_not_an_anchor_ends_the_comparison() -> None:
    check = check_anchor_tx(broken({"input": b"ATST"}), RECORDED, min_confirmations=2)
    assert kinds(check) == [Finding.NOT_ANCHOR_CALLDATA]


def test_confirmations_are_counted_only_when_required() -> None:
    chain = Chain(head=7)
    check = check_anchor_tx(chain, RECORDED, min_confirmations=0)
    assert check.ok and check.confirmations is None and chain.head_reads == 0
    assert check_anchor_tx(chain, RECORDED, min_confirmations=1).confirmations == 1
    with pytest.raises(AnchorUnconfirmedError, match="has 1 confirmation\\(s\\), 3 required"):
        require_anchor_tx(chain, RECORDED, min_confirmations=3)


def test_the_root_finding_alone() -> None:
    assert root_finding(encode_calldata(ROOT), ROOT) is None
    other = root_finding(encode_calldata(b"\x11" * 32), ROOT)
    assert other is not None and other.kind == Finding.OTHER_ROOT
    malformed = root_finding(b"", ROOT)
    assert malformed is not None and malformed.kind == Finding.NOT_ANCHOR_CALLDATA
