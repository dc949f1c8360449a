"""Transactions as the EVM chain shows them, and what reads them: the types the anchor
service, the proofs and the verifiers share. Pure: the offline verifier imports it without
web3 (`anchoring.rpc.ChainClient` is the JSON-RPC implementation of `ChainReader`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OnChainTx:
    """A mined transaction with its receipt's status and block."""

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


class TxLookup(Protocol):
    """What checking one anchor transaction asks of the EVM chain (`anchoring.anchor_check`)."""

    def transaction(self, tx_hash: str) -> OnChainTx | None:
        """The mined transaction, None when the chain does not have it (or not mined)."""
        ...

    def head_block_number(self) -> int: ...
    def network_chain_id(self) -> int:
        """The chain id of the network this reader serves."""
        ...


class ChainReader(TxLookup, Protocol):
    """Looks up anchor transactions on the EVM chain, and an account's transactions."""

    def transaction_count(self, address: str, block: int) -> int:
        """The account's nonce after `block` (eth_getTransactionCount): how many
        transactions it has sent in blocks 0..block."""
        ...

    def block_transactions(self, block: int) -> list[AccountTx]: ...


def same_block_hash(recorded: str, found: str) -> bool:
    """Block hashes compare as hex, whatever their case (checksummed or not)."""
    return recorded.lower() == found.lower()
