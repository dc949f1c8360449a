"""Proof files: built from stored nodes, verified offline, every broken one rejected."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from factories import proof_bundle
from memory_ledger import COL, build, rehash
from memory_ledger import SIGNER as MEMORY_SIGNER

from attestcore.errors import (
    MalformedError,
    ProofError,
    RootMismatchError,
    SignatureError,
    UsageError,
    VerificationError,
)
from forensics.proofs import (
    ProofBundle,
    load_bundle,
    prove_decision,
    prove_verified,
    verify_bundle,
)
from ledger.keys import NoteSigner, signer_from_seed

SIGNER = signer_from_seed("attestream.test/ledger", b"\x05" * 32)
STRANGER = signer_from_seed("attestream.test/ledger", b"\x06" * 32)


def bundle_for(seq: int, size: int = 11, signer: NoteSigner = SIGNER) -> ProofBundle:
    return proof_bundle(seq, size, signer)


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


def test_untrusted_signer_names_the_key_expected_and_the_keys_trusted() -> None:
    signed_by = f"attestream.test/ledger+{STRANGER.key_id:08x}"
    trusted = f"attestream.test/ledger+{SIGNER.key_id:08x}"
    expected = re.escape(f"signed by {signed_by}; trusted keys: {trusted}")
    with pytest.raises(SignatureError, match=expected):
        verify_bundle(bundle_for(2, signer=STRANGER), [SIGNER.verifier()])


def test_checkpoint_of_another_size() -> None:
    b = bundle_for(2)
    with pytest.raises(VerificationError, match="tree size 12"):
        verify_bundle(dataclasses.replace(b, tree_size=12), [SIGNER.verifier()])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "other/1"}, "not an attestream-proof/1"),
        ({"entry": 12}, "'entry' must be a string"),
        ({"inclusion_proof": "00" * 32}, "'inclusion_proof' must be a list of hex hashes"),
        (
            {"inclusion_proof": ["00" * 31]},
            r"'inclusion_proof\[0\]' must be a string of 64 hex digits",
        ),
        ({"tree_size": True}, "'tree_size' must be a non-negative integer"),
        ({"chain": "0"}, "'chain' must be a non-negative integer"),
        ({"checkpoint": ["a", "b"]}, "'checkpoint' must be a string"),
        ({"anchor": {"format": "x"}}, "'anchor' is not an attestream-anchor-proof/1 anchor proof"),
        ({"entry": "***"}, r"'entry' must be a string of base64 .*, got '\*\*\*'"),
        (
            {"inclusion_proof": ["zz"]},
            r"'inclusion_proof\[0\]' must be a string of 64 hex .*, got 'zz'",
        ),
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


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[1, 2]", "must hold a JSON object"),
        (b"", "not JSON"),
    ],
)
def test_proof_file_bytes_that_are_no_proof(content: bytes, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        load_bundle(content)


@pytest.mark.parametrize(
    ("checkpoint", "match"),
    [
        ("no blank line, no signature\n", "a signed note is text, a blank line"),
        ("attestream.test/ledger/0\n11\nroot\n\n- bad signature line\n", "em dash"),
        ("\ud800 not UTF-8\n\n\u2014 k AAAA\n", "not valid UTF-8"),
    ],
)
def test_a_malformed_checkpoint_note_is_rejected(checkpoint: str, match: str) -> None:
    data = bundle_for(1).to_json()
    data["checkpoint"] = checkpoint
    bundle = load_bundle(json.dumps(data))
    with pytest.raises(MalformedError, match=match):
        verify_bundle(bundle, [SIGNER.verifier()])


def test_entry_bytes_that_are_no_entry_are_rejected() -> None:
    b = bundle_for(1)
    with pytest.raises(MalformedError, match="not a ledger entry"):
        verify_bundle(dataclasses.replace(b, entry=b"\x00 not json"), [SIGNER.verifier()])


# --- proofs built from a ledger store (the in-memory one: `ProofStore` is all it needs) -------


def test_a_decision_is_proven_from_an_in_memory_ledger() -> None:
    ledger = build((4, 9))
    decision_id = ledger.row(5)[COL["decision_id"]].decode()
    bundle = prove_verified(ledger, decision_id, [MEMORY_SIGNER.verifier()])
    assert (bundle.chain, bundle.seq, bundle.tree_size) == (0, 5, 9)
    assert bundle.entry == ledger.row(5)[COL["entry"]] and bundle.anchor is None
    verdict = verify_bundle(roundtrip(bundle), [MEMORY_SIGNER.verifier()])
    assert verdict.decision_id == decision_id


def test_a_decision_nobody_logged_has_no_proof() -> None:
    with pytest.raises(UsageError, match="no logged decision has the id unknown"):
        prove_decision(build((4, 9)), "unknown")


def test_a_proof_of_altered_entry_bytes_is_never_handed_out() -> None:
    ledger = build((4, 9))
    row = ledger.row(5)
    decision_id = row[COL["decision_id"]].decode()
    row[COL["entry"]] = row[COL["entry"]].replace(b'"approve"', b'"review"', 1)
    rehash(row)
    with pytest.raises(VerificationError, match=r"entry 0/5 .* does not verify"):
        prove_verified(ledger, decision_id, [MEMORY_SIGNER.verifier()])
