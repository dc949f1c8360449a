"""One broken record per rejection reason; valid records parse."""

from __future__ import annotations

import hashlib
import json

import pytest

from attestcore.schemas import MAX_EVENT_BYTES, PaymentTransaction
from streams.intake import (
    HEADER_DETAIL,
    HEADER_ERROR_CLASS,
    HEADER_HEADERS_DROPPED,
    HEADER_OFFSET,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_SHA256,
    HEADER_REASON,
    HEADER_TOPIC,
    MAX_DEAD_LETTER_VALUE_BYTES,
    MAX_DETAIL_CHARS,
    EventParser,
    RecordRef,
    Rejection,
    RejectReason,
    dead_letter,
    dead_letter_headers,
)

VALID = {
    "event_id": "tx-1",
    "event_time": "2025-03-03T10:00:00Z",
    "source": "pos",
    "customer_id": "C1",
    "terminal_id": "T9",
    "amount": 12.5,
    "currency": "EUR",
    "channel": "card_present",
    "mcc": "5411",
    "country": "DE",
    "lat": 52.5,
    "lon": 13.4,
}
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
        (
            json.dumps({**VALID, "currency": "euro"}).encode(),
            b"C1",
            RejectReason.SCHEMA,
            "currency",
        ),
        (
            json.dumps({k: v for k, v in VALID.items() if k != "mcc"}).encode(),
            b"C1",
            RejectReason.SCHEMA,
            "mcc",
        ),
        (json.dumps({**VALID, "extra": 1}).encode(), b"C1", RejectReason.SCHEMA, "extra"),
        (b"{" + b" " * MAX_EVENT_BYTES + b"}", b"C1", RejectReason.OVERSIZED, "bytes"),
        (json.dumps(VALID).encode(), None, RejectReason.MISSING_KEY, "customer_id"),
        (json.dumps(VALID).encode(), b"C2", RejectReason.KEY_MISMATCH, "customer_id"),
    ],
)
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


# The producer's request limit (faust's producer_max_request_size): a 1.5 MB record's dead
# letter failed with MessageSizeTooLargeError and crashed the agent.
PRODUCER_MAX_REQUEST_BYTES = 1_000_000


def test_a_record_too_large_to_dead_letter_whole_is_cut_with_its_digest_and_size() -> None:
    value = b"{" + b"x" * 1_500_000
    rec = RecordRef("attestream.transactions", 0, 7, b"C1", value, (("big", b"y" * 100_000),))
    rejection = PARSER.parse(rec)
    assert isinstance(rejection, Rejection) and rejection.reason is RejectReason.OVERSIZED
    letter = dead_letter(rec, rejection)
    headers = dict(letter.headers)
    assert letter.value == value[:MAX_DEAD_LETTER_VALUE_BYTES]
    assert headers[HEADER_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert headers[HEADER_ORIGINAL_BYTES] == b"1500001"
    assert headers[HEADER_REASON] == b"oversized"
    assert headers[HEADER_HEADERS_DROPPED] == b"1" and "big" not in headers
    size = (
        len(letter.value) + len(letter.key or b"") + sum(len(k) + len(v) for k, v in letter.headers)
    )
    assert size < PRODUCER_MAX_REQUEST_BYTES


def test_a_small_record_is_dead_lettered_whole() -> None:
    rec = record(b"nope")
    rejection = PARSER.parse(rec)
    assert isinstance(rejection, Rejection)
    letter = dead_letter(rec, rejection)
    assert (letter.key, letter.value) == (b"C1", b"nope")
    assert letter.headers == dead_letter_headers(rec, rejection)


def test_a_processing_error_names_the_exception_class_and_a_bounded_message() -> None:
    rec = record(json.dumps(VALID).encode())
    rejection = Rejection.from_error(ZeroDivisionError("float division " + "z" * 1000), "tx-1")
    headers = dict(dead_letter(rec, rejection).headers)
    assert headers[HEADER_REASON] == b"processing_error"
    assert headers[HEADER_ERROR_CLASS] == b"ZeroDivisionError"
    assert headers[HEADER_DETAIL].startswith(b"float division zzz")
    assert len(headers[HEADER_DETAIL]) == MAX_DETAIL_CHARS
