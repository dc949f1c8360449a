"""Proof files: built from stored nodes, verified offline, every broken one rejected."""

from __future__ import annotations

import dataclasses
import json

import pytest
from factories import incoming

from attestream.errors import (
    MalformedError,
    ProofError,
    RootMismatchError,
    SignatureError,
    VerificationError,
)
from forensics.proofs import ProofBundle, load_bundle, verify_bundle
from ledger.chain import ChainWriter
from ledger.keys import NoteSigner, signer_from_seed
from ledger.merkle import MemoryNodeStore, MerkleTree, Node, inclusion_proof
from ledger.note import Checkpoint, sign_note
from ledger.store import LEVEL_SHIFT

SIGNER = signer_from_seed("attestream.test/ledger", b"\x05" * 32)
STRANGER = signer_from_seed("attestream.test/ledger", b"\x06" * 32)


def bundle_for(seq: int, size: int = 11, signer: NoteSigner = SIGNER) -> ProofBundle:
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    nodes = MemoryNodeStore()
    result = writer.append([incoming(i) for i in range(size)])
    mask = (1 << LEVEL_SHIFT) - 1
    nodes.add(Node(k >> LEVEL_SHIFT, k & mask, h)
              for k, h in zip(result.node_keys, result.node_hashes, strict=True))  # fmt: skip
    body = Checkpoint("attestream.test/ledger/0", size, result.root).body()
    proof = inclusion_proof(seq, size, nodes)
    return ProofBundle(0, seq, bytes(result.entries["entry"][seq]), size, proof,
                       sign_note(body, signer))  # fmt: skip


def roundtrip(bundle: ProofBundle) -> ProofBundle:
    return load_bundle(json.dumps(bundle.to_json()))


@pytest.mark.parametrize("seq", [0, 5, 10])
def test_a_proof_file_verifies_offline(seq: int) -> None:
    verdict = verify_bundle(roundtrip(bundle_for(seq)), [SIGNER.verifier()])
    assert (verdict.chain, verdict.seq, verdict.tree_size) == (0, seq, 11)
    assert verdict.signed_by == ["attestream.test/ledger"]


def test_changed_entry_bytes_fail_inclusion() -> None:
    b = bundle_for(4)
    forged = dataclasses.replace(b, entry=b.entry.replace(b'"approve"', b'"review"'))
    with pytest.raises(RootMismatchError, match="root mismatch"):
        verify_bundle(forged, [SIGNER.verifier()])


def test_entry_claimed_at_another_position() -> None:
    b = bundle_for(4)
    with pytest.raises(VerificationError, match="claims chain 0 seq 3"):
        verify_bundle(dataclasses.replace(b, seq=3), [SIGNER.verifier()])


def test_truncated_proof() -> None:
    b = bundle_for(4)
    with pytest.raises(ProofError):
        verify_bundle(dataclasses.replace(b, inclusion=b.inclusion[:-1]), [SIGNER.verifier()])


def test_untrusted_signer() -> None:
    with pytest.raises(SignatureError, match="no trusted key"):
        verify_bundle(bundle_for(2, signer=STRANGER), [SIGNER.verifier()])


def test_checkpoint_of_another_size() -> None:
    b = bundle_for(2)
    with pytest.raises(VerificationError, match="tree size 12"):
        verify_bundle(dataclasses.replace(b, tree_size=12), [SIGNER.verifier()])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "other/1"}, "not an attestream-proof/1"),
        ({"entry": "***"}, "'entry' is not valid base64"),
        ({"inclusion_proof": ["zz"]}, "'inclusion_proof' holds a hash that is not hex"),
        ({"seq": -1}, "non-negative"),
        ({"checkpoint": None, "__drop__": "checkpoint"}, "lacks the field 'checkpoint'"),
    ],
)
def test_malformed_proof_files(change: dict[str, object], match: str) -> None:
    data = bundle_for(1).to_json()
    drop = change.pop("__drop__", None)
    data.update(change)
    if drop:
        del data[str(drop)]
    with pytest.raises(MalformedError, match=match):
        load_bundle(json.dumps(data))


def test_not_json() -> None:
    with pytest.raises(MalformedError, match="not JSON"):
        load_bundle("{nope")
