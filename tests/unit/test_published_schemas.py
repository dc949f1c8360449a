"""Every published JSON Schema file in docs/schemas/ means what the code generates now, so a
Struct changed without `make schemas` fails here."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from attestream.published_schemas import PUBLISHED, SCHEMA_DIR, json_schema, write_json_schemas

PROOF_FILES = Path(__file__).parents[1] / "vectors" / "proof-files"


def schema_meaning(schema: Any) -> Any:
    """A JSON Schema's data with the whitespace of its description texts normalised.

    The descriptions are the structs' docstrings, and how msgspec cleans a docstring
    (indentation, line breaks) changed between its releases while the words and every type,
    field and constraint stayed the same: that is the meaning a producer relies on.
    """
    if isinstance(schema, dict):
        return {
            key: " ".join(value.split())
            if key == "description" and isinstance(value, str)
            else schema_meaning(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [schema_meaning(item) for item in schema]
    return schema


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_checked_in_schema_means_what_the_code_generates(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.json"
    checked_in = json.loads(path.read_text(encoding="utf-8"))
    assert schema_meaning(checked_in) == schema_meaning(json_schema(name)), (
        f"{path} is stale: regenerate with `make schemas`"
    )


def test_one_directory_holds_every_published_schema_and_nothing_else(tmp_path: Path) -> None:
    published = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert published == {f"{name}.json" for name in PUBLISHED}
    assert {"proof-file.json", "anchor-proof.json", "decision.json"} <= published
    written = write_json_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(published)
    for path in written:
        checked_in = json.loads((SCHEMA_DIR / path.name).read_text(encoding="utf-8"))
        assert schema_meaning(json.loads(path.read_text())) == schema_meaning(checked_in)


def test_schema_meaning_ignores_layout_but_not_content() -> None:
    schema = json_schema("payment-transaction")
    relaid = copy.deepcopy(schema)
    definition = relaid["$defs"]["PaymentTransaction"]
    definition["description"] = "\n    ".join(definition["description"].split(" "))
    assert schema_meaning(relaid) == schema_meaning(schema)

    loosened = copy.deepcopy(schema)
    loosened["$defs"]["PaymentTransaction"]["required"].remove("amount")
    assert schema_meaning(loosened) != schema_meaning(schema)
    reworded = copy.deepcopy(schema)
    reworded["$defs"]["PaymentTransaction"]["description"] += " Changed."
    assert schema_meaning(reworded) != schema_meaning(schema)


@pytest.mark.parametrize(
    ("vector", "definition", "member"),
    [
        ("unanchored.json", "ProofFile", None),
        ("anchored-with-consistency.json", "ProofFile", None),
        ("anchored-with-consistency.json", "AnchorProofFile", "anchor"),
        ("anchored-with-consistency.json", "ConsistencyMember", "consistency"),
    ],
)
def test_the_proof_file_schema_names_every_member_the_cli_writes(
    vector: str, definition: str, member: str | None
) -> None:
    data = json.loads((PROOF_FILES / vector).read_text(encoding="utf-8"))
    obj = data[member] if member else data
    schema = json_schema("proof-file")["$defs"][definition]
    assert set(schema["required"]) <= set(obj) <= set(schema["properties"])
    if "format" in schema["properties"]:
        assert schema["properties"]["format"]["enum"] == [obj["format"]]
