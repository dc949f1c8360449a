"""Transactions as the EVM chain shows them, and what reads them: the types the anchor
service, the proofs and the verifiers share. Pure: the offline verifier imports it without
web3 (`anchoring.reader` is the web3 implementation of `ChainReader`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OnChainTx:
    input: bytes
    sender: str
    status: int
    block_number: int
    block_hash: str
    nonce: int = -1
    """The sender's nonce (-1: not read), which places it among the account's transactions."""


@dataclass(frozen=True)
class AccountTx:
    """One transaction of a block, as far as telling anchors apart needs it."""

    tx_hash: str
    sender: str
    nonce: int
    input: bytes


class ChainReader(Protocol):
    """Looks up anchor transactions on the EVM chain (None when it is not there)."""

    def transaction(self, tx_hash: str) -> OnChainTx | None: ...
    def head_block_number(self) -> int: ...
    def transaction_count(self, address: str, block: int) -> int:
        """The account's nonce after `block` (eth_getTransactionCount): how many
        transactions it has sent in blocks 0..block."""
        ...

    def block_transactions(self, block: int) -> list[AccountTx]: ...
