"""`attestream detect`: run the faust detection worker."""

from __future__ import annotations

import typer

from attestream.detection import build_specs, stream_config
from attestream.observability import serve_metrics, setup_logging
from attestream.settings import load_settings
from streams.app import create_app, tune_gc
from streams.metrics import DetectMetrics
from streams.topics import all_topics, ensure_topics


def detect(verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Score every payment and supply-chain event and emit one decision per event."""
    setup_logging(verbose)
    settings = load_settings()
    bootstrap = settings.require_kafka()
    ensure_topics(bootstrap, all_topics(settings), settings.topic_partitions)
    specs = build_specs(settings)
    app = create_app(stream_config(settings), specs, DetectMetrics())
    serve_metrics(settings.metrics_host, settings.detect_metrics_port)
    tune_gc()
    # faust's worker owns the event loop and handles SIGTERM/SIGINT with a clean shutdown.
    worker = app.Worker(loglevel="DEBUG" if verbose else "INFO", quiet=True)
    worker.execute_from_commandline()
