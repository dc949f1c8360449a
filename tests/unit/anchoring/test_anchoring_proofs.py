"""Anchor proofs: built from a store, verified against a chain, and one broken fixture per
reason to reject. The ledger here is two small chains held in memory; the chain is a dict."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from anchoring.calldata import anchor_root, encode_calldata
from anchoring.onchain import OnChainTx
from anchoring.proofs import (
    AnchorProof,
    anchor_proof,
    verify_anchor_proof,
    verify_stored_anchor,
)
from attestcore.errors import (
    AnchorMismatchError,
    AnchorNotFoundError,
    AnchorReorgedError,
    AnchorUnconfirmedError,
    MalformedError,
    ProofError,
    RootMismatchError,
    UsageError,
)
from attestcore.records import StoredAnchor, StoredCheckpoint
from ledger.keys import signer_from_seed
from ledger.merkle import MemoryNodeStore, MerkleTree, NodeId, RootHash
from ledger.note import Checkpoint, sign_note

SIGNER = signer_from_seed("example.org/log", bytes(32))
SENDER = "0x00000000000000000000000000000000000000Aa"
TX = "0x" + "ab" * 32
BLOCK = "0x" + "cd" * 32


def note(origin: str, size: int, root: bytes) -> bytes:
    return sign_note(Checkpoint(origin, size, RootHash(root)).body(), SIGNER)


class MemoryLedger:
    """What anchor_proof reads from a ClickHouseStore: checkpoints, nodes, final anchors."""

    def __init__(self) -> None:
        self.nodes: dict[int, MemoryNodeStore] = {}
        self.cps: dict[tuple[int, int], bytes] = {}
        self.anchor_list: list[StoredAnchor] = []
        for chain, sizes in ((0, (5, 9)), (1, (4,))):
            tree, store = MerkleTree(), MemoryNodeStore()
            for size in sizes:
                store.add_runs(tree.extend(f"c{chain}e{i}".encode()
                                           for i in range(tree.size, size)))  # fmt: skip
                self.cps[(chain, size)] = note(f"example.org/log/{chain}", size, tree.root())
            self.nodes[chain] = store

    def anchor(self, checkpoints: tuple[tuple[int, int], ...], block: int = 7) -> StoredAnchor:
        root = anchor_root([self.cps[key] for key in checkpoints])
        anchor = StoredAnchor(datetime(2025, 3, 4), root, 31337, TX, block, BLOCK, SENDER,
                              "success", 22_480, checkpoints, event_ns=block)  # fmt: skip
        self.anchor_list.append(anchor)
        return anchor

    def anchors(self) -> list[StoredAnchor]:
        return self.anchor_list

    def checkpoint_at(self, chain: int, size: int) -> list[StoredCheckpoint]:
        found = self.cps.get((chain, size))
        return [StoredCheckpoint(chain, size, b"", found, "", -1)] if found else []

    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return self.nodes[chain].read_nodes(ids)


@dataclass
class Chain:
    """A TxLookup over one transaction."""

    tx: OnChainTx | None
    head: int = 8
    chain_id: int = 31337

    def transaction(self, tx_hash: str) -> OnChainTx | None:
        return self.tx if tx_hash == TX else None

    def head_block_number(self) -> int:
        return self.head

    def network_chain_id(self) -> int:
        return self.chain_id


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


@pytest.fixture
def anchored(ledger: MemoryLedger) -> tuple[AnchorProof, Chain]:
    anchor = ledger.anchor(((0, 9), (1, 4)))
    proof = anchor_proof(ledger, 0, 5)
    return proof, Chain(OnChainTx(encode_calldata(anchor.root), SENDER.lower(), 1, 7, BLOCK))


def test_a_checkpoint_between_anchors_is_proven_through_consistency(
    ledger: MemoryLedger, anchored: tuple[AnchorProof, Chain]
) -> None:
    proof, chain = anchored
    assert (proof.size, proof.anchored_size, proof.anchor_index, proof.anchor_size) == (5, 9, 0, 2)
    assert proof.consistency_proof and proof.anchor_inclusion_proof
    verify_anchor_proof(proof, ledger.cps[(0, 5)], chain, min_confirmations=2)


def test_an_anchored_checkpoint_needs_no_consistency_proof(
    ledger: MemoryLedger, anchored: tuple[AnchorProof, Chain]
) -> None:
    _, chain = anchored
    proof = anchor_proof(ledger, 1, 4)
    assert proof.consistency_proof == () and proof.anchor_index == 1
    verify_anchor_proof(proof, ledger.cps[(1, 4)], chain, min_confirmations=2)


def test_the_earliest_covering_anchor_is_used(ledger: MemoryLedger) -> None:
    ledger.anchor(((0, 9), (1, 4)), block=20)
    ledger.anchor(((0, 5),), block=10)
    assert anchor_proof(ledger, 0, 5).block_number == 10
    assert anchor_proof(ledger, 0, 9).block_number == 20


def test_no_covering_anchor_is_reported(ledger: MemoryLedger) -> None:
    ledger.anchor(((0, 5),))
    with pytest.raises(AnchorNotFoundError, match="checkpoint 9 of chain 0"):
        anchor_proof(ledger, 0, 9)
    with pytest.raises(AnchorNotFoundError):
        anchor_proof(ledger, 0, 5, network_chain_id=11155111)
    with pytest.raises(UsageError):
        anchor_proof(ledger, 0, 0)


def test_json_round_trip(anchored: tuple[AnchorProof, Chain]) -> None:
    proof, _ = anchored
    assert AnchorProof.from_json(proof.to_json()) == proof


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "attestream-proof/1"}, "not an attestream-anchor-proof/1 anchor proof"),
        ({"size": "5"}, "'size' must be a non-negative integer"),
        ({"size": True}, "'size' must be a non-negative integer"),
        ({"anchor_root": "zz"}, "'anchor_root' must be a string of 64 hex digits"),
        ({"consistency_proof": "00"}, "list of hex hashes"),
        ({"anchored_checkpoint": "%%"}, "base64"),
        ({"tx_hash": None}, "'tx_hash' must be a string"),
    ],
)
def test_malformed_json_is_rejected(
    anchored: tuple[AnchorProof, Chain], change: dict[str, Any], match: str
) -> None:
    with pytest.raises(MalformedError, match=match):
        AnchorProof.from_json({**anchored[0].to_json(), **change})


def flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


# One broken fixture per reason a proof must be rejected: (what changes, error, message).
PROOF_FAULTS = [
    ({"size": 9}, AnchorMismatchError, "has tree size 5, the proof is for 9"),
    ({"anchored_size": 8}, AnchorMismatchError, "has size 9, the proof says 8"),
    ({"consistency_proof": "flip"}, RootMismatchError, "consistency proof"),
    ({"consistency_proof": "truncate"}, ProofError, "wrong proof length"),
    ({"anchor_index": 1}, RootMismatchError, "inclusion of leaf 1"),
    ({"anchor_inclusion_proof": "flip"}, RootMismatchError, "inclusion of leaf 0"),
    ({"anchor_root": b"\x00" * 32}, RootMismatchError, "inclusion"),
]


@pytest.mark.parametrize(("change", "error", "match"), PROOF_FAULTS)
def test_proof_faults_are_rejected(
    ledger: MemoryLedger, anchored: tuple[AnchorProof, Chain], change: dict[str, Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    proof, chain = anchored
    name, value = next(iter(change.items()))
    if value == "flip":
        hashes = getattr(proof, name)
        value = (flip(hashes[0]), *hashes[1:])
    elif value == "truncate":
        value = getattr(proof, name)[:-1]
    with pytest.raises(error, match=match):
        verify_anchor_proof(dataclasses.replace(proof, **{name: value}), ledger.cps[(0, 5)],
                            chain, min_confirmations=2)  # fmt: skip


def test_a_checkpoint_of_another_log_is_rejected(
    ledger: MemoryLedger, anchored: tuple[AnchorProof, Chain]
) -> None:
    proof, chain = anchored
    other = note("example.org/other/0", 5, bytes(32))
    with pytest.raises(AnchorMismatchError, match="of log 'example.org/log/0', not"):
        verify_anchor_proof(proof, other, chain, min_confirmations=2)
    with pytest.raises(MalformedError):
        verify_anchor_proof(proof, b"not a note", chain, min_confirmations=2)


# One broken chain per reason the transaction must be rejected.
TX_FAULTS = [
    ({"tx": None}, AnchorNotFoundError, "is not on chain 31337"),
    ({"chain_id": 11155111}, AnchorMismatchError, "serves chain id 11155111"),
    ({"input": b"\x00" * 37}, AnchorMismatchError, "not attestream anchor calldata"),
    ({"input": encode_calldata(b"\x11" * 32)}, AnchorMismatchError, "carries root 1111"),
    ({"status": 0}, AnchorMismatchError, "reverted"),
    ({"sender": "0x" + "00" * 19 + "bb"}, AnchorMismatchError, "was sent by 0x"),
    ({"block_hash": "0x" + "ee" * 32}, AnchorReorgedError, "not in the recorded block"),
    ({"head": 7}, AnchorUnconfirmedError, "has 1 confirmation"),
]


def broken_chain(chain: Chain, change: dict[str, Any]) -> Chain:
    name, value = next(iter(change.items()))
    if name in ("tx", "head", "chain_id"):
        return dataclasses.replace(chain, **change)
    assert chain.tx is not None
    return dataclasses.replace(chain, tx=dataclasses.replace(chain.tx, **{name: value}))


@pytest.mark.parametrize(("change", "error", "match"), TX_FAULTS)
def test_transaction_faults_are_rejected(
    ledger: MemoryLedger, anchored: tuple[AnchorProof, Chain], change: dict[str, Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    proof, chain = anchored
    with pytest.raises(error, match=match):
        verify_anchor_proof(proof, ledger.cps[(0, 5)], broken_chain(chain, change), 2)
    with pytest.raises(error, match=match):
        verify_stored_anchor(ledger.anchor_list[0], broken_chain(chain, change), 2)


def test_a_stored_anchor_is_checked_against_its_notes_and_the_chain(
    ledger: MemoryLedger, anchored: tuple[AnchorProof, Chain]
) -> None:
    _, chain = anchored
    anchor = ledger.anchor_list[0]
    notes = [ledger.cps[key] for key in anchor.checkpoints]
    verify_stored_anchor(anchor, chain, 2, notes)
    with pytest.raises(RootMismatchError, match=f"anchor {TX}"):
        verify_stored_anchor(anchor, chain, 2, notes[::-1])
