"""(s) Scale-out, measured: two detection workers against one, two sequencers against one.

Detection (s1, s2): a fresh two-partition payments topic; one worker (`bench.scale_worker`)
holding both partitions, or two in one consumer group holding one each. The payments are sent
only once every worker holds its share (its `assigned-N` stamp), so no rebalance falls inside
the timed span: from the first batch any worker takes to the last decision read back from the
(two-partition) decisions topic.

Ledger (s3, s4): one sequencer (`bench.ledger_worker`), or two started together, each in its
own consumer group and database, so two chains, over the decisions topic of figure a; the
rate counts every entry made durable, from the first batch any of them consumed to the last
commit.

The speed-up is the two's rate over the one's. On 2 cores shared with the broker, ClickHouse
and each other, two processes cannot run twice as fast: docs/benchmarks.md says what limits
them.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from attestcore import processes
from attestcore.errors import ServiceUnavailableError
from attestcore.schemas import encode
from attestcore.waiting import WaitTimeout, wait_until
from bench.ledger_worker import LedgerSpan
from bench.peer import settings_for
from bench.report import Figure, median
from bench.stream import (
    CONSUME_TIMEOUT_S,
    POLL_S,
    RUN_TIMEOUT_S,
    WATCH_FETCH_WAIT_MS,
    WORKER_START_TIMEOUT_S,
    StreamSetup,
    Worker,
)
from bench.stream_worker import WorkerSettings
from detectors.simulate_payments import simulate_payments
from streams.producer import EventProducer
from streams.topics import ensure_topics

PARTITIONS = 2
# Two sequencers over 200,000 decisions each take well under this on 2 cores.
LEDGER_RUN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ScaleRun:
    processes: int
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds


class ScaleWorker(Worker):
    """A `bench.scale_worker` process."""

    def __init__(self, settings: WorkerSettings, log: Path) -> None:
        self.mode = "scale"
        self.stamps = Path(settings.stamps)
        self.log = log
        self.started = time.time()
        encoded = msgspec.json.encode(settings).decode()
        self.proc = processes.start(
            [sys.executable, "-m", "bench.scale_worker", str(PARTITIONS), encoded], log=log
        )


class TopicCount:
    """Counts the records of every partition of a topic as they arrive, in a thread."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.count = 0
        self.last_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.auto.commit": False,
                "group.id": f"bench-count-{uuid.uuid4().hex[:10]}",
                "fetch.wait.max.ms": WATCH_FETCH_WAIT_MS,
            }
        )
        consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
        )
        try:
            while not self._stop.is_set():
                got = [m for m in consumer.consume(10_000, CONSUME_TIMEOUT_S) if not m.error()]
                if got:
                    self.count, self.last_at = self.count + len(got), time.time()
        finally:
            consumer.close()

    def wait_for(self, count: int, timeout_s: float) -> float:
        try:
            wait_until(lambda: self.count >= count, timeout_s, interval_s=POLL_S, what="decisions")
        except WaitTimeout as exc:
            raise ServiceUnavailableError(
                "detect workers", self.topic, f"{self.count} of {count} decisions"
            ) from exc
        return self.last_at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=RUN_TIMEOUT_S)


def detect_run(setup: StreamSetup, workers: int, run: int) -> ScaleRun:
    """`workers` detection workers in one group over a fresh two-partition topic."""
    topic = f"bench-scale-payments-{run}-{workers}-{uuid.uuid4().hex[:10]}"
    ensure_topics(setup.bootstrap, [topic], partitions=PARTITIONS)
    payments = [
        p.event for p in simulate_payments(setup.events, seed=setup.seed + run, run_id=topic)
    ]
    shared = settings_for(setup, topic, f"scale{workers}", PARTITIONS)
    count = TopicCount(setup.bootstrap, shared.decisions_topic)
    started: list[ScaleWorker] = []
    try:
        for i in range(workers):
            own = msgspec.structs.replace(shared, stamps=f"{shared.stamps}.{i}")
            started.append(ScaleWorker(own, setup.work_dir / f"scale-{workers}-{i}.log"))
        share = PARTITIONS // workers
        for worker in started:
            worker.wait_stamp(f"assigned-{share}", WORKER_START_TIMEOUT_S)
        with EventProducer(setup.bootstrap) as producer:
            for event in payments:
                producer.send(topic, event.customer_id.encode(), encode(event))
        firsts = [w.wait_stamp("first_batch", WORKER_START_TIMEOUT_S).t for w in started]
        last = count.wait_for(setup.events, RUN_TIMEOUT_S)
    finally:
        for worker in started:
            worker.stop()
        count.stop()
    return ScaleRun(workers, setup.events, last - min(firsts))


def ledger_run(
    bootstrap: str, clickhouse_url: str, topic: str, records: int, batch_max: int, count: int
) -> tuple[ScaleRun, list[LedgerSpan]]:
    """`count` sequencers at once, each over the whole decisions topic into its own chain."""
    command = [
        sys.executable,
        "-m",
        "bench.ledger_worker",
        bootstrap,
        clickhouse_url,
        topic,
        str(records),
        str(batch_max),
    ]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(count)
    ]
    spans: list[LedgerSpan] = []
    for proc in procs:
        out, err = proc.communicate(timeout=LEDGER_RUN_TIMEOUT_S)
        if proc.returncode != 0:
            raise ServiceUnavailableError("sequencer", topic, err.decode(errors="replace")[-2000:])
        spans.append(msgspec.json.decode(out.splitlines()[-1], type=LedgerSpan))
    seconds = max(s.finished for s in spans) - min(s.started for s in spans)
    return ScaleRun(count, records * count, seconds), spans


@dataclass
class ScaleMeasurements:
    detect: dict[int, list[ScaleRun]] = field(default_factory=lambda: {1: [], 2: []})
    ledger: dict[int, list[ScaleRun]] = field(default_factory=lambda: {1: [], 2: []})
    ledger_spans: list[list[LedgerSpan]] = field(default_factory=list)

    def measure_detect(self, setup: StreamSetup, run: int) -> None:
        order = (1, 2) if run % 2 == 0 else (2, 1)
        for workers in order:
            self.detect[workers].append(detect_run(setup, workers, run))

    def measure_ledger(
        self,
        bootstrap: str,
        clickhouse_url: str,
        topic: str,
        records: int,
        batch_max: int,
        run: int,
    ) -> None:
        order = (1, 2) if run % 2 == 0 else (2, 1)
        for count in order:
            result, spans = ledger_run(bootstrap, clickhouse_url, topic, records, batch_max, count)
            self.ledger[count].append(result)
            self.ledger_spans.append(spans)

    def figures(self) -> list[Figure]:
        figures: list[Figure] = []
        for key, what, unit, runs in (
            ("s1", "detection workers on a two-partition topic", "decisions/s", self.detect),
            ("s3", "sequencers, each its own chain", "entries/s", self.ledger),
        ):
            if not runs[1]:
                continue
            one, two = [r.rate for r in runs[1]], [r.rate for r in runs[2]]
            speedups = [b / a for a, b in zip(one, two, strict=True)]
            figures.append(
                Figure(
                    key,
                    f"scale-out: two {what}, together",
                    unit,
                    median(two),
                    two,
                    median(one),
                    "one",
                    ratio=median(two) / median(one),
                )
            )
            number = int(key[1]) + 1
            figures.append(
                Figure(
                    f"s{number}",
                    "  speed-up, two against one (per run)",
                    "×",
                    median(speedups),
                    speedups,
                )
            )
        return figures

    def details(self) -> dict[str, Any]:
        def runs(by: dict[int, list[ScaleRun]]) -> dict[str, Any]:
            return {str(n): [asdict(r) | {"rate": r.rate} for r in rs] for n, rs in by.items()}

        return {
            "scale_detect_runs": runs(self.detect),
            "scale_ledger_runs": runs(self.ledger),
            "scale_ledger_spans": [
                [msgspec.structs.asdict(s) for s in spans] for spans in self.ledger_spans
            ],
        }
