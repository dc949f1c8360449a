"""Every anchor on the chain has its row: the anchor account's transactions, found by nonce.

The store's anchor rows are claims; the chain is the record. Every anchor is a transaction
of one account, the anchor account, whose address the verifier takes from its own settings
(never from the store). Its transaction count at the head block (eth_getTransactionCount)
says how many transactions it has sent: nonces 0..count-1. Each stored anchor that was found
on the chain accounts for its transaction's nonce. Any other nonce is looked for on the chain:
if its transaction carries anchor calldata it is an anchor without a row, `anchor_missing`;
a transaction with other calldata (say, moving funds off the account) is allowed.

Finding a transaction by sender and nonce without an indexer: the account's count is
monotonic in the block number, so a binary search over eth_getTransactionCount(account,
block) finds the block that holds nonce n, and that one block is read with its transactions.
The anchors found on the chain bound the search (nonce n lies between the blocks of the
nearest found nonces around it), so a deleted row costs about log2(blocks between its
neighbours) calls; with every row deleted, about 23 calls per nonce on Sepolia (~7 million
blocks). The count at an old block needs a node that keeps historical state (the hosted
Sepolia endpoints do); a pruned node answers an error and the verification stops with exit 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from anchoring.calldata import decode_calldata
from anchoring.onchain import AccountTx, ChainReader, OnChainTx
from attestcore.errors import MalformedError
from attestcore.records import StoredAnchor
from forensics.report import FaultKind, Report

K = FaultKind

# How many nonces without a row are looked for on the chain; each search costs up to ~25
# JSON-RPC calls on Sepolia, so this bounds a run at about a thousand calls. One missing
# anchor already fails verification: the nonces past the bound are reported unexamined.
MAX_NONCE_SEARCHES = 40
# An anchor mined this many blocks past its confirmations and still without a final row is
# missing; younger ones are in flight (the anchor service polls every few seconds and marks
# them final once they have their confirmations: ten blocks are two minutes of Sepolia).
FINALITY_GRACE_BLOCKS = 10


@dataclass(frozen=True)
class AccountCheck:
    """What the account check saw: the account and its transaction count at the head."""

    account: str
    transactions: int
    head: int


def check_anchor_account(
    account: str,
    anchors: Iterable[tuple[StoredAnchor, OnChainTx | None]],
    chain_reader: ChainReader,
    report: Report,
    min_confirmations: int = 0,
) -> AccountCheck:
    """Demand a stored anchor for every anchor transaction of `account` on the chain.

    `anchors` pairs each stored (final) anchor with its transaction as `check_anchor` read
    it from the chain (None: not found, already reported as `unanchored`).
    """
    head = chain_reader.head_block_number()
    count = chain_reader.transaction_count(account, head)
    found: dict[int, int] = {}  # nonce -> block, as the chain shows them
    for anchor, tx in anchors:
        if tx is None:
            continue
        if tx.sender.lower() != account.lower():
            report.fail(
                K.ANCHOR_MISMATCH,
                None,
                None,
                f"anchor {anchor.tx_hash}: sent by {tx.sender}, not by the anchor"
                f" account {account}",
            )
        elif 0 <= tx.nonce < count:
            found[tx.nonce] = tx.block_number
    search = NonceSearch(account, chain_reader, found, head)
    unexplained = [nonce for nonce in range(count) if nonce not in found]
    for nonce in unexplained[:MAX_NONCE_SEARCHES]:
        block, sent = search.locate(nonce)
        if not carries_anchor(sent.input):
            continue
        depth = head - block + 1
        if depth < min_confirmations + FINALITY_GRACE_BLOCKS:
            continue  # in flight: the anchor service has not marked it final yet
        report.fail(
            K.ANCHOR_MISSING,
            None,
            None,
            f"nonce {nonce}: anchor transaction {sent.tx_hash} in block {block}"
            " has no anchor row in the store",
        )
    rest = unexplained[MAX_NONCE_SEARCHES:]
    if rest:
        report.fail(
            K.ANCHOR_MISSING,
            None,
            None,
            f"nonces {rest[0]}..{rest[-1]}: {len(rest)} transactions of {account}"
            f" without an anchor row were not examined (more than"
            f" {MAX_NONCE_SEARCHES})",
        )
    return AccountCheck(account, count, head)


def carries_anchor(data: bytes) -> bool:
    """Whether a transaction's input is anchor calldata (anchoring/calldata.py)."""
    try:
        decode_calldata(data)
    except MalformedError:
        return False
    return True


class NonceSearch:
    """Finds the account's transaction of a given nonce by binary search over its count.

    `found` holds the blocks of nonces already located (they narrow later searches); the
    ledger sequencer starts from none to find the account's newest anchor."""

    def __init__(
        self, account: str, chain_reader: ChainReader, found: dict[int, int], head: int
    ) -> None:
        self.account, self.chain_reader, self.head = account, chain_reader, head
        self.found = dict(found)

    def _bounds(self, nonce: int) -> tuple[int, int]:
        """Nonce n is mined no earlier than nonce n-1 and no later than nonce n+1."""
        below = [block for n, block in self.found.items() if n < nonce]
        above = [block for n, block in self.found.items() if n > nonce]
        return max(below, default=0), min(above, default=self.head)

    def locate(self, nonce: int) -> tuple[int, AccountTx]:
        low, high = self._bounds(nonce)
        # Invariant: the count after block `high` exceeds `nonce`; find the first such block.
        while low < high:
            middle = (low + high) // 2
            if self.chain_reader.transaction_count(self.account, middle) > nonce:
                high = middle
            else:
                low = middle + 1
        for tx in self.chain_reader.block_transactions(low):
            if tx.sender.lower() == self.account.lower() and tx.nonce == nonce:
                self.found[nonce] = low
                return low, tx
        raise MalformedError(
            f"the chain's count says nonce {nonce} of {self.account} is in block {low},"
            " but that block holds no such transaction"
        )
