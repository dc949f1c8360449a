"""What either engine of the detection worker does around `decide_batch` (`streams.app`, faust;
`streams.kafka_worker`, confluent-kafka): the batch decided or, should it raise, every record
dead-lettered; the metrics of a batch whose outcomes were handed to the producer; a
detector's newly active model polled and swapped in between two batches."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence

from attestcore.errors import AttestreamError
from attestcore.schemas import SourceRef
from streams.intake import RecordRef, Rejection
from streams.metrics import DetectMetrics
from streams.pipeline import (
    BatchResult,
    BatchScorer,
    DetectorSpec,
    LabelSpec,
    State,
    apply_labels,
    decide_batch,
)
from streams.stages import BatchClock

log = logging.getLogger("attestream.detect")

Receipt = Callable[[SourceRef], float | None]
"""When the worker received a decision's source record (time.time()), if known."""


def decide_or_reject(
    spec: DetectorSpec,
    records: Sequence[RecordRef],
    states: MutableMapping[str, State],
    follow_event: Callable[[int], None],
    max_clock_skew_s: float,
    clock: BatchClock,
) -> BatchResult:
    """`decide_batch`, which gives every record its own outcome; should it raise all the
    same (a defect), every record of the batch is dead-lettered with the error rather than
    lost."""
    try:
        return decide_batch(
            spec,
            records,
            states,
            before_state_write=follow_event,
            max_clock_skew_s=max_clock_skew_s,
            clock=clock,
        )
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.exception(
            "%s: deciding a batch of %d records raised", spec.detector.value, len(records)
        )
        return BatchResult(rejections=[(r, Rejection.from_error(exc)) for r in records])


def apply_or_reject(
    detector: str,
    labels: LabelSpec,
    records: Sequence[RecordRef],
    states: MutableMapping[str, State],
    max_clock_skew_s: float,
    metrics: DetectMetrics,
) -> list[tuple[RecordRef, Rejection]]:
    """`apply_labels`; should it raise (a defect), every label of the batch is dead-lettered
    with the error rather than lost. Counts the labels applied."""
    try:
        rejections = apply_labels(
            labels,
            records,
            states,
            max_clock_skew_s=max_clock_skew_s,
        )
    except Exception as exc:  # noqa: BLE001 - a defect must not lose the labels
        log.exception("%s: applying a batch of labels raised", detector)
        rejections = [(r, Rejection.from_error(exc)) for r in records]
    metrics.labels.labels(detector).inc(len(records) - len(rejections))
    return rejections


def batch_consumed(metrics: DetectMetrics, detector: str, count: int) -> None:
    """A batch of `count` input records is taken: in flight until `outcomes_sent`."""
    metrics.events_in.labels(detector).inc(count)
    metrics.unaccounted.labels(detector).inc(count)


def outcomes_sent(
    metrics: DetectMetrics,
    detector: str,
    result: BatchResult,
    clock: BatchClock,
    receipt: Receipt,
) -> None:
    """Every outcome of a batch is in the producer's hands: the records are accounted for,
    and the decisions' latency, scores, drift and stages observed."""
    metrics.dead_lettered.labels(detector).inc(len(result.rejections))
    metrics.unaccounted.labels(detector).dec(len(result.rejections))
    metrics.decided.labels(detector).inc(len(result.decisions))
    metrics.unaccounted.labels(detector).dec(len(result.decisions))
    decisions = [decision for _, _, decision in result.decisions]
    metrics.decisions_emitted(detector, decisions)
    for outcome, count in Counter(d.outcome for d in decisions).items():
        metrics.decisions.labels(detector, outcome).inc(count)
    metrics.stages.observe_batch(
        detector, clock, ((d.event_time.timestamp(), receipt(d.source)) for d in decisions)
    )


def poll_model(spec: DetectorSpec, metrics: DetectMetrics) -> BatchScorer | None:
    """The detector's newly active model, loaded and verified, or None; a refused one is
    counted and logged (the worker goes on with the model it has). Blocking: reads and
    hashes files."""
    source = spec.models
    if source is None:
        return None
    try:
        return source.poll()
    except AttestreamError as exc:
        metrics.model_refused.labels(spec.detector.value).inc()
        log.error(
            "%s: the newly active model is refused, still scoring with %s: %s",
            spec.detector.value,
            spec.scorer.model_id,
            exc.diagnostics(),
        )
        return None


def swap_model(spec: DetectorSpec, scorer: BatchScorer, metrics: DetectMetrics) -> None:
    """Score with `scorer` from the next batch on (one assignment, between two batches)."""
    detector = spec.detector.value
    previous, spec.scorer = spec.scorer, scorer
    metrics.model_swaps.labels(detector).inc()
    metrics.model_active(detector, scorer)
    log.info(
        "%s: now scoring with %s (sha256 %s), was %s",
        detector,
        scorer.model_id,
        scorer.model_sha256,
        previous.model_id,
    )
