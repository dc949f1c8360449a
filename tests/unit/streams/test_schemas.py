"""The wire schemas: what they require and what they reject. That every published schema
file matches the code is tested in tests/unit/test_published_schemas.py."""

from __future__ import annotations

import json

import msgspec
import pytest

from attestcore.schemas import PaymentTransaction, decision_id
from attestream.published_schemas import SCHEMA_DIR


def test_payment_schema_requires_the_documented_fields() -> None:
    schema = json.loads((SCHEMA_DIR / "payment-transaction.json").read_text())
    required = set(schema["$defs"]["PaymentTransaction"]["required"])
    assert {
        "event_id",
        "event_time",
        "customer_id",
        "terminal_id",
        "amount",
        "currency",
        "channel",
        "mcc",
        "country",
        "lat",
        "lon",
    } <= required
    assert "device_id" not in required


def test_event_time_must_carry_an_offset() -> None:
    base = {
        "event_id": "e1",
        "event_time": "2025-03-03T10:00:00",
        "source": "s",
        "customer_id": "c1",
        "terminal_id": "t1",
        "amount": 1.0,
        "currency": "EUR",
        "channel": "ecommerce",
        "mcc": "5411",
        "country": "DE",
        "lat": 1.0,
        "lon": 2.0,
    }
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
