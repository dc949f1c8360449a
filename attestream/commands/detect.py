"""`attestream detect`: the supervised detection worker (attestream.detect_supervisor), on faust
or on confluent-kafka (ATTESTREAM_DETECT_ENGINE)."""

from __future__ import annotations

import os
import signal
from functools import partial
from types import FrameType

import typer
from prometheus_client import CollectorRegistry

from attestcore.ports import unused_port
from attestream.detect_supervisor import (
    DetectSupervisor,
    SupervisorMetrics,
    WorkerFamilies,
    stop_with_supervisor,
    worker_command,
)
from attestream.detection import build_specs, stream_config
from attestream.observability import Readiness, process_registry, serve_metrics, setup_logging
from attestream.settings import load_settings
from attestream.workers import registered
from streams.app import create_app, tune_gc
from streams.kafka_worker import KafkaWorker
from streams.lag import LagMonitor, LagReader, lag_gauge
from streams.metrics import DetectMetrics

# The worker serves its families on loopback only; the supervisor re-exports them.
WORKER_METRICS_HOST = "127.0.0.1"


def detect(
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    worker_port: int = typer.Option(
        0,
        "--worker-port",
        envvar="ATTESTREAM_DETECT_WORKER_PORT",
        hidden=True,
        help="Run the faust worker itself (started by the supervisor), metrics on this port.",
    ),
    supervisor_pid: int = typer.Option(
        0, "--supervisor-pid", hidden=True, help="The worker stops when this process dies."
    ),
    batch_max: int | None = typer.Option(
        None,
        "--batch-max",
        min=1,
        envvar="ATTESTREAM_DETECT_BATCH_MAX",
        help="Most events in one micro-batch (default 512).",
    ),
    batch_within_s: float | None = typer.Option(
        None,
        "--batch-within-s",
        envvar="ATTESTREAM_DETECT_BATCH_WITHIN_S",
        help="Longest a micro-batch waits while other records are delivered (default 0.05).",
    ),
    fetch_max_wait_ms: int | None = typer.Option(
        None,
        "--fetch-max-wait-ms",
        envvar="ATTESTREAM_DETECT_FETCH_MAX_WAIT_MS",
        help="Longest the broker may hold a fetch of a caught-up partition (default 20).",
    ),
) -> None:
    """Score every payment and supply-chain event and emit one decision per event. Broker
    outages and resets are waited out; SIGTERM stops the worker within 10 s."""
    setup_logging(verbose)
    export_worker_settings(batch_max, batch_within_s, fetch_max_wait_ms)
    if worker_port:
        if supervisor_pid:
            stop_with_supervisor(supervisor_pid)
        _run_worker(worker_port, verbose)
        return
    settings = load_settings()
    registry = process_registry()
    readiness = Readiness("detect", ("kafka",), registry)
    families = WorkerFamilies()
    registry.register(families)
    metrics = SupervisorMetrics.on(registry)

    def command(port: int) -> list[str]:
        return worker_command(port, verbose)

    supervisor = DetectSupervisor(
        settings, readiness, metrics, families, command, partial(unused_port, WORKER_METRICS_HOST)
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        supervisor.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = serve_metrics(settings.metrics_host, settings.detect_metrics_port, registry)
    # The input topics' lag, read by the supervisor: the worker's event loop never waits on it.
    inputs = (settings.topic_transactions, settings.topic_supply_chain, settings.topic_labels)
    reader = LagReader(settings.require_kafka(), settings.detect_app_id, inputs)
    lag = LagMonitor(reader, lag_gauge("detect", registry)).start()
    with registered(settings.home, "detect", settings.metrics_host, port):
        try:
            supervisor.run()
        finally:
            lag.stop()


def export_worker_settings(
    batch_max: int | None, batch_within_s: float | None, fetch_max_wait_ms: int | None
) -> None:
    """The options given on the command line, as the environment the worker process (and
    this process's own settings) read them from."""
    for name, value in (
        ("ATTESTREAM_DETECT_BATCH_MAX", batch_max),
        ("ATTESTREAM_DETECT_BATCH_WITHIN_S", batch_within_s),
        ("ATTESTREAM_DETECT_FETCH_MAX_WAIT_MS", fetch_max_wait_ms),
    ):
        if value is not None:
            os.environ[name] = str(value)


def _run_worker(metrics_port: int, verbose: bool) -> None:
    """The worker of the configured engine: the supervisor has created the topics already."""
    settings = load_settings()
    specs = build_specs(settings)
    registry = CollectorRegistry()  # the detect families only; no runtime collectors twice
    metrics = DetectMetrics(registry)
    if settings.detect_engine == "kafka":
        kafka_worker = KafkaWorker(stream_config(settings), specs, metrics)
        serve_metrics(WORKER_METRICS_HOST, metrics_port, registry)
        _run_kafka_worker(kafka_worker)
        return
    app = create_app(stream_config(settings), specs, metrics)
    serve_metrics(WORKER_METRICS_HOST, metrics_port, registry)
    tune_gc()
    # faust's worker owns the event loop and handles SIGTERM/SIGINT with a clean shutdown.
    worker = app.Worker(loglevel="DEBUG" if verbose else "INFO", quiet=True)
    worker.execute_from_commandline()


def _run_kafka_worker(worker: KafkaWorker) -> None:
    """The confluent-kafka worker on this thread; SIGTERM and SIGINT stop it after its
    current batch, committed, and it leaves the group."""

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tune_gc()
    worker.run()
