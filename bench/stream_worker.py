"""One detection worker for the stream benchmark (`bench/stream.py` starts it as a subprocess).

`python -m bench.stream_worker count|decide|decide-kafka SETTINGS_JSON` runs one of three
workers over the same payments topic, on the same settings and micro-batch size, so their
rates compare one worker with itself:

- `count`: the least a faust agent can do, take micro-batches (`streams.app.micro_batches`)
  and count;
- `decide`: the detection worker itself (`streams.app.create_app` with the fraud detector's
  spec from `attestream.detection`): parse, customer state in a Table, features, scores,
  reasons, decisions sent;
- `decide-kafka`: the same detection worker on the confluent-kafka engine
  (`streams.kafka_worker.KafkaWorker`, `ATTESTREAM_DETECT_ENGINE=kafka`).

The worker appends stamps (JSON lines: wall-clock and CPU seconds) to a file: `first_batch`
when its first micro-batch is taken and `done` once it has counted (`count`) or decided and
sent (`decide`) every pre-filled record. It runs until it is sent SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from faust.types import StreamT
from prometheus_client import start_http_server

from attestcore.schemas import Detector
from attestream.detection import fraud_spec, stream_model
from streams.app import StreamConfig, create_app, micro_batches, new_app, tune_gc
from streams.kafka_worker import KafkaWorker
from streams.metrics import CounterChild, DetectMetrics, LabelledCounter

KAFKA_MODE = "decide-kafka"
"""The detection worker on the confluent-kafka engine (`streams.kafka_worker`)."""


class WorkerSettings(msgspec.Struct, kw_only=True):
    """What the benchmark tells the worker (one JSON argument)."""

    bootstrap: str
    app_id: str
    topic: str
    decisions_topic: str
    dead_letter_topic: str
    labels_topic: str
    records: int
    batch_max: int
    batch_within_s: float
    fetch_max_wait_ms: int
    metrics_port: int = 0
    """Where the decide worker serves its metrics (the stage histogram); 0: nowhere."""
    models_dir: str
    model_sha256: str
    stamps: str


class Stamp(msgspec.Struct):
    """A moment in the worker's run: wall-clock `t` (time.time()) and the process's CPU
    seconds so far, all threads (time.process_time())."""

    stamp: str
    t: float
    cpu: float


@dataclass
class Stamps:
    """Appends stamps to a file as JSON lines, flushed at once."""

    path: Path

    def write(self, name: str) -> None:
        line = msgspec.json.encode(Stamp(name, time.time(), time.process_time()))
        with self.path.open("ab") as f:
            f.write(line + b"\n")


class _Stamped:
    """Wraps one of the decide agent's counters: stamps `name` when its count first reaches
    `at` (1: the first batch counted)."""

    def __init__(self, inner: LabelledCounter, stamps: Stamps, name: str, at: int) -> None:
        self._inner = inner
        self._stamps = stamps
        self._name = name
        self._at = at
        self._count = 0.0
        self._labelled: CounterChild | None = None

    def labels(self, *names: str) -> _Stamped:
        self._labelled = self._inner.labels(*names)
        return self

    def inc(self, amount: float = 1) -> None:
        before, self._count = self._count, self._count + amount
        if before < self._at <= self._count:
            self._stamps.write(self._name)
        assert self._labelled is not None, "labels() comes before inc()"
        self._labelled.inc(amount)


def stream_config(s: WorkerSettings) -> StreamConfig:
    return StreamConfig(
        app_id=s.app_id,
        bootstrap=s.bootstrap,
        decisions_topic=s.decisions_topic,
        dead_letter_topic=s.dead_letter_topic,
        partitions=1,
        batch_max=s.batch_max,
        batch_within_s=s.batch_within_s,
        fetch_max_wait_ms=s.fetch_max_wait_ms,
        data_dir=Path(s.stamps).parent / f"{s.app_id}-data",
    )


def count_app(s: WorkerSettings, stamps: Stamps) -> Any:
    """A faust agent over the payments topic that takes batches and counts them."""
    config = stream_config(s)
    app = new_app(config)
    source = app.topic(
        s.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    async def count(stream: StreamT[bytes]) -> None:
        seen = 0
        async for events in micro_batches(stream, config):
            if seen == 0:
                stamps.write("first_batch")
            seen += len(events)
            if seen >= s.records and seen - len(events) < s.records:
                stamps.write("done")

    app.agent(source, name="count")(count)
    return app


def decide_app(s: WorkerSettings, stamps: Stamps) -> Any:
    """The detection worker with the fraud detector only, its first batch stamped."""
    scorer = stream_model(Path(s.models_dir), Detector.FRAUD, s.model_sha256)
    spec = fraud_spec(scorer, s.labels_topic)
    if s.metrics_port:
        start_http_server(s.metrics_port, addr="127.0.0.1")
    return create_app(stream_config(s), {s.topic: spec}, _stamped_metrics(s, stamps))


def _stamped_metrics(s: WorkerSettings, stamps: Stamps) -> DetectMetrics:
    """The worker's metrics, its first batch and its `s.records`-th decision stamped."""
    metrics = DetectMetrics()
    metrics.events_in = _Stamped(metrics.events_in, stamps, "first_batch", 1)
    metrics.decisions = _Stamped(metrics.decisions, stamps, "done", s.records)
    return metrics


def decide_kafka_worker(s: WorkerSettings, stamps: Stamps) -> KafkaWorker:
    """`decide_app` on the confluent-kafka engine (`streams.kafka_worker`)."""
    scorer = stream_model(Path(s.models_dir), Detector.FRAUD, s.model_sha256)
    spec = fraud_spec(scorer, s.labels_topic)
    if s.metrics_port:
        start_http_server(s.metrics_port, addr="127.0.0.1")
    return KafkaWorker(stream_config(s), {s.topic: spec}, _stamped_metrics(s, stamps))


def main(argv: list[str]) -> None:
    mode, raw_settings = argv
    settings = msgspec.json.decode(raw_settings, type=WorkerSettings)
    stamps = Stamps(Path(settings.stamps))
    if mode == KAFKA_MODE:
        logging.basicConfig(level=logging.INFO)  # as faust's worker logs: INFO
        worker = decide_kafka_worker(settings, stamps)
        signal.signal(signal.SIGTERM, lambda signum, frame: worker.stop())
        tune_gc()  # as `attestream detect` does
        worker.run()
        return
    app = count_app(settings, stamps) if mode == "count" else decide_app(settings, stamps)
    tune_gc()  # as `attestream detect` does
    # As `attestream detect`: INFO, since at WARNING faust's start-up spinner leaves the root
    # logger at DEBUG (docs/benchmarks.md). The worker owns the event loop; SIGTERM stops it.
    app.Worker(loglevel="INFO", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
