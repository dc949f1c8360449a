"""(p) The detection worker against its peer, a plain consumer loop doing the same work.

Each run publishes its own one-partition payments topic and decides it three times, each time
by a fresh process in its own consumer group reading from the start, the order reversed from
run to run so that a busy moment of the shared machine does not always fall on the same one:

- `worker`: the faust detection worker (`bench.stream_worker decide`, as figure f);
- `kafka`: the detection worker on the confluent-kafka engine (`bench.stream_worker
  decide-kafka`, as figure q, `streams.kafka_worker`);
- `peer`: `bench.peer_loop`, the same `decide_batch`, state and changelog, producer settings
  and micro-batch in a confluent-kafka loop that flushes and commits every batch.

Both are timed alike: from their first batch to the last decision read back from their
decisions topic; CPU time (all threads) from the first batch to the batch that completes the
topic. Start-up (group join, model load) is in neither.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from attestcore import processes
from bench.peer_loop import changelog_topic
from bench.report import Figure, Target, median
from bench.stream import (
    RUN_TIMEOUT_S,
    WORKER_START_TIMEOUT_S,
    DecisionsWatch,
    StreamRun,
    StreamSetup,
    Worker,
    fill_payments,
)
from bench.stream_worker import KAFKA_MODE, WorkerSettings
from streams.topics import ensure_topics

TARGET_PEER_RATE_RATIO = 0.8
"""The worker's decisions/s against the peer's."""
TARGET_PEER_CPU_FACTOR = 1.25
"""The worker's CPU time per decision, at most this many times the peer's."""
MODES = ("worker", "kafka", "peer")


class PeerProcess(Worker):
    """A `bench.peer_loop` process, watched through the same stamps as a worker."""

    def __init__(self, settings: WorkerSettings, log: Path) -> None:
        self.mode = "peer"
        self.stamps = Path(settings.stamps)
        self.log = log
        self.started = time.time()
        self.proc = processes.start(
            [sys.executable, "-m", "bench.peer_loop", msgspec.json.encode(settings).decode()],
            log=log,
        )


def settings_for(setup: StreamSetup, topic: str, mode: str, partitions: int = 1) -> WorkerSettings:
    """Fresh group, output topics and stamps file for one process over `topic`; the output
    topics (and the peer's changelog) are created with `partitions` partitions."""
    suffix = f"{mode}-{uuid.uuid4().hex[:10]}"
    settings = WorkerSettings(
        bootstrap=setup.bootstrap,
        app_id=f"bench-{suffix}",
        topic=topic,
        decisions_topic=f"bench-decisions-{suffix}",
        dead_letter_topic=f"bench-dead-{suffix}",
        labels_topic=f"bench-labels-{suffix}",
        records=setup.events,
        batch_max=setup.batch_max,
        batch_within_s=setup.batch_within_s,
        fetch_max_wait_ms=setup.fetch_max_wait_ms,
        models_dir=str(setup.models_dir),
        model_sha256=setup.model_sha256,
        stamps=str(setup.work_dir / f"stamps-{suffix}.jsonl"),
    )
    topics = [settings.decisions_topic, settings.dead_letter_topic, settings.labels_topic]
    if mode == "peer":
        topics.append(changelog_topic(settings.app_id))
    ensure_topics(setup.bootstrap, topics, partitions=partitions)
    return settings


def start(mode: str, settings: WorkerSettings, log: Path) -> Worker:
    if mode == "peer":
        return PeerProcess(settings, log)
    return Worker(KAFKA_MODE if mode == "kafka" else "decide", settings, log)


def timed_run(setup: StreamSetup, topic: str, mode: str) -> StreamRun:
    """`mode` over the whole of `topic`, timed to its last decision read back."""
    settings = settings_for(setup, topic, mode)
    watch = DecisionsWatch(setup.bootstrap, settings.decisions_topic)
    process = start(mode, settings, setup.work_dir / f"{mode}.log")
    try:
        first = process.wait_stamp("first_batch", WORKER_START_TIMEOUT_S)
        received = watch.wait_for(setup.events, RUN_TIMEOUT_S)
        done = process.wait_stamp("done", RUN_TIMEOUT_S)
    finally:
        process.stop()
        watch.stop()
    return StreamRun(
        mode, setup.events, received - first.t, done.cpu - first.cpu, first.t - process.started
    )


@dataclass
class PeerMeasurements:
    worker: list[StreamRun] = field(default_factory=list)
    kafka: list[StreamRun] = field(default_factory=list)
    """The detection worker on the confluent-kafka engine (p4, p5)."""
    peer: list[StreamRun] = field(default_factory=list)

    def measure(self, setup: StreamSetup, run: int) -> None:
        topic = f"bench-peer-payments-{run}-{uuid.uuid4().hex[:10]}"
        fill_payments(setup.bootstrap, topic, setup.events, setup.seed + run)
        order = MODES if run % 2 == 0 else MODES[::-1]
        for mode in order:
            getattr(self, mode).append(timed_run(setup, topic, mode))

    def figures(self) -> list[Figure]:
        peer_rates, peer_cpu = (
            [r.rate for r in self.peer],
            [r.cpu_us_per_event for r in self.peer],
        )
        peer_rate, peer_cpu_value = median(peer_rates), median(peer_cpu)
        figures = _against_peer(
            ("p", "p1"),
            "detection worker (faust) against its peer: decisions/s, same run and topic",
            self.worker,
            peer_rate,
            peer_cpu_value,
        )
        figures += [
            Figure(
                "p2",
                "peer: the same decide_batch in a confluent-kafka loop (flush, commit per batch)",
                "decisions/s",
                peer_rate,
                peer_rates,
            ),
            Figure("p3", "  the peer's CPU time per decision", "µs", peer_cpu_value, peer_cpu),
        ]
        if self.kafka:
            figures += _against_peer(
                ("p4", "p5"),
                "detection worker (confluent-kafka engine) against the peer: decisions/s",
                self.kafka,
                peer_rate,
                peer_cpu_value,
            )
        return figures

    def details(self) -> dict[str, Any]:
        def run(r: StreamRun) -> dict[str, Any]:
            return asdict(r) | {"rate": r.rate, "cpu_us_per_event": r.cpu_us_per_event}

        return {
            "peer_worker_runs": [run(r) for r in self.worker],
            "peer_kafka_runs": [run(r) for r in self.kafka],
            "peer_runs": [run(r) for r in self.peer],
        }


def _against_peer(
    keys: tuple[str, str], what: str, runs: list[StreamRun], peer_rate: float, peer_cpu: float
) -> list[Figure]:
    """A worker's decisions/s and CPU time per decision against the peer's, with the targets."""
    rates, cpu = [r.rate for r in runs], [r.cpu_us_per_event for r in runs]
    rate, cpu_value = median(rates), median(cpu)
    return [
        Figure(
            keys[0],
            what,
            "decisions/s",
            rate,
            rates,
            peer_rate,
            "p2: the peer",
            ratio=rate / peer_rate,
            targets=[
                Target(
                    f"ratio ≥ {TARGET_PEER_RATE_RATIO}", rate / peer_rate >= TARGET_PEER_RATE_RATIO
                )
            ],
        ),
        Figure(
            keys[1],
            "  its CPU time per decision (all threads)",
            "µs",
            cpu_value,
            cpu,
            peer_cpu,
            "the peer's",
            ratio=peer_cpu / cpu_value,
            targets=[
                Target(
                    f"≤ {TARGET_PEER_CPU_FACTOR} × the peer's",
                    cpu_value <= TARGET_PEER_CPU_FACTOR * peer_cpu,
                )
            ],
        ),
    ]
