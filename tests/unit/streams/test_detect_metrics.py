"""The detection worker's operational families: lag arithmetic, event-to-decision latency,
live scores, the drift index and the active model's digest, read back from a registry."""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
import pytest
from factories import make_decision
from prometheus_client import CollectorRegistry

from attestcore.schemas import Decision
from detectors.drift import MIN_SCORES, ScoreHistogram, score_histogram
from streams.lag import partition_lag
from streams.metrics import DetectMetrics


@dataclass
class ActiveModel:
    """What the metrics read of a scorer: its digest and its card's reference histogram."""

    model_sha256: str
    reference_scores: ScoreHistogram | None


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_lag_is_the_high_watermark_minus_the_committed_offset() -> None:
    assert partition_lag(high=120, committed=100) == 20
    assert partition_lag(high=120, committed=-1001, low=30) == 90  # nothing committed yet
    assert partition_lag(high=120, committed=10, low=30) == 90  # committed before the log start
    assert partition_lag(high=100, committed=104) == 0  # a watermark behind the offsets


def decisions(scores: list[float], event_age_s: float) -> tuple[list[Decision], float]:
    made = [msgspec.structs.replace(make_decision(i), score=s) for i, s in enumerate(scores)]
    now = max(d.event_time.timestamp() for d in made) + event_age_s
    return made, now


def test_latency_and_scores_are_observed_per_decision() -> None:
    registry = CollectorRegistry()
    metrics = DetectMetrics(registry)
    metrics.model_active("fraud", ActiveModel("ab" * 32, None))
    made, now = decisions([0.01, 0.5, 0.97], event_age_s=2.0)
    metrics.decisions_emitted("fraud", made, now)
    name = "attestream_detect_event_to_decision_seconds"
    assert sample(registry, f"{name}_count", detector="fraud") == 3
    # make_decision's events are 1 s apart: ages 4, 3 and 2 s.
    assert sample(registry, f"{name}_sum", detector="fraud") == pytest.approx(9.0)
    assert sample(registry, f"{name}_bucket", detector="fraud", le="2.5") == 1
    assert sample(registry, "attestream_detect_score_bucket", detector="fraud", le="0.05") == 1
    assert sample(registry, "attestream_detect_score_bucket", detector="fraud", le="0.95") == 2
    info = sample(
        registry, "attestream_detect_model_info", detector="fraud", model_digest="ab" * 32
    )
    assert info == 1
    # Without a reference histogram there is no drift figure.
    assert sample(registry, "attestream_detect_score_drift_psi", detector="fraud") is None


def test_drift_is_the_psi_of_the_live_window_and_restarts_with_a_new_model() -> None:
    registry = CollectorRegistry()
    metrics = DetectMetrics(registry)
    reference = score_histogram([0.02] * 50 + [0.97] * 50, "validation")
    metrics.model_active("authenticity", ActiveModel("01" * 32, reference))
    live = [0.02] * (MIN_SCORES // 4) + [0.97] * (3 * MIN_SCORES // 4)
    made, now = decisions(live, 1.0)
    metrics.decisions_emitted("authenticity", made, now)
    # Shares 0.5/0.5 in the first and last bin against 0.25/0.75 (test_drift.py): 0.25 ln 3.
    drift = sample(registry, "attestream_detect_score_drift_psi", detector="authenticity")
    assert drift is not None and drift == pytest.approx(0.25 * math.log(3))
    metrics.model_active("authenticity", ActiveModel("02" * 32, reference))
    assert sample(registry, "attestream_detect_score_drift_psi", detector="authenticity") is None
    old = {"detector": "authenticity", "model_digest": "01" * 32}
    assert sample(registry, "attestream_detect_model_info", **old) is None
    new = {"detector": "authenticity", "model_digest": "02" * 32}
    assert sample(registry, "attestream_detect_model_info", **new) == 1
