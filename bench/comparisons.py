"""The figures measured against something other than a raw ceiling of the same code: the
worker's peer (p, `bench.peer`), scale-out (s, `bench.scaleout`) and end to end (t,
`bench.end_to_end`). One fraud model is trained for all of them."""

from __future__ import annotations

import gc
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from attestream.stack_services import Endpoints
from bench.config import BenchConfig
from bench.end_to_end import EndToEndMeasurements
from bench.peer import PeerMeasurements
from bench.report import Figure, median
from bench.scaleout import ScaleMeasurements
from bench.stream import StreamSetup, stream_setup


@dataclass
class Comparisons:
    peer: PeerMeasurements = field(default_factory=PeerMeasurements)
    scale: ScaleMeasurements = field(default_factory=ScaleMeasurements)
    end_to_end: EndToEndMeasurements = field(default_factory=EndToEndMeasurements)

    def figures(self) -> list[Figure]:
        return [*self.peer.figures(), *self.scale.figures(), *self.end_to_end.figures()]

    def details(self) -> dict[str, Any]:
        return self.peer.details() | self.scale.details() | self.end_to_end.details()


def configured_stream_setup(
    config: BenchConfig, ep: Endpoints
) -> AbstractContextManager[StreamSetup]:
    """The stream figures' set-up (a freshly trained fraud model, a work dir) at the run's sizes."""
    return stream_setup(
        ep.kafka_bootstrap,
        config.stream_events,
        config.stream_batch_max,
        config.stream_batch_within_s,
        config.stream_fetch_max_wait_ms,
        config.stream_latency_s,
        config.seed,
        config.stream_training,
    )


def measure_comparisons(config: BenchConfig, ep: Endpoints, decisions_topic: str) -> Comparisons:
    """`config.stream_runs` runs of each, over the stream figures' sizes; the ledger's
    scale-out over `decisions_topic` (figure a's)."""
    measured = Comparisons()
    with configured_stream_setup(config, ep) as setup:
        for run in range(config.stream_runs):
            gc.collect()
            measured.peer.measure(setup, run)
            gc.collect()
            measured.scale.measure_detect(setup, run)
            gc.collect()
            measured.scale.measure_ledger(
                ep.kafka_bootstrap,
                ep.clickhouse_url,
                decisions_topic,
                config.decisions,
                config.batch_max,
                run,
            )
        half = median([r.rate for r in measured.peer.worker]) / 2
        gc.collect()
        measured.end_to_end.measure(setup, ep, half, config.stream_runs)
    return measured


def measure_peer(config: BenchConfig, ep: Endpoints) -> Comparisons:
    """Only the peer comparison (p), `config.stream_runs` runs over the stream figures' sizes."""
    measured = Comparisons()
    with configured_stream_setup(config, ep) as setup:
        for run in range(config.stream_runs):
            gc.collect()
            measured.peer.measure(setup, run)
    return measured
