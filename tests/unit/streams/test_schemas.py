"""The published JSON Schema files mean what the code generates."""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
import pytest

from streams.schemas import (
    SCHEMA_DIR,
    SCHEMAS,
    PaymentTransaction,
    decision_id,
    json_schema,
)


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


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_checked_in_schema_means_what_the_code_generates(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.json"
    checked_in = json.loads(path.read_text(encoding="utf-8"))
    assert schema_meaning(checked_in) == schema_meaning(json_schema(name)), (
        f"{path} is stale: regenerate with `make schemas`"
    )


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


def test_payment_schema_requires_the_documented_fields() -> None:
    schema = json.loads((SCHEMA_DIR / "payment-transaction.json").read_text())
    required = set(schema["$defs"]["PaymentTransaction"]["required"])
    assert {"event_id", "event_time", "customer_id", "terminal_id", "amount", "currency",
            "channel", "mcc", "country", "lat", "lon"} <= required  # fmt: skip
    assert "device_id" not in required


def test_event_time_must_carry_an_offset() -> None:
    base = {
        "event_id": "e1", "event_time": "2025-03-03T10:00:00", "source": "s",
        "customer_id": "c1", "terminal_id": "t1", "amount": 1.0, "currency": "EUR",
        "channel": "ecommerce", "mcc": "5411", "country": "DE", "lat": 1.0, "lon": 2.0,
    }  # fmt: skip
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        msgspec.json.decode(json.dumps(base), type=PaymentTransaction)
    base["event_time"] = "2025-03-03T10:00:00Z"
    assert msgspec.json.decode(json.dumps(base), type=PaymentTransaction).customer_id == "c1"


def test_decision_id_is_deterministic_and_separates_fields() -> None:
    # printf 'e1\0fraud\0m' | sha256sum
    assert decision_id("e1", "fraud", "m") == (
        "f1cf88d1fbe80a214292d0fd21756f23d82b6f2ce9c34dd5334dce5f548ba3e2"
    )
    assert decision_id("e1", "fraud", "m") != decision_id("e", "1fraud", "m")
