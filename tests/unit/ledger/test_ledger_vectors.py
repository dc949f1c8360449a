"""The transparency-dev/merkle proof vectors (tests/vectors/transparency-dev-merkle, Apache 2.0):
every probe file, each expected to verify or to be rejected as its `wantErr` says.

The happy paths verify; every mutation (index off by one, flipped bit, truncated or padded
proof, swapped roots...) is rejected. In this copy (commit 417fb0c) three "additional"
consistency probes from an empty tree carry `wantErr: true` where later upstream versions say
false; `verify_consistency` rejects them on purpose: a size-0 root must be the empty root, and
a proof from size 0 shows nothing (RFC 9162 2.1.4 defines proofs for 0 < size1).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from attestcore.errors import VerificationError
from ledger.merkle import root_from_inclusion_proof, verify_consistency, verify_inclusion

VECTORS = Path(__file__).parents[2] / "vectors" / "transparency-dev-merkle"
INCLUSION = sorted((VECTORS / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((VECTORS / "consistency").rglob("*.json"))


def _probe(path: Path) -> dict[str, Any]:
    probe: dict[str, Any] = json.loads(path.read_text())
    return probe


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(probe: dict[str, Any]) -> list[bytes]:
    return [_b64(item) for item in probe["proof"] or []]


def _name(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def test_vectors_are_all_there() -> None:
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98
    assert (VECTORS / "LICENSE").is_file() and (VECTORS / "README.md").is_file()


@pytest.mark.parametrize("path", INCLUSION, ids=_name)
def test_inclusion_probe(path: Path) -> None:
    probe = _probe(path)
    args = (probe["leafIdx"], probe["treeSize"], _b64(probe["leafHash"]), _proof(probe))
    if path.name == "happy-path.json":
        assert not probe["wantErr"]
    if probe["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args, _b64(probe["root"]))
    else:
        verify_inclusion(*args, _b64(probe["root"]))
        assert root_from_inclusion_proof(*args) == _b64(probe["root"])


@pytest.mark.parametrize("path", CONSISTENCY, ids=_name)
def test_consistency_probe(path: Path) -> None:
    probe = _probe(path)
    args = (probe["size1"], probe["size2"], _proof(probe), _b64(probe["root1"]))
    if path.name == "happy-path.json":
        assert not probe["wantErr"]
    if probe["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args, _b64(probe["root2"]))
    else:
        verify_consistency(*args, _b64(probe["root2"]))
