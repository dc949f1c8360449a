"""Deciding a micro-batch: parse, update per-entity state, score, explain, emit.

Framework-free so it runs in unit tests without Kafka: the faust agent hands it a batch of
records and a mapping for entity state (a faust Table in the stream, a dict in tests and in
offline replay), and sends what it returns.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from attestcore.schemas import Decision, Detector, SourceRef, decision_id, encode
from detectors.scoring import reasons_with_evidence
from streams.intake import MAX_DETAIL_CHARS, EventParser, RecordRef, Rejection, RejectReason
from streams.investigation import decision_context
from streams.stages import BatchClock

# Event times up to this far ahead of the worker's clock are taken as clock skew between the
# producer and the worker; later ones are dead-lettered (ATTESTREAM_DETECT_MAX_CLOCK_SKEW_S).
DEFAULT_MAX_CLOCK_SKEW_S = 300.0

State = dict[str, Any]
FeatureFn = Callable[[Any, State | None], tuple[Sequence[float], State]]


class BatchScorer(Protocol):
    """The model side of a detector (detectors.scoring.Scorer implements it)."""

    model_id: str
    model_sha256: str
    feature_names: Sequence[str]

    def score_batch(self, features: np.ndarray) -> np.ndarray: ...
    def reasons_batch(
        self, features: np.ndarray, top: int = 3
    ) -> list[list[tuple[str, float]]]: ...
    def outcome(self, score: float) -> str: ...


class ScorerSource(Protocol):
    """Where a detector's next model comes from (attestream.rollout.ModelWatch)."""

    def poll(self) -> BatchScorer | None:
        """A newly active model, loaded and verified, or None; blocking (file reads, model
        loading), so the stream calls it off the event loop."""
        ...


@dataclass
class LabelSpec:
    """Late labels that update reference state a detector's features read.

    The fraud detector's labels (`PaymentLabel`, keyed by terminal) update per-terminal state
    (`update`); its featurizer only reads that state, from the mapping `attach` hands it (the
    stream's table, a dict in tests).
    """

    topic: str
    table: str
    parser: EventParser[Any]
    update: Callable[[Any, State | None], State]
    attach: Callable[[Mapping[str, State]], None]


@dataclass
class DetectorSpec:
    detector: Detector
    parser: EventParser[Any]
    featurize: FeatureFn
    scorer: BatchScorer
    """Replaced between micro-batches when `models` names a new one (`decide_batch` step 1)."""
    labels: LabelSpec | None = None
    models: ScorerSource | None = None


@dataclass
class BatchResult:
    decisions: list[tuple[str, bytes, Decision]] = field(default_factory=list)
    """(entity key, encoded decision, decision) in input order."""
    events: list[bytes] = field(default_factory=list)
    """The exact bytes of each decision's event, in the order of `decisions`: sent with the
    decision for the ledger's event archive (`attestcore.schemas.EVENT_HEADER`)."""
    rejections: list[tuple[RecordRef, Rejection]] = field(default_factory=list)
    """Every record without a decision, with its reason, in input order: together with
    `decisions` exactly one outcome per record of the batch."""


@dataclass(slots=True)
class _Featurized:
    """One parsed event of a batch with its features, before scoring."""

    index: int
    record: RecordRef
    event: Any
    entity: str
    row: Sequence[float]


@dataclass
class _Attempt:
    """One pass over a batch: the events featurized, the rejections so far, each entity's
    state after its last featurized event (`decide_batch` step 2)."""

    featurized: list[_Featurized] = field(default_factory=list)
    rejected: dict[int, Rejection] = field(default_factory=dict)
    pending: dict[str, tuple[int, State]] = field(default_factory=dict)


def decide_batch(
    spec: DetectorSpec,
    records: Sequence[RecordRef],
    state: MutableMapping[str, State],
    before_state_write: Callable[[int], None] = lambda index: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
    clock: BatchClock | None = None,
) -> BatchResult:
    """Decide every record of a batch, in order: each ends as exactly one decision or exactly
    one rejection (a dead letter), whatever it contains, and the rest of the batch goes on.

    1. Read the scorer and the clock once: every decision of the batch is made by one model,
       even when a new one is swapped in meanwhile (`DetectorSpec.scorer`).
    2. Featurize record by record in input order, each entity's state carried through the
       batch, so an entity's events see each other's effects exactly as an offline replay
       does (features parity). A record that does not parse, whose event time is beyond the
       clock plus `max_clock_skew_s` or whose features raise is rejected and leaves its
       entity's state as if it had not been seen.
    3. Score and explain the featurized events (event by event if the batch call raises) and
       build the decisions. An event failing here (features or score not finite as the model
       reads them, scoring or building its decision raising) was already carried into its
       entity's state, so step 2 runs again without it (and step 3 for the rest) until no
       event fails: the state never holds an event without a decision.
    4. Write each entity's final state once (a table write is a changelog record; the
       intermediate states of one batch would be overwritten before any offset is committed),
       with `before_state_write` naming the entity's last record of the batch. A write that
       raises rejects that entity's events of the batch, whose state then stays as it was.

    `clock`, if given, gets the seconds spent on features and state (steps 2 and 4) and on
    scoring and building the decisions (step 3) added to it (`streams.stages`).
    """
    scorer, decided_at = spec.scorer, now()  # step 1
    latest = decided_at.timestamp() + max_clock_skew_s
    failed: dict[int, Rejection] = {}
    features_s = scoring_s = 0.0
    while True:
        started = time.perf_counter()
        attempt = _featurize(spec, records, state, latest, failed)  # step 2
        featurized = time.perf_counter()
        decided = _score_and_build(spec, scorer, attempt.featurized, decided_at)  # step 3
        scored = time.perf_counter()
        features_s += featurized - started
        scoring_s += scored - featurized
        newly = {i: r for i, r in decided.items() if isinstance(r, Rejection)}
        if not newly:
            break
        failed.update(newly)
    write_failed = _write_states(attempt, state, before_state_write)  # step 4
    if clock is not None:
        clock.features_s += features_s + time.perf_counter() - scored
        clock.scoring_s += scoring_s
    outcomes: dict[int, Rejection | tuple[str, bytes, Decision]] = {**attempt.rejected}
    outcomes.update(decided)
    outcomes.update(write_failed)
    result = BatchResult()
    for index, record in enumerate(records):
        outcome = outcomes[index]
        if isinstance(outcome, Rejection):
            result.rejections.append((record, outcome))
        else:
            result.decisions.append(outcome)
            result.events.append(record.value)
    return result


def _featurize(
    spec: DetectorSpec,
    records: Sequence[RecordRef],
    state: Mapping[str, State],
    latest_ts: float,
    failed: Mapping[int, Rejection],
) -> _Attempt:
    """`decide_batch` step 2, leaving out the events that failed in step 3 before."""
    attempt = _Attempt()
    for index, record in enumerate(records):
        if index in failed:
            attempt.rejected[index] = failed[index]
            continue
        event: Any = None
        try:
            event = spec.parser.parse(record)
            if isinstance(event, Rejection):
                attempt.rejected[index] = event
                continue
            too_late = _too_late(event, latest_ts)
            if too_late is not None:
                attempt.rejected[index] = too_late
                continue
            entity = getattr(event, spec.parser.key_field)
            carried = attempt.pending.get(entity)
            previous = carried[1] if carried is not None else state.get(entity)
            row, new_state = spec.featurize(event, previous)
        except Exception as exc:  # noqa: BLE001 - one event's failure is that event's outcome
            attempt.rejected[index] = Rejection.from_error(exc, _event_id(event))
            continue
        attempt.pending[entity] = (index, new_state)
        attempt.featurized.append(_Featurized(index, record, event, entity, row))
    return attempt


def _score_and_build(
    spec: DetectorSpec,
    scorer: BatchScorer,
    featurized: Sequence[_Featurized],
    decided_at: datetime,
) -> dict[int, Rejection | tuple[str, bytes, Decision]]:
    """`decide_batch` step 3: each featurized event's decision, or its rejection."""
    if not featurized:
        return {}
    # As the model reads them: a float64 feature beyond float32's range is infinite here,
    # and rejected below rather than warned about.
    with np.errstate(over="ignore"):
        matrix = np.asarray([f.row for f in featurized], dtype=np.float32)
    finite = np.asarray(np.isfinite(matrix).all(axis=1))
    names = list(scorer.feature_names)
    outcomes: dict[int, Rejection | tuple[str, bytes, Decision]] = {}
    for item, ok, row in zip(featurized, finite, matrix, strict=True):
        if not ok:
            outcomes[item.index] = _non_finite(row, names, item.event)
    kept = [item for item, ok in zip(featurized, finite, strict=True) if ok]
    for item, (score, why) in zip(kept, _score(scorer, matrix[finite]), strict=True):
        if isinstance(score, BaseException):
            outcomes[item.index] = Rejection.from_error(score, _event_id(item.event))
            continue
        if not math.isfinite(score) or not all(math.isfinite(c) for _, c in why):
            outcomes[item.index] = Rejection(
                RejectReason.NON_FINITE,
                f"score {score}, reasons {why}"[:MAX_DETAIL_CHARS],
                event_id=_event_id(item.event),
            )
            continue
        try:
            decision = _decision(
                spec, scorer, item.record, item.event, names, item.row, score, why, decided_at
            )
            outcomes[item.index] = (decision.entity_id, encode(decision), decision)
        except Exception as exc:  # noqa: BLE001 - one event's failure is that event's outcome
            outcomes[item.index] = Rejection.from_error(exc, _event_id(item.event))
    return outcomes


Scored = tuple[float | BaseException, list[tuple[str, float]]]


def _score(scorer: BatchScorer, matrix: np.ndarray) -> list[Scored]:
    """Scores and reasons of every row: in one call, or row by row if that call raises, so
    that one row the model cannot take fails alone."""
    if not len(matrix):
        return []
    try:
        return _score_rows(scorer, matrix)
    except Exception:  # noqa: BLE001 - the rows are scored one by one below
        pass
    scored: list[Scored] = []
    for i in range(len(matrix)):
        try:
            scored.extend(_score_rows(scorer, matrix[i : i + 1]))
        except Exception as exc:  # noqa: BLE001 - this row's failure is its event's outcome
            scored.append((exc, []))
    return scored


def _score_rows(scorer: BatchScorer, matrix: np.ndarray) -> list[Scored]:
    """Scores and every feature's contribution, largest first (`_reasons` picks from them)."""
    scores = scorer.score_batch(matrix)
    reasons = scorer.reasons_batch(matrix, top=matrix.shape[1])
    if len(scores) != len(matrix) or len(reasons) != len(matrix):
        raise ValueError(
            f"{len(matrix)} rows scored as {len(scores)} scores, {len(reasons)} reasons"
        )
    return [(float(score), why) for score, why in zip(scores, reasons, strict=True)]


def _write_states(
    attempt: _Attempt,
    state: MutableMapping[str, State],
    before_state_write: Callable[[int], None],
) -> dict[int, Rejection]:
    """`decide_batch` step 4; returns the rejections of entities whose write raised."""
    rejected: dict[int, Rejection] = {}
    for entity, (index, new_state) in attempt.pending.items():
        try:
            before_state_write(index)
            state[entity] = new_state
        except Exception as exc:  # noqa: BLE001 - the entity's events fail, the batch goes on
            for item in attempt.featurized:
                if item.entity == entity:
                    rejected[item.index] = Rejection.from_error(exc, _event_id(item.event))
    return rejected


def _event_time(event: Any) -> datetime | None:
    """When the event happened (a label: when it became known)."""
    at = getattr(event, "event_time", None)
    return at if at is not None else getattr(event, "label_time", None)


def _event_id(event: Any) -> str | None:
    found = getattr(event, "event_id", None) or getattr(event, "label_id", None)
    return found if isinstance(found, str) else None


def _too_late(event: Any, latest_ts: float) -> Rejection | None:
    at = _event_time(event)
    if at is None or at.timestamp() <= latest_ts:
        return None
    return Rejection(
        RejectReason.EVENT_TIME_IN_FUTURE,
        f"{at.isoformat()} is later than the worker's clock plus the allowed skew",
        event_id=_event_id(event),
    )


def _non_finite(row: np.ndarray, names: Sequence[str], event: Any) -> Rejection:
    """A rejection naming the first feature that is NaN or infinite as the model reads it."""
    bad = int(np.flatnonzero(~np.isfinite(row))[0])
    name = names[bad] if bad < len(names) else f"#{bad}"
    return Rejection(
        RejectReason.NON_FINITE, f"feature {name} = {row[bad]}", event_id=_event_id(event)
    )


def _decision(
    spec: DetectorSpec,
    scorer: BatchScorer,
    record: RecordRef,
    event: Any,
    names: list[str],
    row: Sequence[float],
    score: float,
    reasons: list[tuple[str, float]],
    decided_at: datetime,
) -> Decision:
    outcome = scorer.outcome(score)
    lowest = scorer.outcome(0.0)
    return Decision(
        decision_id=decision_id(event.event_id, spec.detector, scorer.model_sha256),
        event_id=event.event_id,
        event_sha256=hashlib.sha256(record.value).hexdigest(),
        source=SourceRef(topic=record.topic, partition=record.partition, offset=record.offset),
        entity_id=getattr(event, spec.parser.key_field),
        detector=spec.detector,
        model_id=scorer.model_id,
        model_sha256=scorer.model_sha256,
        features={name: float(v) for name, v in zip(names, row, strict=True)},
        score=min(max(score, 0.0), 1.0),
        outcome=outcome,
        reasons=reasons_with_evidence(
            reasons, getattr(row, "evidence", ()), flagged=outcome != lowest
        ),
        event_time=event.event_time,
        decided_at=decided_at,
        context=decision_context(event),
    )


def apply_labels(
    spec: LabelSpec,
    records: Sequence[RecordRef],
    state: MutableMapping[str, State],
    before_state_write: Callable[[int], None] = lambda index: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
) -> list[tuple[RecordRef, Rejection]]:
    """Apply every valid label of a batch to the state of its key, in order; return the
    rejected records with their reason (they become dead letters, like bad events).

    A label that does not parse, became known later than the clock plus `max_clock_skew_s`
    (it would push every genuine label out of its terminal's horizon) or whose update raises
    is rejected, and its key's state stays as it was.
    """
    latest = now().timestamp() + max_clock_skew_s
    rejections: list[tuple[RecordRef, Rejection]] = []
    for index, record in enumerate(records):
        parsed: Any = None
        try:
            parsed = spec.parser.parse(record)
            if isinstance(parsed, Rejection):
                rejections.append((record, parsed))
                continue
            too_late = _too_late(parsed, latest)
            if too_late is not None:
                rejections.append((record, too_late))
                continue
            key = getattr(parsed, spec.parser.key_field)
            new_state = spec.update(parsed, state.get(key))
            before_state_write(index)
            state[key] = new_state
        except Exception as exc:  # noqa: BLE001 - one label's failure is that label's outcome
            rejections.append((record, Rejection.from_error(exc, _event_id(parsed))))
    return rejections
