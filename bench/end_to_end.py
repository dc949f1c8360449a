"""(t) End to end: from a payment's event time to its decision's durable ledger entry, and from
a checkpoint to the final anchor that commits to it.

One session runs the product as the demo does: the detection worker (`bench.stream_worker
decide`, the fraud detector) over a fresh payments topic, `attestream ledger run` over its
decisions topic into a fresh database, and `attestream anchor run --interval 2` (the demo's
interval; the anchor service's other settings are its defaults: one confirmation on anvil,
rounds every 4 s). After a warm-up (every process joined, the first entries durable), each run
is one phase: payments sent for `latency_s` seconds at `rate` (half of the worker's measured
decisions/s), each stamped `event_time` = send time.

- A payment's entry is durable when the ledger's consumer group commits past its decision's
  offset: the sequencer commits only after the batch's entries, tree nodes and signed
  checkpoint are in ClickHouse (ledger/sequencer.py, steps 1-3). The committed offset is read
  from the broker every `COMMIT_POLL_S`.
- Each commit ends one batch, whose checkpoint's size is the committed offset (one partition,
  one chain). Its anchor latency is the time from that commit to the moment the anchor
  service recorded as final the first anchor committing to that size or more.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import Consumer, TopicPartition

from anchoring.store import AnchoredStore
from attestcore import processes
from attestcore.errors import ServiceUnavailableError
from attestcore.ports import unused_port
from attestcore.waiting import WaitTimeout, wait_until
from attestream.demo import DEMO_ANCHOR_INTERVAL_S
from attestream.settings import Settings
from attestream.stack_services import Endpoints
from attestream.wiring import ensure_local_ledger_key
from bench.peer import settings_for
from bench.pipeline import scratch_database_url
from bench.report import Figure, median, percentile
from bench.stream import (
    RUN_TIMEOUT_S,
    WORKER_START_TIMEOUT_S,
    WORKER_STOP_TIMEOUT_S,
    DecisionsWatch,
    StreamSetup,
    Worker,
    send_paced,
)
from detectors.simulate_payments import simulate_payments
from streams.producer import EventProducer
from streams.topics import ensure_topics

# How often the ledger group's committed offset is read: well under a batch's time.
COMMIT_POLL_S = 0.01
# One offset fetch from the local broker answers in milliseconds.
OFFSET_FETCH_TIMEOUT_S = 5.0
WARM_UP_PAYMENTS = 200
WARM_UP_RATE = 1000.0
# Group joins of the worker and the sequencer, and the first anchor, take seconds.
WARM_UP_TIMEOUT_S = 180.0
# The anchor service's rounds (4 s), an anvil block and the final row: well under a minute.
ANCHOR_TIMEOUT_S = 120.0
P50, P99 = 50, 99


class _Decided(msgspec.Struct):
    event_id: str
    event_time: datetime


@dataclass
class CommitWatch:
    """Reads a consumer group's committed offset of partition 0 in a thread, noting when it
    changed."""

    bootstrap: str
    topic: str
    group: str
    commits: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        try:
            while not self._stop.wait(COMMIT_POLL_S):
                [tp] = consumer.committed(
                    [TopicPartition(self.topic, 0)], timeout=OFFSET_FETCH_TIMEOUT_S
                )
                now = time.time()
                if tp.offset >= 0 and (not self.commits or tp.offset > self.commits[-1][1]):
                    self.commits.append((now, tp.offset))
        finally:
            consumer.close()

    def durable(self, offset: int) -> float | None:
        """When the record at `offset` was first seen committed."""
        return next((t for t, committed in self.commits if committed > offset), None)

    def wait_for(self, offset: int, timeout_s: float) -> None:
        try:
            wait_until(
                lambda: self.durable(offset) is not None, timeout_s, what="the ledger's commit"
            )
        except WaitTimeout as exc:
            raise ServiceUnavailableError(
                "ledger", self.topic, f"offset {offset} not committed"
            ) from exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WORKER_STOP_TIMEOUT_S)


@dataclass(frozen=True)
class EndToEndRun:
    rate: float
    events: int
    durable_ms: list[float]
    """Per payment: its decision's offset committed by the ledger minus its event time."""
    anchor_s: list[float]
    """Per checkpoint of the phase: final anchor recorded minus the batch's commit."""


def _ledger_settings(ep: Endpoints, home: Path, decisions_topic: str) -> Settings:
    return Settings(
        home=home,
        kafka_bootstrap=ep.kafka_bootstrap,
        clickhouse_url=scratch_database_url(ep.clickhouse_url, "bench_e2e"),
        rpc_url=ep.rpc_url,
        chain_id=ep.chain_id,
        anchor_key_file=Path(ep.anchor_key_file),
        topic_decisions=decisions_topic,
        ledger_group=f"bench-e2e-ledger-{uuid.uuid4().hex[:10]}",
    )


def _child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTREAM_")}
    env.update(
        {
            "ATTESTREAM_HOME": str(settings.home),
            "ATTESTREAM_KAFKA_BOOTSTRAP": settings.require_kafka(),
            "ATTESTREAM_CLICKHOUSE_URL": settings.require_clickhouse(),
            "ATTESTREAM_RPC_URL": settings.require_rpc()[0],
            "ATTESTREAM_CHAIN_ID": str(settings.chain_id),
            "ATTESTREAM_ANCHOR_KEY_FILE": str(settings.anchor_key_file),
            "ATTESTREAM_TOPIC_DECISIONS": settings.topic_decisions,
            "ATTESTREAM_LEDGER_GROUP": settings.ledger_group,
            "ATTESTREAM_LEDGER_METRICS_PORT": str(unused_port()),
            "ATTESTREAM_ANCHOR_METRICS_PORT": str(unused_port()),
        }
    )
    return env


def _start_cli(name: str, args: list[str], env: dict[str, str], logs: Path) -> processes.Child:
    command = [sys.executable, "-m", "attestream.cli", *args]
    return processes.start(command, log=logs / f"{name}.log", env=env)


class Session:
    """The worker, the ledger and the anchor service, running over one payments topic."""

    def __init__(self, setup: StreamSetup, ep: Endpoints, home: Path) -> None:
        self.setup = setup
        self.topic = f"bench-e2e-payments-{uuid.uuid4().hex[:10]}"
        ensure_topics(setup.bootstrap, [self.topic], partitions=1)
        worker_settings = settings_for(setup, self.topic, "e2e")
        self.settings = _ledger_settings(ep, home, worker_settings.decisions_topic)
        ensure_local_ledger_key(self.settings)
        env = _child_env(self.settings)
        self.store = AnchoredStore(self.settings.require_clickhouse())
        self.watch = DecisionsWatch(setup.bootstrap, worker_settings.decisions_topic)
        self.commits = CommitWatch(
            setup.bootstrap, worker_settings.decisions_topic, self.settings.ledger_group
        )
        logs = setup.work_dir / "e2e-logs"
        self.procs = [
            _start_cli("ledger", ["ledger", "run"], env, logs),
            _start_cli(
                "anchor", ["anchor", "run", "--interval", str(DEMO_ANCHOR_INTERVAL_S)], env, logs
            ),
        ]
        self.worker = Worker("decide", worker_settings, logs / "detect.log")
        self.sent = 0

    def warm_up(self) -> None:
        self._send(WARM_UP_PAYMENTS, WARM_UP_RATE, "warm-up")
        self.worker.wait_stamp("first_batch", WORKER_START_TIMEOUT_S)
        self.watch.wait_for(self.sent, WARM_UP_TIMEOUT_S)
        self.commits.wait_for(self.sent - 1, WARM_UP_TIMEOUT_S)
        self._wait_anchored(self.sent, WARM_UP_TIMEOUT_S)

    def _send(self, count: int, rate: float, tag: str) -> set[str]:
        payments = simulate_payments(
            count, seed=self.setup.seed + self.sent, run_id=f"{self.topic}-{tag}"
        )
        with EventProducer(self.setup.bootstrap) as producer:
            producer.require_topic(self.topic)  # connected, metadata fetched: no wait in the pace
            send_paced(producer, self.topic, [p.event for p in payments], rate)
        self.sent += count
        return {p.event.event_id for p in payments}

    def _final_anchors(self) -> list[tuple[float, int]]:
        """(recorded final, largest checkpoint size committed to) of every final anchor."""
        return sorted(
            (a.event_ns / 1e9, max(size for _, size in a.checkpoints))
            for a in self.store.anchors()
            if a.checkpoints
        )

    def _wait_anchored(self, size: int, timeout_s: float) -> None:
        def anchored() -> bool:
            return any(s >= size for _, s in self._final_anchors())

        try:
            wait_until(anchored, timeout_s, interval_s=0.5, what="a final anchor")
        except WaitTimeout as exc:
            raise ServiceUnavailableError(
                "anchor", self.settings.topic_decisions, f"size {size} not anchored"
            ) from exc

    def phase(self, rate: float, seconds: float, run: int) -> EndToEndRun:
        first_offset = self.sent
        count = max(1, int(rate * seconds))
        ours = self._send(count, rate, f"run{run}")
        self.watch.wait_for(self.sent, RUN_TIMEOUT_S)
        self.commits.wait_for(self.sent - 1, RUN_TIMEOUT_S)
        self._wait_anchored(self.sent, ANCHOR_TIMEOUT_S)
        decode = msgspec.json.Decoder(_Decided).decode
        durable_ms: list[float] = []
        for offset in range(first_offset, self.sent):
            decided = decode(self.watch.arrivals[offset][1])
            durable = self.commits.durable(offset)
            if decided.event_id in ours and durable is not None:
                durable_ms.append((durable - decided.event_time.timestamp()) * 1000)
        finals = self._final_anchors()
        anchor_s = [
            next(t for t, s in finals if s >= size) - at
            for at, size in self.commits.commits
            if first_offset < size <= self.sent
        ]
        return EndToEndRun(rate, count, durable_ms, anchor_s)

    def stop(self) -> None:
        self.worker.stop()
        processes.stop_all(self.procs, WORKER_STOP_TIMEOUT_S)
        self.watch.stop()
        self.commits.stop()
        self.store.drop_database()
        self.store.close()


@dataclass
class EndToEndMeasurements:
    runs: list[EndToEndRun] = field(default_factory=list)

    def measure(self, setup: StreamSetup, ep: Endpoints, rate: float, runs: int) -> None:
        """`runs` phases of one session, at `rate` payments a second."""
        with tempfile.TemporaryDirectory(prefix="attestream-bench-e2e-") as home:
            session = Session(setup, ep, Path(home))
            try:
                session.warm_up()
                for run in range(runs):
                    self.runs.append(session.phase(rate, setup.latency_s, run))
            finally:
                session.stop()

    def figures(self) -> list[Figure]:
        if not self.runs:
            return []
        rate = median([r.rate for r in self.runs])
        figures = []
        for key, pct in (("t1", P50), ("t2", P99)):
            values = [percentile(r.durable_ms, pct) for r in self.runs]
            figures.append(
                Figure(
                    key,
                    f"end to end p{pct}: event time to durable ledger entry, at half of p"
                    f" ({rate:,.0f} payments/s)",
                    "ms",
                    median(values),
                    values,
                )
            )
        for key, pct in (("t3", P50), ("t4", P99)):
            values = [percentile(r.anchor_s, pct) for r in self.runs]
            figures.append(
                Figure(
                    key,
                    f"checkpoint to final anchor p{pct} (anvil, anchor run --interval"
                    f" {DEMO_ANCHOR_INTERVAL_S:g}, 1 confirmation)",
                    "s",
                    median(values),
                    values,
                )
            )
        return figures

    def details(self) -> dict[str, Any]:
        def spread(values: list[float]) -> dict[str, float]:
            return {
                "p50": percentile(values, P50),
                "p99": percentile(values, P99),
                "max": max(values),
            }

        return {
            "end_to_end_runs": [
                {
                    "rate": r.rate,
                    "events": r.events,
                    "durable": len(r.durable_ms),
                    "durable_ms": spread(r.durable_ms),
                    "checkpoints": len(r.anchor_s),
                    "anchor_s": spread(r.anchor_s),
                }
                for r in self.runs
            ]
        }
