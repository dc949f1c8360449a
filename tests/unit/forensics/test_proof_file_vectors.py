"""Proof files that investigators already hold keep verifying: the files in
tests/vectors/proof-files/ were written by `attestream forensic prove` before proof files
became msgspec Structs (see the README there). Each one verifies offline with the log's
verifier key alone, decodes to the published format, and is written back byte for byte."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import msgspec
import pytest
from factories import make_decision

from anchoring.proofs import AnchorProofFile
from attestcore.errors import RootMismatchError
from forensics.proofs import ProofFile, dump_bundle, load_bundle, verify_bundle
from ledger.evidence import decode_evidence
from ledger.keys import parse_verifier_key

VECTORS = Path(__file__).parents[2] / "vectors" / "proof-files"
VERIFIER = parse_verifier_key((VECTORS / "verifier-key.txt").read_text().strip())

# (file, decision index in tests/factories.make_decision, seq, tree size, since_size)
FILES = [
    ("anchored-with-consistency.json", 11, 11, 30, 12),
    ("unanchored.json", 40, 40, 45, None),
]


@pytest.mark.parametrize(("name", "decision", "seq", "tree_size", "since_size"), FILES)
def test_an_old_proof_file_verifies_offline(
    name: str, decision: int, seq: int, tree_size: int, since_size: int | None
) -> None:
    bundle = load_bundle((VECTORS / name).read_bytes())
    verdict = verify_bundle(bundle, [VERIFIER])
    assert verdict.decision_id == make_decision(decision).decision_id
    assert (verdict.chain, verdict.seq, verdict.tree_size) == (0, seq, tree_size)
    assert bundle.since_size == since_size
    assert (bundle.consistency is not None) == (since_size is not None)
    assert (verdict.anchor_tx is not None) == (bundle.anchor is not None)


@pytest.mark.parametrize("name", [f[0] for f in FILES])
def test_an_old_proof_file_is_written_back_byte_for_byte(name: str) -> None:
    content = (VECTORS / name).read_bytes()
    assert dump_bundle(load_bundle(content)).encode() == content


@pytest.mark.parametrize("name", [f[0] for f in FILES])
def test_an_old_proof_file_is_a_proof_file_struct(name: str) -> None:
    data = json.loads((VECTORS / name).read_bytes())
    decoded = decode_evidence(data, ProofFile)
    assert msgspec.to_builtins(decoded) == data  # every member kept, in the same order
    assert list(msgspec.to_builtins(decoded)) == list(data)
    if data["anchor"] is not None:
        anchor = decode_evidence(data["anchor"], AnchorProofFile)
        assert list(msgspec.to_builtins(anchor)) == list(data["anchor"])


def test_the_old_anchored_file_with_a_changed_anchor_root_fails() -> None:
    bundle = load_bundle((VECTORS / "anchored-with-consistency.json").read_bytes())
    assert bundle.anchor is not None
    forged = dataclasses.replace(bundle.anchor, anchor_root=b"\x00" * 32)
    with pytest.raises(RootMismatchError, match="inclusion"):
        verify_bundle(dataclasses.replace(bundle, anchor=forged), [VERIFIER])
