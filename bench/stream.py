"""(f, g) One faust worker's decisions per second against its raw consume rate, and (h) the
latency from event time to decision at half that rate.

Each run publishes its own one-partition payments topic, then starts two workers over it, one
after the other, each a fresh consumer group reading from the start (`bench.stream_worker`):

(g) `count`: a faust agent that only takes micro-batches (`take_events`, the detection
    worker's batch size and wait) and counts them: the worker's raw consume rate. Timed from
    its first batch to the batch that completes the count.
(f) `decide`: the detection worker with the fraud detector (parse, customer state in a
    changelog-backed Table, features, scores, reasons, one decision per payment sent). Timed
    from its first batch until the last decision is read back from the decisions topic.
(h) the same `decide` worker then gets payments at half its measured rate, each stamped
    `event_time = send time`; the latency is when its decision was read back from the
    decisions topic minus that event time (and, in the JSON, its `decided_at` minus it).
    The sender's producer is warmed up first (connected, the topic's metadata fetched, a few
    unstamped payments delivered), so no stamped payment waits for its connection; the JSON
    says when the slowest 1% were sent, to check that the tail is not the send's start. The
    worker's stage histogram (streams.stages) over these payments says where the time went.

(q) `decide-kafka`: the same detection worker on the confluent-kafka engine
    (`streams.kafka_worker`, ATTESTREAM_DETECT_ENGINE=kafka), timed as f, then paced as h;
    the two engines decide the topic one after the other, the order alternating by run.

Worker start-up (a faust group join, seconds on Tansu) is not in either rate. The workers'
CPU time per event (from /proc) is recorded too: unlike the rates it hardly moves when other
processes share the machine.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from attestcore import processes
from attestcore.errors import ServiceUnavailableError
from attestcore.ports import unused_port
from attestcore.schemas import PaymentTransaction, encode
from attestcore.waiting import WaitTimeout, wait_until
from bench.relay import RELAY_MODE
from bench.stream_stages import scrape_batches, scrape_stages, stage_spread
from bench.stream_worker import KAFKA_MODE, Stamp, WorkerSettings
from detectors.simulate_payments import simulate_payments
from detectors.training import train_detector
from streams.producer import EventProducer
from streams.topics import ensure_topics

# A worker that has not joined its group and taken a batch after this long is broken, not
# slow (the join takes ~7 s on Tansu here).
WORKER_START_TIMEOUT_S = 120.0
# A run that has not decided every event after this long is broken, not slow.
RUN_TIMEOUT_S = 300.0
# A stopped worker flushes and leaves its group within seconds.
WORKER_STOP_TIMEOUT_S = 30.0
# How often the stamps file and the decisions are looked at: well under a run's seconds.
POLL_S = 0.02
# How long one read of the decisions topic waits for a first record (then it takes the rest of
# what is buffered at once, and each record is stamped when it was handed over).
CONSUME_TIMEOUT_S = 0.05
# The broker's wait for records on a caught-up fetch: the local broker (Tansu) answers such a
# fetch only after a good part of this wait (p50 370 ms of the default 500 ms here, 22 ms of
# 100 ms), so the watch asks for 10 ms and adds little to a decision's measured latency.
WATCH_FETCH_WAIT_MS = 10
# Unstamped payments the sender delivers before the paced, stamped ones.
WARMUP_PAYMENTS = 20
TRAINING_PAYMENTS = 30_000
"""Payments the benchmark's fraud model is trained on (a few seconds)."""


@dataclass(frozen=True)
class StreamRun:
    """One worker over the pre-filled topic."""

    mode: str
    records: int
    seconds: float
    cpu_seconds: float
    startup_s: float
    """From starting the process to its first batch (group join, table recovery)."""
    mean_batch: float = 0.0
    """Events per micro-batch (the decide worker; 0: not known)."""

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.records * 1e6


@dataclass(frozen=True)
class LatencyRun:
    """Payments at a fixed rate, each decision's latency from its event time."""

    rate: float
    events: int
    received_ms: list[float]
    """Decision read from the decisions topic minus event time, one per event."""
    decided_ms: list[float]
    """The decision's own `decided_at` minus event time."""
    sent_s: list[float]
    """When each of these payments was sent, in seconds from the first one (same order)."""
    stages: dict[str, dict[str, float]]
    """Per stage of the worker (streams.stages): decisions, mean, p50 and p99 in ms."""


@dataclass(frozen=True)
class StreamSetup:
    bootstrap: str
    models_dir: Path
    model_sha256: str
    events: int
    batch_max: int
    batch_within_s: float
    fetch_max_wait_ms: int
    latency_s: float
    seed: int
    work_dir: Path


def train_model(models_dir: Path, seed: int, count: int = TRAINING_PAYMENTS) -> str:
    """A fraud model for the benchmark (the features of this checkout); returns its digest."""
    return train_detector("fraud", models_dir, count=count, seed=seed).model_sha256


class _Decided(msgspec.Struct):
    event_id: str
    event_time: datetime
    decided_at: datetime


@dataclass
class DecisionsWatch:
    """Reads a decisions topic in a background thread, noting when each record arrived."""

    bootstrap: str
    topic: str
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.auto.commit": False,
                "group.id": f"bench-watch-{uuid.uuid4().hex[:10]}",
                "fetch.wait.max.ms": WATCH_FETCH_WAIT_MS,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        try:
            while not self._stop.is_set():
                # The first record as soon as it is there, then what else is buffered without
                # waiting: `consume(n, timeout)` returns only at `n` records or at the timeout,
                # so a wait there would stamp every record with the window's end.
                first = consumer.poll(CONSUME_TIMEOUT_S)
                if first is None:
                    continue
                now = time.time()
                messages = [first, *consumer.consume(10_000, 0)]
                self.arrivals.extend((now, m.value() or b"") for m in messages if not m.error())
        finally:
            consumer.close()

    def wait_for(self, count: int, timeout_s: float) -> float:
        """The arrival time of the `count`-th decision, waiting for it up to `timeout_s`."""
        try:
            wait_until(
                lambda: len(self.arrivals) >= count,
                timeout_s,
                interval_s=POLL_S,
                what=f"{count} decisions",
            )
        except WaitTimeout as exc:
            raise ServiceUnavailableError(
                "detect worker", self.topic, f"{len(self.arrivals)} of {count} decisions"
            ) from exc
        return self.arrivals[count - 1][0]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WORKER_STOP_TIMEOUT_S)


class Worker:
    """A `bench.stream_worker` process: started, watched through its stamps, stopped."""

    def __init__(self, mode: str, settings: WorkerSettings, log: Path) -> None:
        self.mode = mode
        self.stamps = Path(settings.stamps)
        self.log = log
        self.started = time.time()
        command = ["bench.relay"] if mode == RELAY_MODE else ["bench.stream_worker", mode]
        self.proc = processes.start(
            [sys.executable, "-m", *command, msgspec.json.encode(settings).decode()], log=log
        )

    def wait_stamp(self, name: str, timeout_s: float) -> Stamp:
        def stamped() -> Stamp | None:
            found = next((stamp for stamp in self._stamps() if stamp.stamp == name), None)
            if found is None and self.proc.poll() is not None:
                raise ServiceUnavailableError(
                    "stream worker", self.mode, f"exited before its {name!r} stamp"
                )
            return found

        try:
            return wait_until(stamped, timeout_s, interval_s=POLL_S, what=f"the {name!r} stamp")
        except (WaitTimeout, ServiceUnavailableError) as exc:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise ServiceUnavailableError(
                "stream worker", self.mode, f"no {name!r} stamp:\n{tail}"
            ) from exc

    def _stamps(self) -> Iterator[Stamp]:
        if self.stamps.exists():
            for line in self.stamps.read_text(encoding="utf-8").splitlines():
                yield msgspec.json.decode(line, type=Stamp)

    def stop(self) -> None:
        processes.stop(self.proc, WORKER_STOP_TIMEOUT_S)


def _worker_settings(setup: StreamSetup, topic: str, tag: str) -> WorkerSettings:
    suffix = f"{tag}-{uuid.uuid4().hex[:10]}"
    return WorkerSettings(
        bootstrap=setup.bootstrap,
        app_id=f"bench-stream-{suffix}",
        topic=topic,
        decisions_topic=f"bench-decisions-{suffix}",
        dead_letter_topic=f"bench-dead-{suffix}",
        labels_topic=f"bench-labels-{suffix}",
        records=setup.events,
        batch_max=setup.batch_max,
        batch_within_s=setup.batch_within_s,
        fetch_max_wait_ms=setup.fetch_max_wait_ms,
        metrics_port=unused_port() if tag != "count" else 0,
        models_dir=str(setup.models_dir),
        model_sha256=setup.model_sha256,
        stamps=str(setup.work_dir / f"stamps-{suffix}.jsonl"),
    )


def fill_payments(bootstrap: str, topic: str, events: int, seed: int) -> None:
    """Create `topic` (one partition) and publish `events` simulated payments, keyed by
    customer as the source system would."""
    ensure_topics(bootstrap, [topic], partitions=1)
    payments = simulate_payments(events, seed=seed, run_id=topic)
    with EventProducer(bootstrap) as producer:
        for p in payments:
            producer.send(topic, p.event.customer_id.encode(), encode(p.event))


def run_count(setup: StreamSetup, topic: str) -> StreamRun:
    """(g) The counting agent over the whole topic."""
    settings = _worker_settings(setup, topic, "count")
    worker = Worker("count", settings, setup.work_dir / "count.log")
    try:
        first = worker.wait_stamp("first_batch", WORKER_START_TIMEOUT_S)
        done = worker.wait_stamp("done", RUN_TIMEOUT_S)
    finally:
        worker.stop()
    return StreamRun(
        "count", setup.events, done.t - first.t, done.cpu - first.cpu, first.t - worker.started
    )


def run_decide(
    setup: StreamSetup, topic: str, mode: str = "decide"
) -> tuple[StreamRun, LatencyRun]:
    """(f) The detection worker over the whole topic, then (h) at half its rate; (q) the same
    on the confluent-kafka engine (`mode` KAFKA_MODE)."""
    settings = _worker_settings(setup, topic, mode)
    ensure_topics(
        setup.bootstrap,
        [settings.decisions_topic, settings.dead_letter_topic, settings.labels_topic],
        partitions=1,
    )
    watch = DecisionsWatch(setup.bootstrap, settings.decisions_topic)
    worker = Worker(mode, settings, setup.work_dir / f"{mode}.log")
    try:
        first = worker.wait_stamp("first_batch", WORKER_START_TIMEOUT_S)
        received = watch.wait_for(setup.events, RUN_TIMEOUT_S)
        done = worker.wait_stamp("done", RUN_TIMEOUT_S)
        batches, events = scrape_batches(settings.metrics_port)
        run = StreamRun(
            mode,
            setup.events,
            received - first.t,
            done.cpu - first.cpu,
            first.t - worker.started,
            events / batches if batches else 0.0,
        )
        latency = _latency(setup, topic, watch, run.rate / 2, settings.metrics_port)
    finally:
        worker.stop()
        watch.stop()
    return run, latency


def _latency(
    setup: StreamSetup, topic: str, watch: DecisionsWatch, rate: float, metrics_port: int
) -> LatencyRun:
    """Payments at `rate` for `setup.latency_s` seconds, event_time = send time; each one's
    decision read back, and the worker's stages over them."""
    count = max(1, int(rate * setup.latency_s))
    payments = simulate_payments(count, seed=setup.seed + 1, run_id=f"{topic}-latency")
    warmup = simulate_payments(WARMUP_PAYMENTS, seed=setup.seed + 2, run_id=f"{topic}-warmup")
    before = len(watch.arrivals)
    with EventProducer(setup.bootstrap) as producer:
        warm_up(producer, topic, [p.event for p in warmup])
        watch.wait_for(before + len(warmup), RUN_TIMEOUT_S)
        if metrics_port:
            stages_before = scrape_stages(metrics_port)
            batches_before = scrape_batches(metrics_port)
        send_paced(producer, topic, [p.event for p in payments], rate)
    watch.wait_for(before + len(warmup) + count, RUN_TIMEOUT_S)
    stages: dict[str, dict[str, float]] = {}
    if metrics_port:  # a worker without metrics (the relay) has no stages
        stages = stage_spread(stages_before, scrape_stages(metrics_port))
        (batches, events), (batches_0, events_0) = scrape_batches(metrics_port), batches_before
        stages["batches"] = {"batches": batches - batches_0, "events": events - events_0}
    ours = {p.event.event_id for p in payments}
    decode = msgspec.json.Decoder(_Decided).decode
    sent: list[float] = []
    received_ms: list[float] = []
    decided_ms: list[float] = []
    for arrived, value in watch.arrivals[before:]:
        decided = decode(value)
        if decided.event_id not in ours:
            continue
        at = decided.event_time.timestamp()
        sent.append(at)
        received_ms.append((arrived - at) * 1000)
        decided_ms.append((decided.decided_at.timestamp() - at) * 1000)
    first = min(sent, default=0.0)
    sent_s = [at - first for at in sent]
    return LatencyRun(rate, count, received_ms, decided_ms, sent_s, stages)


def warm_up(producer: EventProducer, topic: str, events: list[PaymentTransaction]) -> None:
    """Connect the sender, fetch the topic's metadata and deliver `events` as they are
    (unstamped): the first stamped payment then waits for no connection."""
    producer.require_topic(topic)
    for event in events:
        producer.send(topic, event.customer_id.encode(), encode(event))
    producer.flush()


def send_paced(
    producer: EventProducer, topic: str, events: list[PaymentTransaction], rate: float
) -> None:
    """Publish `events` at `rate` a second, each stamped with the time it is sent."""
    started = time.perf_counter()
    for sent, event in enumerate(events):
        while sent > (time.perf_counter() - started) * rate:
            time.sleep(0.001)
        stamped = msgspec.structs.replace(event, event_time=datetime.now(UTC))
        producer.send(topic, event.customer_id.encode(), encode(stamped))


def run_relay(setup: StreamSetup, rate: float) -> LatencyRun:
    """(r) The latency ceiling: `bench.relay` over a topic of its own, at `rate`, measured as
    the workers' latency is (`_latency`)."""
    topic = f"bench-payments-relay-{uuid.uuid4().hex[:10]}"
    settings = _worker_settings(setup, topic, RELAY_MODE)
    settings.metrics_port = 0
    ensure_topics(setup.bootstrap, [topic, settings.decisions_topic], partitions=1)
    watch = DecisionsWatch(setup.bootstrap, settings.decisions_topic)
    worker = Worker(RELAY_MODE, settings, setup.work_dir / f"{RELAY_MODE}.log")
    try:
        return _latency(setup, topic, watch, rate, metrics_port=0)
    finally:
        worker.stop()
        watch.stop()


@dataclass(frozen=True)
class StreamMeasures:
    """One run's workers over the same topic."""

    count: StreamRun
    decide: StreamRun
    latency: LatencyRun
    kafka: StreamRun
    """The detection worker on the confluent-kafka engine (q)."""
    kafka_latency: LatencyRun
    relay: LatencyRun
    """The latency ceiling (r), at the confluent-kafka engine's half load."""


def measure_stream(setup: StreamSetup, run: int) -> StreamMeasures:
    """One run: the counting worker, then the deciding one on each engine, the order of the
    two alternating by run. Each engine gets a fresh topic of its own with the same payments:
    the paced payments of one engine's latency figures must not be in the other's topic."""
    topics = {}
    for mode in ("decide", KAFKA_MODE):
        topics[mode] = f"bench-payments-{run}-{uuid.uuid4().hex[:10]}"
        fill_payments(setup.bootstrap, topics[mode], setup.events, setup.seed + run)
    count = run_count(setup, topics["decide"])
    engines = ("decide", KAFKA_MODE) if run % 2 == 0 else (KAFKA_MODE, "decide")
    measured = {mode: run_decide(setup, topics[mode], mode) for mode in engines}
    relay = run_relay(setup, measured[KAFKA_MODE][1].rate)
    return StreamMeasures(count, *measured["decide"], *measured[KAFKA_MODE], relay)


@contextlib.contextmanager
def stream_setup(
    bootstrap: str,
    events: int,
    batch_max: int,
    batch_within_s: float,
    fetch_max_wait_ms: int,
    latency_s: float,
    seed: int,
    training: int = TRAINING_PAYMENTS,
) -> Iterator[StreamSetup]:
    """A temporary models directory with a freshly trained fraud model, and a work dir."""
    with tempfile.TemporaryDirectory(prefix="attestream-bench-stream-") as tmp:
        work = Path(tmp)
        sha = train_model(work / "models", seed, training)
        yield StreamSetup(
            bootstrap,
            work / "models",
            sha,
            events,
            batch_max,
            batch_within_s,
            fetch_max_wait_ms,
            latency_s,
            seed,
            work,
        )
