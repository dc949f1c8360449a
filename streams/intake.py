"""Intake: raw record bytes -> a typed event, or a rejection with a reason. Pure.

Every rejection becomes a dead letter carrying the original bytes and headers plus headers
that name the reason and the source topic/partition/offset, so nothing is lost and a
producer team can see exactly what was wrong.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from streams.schemas import MAX_EVENT_BYTES, PaymentLabel, PaymentTransaction, SupplyChainEvent

E = TypeVar("E", PaymentTransaction, SupplyChainEvent, PaymentLabel)

HEADER_REASON = "attestream-dlq-reason"
HEADER_DETAIL = "attestream-dlq-detail"
HEADER_TOPIC = "attestream-source-topic"
HEADER_PARTITION = "attestream-source-partition"
HEADER_OFFSET = "attestream-source-offset"
# Detail texts are bounded so a dead letter never grows past the original by much.
MAX_DETAIL_CHARS = 300


class RejectReason(str, enum.Enum):
    """Bounded set of reasons: also a metric label."""

    OVERSIZED = "oversized"
    NOT_JSON = "not_json"
    SCHEMA = "schema_violation"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str


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
        self.event_type = event_type
        self.key_field = key_field
        self._decoder = msgspec.json.Decoder(event_type)

    def parse(self, record: RecordRef) -> E | Rejection:
        if len(record.value) > MAX_EVENT_BYTES:
            return Rejection(
                RejectReason.OVERSIZED, f"{len(record.value)} bytes > {MAX_EVENT_BYTES}"
            )
        try:
            event = self._decoder.decode(record.value)
        except msgspec.ValidationError as exc:
            return Rejection(RejectReason.SCHEMA, _bounded(str(exc)))
        except msgspec.DecodeError as exc:
            return Rejection(RejectReason.NOT_JSON, _bounded(str(exc)))
        entity = getattr(event, self.key_field)
        if not record.key:
            return Rejection(RejectReason.MISSING_KEY, f"record key must be the {self.key_field}")
        if record.key != entity.encode():
            # The key decides the partition and so which worker holds the entity's state.
            return Rejection(
                RejectReason.KEY_MISMATCH,
                _bounded(f"record key {record.key!r} is not the event's {self.key_field}"),
            )
        return event


def dead_letter_headers(record: RecordRef, rejection: Rejection) -> list[tuple[str, bytes]]:
    """The original headers followed by ours naming the reason and the source position."""
    return [
        *record.headers,
        (HEADER_REASON, rejection.reason.value.encode()),
        (HEADER_DETAIL, rejection.detail.encode()),
        (HEADER_TOPIC, record.topic.encode()),
        (HEADER_PARTITION, str(record.partition).encode()),
        (HEADER_OFFSET, str(record.offset).encode()),
    ]


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."
