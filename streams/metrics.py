"""Prometheus metrics of the detection worker: `attestream_detect_<name>_<unit>`, counters
ending in `_total`, bounded labels (docs/operations.md, "Long-running processes").

Every record a decide agent consumes ends as exactly one decision or one dead letter, so per
detector `attestream_detect_events_total` = `attestream_detect_decided_total` +
`attestream_detect_dead_lettered_total`, and `attestream_detect_unaccounted_events` (their
difference) is the number of records in flight: it returns to 0 after every batch, and a
value that stays above 0 means records without an outcome.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from streams.stages import StageHistogram


class CounterChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class LabelledCounter(Protocol):
    """What the agents use of a labelled prometheus `Counter`: the benchmark's worker
    (bench/stream_worker.py) puts a wrapper that notes its first and last batch in its place."""

    def labels(self, *labelvalues: str) -> CounterChild: ...


class DetectMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.events_in: LabelledCounter = Counter(
            "attestream_detect_events_total",
            "Records read from input topics",
            ["detector"],
            registry=reg,
        )
        self.decisions: LabelledCounter = Counter(
            "attestream_detect_decisions_total",
            "Decisions emitted",
            ["detector", "outcome"],
            registry=reg,
        )
        self.decided = Counter(
            "attestream_detect_decided_total",
            "Input records whose decision was handed to the producer",
            ["detector"],
            registry=reg,
        )
        self.dead_lettered = Counter(
            "attestream_detect_dead_lettered_total",
            "Input records whose dead letter was handed to the producer",
            ["detector"],
            registry=reg,
        )
        self.unaccounted = Gauge(
            "attestream_detect_unaccounted_events",
            "Input records consumed without a decision or dead letter yet (in flight)",
            ["detector"],
            registry=reg,
        )
        self.dead_letters = Counter(
            "attestream_detect_dead_letters_total",
            "Records sent to the dead-letter topic (input records and labels)",
            ["detector", "topic", "reason"],
            registry=reg,
        )
        self.dead_letter_retries = Counter(
            "attestream_detect_dead_letter_send_retries_total",
            "Dead-letter sends that failed and were retried",
            ["detector"],
            registry=reg,
        )
        self.labels = Counter(
            "attestream_detect_labels_total",
            "Late labels applied to the detector's tables",
            ["detector"],
            registry=reg,
        )
        self.model_swaps = Counter(
            "attestream_detect_model_swaps_total",
            "New active models swapped in between micro-batches",
            ["detector"],
            registry=reg,
        )
        self.model_refused = Counter(
            "attestream_detect_model_refused_total",
            "Active models the worker refused (digest, features or reference data differ)",
            ["detector"],
            registry=reg,
        )
        self.batch_seconds = Histogram(
            "attestream_detect_batch_duration_seconds",
            "Time to decide one micro-batch",
            ["detector"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=reg,
        )
        self.stages = StageHistogram(reg)
        """`attestream_detect_stage_seconds{detector,stage}`: where each decision's time went
        (`streams.stages`)."""
