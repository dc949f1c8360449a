"""Publishing simulated events to Kafka, with ground truth and a few malformed records.

The malformed records exercise the dead-letter path the way real producers break things:
bytes that are not JSON, a schema violation, a key that is not the entity, an oversized
value. They are counted apart from the valid events, so a run can check that every valid
event got exactly one decision and every malformed one a dead letter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attestcore.schemas import MAX_EVENT_BYTES, PaymentLabel, encode
from detectors.labelled import write_ground_truth
from detectors.simulate_payments import LabelledPayment, arrival_order
from streams.producer import EventProducer


@dataclass(frozen=True)
class PublishSummary:
    topic: str
    valid: int
    malformed: int
    positives: int
    truth_file: str | None
    labels: int = 0  # late label events published alongside (payments only)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def malformed_records(example: bytes, key: bytes, count: int) -> list[tuple[bytes | None, bytes]]:
    """`count` broken (key, value) pairs derived from one valid encoded event."""
    shapes: list[tuple[bytes | None, bytes]] = [
        (key, b"\xffnot json at all"),
        (key, example.replace(b'"event_time":"', b'"event_time":"yesterday ', 1)),
        (b"someone-else", example),
        (key, b'{"pad":"' + b"x" * (MAX_EVENT_BYTES + 1) + b'"}'),
        (None, example),
    ]
    return [shapes[i % len(shapes)] for i in range(count)]


def publish_payments(
    producer: EventProducer,
    topic: str,
    labels_topic: str,
    payments: Sequence[LabelledPayment],
    rate: float = 0.0,
    malformed: int = 0,
    truth_file: Path | None = None,
) -> PublishSummary:
    """Payments keyed by customer and their late labels keyed by terminal, interleaved in the
    order the issuer receives them (`arrival_order`); `rate` paces the payments only."""
    started = time.monotonic()
    sent = 0
    for item in arrival_order(payments):
        if isinstance(item, PaymentLabel):
            producer.send(labels_topic, item.terminal_id.encode(), encode(item))
            continue
        producer.send(topic, item.customer_id.encode(), encode(item))
        sent += 1
        if rate > 0:
            _pace(started, sent, rate)
    if malformed and payments:
        _send_malformed(producer, topic, payments[0].event, "customer_id", malformed)
    producer.flush()
    if truth_file is not None:
        write_ground_truth(truth_file, payments)
    return PublishSummary(
        topic=topic,
        valid=len(payments),
        malformed=malformed,
        positives=sum(1 for p in payments if p.label),
        truth_file=str(truth_file) if truth_file else None,
        labels=len(payments),
    )


def _pace(started: float, sent: int, rate: float) -> None:
    ahead = sent / rate - (time.monotonic() - started)
    if ahead > 0:
        time.sleep(ahead)


def _send_malformed(
    producer: EventProducer, topic: str, first: Any, key_field: str, count: int
) -> None:
    key = getattr(first, key_field).encode()
    for bad_key, value in malformed_records(encode(first), key, count):
        producer.send(topic, bad_key, value)


def publish(
    producer: EventProducer,
    topic: str,
    labelled: Sequence[Any],
    key_field: str,
    rate: float = 0.0,
    malformed: int = 0,
    truth_file: Path | None = None,
) -> PublishSummary:
    """Produce labelled events keyed by entity (optionally at `rate`/s), then flush."""
    started = time.monotonic()
    for i, item in enumerate(labelled):
        key = getattr(item.event, key_field).encode()
        producer.send(topic, key, encode(item.event))
        if rate > 0:
            _pace(started, i + 1, rate)
    if malformed and labelled:
        _send_malformed(producer, topic, labelled[0].event, key_field, malformed)
    producer.flush()
    if truth_file is not None:
        write_ground_truth(truth_file, labelled)
    return PublishSummary(
        topic=topic,
        valid=len(labelled),
        malformed=malformed,
        positives=sum(1 for item in labelled if item.label),
        truth_file=str(truth_file) if truth_file else None,
    )
