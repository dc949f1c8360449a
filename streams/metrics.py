"""Prometheus metrics of the detection worker: `attestream_detect_<name>_<unit>`, counters
ending in `_total`, bounded labels (docs/operations.md, "Long-running processes").

Every record a decide agent consumes ends as exactly one decision or one dead letter, so per
detector `attestream_detect_events_total` = `attestream_detect_decided_total` +
`attestream_detect_dead_lettered_total`, and `attestream_detect_unaccounted_events` (their
difference) is the number of records in flight: it returns to 0 after every batch, and a
value that stays above 0 means records without an outcome.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

from attestcore.schemas import Decision
from detectors.drift import SCORE_EDGES, ScoreHistogram, ScoreWindow
from streams.stages import StageHistogram

# From an event's own time to its decision: seconds for a live stream, hours for a replay of
# old events (the buckets' top); beyond that the count says "late", which is all it needs.
EVENT_TO_DECISION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                             900.0, 3600.0, 21_600.0)  # fmt: skip


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
        self.event_to_decision = Histogram(
            "attestream_detect_event_to_decision_seconds",
            "From the event time the event carries to its decision handed to the producer",
            ["detector"],
            buckets=EVENT_TO_DECISION_BUCKETS,
            registry=reg,
        )
        self.score = Histogram(
            "attestream_detect_score",
            "Scores of the decisions emitted",
            ["detector"],
            buckets=SCORE_EDGES,
            registry=reg,
        )
        self.drift = Gauge(
            "attestream_detect_score_drift_psi",
            "Population stability index of the last live scores against the active model"
            " card's validation score histogram",
            ["detector"],
            registry=reg,
        )
        self.model = Info(
            "attestream_detect_model",
            "The active model of each detector",
            ["detector"],
            registry=reg,
        )
        self._windows: dict[str, ScoreWindow] = {}
        self._references: dict[str, ScoreHistogram | None] = {}

    def model_active(self, detector: str, scorer: Any) -> None:
        """A detector scores with `scorer` from now on (start, model swap): its digest, and
        a new window of live scores against its card's reference histogram (if any)."""
        self.model.labels(detector).info({"model_digest": str(scorer.model_sha256)})
        for counter in (self.model_swaps, self.model_refused):  # exported at 0 before the first
            counter.labels(detector)
        reference = getattr(scorer, "reference_scores", None)
        self._references[detector] = reference if isinstance(reference, ScoreHistogram) else None
        self._windows[detector] = ScoreWindow()
        with contextlib.suppress(KeyError):  # never set: the first model, or no reference
            self.drift.remove(detector)

    def decisions_emitted(
        self, detector: str, decisions: Sequence[Decision], now: float | None = None
    ) -> None:
        """Latency, scores and drift of the decisions of a batch just handed to the producer."""
        if not decisions:
            return
        at = time.time() if now is None else now
        latency = self.event_to_decision.labels(detector)
        scores = self.score.labels(detector)
        for decision in decisions:
            latency.observe(max(at - decision.event_time.timestamp(), 0.0))
            scores.observe(decision.score)
        window = self._windows.setdefault(detector, ScoreWindow())
        window.add([decision.score for decision in decisions])
        drift = window.drift(self._references.get(detector))
        if drift is not None:
            self.drift.labels(detector).set(drift)
