"""`forensic verify-proof` against the verifier's trusted state, and the optional consistency
proof of a proof file (`prove --since-size`). No service is needed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from factories import incoming

from attestream.cli import run
from forensics.proofs import ProofBundle, load_bundle
from ledger.chain import ChainWriter
from ledger.keys import signer_from_seed, verifier_key_string
from ledger.merkle import (
    MemoryNodeStore,
    MerkleTree,
    Node,
    RootHash,
    consistency_proof,
    inclusion_proof,
)
from ledger.node_keys import LEVEL_SHIFT
from ledger.note import Checkpoint, sign_note

SIGNER = signer_from_seed("attestream.test/ledger", b"\x07" * 32)
KEY = verifier_key_string(SIGNER)
MASK = (1 << LEVEL_SHIFT) - 1


def bundle(size: int, seq: int = 3, forged: bool = False, since: int | None = None) -> ProofBundle:
    """A proof of entry `seq` in a chain of `size` entries; `forged`: entry 2 logged at another
    offset, every hash recomputed and signed by the same key (a consistent rebuild)."""
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    offsets = {2: 1002} if forged else {}
    result = writer.append([incoming(i, offsets.get(i)) for i in range(size)])
    nodes = MemoryNodeStore(
        Node(k >> LEVEL_SHIFT, k & MASK, h)
        for k, h in zip(result.node_keys, result.node_hashes, strict=True)
    )
    note = sign_note(Checkpoint(f"{SIGNER.name}/0", size, RootHash(result.root)).body(), SIGNER)
    proof = inclusion_proof(seq, size, nodes)
    consistency = consistency_proof(since, size, nodes) if since else None
    return ProofBundle(
        0,
        seq,
        bytes(result.entries["entry"][seq]),
        size,
        proof,
        note,
        since_size=since,
        consistency=consistency,
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("ATTESTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ATTESTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def verify_proof(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, proof: ProofBundle, *flags: str
) -> tuple[int, dict[str, Any], str]:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof.to_json()))
    code = run(["forensic", "verify-proof", str(path), "--key", KEY, "--json", *flags])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_a_proof_file_carries_an_optional_consistency_proof() -> None:
    old = bundle(9)
    assert "consistency" not in old.to_json()  # files without it keep their old form
    assert load_bundle(json.dumps(old.to_json())) == old
    new = bundle(13, since=9)
    assert new.to_json()["consistency"]["since_size"] == 9
    assert load_bundle(json.dumps(new.to_json())) == new


def test_first_use_is_trusted_and_said_so_in_the_default_file(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = verify_proof(capsys, tmp_path, bundle(9))
    assert code == 0
    history = out["trusted_state"]
    assert isinstance(history, dict) and "first use" in history["message"]
    assert history["file"] == str(home / "verifier" / "state.json")
    assert (home / "verifier" / "state.json").exists()


def test_a_fork_at_the_remembered_size_fails_and_passes_without_state(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_proof(capsys, tmp_path, bundle(9))[0] == 0
    code, out, err = verify_proof(capsys, tmp_path, bundle(9, forged=True))
    assert code == 1 and out["error"]["kind"] == "fork"
    assert "at size 9 has root" in err
    code, out, _ = verify_proof(capsys, tmp_path, bundle(9, forged=True), "--no-state")
    assert code == 0 and out["trusted_state"] is None


def test_a_larger_checkpoint_needs_a_consistency_proof_to_be_checked(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_proof(capsys, tmp_path, bundle(9))[0] == 0
    code, out, _ = verify_proof(capsys, tmp_path, bundle(13))
    assert code == 0 and "was NOT checked" in out["trusted_state"]["message"]
    code, out, err = verify_proof(capsys, tmp_path, bundle(13, forged=True, since=9))
    assert code == 1 and out["error"]["kind"] == "inconsistent", err
    code, out, _ = verify_proof(capsys, tmp_path, bundle(13, since=9))
    assert code == 0 and out["trusted_state"]["remembered"] is True
    # Now 13 is remembered: an older proof still verifies (auditors verify old proofs).
    code, out, _ = verify_proof(capsys, tmp_path, bundle(9))
    assert code == 0 and "older than the remembered" in out["trusted_state"]["message"]


def test_a_malformed_state_file_is_exit_2_naming_it(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    state.write_text("{broken")
    code, out, err = verify_proof(capsys, tmp_path, bundle(9), "--state", str(state))
    assert code == 2 and out["error"]["kind"] == "config"
    assert str(state) in err and "Traceback" not in err
