"""The detection stream: a faust app built by a factory, with an explicit list of agents.

One agent per input topic. Each takes adaptive micro-batches (`streams.batching`: decided as
soon as nothing more is buffered, or at the size cap), keeps per-entity state
in a changelog-backed Table keyed like the topic (customer id, EPC), and emits exactly one
decision per valid event to the decisions topic, keyed by entity. Invalid records go to the
dead-letter topic with their reason; the agent never crashes on input.

A detector with late labels (fraud: chargebacks and confirmations, keyed by terminal) gets a
second agent that applies them to a GlobalTable of per-terminal state, which the decide agent
reads. Payments are keyed by customer, so a worker's payments touch any terminal: the table is
global (every worker holds all of it; ~10k terminals of a few hundred bytes each), and only
the labels agent writes it (docs/detectors.md, "Terminal risk online").

Every consumed record ends as exactly one decision or one dead letter (`decide_batch`), and
its offset becomes committable only once that outcome is in the producer's hands
(`streams.outcomes` has the steps); faust flushes the producer before it commits, so a crash
can re-emit decisions but never lose a record. The ledger drops re-emitted decisions by
decision id. Should an agent raise all the same, faust restarts it; the rest of its batch
stays uncommitted (`attestream_detect_unaccounted_events` stays above 0, and the partition's
committed offset stops there), so a restart of the worker decides those records again.

A detector whose spec has a model source (`DetectorSpec.models`) gets a timer that polls it
for a newly active model and swaps it in between two micro-batches (attestream.rollout).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
import msgspec
from faust.streams import Stream
from faust.types import EventT, StreamT

from streams.batching import FetchSignals, adaptive_batches
from streams.changelog import entity_table
from streams.consumer import fetch_signals, use_low_latency_transport
from streams.deciding import (
    apply_or_reject,
    batch_consumed,
    decide_or_reject,
    outcomes_sent,
    poll_model,
    swap_model,
)
from streams.intake import RecordRef
from streams.metrics import DetectMetrics
from streams.outcomes import emit, fault_from_env, outcomes_before_acks, send_dead_letters
from streams.pipeline import DEFAULT_MAX_CLOCK_SKEW_S, DetectorSpec, LabelSpec, State
from streams.stages import BatchClock

log = logging.getLogger("attestream.detect")

# Kafka group timeouts: the broker waits up to the rebalance timeout for members on the
# first join, so keeping them short makes a fresh worker start deciding within seconds.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 2.0
REBALANCE_TIMEOUT_S = 10.0
# Producer batches: up to 5 ms to fill, up to 256 kB (faust's default: sent at once, 16 kB,
# about a dozen decisions). Fewer, larger produce requests measured ~15% more decisions per
# second; the 5 ms are part of each decision's latency (docs/benchmarks.md).
PRODUCER_LINGER_MS = 5
PRODUCER_MAX_BATCH_BYTES = 256 * 1024
# How long the consumer's fetch may wait at the broker for records: faust's driver has 1.5 s,
# for which the local broker held a caught-up fetch (docs/benchmarks.md).
DEFAULT_FETCH_MAX_WAIT_MS = 20
# Objects allocated before the youngest generation is collected (Python's default: 700).
GC_GEN0_THRESHOLD = 50_000
# Topics carry exact bytes: intake validates them and decisions hash them.
RAW_BYTES: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class JSONStates(MutableMapping[str, State]):
    """A faust table of raw bytes seen as entity states (plain JSON types), JSON-encoded by
    msgspec.

    Every state write is a changelog record: faust's `json` codec (the standard library's
    encoder) took 6 us for a 1.4 kB customer state, 9% of the worker's time; msgspec writes
    the same JSON in 1.5 us. Changelogs written by either read back alike.
    """

    _encode = msgspec.json.Encoder().encode
    _decode = msgspec.json.Decoder().decode

    def __init__(self, table: MutableMapping[str, bytes]) -> None:
        self.table = table

    def __getitem__(self, key: str) -> State:
        return self._decode(self.table[key])  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: State) -> None:
        self.table[key] = self._encode(value)

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


@dataclass(frozen=True)
class StreamConfig:
    app_id: str
    bootstrap: str
    decisions_topic: str
    dead_letter_topic: str
    partitions: int
    batch_max: int
    """The micro-batch's size cap (`streams.batching`)."""
    batch_within_s: float
    """The longest a batch waits while the consumer delivers other records."""
    fetch_max_wait_ms: int = DEFAULT_FETCH_MAX_WAIT_MS
    """The consumer's fetch wait at the broker (`streams.consumer`)."""
    model_poll_s: float = 0.0
    """How often each detector's `models` source is polled for a new model (0: never)."""
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    """Event times later than the worker's clock plus this are dead-lettered."""
    data_dir: Path | None = None
    """Where faust keeps its local files (None: faust's `<app id>-data` in the working
    directory)."""


def create_app(
    config: StreamConfig, specs: dict[str, DetectorSpec], metrics: DetectMetrics
) -> faust.App:
    """Build the worker: one agent per (input topic, detector spec)."""
    app = new_app(config)
    raw = RAW_BYTES
    decisions = app.topic(config.decisions_topic, partitions=config.partitions, **raw)
    dead_letters = app.topic(config.dead_letter_topic, partitions=config.partitions, **raw)
    for topic_name, spec in specs.items():
        source = app.topic(topic_name, **raw)
        table = app.Table(
            entity_table(spec.detector.value),
            default=None,
            partitions=config.partitions,
            key_type=str,
            value_type=bytes,
        )
        agent = _decide_agent(config, spec, JSONStates(table), decisions, dead_letters, metrics)
        metrics.model_active(spec.detector.value, spec.scorer)
        app.agent(source, name=f"decide-{spec.detector.value}")(agent)
        if spec.models is not None and config.model_poll_s > 0:
            _add_model_watch(app, spec, config.model_poll_s, metrics)
        if spec.labels is not None:
            _add_labels_agent(app, config, spec.detector.value, spec.labels, dead_letters, metrics)
    return app


def new_app(config: StreamConfig) -> faust.App:
    """The faust app with the worker's settings and no agents (the benchmark's raw consumer
    uses it too, so both measure the same worker)."""
    if config.data_dir is not None:
        config.data_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    app = faust.App(
        config.app_id,
        datadir=None if config.data_dir is None else str(config.data_dir),
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
        producer_linger_ms=PRODUCER_LINGER_MS,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
    )
    use_low_latency_transport(app, config.fetch_max_wait_ms)
    return app


def tune_gc() -> None:
    """Call once the worker is built: freeze what start-up allocated (modules, models, the
    app) out of the collector's sight, and collect the youngest generation less often.

    A batch allocates thousands of short-lived objects (parsed events, states, futures), so
    at the default threshold (700) a worker ran a collection every few events and a full one
    over every long-lived object regularly: 12% of the decide worker's CPU
    (docs/benchmarks.md). Cycles are still collected, only in larger steps.
    """
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def _add_model_watch(
    app: faust.App, spec: DetectorSpec, interval_s: float, metrics: DetectMetrics
) -> None:
    """A timer that swaps in the detector's newly active model between micro-batches
    (attestream.rollout has the steps). Loading and verifying a model reads and hashes files,
    so it runs in a thread; the swap itself is one assignment on the event loop, which
    `decide_batch` never gives up halfway through a batch."""
    detector = spec.detector.value

    async def watch_model() -> None:
        loop = asyncio.get_running_loop()
        scorer = await loop.run_in_executor(None, poll_model, spec, metrics)
        if scorer is not None:
            swap_model(spec, scorer, metrics)

    watch_model.__name__ = f"watch_model_{detector}"
    app.timer(interval_s, name=f"models-{detector}")(watch_model)


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
        labels.table,
        default=None,
        key_type=str,
        partitions=1,
        recovery_buffer_size=1,
        use_partitioner=True,
        value_type=bytes,
    )
    states = JSONStates(table)
    labels.attach(states)
    source = app.topic(labels.topic, **RAW_BYTES)

    async def apply(stream: StreamT[bytes]) -> None:
        async for events in micro_batches(stream, config):
            with outcomes_before_acks(stream.app, events, detector):
                records = [_record(event) for event in events]
                rejections = apply_or_reject(
                    detector, labels, records, states, config.max_clock_skew_s, metrics
                )
                await send_dead_letters(rejections, dead_letters, metrics, detector)

    apply.__name__ = f"labels_{detector}"
    app.agent(source, name=f"labels-{detector}")(apply)


def micro_batches(
    stream: StreamT[bytes], config: StreamConfig
) -> AsyncIterator[list[EventT[bytes]]]:
    """The agent's adaptive micro-batches (`streams.batching`)."""
    return adaptive_batches(
        concrete_stream(stream),
        fetch_signals(stream.app),
        config.batch_max,
        config.batch_within_s,
    )


def concrete_stream(stream: StreamT[bytes]) -> Stream[bytes]:
    """An agent's stream as faust's `Stream` class, which it always is: what
    `streams.batching` uses and `_set_current_event` (private) are not part of the `StreamT`
    interface. Checked against faust-streaming 0.15.3; tests/unit/streams/test_faust_api.py
    fails if one goes away."""
    return cast("Stream[bytes]", stream)


def _record(event: EventT[bytes]) -> RecordRef:
    message = event.message
    raw = message.headers or []
    pairs = list(raw.items()) if isinstance(raw, Mapping) else list(raw)
    headers: list[tuple[str, bytes]] = [(str(k), bytes(v or b"")) for k, v in pairs]
    return RecordRef(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value or b"",
        headers=tuple(headers),
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

    fault = fault_from_env()

    async def decide(stream: StreamT[bytes]) -> None:
        consumer = fetch_signals(stream.app)
        async for events in micro_batches(stream, config):
            clock = BatchClock(time.time())
            with outcomes_before_acks(stream.app, events, detector):
                await decide_events(stream, events, clock, consumer)

    async def decide_events(
        stream: StreamT[bytes],
        events: Sequence[EventT[bytes]],
        clock: BatchClock,
        consumer: FetchSignals,
    ) -> None:
        records = [_record(event) for event in events]
        batch_consumed(metrics, detector, len(records))

        def follow_event(index: int) -> None:
            # The table writes its changelog to the partition of the "current event"; in a
            # batch that must be the event whose entity is being updated.
            concrete_stream(stream)._set_current_event(events[index])

        with metrics.batch_seconds.labels(detector).time():
            result = decide_or_reject(
                spec, records, table, follow_event, config.max_clock_skew_s, clock
            )
        sending = time.perf_counter()
        # streams.outcomes step 2: dead letters, then decisions, into the producer's hands.
        await send_dead_letters(result.rejections, dead_letters, metrics, detector)
        await emit(decisions, result.decisions, fault, result.events)
        clock.send_s = time.perf_counter() - sending
        received = {
            (e.message.partition, e.message.offset): consumer.received_at(e.message) for e in events
        }
        outcomes_sent(
            metrics, detector, result, clock, lambda s: received.get((s.partition, s.offset))
        )

    decide.__name__ = f"decide_{detector}"
    return decide
