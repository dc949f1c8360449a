"""Handing a micro-batch's outcomes to the producer, and letting faust ack its records only
then.

The micro-batches (`streams.batching`, as faust's `Stream.take_events`) ack every event of a
batch when the agent leaves the batch,
also when the agent raises or is cancelled halfway through it; the consumer then commits the
acked offsets, so records whose outcome was never sent would be skipped for good. Each agent
therefore follows these steps for every batch:

1. Hold every record of the batch (`hold`): one more reference on its message, so that
   faust's own ack at the end of the batch cannot make it committable alone.
2. Hand every dead letter to the producer (`send_dead_letters`), each retried with backoff
   until the producer accepts it (a dead letter is never skipped), then every decision.
3. Release the records (`release`): with faust's ack they become committable. Faust flushes
   the producer before it commits offsets, so a committed record's outcome is on the broker.

A batch left at any step before 3 (the agent raised or was cancelled, the process was
killed) keeps its records uncommitted: the partition's committed offset stops before them
and a restart of the worker decides them again (`abandon`). The ledger drops the re-emitted
decisions by decision id. `outcomes_before_acks` runs the three steps around an agent's
work on one batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import faust
from faust.types import AppT, EventT

from attestcore.backoff import backoff_delay
from attestcore.errors import ConfigError
from attestcore.schemas import EVENT_HEADER
from streams.intake import RecordRef, Rejection, dead_letter
from streams.metrics import DetectMetrics

log = logging.getLogger("attestream.detect")

# A failed dead-letter send is retried after this, doubling up to the maximum, with jitter:
# quick after a blip, one log line every half minute in a long broker outage.
DEAD_LETTER_RETRY_INITIAL_S = 0.5
DEAD_LETTER_RETRY_MAX_S = 30.0

# Fault injection (tests only): `raise` makes the decide agent raise, `kill` kills the
# process with SIGKILL, after half of the first batch's decisions (of at least two) were
# handed to the producer and before its records are released.
FAULT_AT_ENV = "ATTESTREAM_DETECT_FAULT_AT"
FAULTS = ("raise", "kill")


class InjectedFault(RuntimeError):
    """The decide agent's crash asked for by `FAULT_AT_ENV`."""


@contextmanager
def outcomes_before_acks(
    app: AppT, events: Sequence[EventT[bytes]], detector: str
) -> Iterator[None]:
    """Steps 1 and 3 around the body's step 2; `abandon` if the body raises."""
    hold(events)  # step 1
    try:
        yield  # step 2
    except BaseException as exc:
        abandon(app, events, detector, exc)
        raise
    release(events)  # step 3


def hold(events: Sequence[EventT[bytes]]) -> None:
    """Step 1: the batch's records stay uncommitted until `release`."""
    for event in events:
        event.message.incref()


def release(events: Sequence[EventT[bytes]]) -> None:
    """Step 3: drop the reference taken by `hold` (faust's own ack makes the record
    committable, whichever of the two comes last)."""
    for event in events:
        event.ack()


def abandon(app: AppT, events: Sequence[EventT[bytes]], detector: str, exc: BaseException) -> None:
    """Leave a batch whose outcomes may not all be sent: its records stay held, so never
    committed, and the consumer stops waiting for their acks (at a rebalance or shutdown it
    would wait for them forever)."""
    unacked = app.consumer.unacked
    for event in events:
        unacked.discard(event.message)
    first = events[0].message if events else None
    where = f" from {first.topic}[{first.partition}]@{first.offset}" if first else ""
    log.error(
        "%s: a batch of %d records%s was left unfinished (%s); they stay uncommitted"
        " until the worker restarts and decides them again",
        detector,
        len(events),
        where,
        type(exc).__name__,
    )


class DeadLetterTopic(Protocol):
    """What `send_dead_letters` needs of the dead-letter topic (a `faust.TopicT` in the app):
    `send` hands a record to the producer and returns what resolves once the broker has it."""

    async def send(
        self,
        *,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[object]: ...


async def send_dead_letters(
    rejections: Sequence[tuple[RecordRef, Rejection]],
    dead_letters: DeadLetterTopic,
    metrics: DetectMetrics,
    detector: str,
) -> None:
    """Step 2 for rejected records: each sent whole or cut (`streams.intake.dead_letter`)
    and awaited until the broker has it, retried with backoff on any failure."""
    for record, rejection in rejections:
        letter = dead_letter(record, rejection)
        failures = 0
        while True:
            try:
                delivered = await dead_letters.send(
                    key=letter.key, value=letter.value, headers=letter.headers
                )
                await delivered
                break
            except Exception as exc:  # noqa: BLE001 - any failure is retried, never skipped
                failures += 1
                delay = backoff_delay(
                    failures, DEAD_LETTER_RETRY_INITIAL_S, DEAD_LETTER_RETRY_MAX_S
                )
                metrics.dead_letter_retries.labels(detector).inc()
                log.warning(
                    "%s: dead letter for %s not sent (%s: %s), retrying in %.1f s",
                    detector,
                    _position(record, rejection),
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        dead_lettered(metrics, detector, record, rejection)


def dead_lettered(
    metrics: DetectMetrics, detector: str, record: RecordRef, rejection: Rejection
) -> None:
    """A record's dead letter is sent: counted by reason and logged."""
    metrics.dead_letters.labels(detector, record.topic, rejection.reason.value).inc()
    # A processing error is a defect of ours: louder than a producer's bad record.
    level = logging.WARNING if rejection.error_class else logging.INFO
    log.log(
        level,
        "%s: dead-lettered %s: %s %s%s",
        detector,
        _position(record, rejection),
        rejection.reason.value,
        f"{rejection.error_class}: " if rejection.error_class else "",
        rejection.detail,
    )


async def emit(
    decisions: faust.TopicT,
    batch: Sequence[tuple[str, bytes, object]],
    fault: str = "",
    events: Sequence[bytes] = (),
) -> None:
    """Step 2 for decisions: hand the batch's encoded decisions to the producer, keyed by
    entity, in order, each with its event's exact bytes (`events`, same order) in the
    `EVENT_HEADER` header, which the ledger archives.

    Straight to the producer: faust's `Topic.send` wraps each record in futures and sensor
    calls (12% of the worker's time), and the decisions are bytes already. Each record is in
    the producer's buffer when its `send` returns.
    """
    topic = decisions.get_topic_name()
    send = (await decisions.app.maybe_start_producer()).send
    for index, (key, value, _) in enumerate(batch):
        if fault and len(batch) >= 2 and index == len(batch) // 2:
            inject_fault(fault)
        headers = [(EVENT_HEADER, events[index])] if index < len(events) else None
        await send(topic, key.encode(), value, None, None, headers)


def fault_from_env() -> str:
    fault = os.environ.get(FAULT_AT_ENV, "")
    if fault and fault not in FAULTS:
        raise ConfigError(f"{FAULT_AT_ENV} must be one of {', '.join(FAULTS)}")
    return fault


def inject_fault(fault: str) -> None:
    log.warning("fault injection (%s=%s) halfway through a batch's decisions", FAULT_AT_ENV, fault)
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"{FAULT_AT_ENV}={fault}")


def _position(record: RecordRef, rejection: Rejection) -> str:
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    return f"event {rejection.event_id} ({where})" if rejection.event_id else where
