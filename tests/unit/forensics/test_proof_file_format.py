"""The proof file format as msgspec decodes it: one broken file per rejection reason, each
MalformedError naming the member (nested ones by their path), what it must be and what it
holds; and the leniencies old readers had (unknown members, no `anchor`, null `consistency`). The
members docs/ledger-format.md lists are the Structs' fields."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from anchoring.proofs import AnchorProofFile
from attestcore.errors import MalformedError
from forensics.proofs import ProofFile, load_bundle

ANCHORED = Path(__file__).parents[2] / "vectors" / "proof-files" / "anchored-with-consistency.json"


def anchored() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ANCHORED.read_text(encoding="utf-8"))
    return data


def with_anchor(**change: object) -> dict[str, Any]:
    data = anchored()
    return {**data, "anchor": {**data["anchor"], **change}}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({**anchored(), "format": None}, r"^not an attestream-proof/1 proof file: format None$"),
        (
            {k: v for k, v in anchored().items() if k != "format"},
            r"^not an attestream-proof/1 proof file: format None$",
        ),
        (
            with_anchor(sender="bob"),
            r"^proof file field 'anchor\.sender' must be a string of 0x and 40 hex digits"
            r" \(an EVM account address\), got 'bob'$",
        ),
        (with_anchor(tx_hash="ab" * 32), r"'anchor\.tx_hash' must be a string of 0x and 64 hex"),
        (with_anchor(block_number=-1), r"'anchor\.block_number' must be a non-negative integer"),
        (
            with_anchor(anchor_inclusion_proof=["00" * 32, "0g" * 32]),
            r"'anchor\.anchor_inclusion_proof\[1\]' must be a string of 64 hex digits",
        ),
        (
            {**anchored(), "consistency": {"since_size": 0, "proof": []}},
            r"'consistency\.since_size' must be a positive integer, got 0$",
        ),
        (
            {**anchored(), "consistency": {"proof": []}},
            r"^proof file lacks the field 'consistency\.since_size'$",
        ),
        ({**anchored(), "leaf_hash": "not a hash"}, r"'leaf_hash' must be a string of 64 hex"),
        ({**anchored(), "anchor": 5}, r"'anchor' must be an object or null, got 5$"),
    ],
)
def test_a_malformed_member_is_named_with_what_it_must_be(data: object, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        load_bundle(json.dumps(data))


def test_a_long_rejected_value_is_shortened_in_the_message() -> None:
    data = {**anchored(), "entry": "!" * 5000}
    with pytest.raises(MalformedError, match=r"must be a string of base64") as raised:
        load_bundle(json.dumps(data))
    assert len(str(raised.value)) < 200


def test_what_old_readers_tolerated_is_still_read() -> None:
    original = load_bundle(json.dumps(anchored()))
    assert load_bundle(json.dumps({**anchored(), "comment": "added by hand"})) == original
    unanchored = {k: v for k, v in anchored().items() if k not in ("anchor", "consistency")}
    bundle = load_bundle(json.dumps({**unanchored, "consistency": None}))
    assert bundle.anchor is None and bundle.consistency is None and bundle.since_size is None
    assert bundle.inclusion == original.inclusion


def documented_members(heading: str) -> set[str]:
    doc = (Path(__file__).parents[3] / "docs" / "ledger-format.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", doc, re.M | re.S)
    assert match, f"docs/ledger-format.md has no section '## {heading}'"
    rows = re.findall(r"^\| (`.*?) \|", match.group(1), re.M)
    return {name for row in rows for name in re.findall(r"`(\w+)`", row)}


def test_the_documented_members_are_the_struct_fields() -> None:
    assert documented_members("Proof files") == set(ProofFile.__struct_fields__)
    assert documented_members("Anchor proofs") == set(AnchorProofFile.__struct_fields__)
