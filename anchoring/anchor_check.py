"""The one check of an anchor transaction against the EVM chain, shared by the anchor proofs
(`verify-proof --rpc-url`), `forensic verify` and the sequencer's newest-anchor lookup.

It returns findings, not verdicts: each caller maps them to its own outcome (an exception of
`attestcore.errors` for a proof, a fault kind for the verification report). In order:

1. the reader serves the anchor's network (chain id); otherwise nothing else is read;
2. the transaction is mined on it;
3. its calldata is anchor calldata carrying the expected root, it succeeded, and the
   recorded sender sent it;
4. it is in the recorded block: another block hash is a reorg (the block it was recorded in
   is no longer canonical), the recorded hash under another number a mismatch of the record;
5. with nothing found so far, it is buried under enough blocks (counting its own).

Pure: no web3 here, the reader is any `anchoring.onchain.TxLookup`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from anchoring.calldata import decode_calldata
from anchoring.onchain import OnChainTx, TxLookup, same_block_hash
from attestcore.errors import MalformedError
from attestcore.records import StoredAnchor


class Finding(str, Enum):
    OTHER_NETWORK = "other_network"
    NOT_FOUND = "not_found"
    NOT_ANCHOR_CALLDATA = "not_anchor_calldata"
    OTHER_ROOT = "other_root"
    REVERTED = "reverted"
    OTHER_SENDER = "other_sender"
    REORGED = "reorged"
    OTHER_BLOCK_NUMBER = "other_block_number"
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class TxFinding:
    kind: Finding
    detail: str
    """What was found, about the transaction (callers name the transaction before it)."""


@dataclass(frozen=True)
class RecordedAnchor:
    """What a ledger's anchor row, or an anchor proof, says the transaction is."""

    network_chain_id: int
    tx_hash: str
    root: bytes
    """The root its calldata must carry."""
    sender: str
    block_number: int
    block_hash: str

    @classmethod
    def of(cls, anchor: StoredAnchor, root: bytes | None = None) -> RecordedAnchor:
        """The stored anchor's transaction, carrying `root` (default: the row's own root)."""
        return cls(anchor.network_chain_id, anchor.tx_hash,
                   anchor.root if root is None else root, anchor.sender,
                   anchor.block_number, anchor.block_hash)  # fmt: skip


@dataclass(frozen=True)
class AnchorTxCheck:
    """The outcome: the transaction as read (None: not read, or not on the chain), what
    differs from the record, and the confirmations counted (None: not counted)."""

    tx: OnChainTx | None
    findings: tuple[TxFinding, ...]
    confirmations: int | None = None

    @property
    def ok(self) -> bool:
        return not self.findings


def check_anchor_tx(
    reader: TxLookup, recorded: RecordedAnchor, min_confirmations: int
) -> AnchorTxCheck:
    """Read the transaction `recorded` names and compare it (steps 1-5 of the module)."""
    served = reader.network_chain_id()  # 1
    if served != recorded.network_chain_id:
        detail = (f"the chain reader serves chain id {served}, the anchor is on"
                  f" {recorded.network_chain_id}")  # fmt: skip
        return AnchorTxCheck(None, (TxFinding(Finding.OTHER_NETWORK, detail),))
    tx = reader.transaction(recorded.tx_hash)  # 2
    if tx is None:
        found = TxFinding(Finding.NOT_FOUND, f"the transaction is not on chain {served}")
        return AnchorTxCheck(None, (found,))
    findings = transaction_findings(recorded, tx)  # 3, 4
    if findings or min_confirmations <= 0:
        return AnchorTxCheck(tx, findings)
    confirmations = reader.head_block_number() - tx.block_number + 1  # 5
    if confirmations < min_confirmations:
        detail = f"{confirmations} of {min_confirmations} confirmations so far"
        findings = (TxFinding(Finding.UNCONFIRMED, detail),)
    return AnchorTxCheck(tx, findings, confirmations)


def transaction_findings(recorded: RecordedAnchor, tx: OnChainTx) -> tuple[TxFinding, ...]:
    """Steps 3 and 4: the mined transaction against the record."""
    root = root_finding(tx.input, recorded.root)
    if root is not None and root.kind == Finding.NOT_ANCHOR_CALLDATA:
        return (root,)
    findings = [] if root is None else [root]
    if tx.status != 1:
        findings.append(TxFinding(Finding.REVERTED, "the transaction reverted"))
    if tx.sender.lower() != recorded.sender.lower():
        findings.append(TxFinding(Finding.OTHER_SENDER,
                                  f"the transaction was sent by {tx.sender}, not by the"
                                  f" recorded sender {recorded.sender}"))  # fmt: skip
    if not same_block_hash(recorded.block_hash, tx.block_hash):
        findings.append(TxFinding(Finding.REORGED,
                                  f"the transaction is now in block {tx.block_number}"
                                  f" ({tx.block_hash}), not in the recorded block"
                                  f" {recorded.block_number} ({recorded.block_hash})"))  # fmt: skip
    elif tx.block_number != recorded.block_number:
        findings.append(TxFinding(Finding.OTHER_BLOCK_NUMBER,
                                  f"block {tx.block_hash} is number {tx.block_number}, the"
                                  f" anchor records {recorded.block_number}"))  # fmt: skip
    return tuple(findings)


def root_finding(calldata: bytes, root: bytes) -> TxFinding | None:
    """None if `calldata` is anchor calldata carrying `root`."""
    try:
        carried = decode_calldata(calldata)
    except MalformedError as exc:
        return TxFinding(Finding.NOT_ANCHOR_CALLDATA, str(exc))
    if carried != root:
        detail = f"the calldata carries root {carried.hex()}, expected {root.hex()}"
        return TxFinding(Finding.OTHER_ROOT, detail)
    return None
