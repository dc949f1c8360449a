"""The newest anchor on the EVM chain as the ledger sequencer's outside claim (`ledger.trust`).

An anchor transaction commits to the checkpoint notes of every chain; nobody who can only
write to the database can take it back. Before the sequencer signs a chain, the newest anchor
transaction of the anchor account (the account's own setting, never read from the store) is
found by nonce (`forensics.verify_account.NonceSearch`: transaction count - 1, then earlier
nonces while a transaction is not an anchor), and then:
  1. the store must hold the anchor's row (any lifecycle state: the anchor service records a
     transaction before it broadcasts it), else `anchor_missing`;
  2. the store must hold each checkpoint note the row names, signed by the sequencer's own
     key for that chain's origin, else `anchor_checkpoint_missing`;
  3. the root over those notes must be the root in the transaction's calldata
     (`anchoring.anchor_check.root_finding`, as `forensic verify` compares it), else
     `anchor_mismatch`.
The checkpoints of the anchor are then claims like the signer state file's. This lives in the
composition root because it joins the ledger with anchoring and forensics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from anchoring.anchor_check import root_finding
from anchoring.calldata import anchor_root
from anchoring.onchain import AccountTx, ChainReader
from attestcore.errors import AttestreamError, SigningRefusedError
from attestcore.records import StoredAnchor, StoredCheckpoint
from forensics.verify_account import NonceSearch, carries_anchor
from ledger.keys import NoteVerifier
from ledger.note import open_checkpoint
from ledger.trust import SignedClaim

# Transactions of the account looked at, newest first, for its latest anchor: the account
# sends anchors only, but an operator may have moved funds off it in between.
MAX_NON_ANCHORS = 8
# One assignment rebuilds every chain of the partitions it hands over; they share one lookup
# (a binary search costs ~25 JSON-RPC calls on Sepolia). Long enough for the rebuild of a
# few chains, short enough that the next rebalance looks again.
LOOKUP_REUSE_S = 30.0


class ClaimStore(Protocol):
    """What the claims read from the store (`anchoring.store.AnchoredStore`)."""

    def current_anchor(self, tx_hash: str) -> StoredAnchor | None: ...
    def checkpoint_at(self, chain: int, size: int) -> list[StoredCheckpoint]: ...


@dataclass(frozen=True)
class NewestAnchor:
    nonce: int
    block: int
    tx: AccountTx


class AnchorClaims:
    """`ledger.trust.OutsideClaims` from the newest anchor of `account`."""

    def __init__(
        self,
        store: ClaimStore,
        reader: Callable[[], ChainReader],
        account: str,
        verifier: NoteVerifier,
        origin_prefix: str,
    ) -> None:
        self.store, self.reader, self.account = store, reader, account
        self.verifier, self.origin_prefix = verifier, origin_prefix
        self._newest: tuple[float, NewestAnchor | None] | None = None

    def __call__(self, chain: int) -> list[SignedClaim]:
        newest = self._lookup()
        if newest is None:
            return []
        where = (
            f"anchor transaction {newest.tx.tx_hash} (nonce {newest.nonce}, block"
            f" {newest.block}) of the anchor account {self.account}"
        )
        anchor = self.store.current_anchor(newest.tx.tx_hash)
        if anchor is None:
            raise SigningRefusedError(
                "anchor_missing", chain, None, f"the newest {where} has no anchor row in the store"
            )
        notes: list[bytes] = []
        claims: list[SignedClaim] = []
        for cp_chain, size in anchor.checkpoints:
            note = self._note(cp_chain, size)
            if note is None:
                raise SigningRefusedError(
                    "anchor_checkpoint_missing",
                    chain,
                    size - 1 if cp_chain == chain else None,
                    f"the newest {where} names checkpoint size {size} of chain {cp_chain}, and"
                    " the store holds no such checkpoint signed by this signer",
                )
            notes.append(note)
            if cp_chain == chain:
                claims.append(SignedClaim(chain, size, self._root(cp_chain, note), where))
        mismatch = root_finding(newest.tx.input, anchor_root(notes))
        if mismatch is not None:
            raise SigningRefusedError(
                "anchor_mismatch",
                chain,
                None,
                f"the checkpoints the store names for the newest {where} are not the ones it"
                f" anchors: {mismatch.detail}",
            )
        return claims

    def _lookup(self) -> NewestAnchor | None:
        now = time.monotonic()
        if self._newest is None or now - self._newest[0] > LOOKUP_REUSE_S:
            self._newest = (now, newest_anchor(self.reader(), self.account))
        return self._newest[1]

    def _origin(self, chain: int) -> str:
        return f"{self.origin_prefix}/{chain}"

    def _note(self, chain: int, size: int) -> bytes | None:
        """The stored note of (chain, size) signed by our key (R4 re-signs a head with the
        same bytes: Ed25519 is deterministic)."""
        for cp in self.store.checkpoint_at(chain, size):
            try:
                signed = open_checkpoint(cp.note, [self.verifier], self._origin(chain))
            except AttestreamError:
                continue
            if signed.size == size:
                return cp.note
        return None

    def _root(self, chain: int, note: bytes) -> bytes:
        return bytes(open_checkpoint(note, [self.verifier], self._origin(chain)).root)


def newest_anchor(reader: ChainReader, account: str) -> NewestAnchor | None:
    """The account's newest anchor transaction on the chain (None: it has sent none among
    its last MAX_NON_ANCHORS + 1 transactions). Raises ServiceUnavailableError when the
    endpoint does not answer."""
    head = reader.head_block_number()
    count = reader.transaction_count(account, head)
    search = NonceSearch(account, reader, {}, head)
    for nonce in range(count - 1, max(count - 2 - MAX_NON_ANCHORS, -1), -1):
        block, tx = search.locate(nonce)
        if carries_anchor(tx.input):
            return NewestAnchor(nonce, block, tx)
    return None
