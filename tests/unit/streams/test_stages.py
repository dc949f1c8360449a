"""Where a decision's time went (streams.stages): each decision's five stages, and the
histogram `attestream_detect_stage_seconds{detector,stage}` they are exported as."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.metrics import DetectMetrics
from streams.stages import BUCKETS_S, STAGES, BatchClock, StageHistogram, record_stages

BATCH = BatchClock(started=1000.0, features_s=0.004, scoring_s=0.002, send_s=0.001)


def test_fetch_runs_to_the_receipt_and_queue_from_it_to_the_batch() -> None:
    fetch, queue = record_stages(event_time=999.9, received=999.97, batch=BATCH)
    assert fetch == pytest.approx(0.07)
    assert queue == pytest.approx(0.03)


def test_an_event_time_ahead_of_the_worker_counts_as_no_fetch_time() -> None:
    fetch, queue = record_stages(event_time=1000.5, received=999.99, batch=BATCH)
    assert fetch == 0.0
    assert queue == pytest.approx(0.01)


def test_a_record_without_a_receipt_has_queued_since_its_event_time() -> None:
    fetch, queue = record_stages(event_time=999.0, received=None, batch=BATCH)
    assert (fetch, queue) == (0.0, 1.0)
    # A receipt after the batch started (clock steps) is taken as the batch's start.
    fetch, queue = record_stages(999.0, 1000.2, BATCH)
    assert fetch == pytest.approx(1.0)
    assert queue == 0.0


def test_every_decision_of_a_batch_gets_its_own_and_its_batchs_stages() -> None:
    stages = StageHistogram(None)
    observed = stages.observe_batch("fraud", BATCH, [(999.9, 999.97), (999.995, 999.998)])
    assert observed == 2
    index = {bound: i for i, bound in enumerate(BUCKETS_S)}
    count, total, buckets = stages.snapshot("fraud", "fetch")
    assert count == 2
    assert total == pytest.approx(0.07 + 0.003)
    assert buckets[index[0.1]] == 1 and buckets[index[0.005]] == 1
    count, total, buckets = stages.snapshot("fraud", "queue")
    assert count == 2
    assert total == pytest.approx(0.03 + 0.002)
    for stage, seconds in (("features", 0.004), ("scoring", 0.002), ("send", 0.001)):
        count, total, buckets = stages.snapshot("fraud", stage)
        assert count == 2
        assert total == pytest.approx(2 * seconds)
        assert sum(buckets) == 2
    assert stages.snapshot("authenticity", "fetch") == (0, 0.0, [0] * (len(BUCKETS_S) + 1))


def test_a_batch_without_decisions_observes_nothing() -> None:
    stages = StageHistogram(None)
    assert stages.observe_batch("fraud", BATCH, []) == 0
    assert all(stages.snapshot("fraud", stage)[0] == 0 for stage in STAGES)


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        StageHistogram(None).observe("fraud", "parsing", 0.1)


def test_the_stages_are_exported_as_a_cumulative_histogram() -> None:
    registry = CollectorRegistry()
    metrics = DetectMetrics(registry)
    metrics.stages.observe("fraud", "scoring", 0.003, count=4)
    metrics.stages.observe("fraud", "scoring", 0.2)
    labels = {"detector": "fraud", "stage": "scoring"}

    def bucket(le: str) -> float | None:
        return registry.get_sample_value(
            "attestream_detect_stage_seconds_bucket", {**labels, "le": le}
        )

    assert [bucket(le) for le in ("0.0025", "0.005", "0.1", "0.25", "+Inf")] == [
        0.0,
        4.0,
        4.0,
        5.0,
        5.0,
    ]
    assert registry.get_sample_value("attestream_detect_stage_seconds_count", labels) == 5.0
    total = registry.get_sample_value("attestream_detect_stage_seconds_sum", labels)
    assert total == pytest.approx(0.212)
    assert "# TYPE attestream_detect_stage_seconds histogram" in generate_latest(registry).decode()
