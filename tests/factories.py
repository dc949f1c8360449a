"""Builders of valid domain objects shared by unit and integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from attestcore.schemas import (
    Channel,
    Decision,
    Detector,
    PaymentContext,
    Reason,
    SourceRef,
    decision_id,
)
from forensics.proofs import ProofBundle
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource
from ledger.keys import NoteSigner
from ledger.merkle import MemoryNodeStore, MerkleTree, Node, RootHash, inclusion_proof
from ledger.node_keys import LEVEL_SHIFT
from ledger.note import Checkpoint, sign_note

MODEL_SHA256 = "ab" * 32


PAYMENT = PaymentContext(
    customer_id="C7",
    terminal_id="T42",
    amount=12.5,
    currency="EUR",
    channel=Channel.CONTACTLESS,
    mcc="5411",
    country="DE",
)
"""A payment's investigation fields, for decisions that carry them."""


def make_decision(i: int) -> Decision:
    """Decision number i: entity C<i mod 7>, one in five flagged for review."""
    event_id = f"ev-{i}"
    at = datetime(2025, 3, 3, tzinfo=UTC) + timedelta(seconds=i)
    return Decision(
        decision_id=decision_id(event_id, Detector.FRAUD, MODEL_SHA256),
        event_id=event_id,
        event_sha256="cd" * 32,
        source=SourceRef(topic="attestream.transactions", partition=0, offset=i),
        entity_id=f"C{i % 7}",
        detector=Detector.FRAUD,
        model_id="fraud-test",
        model_sha256=MODEL_SHA256,
        features={"amount": float(i), "night": 0.0},
        score=(i % 10) / 10,
        outcome="approve" if i % 10 < 8 else "review",
        reasons=[Reason(feature="amount", contribution=0.5)],
        event_time=at,
        decided_at=at + timedelta(milliseconds=5),
    )


def incoming(i: int, offset: int | None = None) -> Incoming:
    """Decision i as read from partition 0 of the decisions topic at `offset` (default i)."""
    source = EntrySource(
        cluster="k1", topic="decisions", partition=0, offset=i if offset is None else offset
    )
    return Incoming(make_decision(i), source)


def proof_bundle(seq: int, size: int, signer: NoteSigner) -> ProofBundle:
    """A valid proof file of entry `seq` in a chain of `size` entries, signed by `signer`."""
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    nodes = MemoryNodeStore()
    result = writer.append([incoming(i) for i in range(size)])
    mask = (1 << LEVEL_SHIFT) - 1
    nodes.add(
        Node(k >> LEVEL_SHIFT, k & mask, h)
        for k, h in zip(result.node_keys, result.node_hashes, strict=True)
    )
    body = Checkpoint(f"{signer.name}/0", size, RootHash(result.root)).body()
    proof = inclusion_proof(seq, size, nodes)
    return ProofBundle(
        0, seq, bytes(result.entries["entry"][seq]), size, proof, sign_note(body, signer)
    )
