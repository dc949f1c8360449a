"""The detection stream: a faust app built by a factory, with an explicit list of agents.

One agent per input topic. Each takes micro-batches (`take_events`), keeps per-entity state
in a changelog-backed Table keyed like the topic (customer id, EPC), and emits exactly one
decision per valid event to the decisions topic, keyed by entity. Invalid records go to the
dead-letter topic with their reason; the agent never crashes on input.

A detector with late labels (fraud: chargebacks and confirmations, keyed by terminal) gets a
second agent that applies them to a GlobalTable of per-terminal state, which the decide agent
reads. Payments are keyed by customer, so a worker's payments touch any terminal: the table is
global (every worker holds all of it; ~10k terminals of a few hundred bytes each), and only
the labels agent writes it (docs/detectors.md, "Terminal risk online").

Faust commits input offsets only after flushing what the agents produced, so a crash can
re-emit decisions but never lose one; the ledger drops the re-emitted ones by decision id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import EventT, StreamT

from streams.intake import RecordRef, Rejection, dead_letter_headers
from streams.metrics import DetectMetrics
from streams.pipeline import DetectorSpec, LabelSpec, apply_labels, decide_batch

log = logging.getLogger("attestream.detect")

# Kafka group timeouts: the broker waits up to the rebalance timeout for members on the
# first join, so keeping them short makes a fresh worker start deciding within seconds.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 2.0
REBALANCE_TIMEOUT_S = 10.0
# Topics carry exact bytes: intake validates them and decisions hash them.
RAW_BYTES: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                             "value_serializer": "raw"}  # fmt: skip


@dataclass(frozen=True)
class StreamConfig:
    app_id: str
    bootstrap: str
    decisions_topic: str
    dead_letter_topic: str
    partitions: int
    batch_max: int
    batch_within_s: float


def create_app(
    config: StreamConfig, specs: dict[str, DetectorSpec], metrics: DetectMetrics
) -> faust.App:
    """Build the worker: one agent per (input topic, detector spec)."""
    app = faust.App(
        config.app_id,
        broker=f"kafka://{config.bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=config.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        broker_rebalance_timeout=REBALANCE_TIMEOUT_S,
        producer_acks=-1,
    )
    raw = RAW_BYTES
    decisions = app.topic(config.decisions_topic, partitions=config.partitions, **raw)
    dead_letters = app.topic(config.dead_letter_topic, partitions=config.partitions, **raw)
    for topic_name, spec in specs.items():
        source = app.topic(topic_name, **raw)
        table = app.Table(
            f"{spec.detector.value}-entity-state",
            default=None,
            partitions=config.partitions,
            key_type=str,
        )
        agent = _decide_agent(config, spec, table, decisions, dead_letters, metrics)
        app.agent(source, name=f"decide-{spec.detector.value}")(agent)
        if spec.labels is not None:
            _add_labels_agent(app, config, spec.detector.value, spec.labels, dead_letters,
                              metrics)  # fmt: skip
    return app


def _add_labels_agent(
    app: faust.App,
    config: StreamConfig,
    detector: str,
    labels: LabelSpec,
    dead_letters: faust.TopicT,
    metrics: DetectMetrics,
) -> None:
    """The reference table the detector's features read, and the agent that writes it."""
    # One changelog partition chosen by the partitioner, not by the current event: the
    # settings faust documents for a GlobalTable shared by several workers.
    table = app.GlobalTable(
        labels.table, default=None, key_type=str, partitions=1, recovery_buffer_size=1,
        use_partitioner=True,
    )  # fmt: skip
    labels.attach(table)
    source = app.topic(labels.topic, **RAW_BYTES)

    async def apply(stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(config.batch_max, within=config.batch_within_s):
            records = [_record(event) for event in events]
            rejections = apply_labels(labels, records, table)
            metrics.labels.labels(detector).inc(len(records) - len(rejections))
            await _dead_letter(rejections, dead_letters, metrics)

    apply.__name__ = f"labels_{detector}"
    app.agent(source, name=f"labels-{detector}")(apply)


async def _dead_letter(
    rejections: Sequence[tuple[RecordRef, Rejection]],
    dead_letters: faust.TopicT,
    metrics: DetectMetrics,
) -> None:
    for record, rejection in rejections:
        await dead_letters.send(
            key=record.key, value=record.value, headers=dead_letter_headers(record, rejection)
        )
        metrics.dead_letters.labels(record.topic, rejection.reason.value).inc()
        log.info("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset,
                 rejection.reason.value)  # fmt: skip


def _record(event: EventT) -> RecordRef:
    message = event.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RecordRef(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value or b"",
        headers=tuple((str(k), bytes(v or b"")) for k, v in headers),
    )


def _decide_agent(
    config: StreamConfig,
    spec: DetectorSpec,
    table: Any,
    decisions: faust.TopicT,
    dead_letters: faust.TopicT,
    metrics: DetectMetrics,
) -> Any:
    detector = spec.detector.value

    async def decide(stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(config.batch_max, within=config.batch_within_s):
            records = [_record(event) for event in events]
            metrics.events_in.labels(detector).inc(len(records))

            def follow_event(index: int, batch: Sequence[EventT] = events) -> None:
                # The table writes its changelog to the partition of the "current event";
                # in a batch that must be the event whose entity is being updated.
                stream._set_current_event(batch[index])

            with metrics.batch_seconds.labels(detector).time():
                result = decide_batch(spec, records, table, before_state_write=follow_event)
            await _dead_letter(result.rejections, dead_letters, metrics)
            for key, value, decision in result.decisions:
                await decisions.send(key=key.encode(), value=value)
                metrics.decisions.labels(detector, decision.outcome).inc()

    decide.__name__ = f"decide_{detector}"
    return decide
