"""Intake: raw record bytes -> a typed event, or a rejection with a reason. Pure.

Every rejection becomes a dead letter carrying the original bytes and headers plus headers
that name the reason and the source topic/partition/offset, so nothing is lost and a
producer team can see exactly what was wrong. The same holds for an event that parsed but
could not be decided (`RejectReason.PROCESSING_ERROR` and the reasons after it): every
consumed record ends as exactly one decision or exactly one dead letter.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from attestcore.schemas import MAX_EVENT_BYTES, PaymentLabel, PaymentTransaction, SupplyChainEvent

E = TypeVar("E", PaymentTransaction, SupplyChainEvent, PaymentLabel)

HEADER_REASON = "attestream-dlq-reason"
HEADER_DETAIL = "attestream-dlq-detail"
HEADER_TOPIC = "attestream-source-topic"
HEADER_PARTITION = "attestream-source-partition"
HEADER_OFFSET = "attestream-source-offset"
# A processing error names the exception's class (its message is the detail).
HEADER_ERROR_CLASS = "attestream-dlq-error-class"
# A dead letter too large to send whole carries a prefix of the record and these.
HEADER_ORIGINAL_SHA256 = "attestream-dlq-original-sha256"
HEADER_ORIGINAL_BYTES = "attestream-dlq-original-bytes"
HEADER_TRUNCATED = "attestream-dlq-truncated"
HEADER_HEADERS_DROPPED = "attestream-dlq-headers-dropped"
# The largest value and original headers a dead letter carries: far below the producer's
# request limit (faust's default producer_max_request_size, 1,000,000 bytes) and the broker's
# default message.max.bytes (about 1 MB), which a 1.5 MB record exceeded; yet far above the
# largest event accepted (MAX_EVENT_BYTES), so only hostile records are cut.
MAX_DEAD_LETTER_VALUE_BYTES = 256 * 1024
MAX_DEAD_LETTER_HEADER_BYTES = 64 * 1024
MAX_DEAD_LETTER_KEY_BYTES = 1024
# Detail texts are bounded so a dead letter never grows past the original by much.
MAX_DETAIL_CHARS = 300


class RejectReason(str, enum.Enum):
    """Bounded set of reasons: also a metric label."""

    OVERSIZED = "oversized"
    NOT_JSON = "not_json"
    SCHEMA = "schema_violation"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"
    EVENT_TIME_IN_FUTURE = "event_time_in_future"
    """Event time later than the worker's clock plus the allowed skew: such an event would
    move its entity's windows past every genuine event (ATTESTREAM_DETECT_MAX_CLOCK_SKEW_S)."""
    NON_FINITE = "non_finite"
    """A feature or the score came out NaN or infinite: never a decision."""
    PROCESSING_ERROR = "processing_error"
    """Deciding the event raised; the exception class is in `HEADER_ERROR_CLASS`."""


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str
    error_class: str | None = None
    """The exception's class name, for `PROCESSING_ERROR`."""
    event_id: str | None = None
    """The event's id when it parsed (logs name it), else None."""

    @classmethod
    def from_error(cls, exc: BaseException, event_id: str | None = None) -> Rejection:
        """A processing error: the exception's class and its (bounded) message."""
        return cls(
            RejectReason.PROCESSING_ERROR,
            bounded(str(exc) or repr(exc)),
            type(exc).__name__[:MAX_DETAIL_CHARS],
            event_id,
        )


@dataclass(frozen=True)
class RecordRef:
    """A consumed record: where it came from and its exact bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class EventParser(Generic[E]):
    """Validates records of one topic against one schema."""

    def __init__(self, event_type: type[E], key_field: str) -> None:
        self.event_type: type[E] = event_type
        self.key_field = key_field
        self._decoder: msgspec.json.Decoder[E] = msgspec.json.Decoder(event_type)

    def parse(self, record: RecordRef) -> E | Rejection:
        if len(record.value) > MAX_EVENT_BYTES:
            return Rejection(
                RejectReason.OVERSIZED, f"{len(record.value)} bytes > {MAX_EVENT_BYTES}"
            )
        try:
            event: E = self._decoder.decode(record.value)
        except msgspec.ValidationError as exc:
            return Rejection(RejectReason.SCHEMA, bounded(str(exc)))
        except msgspec.DecodeError as exc:
            return Rejection(RejectReason.NOT_JSON, bounded(str(exc)))
        entity = getattr(event, self.key_field)
        if not record.key:
            return Rejection(RejectReason.MISSING_KEY, f"record key must be the {self.key_field}")
        if record.key != entity.encode():
            # The key decides the partition and so which worker holds the entity's state.
            return Rejection(
                RejectReason.KEY_MISMATCH,
                bounded(f"record key {record.key!r} is not the event's {self.key_field}"),
            )
        return event


@dataclass(frozen=True)
class DeadLetter:
    """What is sent to the dead-letter topic for one rejected record."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter(record: RecordRef, rejection: Rejection) -> DeadLetter:
    """The record's bytes, key and headers with ours (`dead_letter_headers`), cut so that the
    dead letter can always be sent: a value over `MAX_DEAD_LETTER_VALUE_BYTES` becomes its
    prefix, with headers naming the whole record's sha256 and size; original headers over
    `MAX_DEAD_LETTER_HEADER_BYTES` are left out (a header says how many)."""
    headers = dead_letter_headers(record, rejection)
    original = sum(len(k) + len(v) for k, v in record.headers)
    if original > MAX_DEAD_LETTER_HEADER_BYTES:
        headers = headers[len(record.headers) :]
        headers.append((HEADER_HEADERS_DROPPED, str(len(record.headers)).encode()))
    value = record.value
    if len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        value = value[:MAX_DEAD_LETTER_VALUE_BYTES]
        headers += [
            (HEADER_TRUNCATED, b"true"),
            (HEADER_ORIGINAL_SHA256, hashlib.sha256(record.value).hexdigest().encode()),
            (HEADER_ORIGINAL_BYTES, str(len(record.value)).encode()),
        ]
    key = record.key
    if key is not None and len(key) > MAX_DEAD_LETTER_KEY_BYTES:
        key = key[:MAX_DEAD_LETTER_KEY_BYTES]
    return DeadLetter(key, value, headers)


def dead_letter_headers(record: RecordRef, rejection: Rejection) -> list[tuple[str, bytes]]:
    """The original headers followed by ours naming the reason and the source position."""
    return [
        *record.headers,
        (HEADER_REASON, rejection.reason.value.encode()),
        (HEADER_DETAIL, rejection.detail.encode(errors="replace")),
        *(
            [(HEADER_ERROR_CLASS, rejection.error_class.encode(errors="replace"))]
            if rejection.error_class is not None
            else []
        ),
        (HEADER_TOPIC, record.topic.encode(errors="replace")),
        (HEADER_PARTITION, str(record.partition).encode()),
        (HEADER_OFFSET, str(record.offset).encode()),
    ]


def bounded(text: str) -> str:
    """`text` cut to `MAX_DETAIL_CHARS` (a detail header never grows a dead letter by much)."""
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."
