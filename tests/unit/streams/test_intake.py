"""One broken record per rejection reason; valid records parse."""

from __future__ import annotations

import json

import pytest

from streams.intake import (
    HEADER_OFFSET,
    HEADER_REASON,
    HEADER_TOPIC,
    EventParser,
    RecordRef,
    Rejection,
    RejectReason,
    dead_letter_headers,
)
from streams.schemas import MAX_EVENT_BYTES, PaymentTransaction

VALID = {
    "event_id": "tx-1", "event_time": "2025-03-03T10:00:00Z", "source": "pos",
    "customer_id": "C1", "terminal_id": "T9", "amount": 12.5, "currency": "EUR",
    "channel": "card_present", "mcc": "5411", "country": "DE", "lat": 52.5, "lon": 13.4,
}  # fmt: skip
PARSER = EventParser(PaymentTransaction, "customer_id")


def record(value: bytes, key: bytes | None = b"C1") -> RecordRef:
    return RecordRef("attestream.transactions", 2, 41, key, value, (("trace", b"abc"),))


def test_valid_record_parses() -> None:
    event = PARSER.parse(record(json.dumps(VALID).encode()))
    assert isinstance(event, PaymentTransaction)
    assert event.amount == 12.5


@pytest.mark.parametrize(
    ("value", "key", "reason", "detail"),
    [
        (b"\xff\xfe garbage", b"C1", RejectReason.NOT_JSON, "JSON"),
        (json.dumps({**VALID, "amount": -3}).encode(), b"C1", RejectReason.SCHEMA, "amount"),
        (json.dumps({**VALID, "currency": "euro"}).encode(), b"C1", RejectReason.SCHEMA,
         "currency"),
        (json.dumps({k: v for k, v in VALID.items() if k != "mcc"}).encode(), b"C1",
         RejectReason.SCHEMA, "mcc"),
        (json.dumps({**VALID, "extra": 1}).encode(), b"C1", RejectReason.SCHEMA, "extra"),
        (b"{" + b" " * MAX_EVENT_BYTES + b"}", b"C1", RejectReason.OVERSIZED, "bytes"),
        (json.dumps(VALID).encode(), None, RejectReason.MISSING_KEY, "customer_id"),
        (json.dumps(VALID).encode(), b"C2", RejectReason.KEY_MISMATCH, "customer_id"),
    ],
)  # fmt: skip
def test_each_broken_record_is_rejected_with_its_reason(
    value: bytes, key: bytes | None, reason: RejectReason, detail: str
) -> None:
    result = PARSER.parse(record(value, key))
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert detail in result.detail


def test_dead_letter_headers_keep_the_original_and_name_the_source() -> None:
    rec = record(b"nope")
    rejection = PARSER.parse(rec)
    assert isinstance(rejection, Rejection)
    headers = dict(dead_letter_headers(rec, rejection))
    assert headers["trace"] == b"abc"
    assert headers[HEADER_REASON] == b"not_json"
    assert headers[HEADER_TOPIC] == b"attestream.transactions"
    assert headers[HEADER_OFFSET] == b"41"
