"""Deciding a micro-batch: parse, update per-entity state, score, explain, emit.

Framework-free so it runs in unit tests without Kafka: the faust agent hands it a batch of
records and a mapping for entity state (a faust Table in the stream, a dict in tests and in
offline replay), and sends what it returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from streams.intake import EventParser, RecordRef, Rejection
from streams.schemas import Decision, Detector, Reason, SourceRef, decision_id, encode

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
    rejections: list[tuple[RecordRef, Rejection]] = field(default_factory=list)


def decide_batch(
    spec: DetectorSpec,
    records: Sequence[RecordRef],
    state: MutableMapping[str, State],
    before_state_write: Callable[[int], None] = lambda index: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BatchResult:
    """Decide every valid record of a batch, in order; reject the rest with a reason.

    1. Read the scorer once: every decision of the batch is made by one model, even when a
       new one is swapped in meanwhile (`DetectorSpec.scorer`).
    2. Featurize record by record in input order, each entity's state carried through the
       batch, so an entity's events see each other's effects exactly as an offline replay
       does (features parity).
    3. Write each entity's final state once (a table write is a changelog record; the
       intermediate states of one batch would be overwritten before any offset is committed),
       with `before_state_write` naming the entity's last record of the batch.
    4. Score and explain the whole batch, then build the decisions in input order.
    """
    scorer = spec.scorer  # step 1
    result = BatchResult()
    rows: list[Sequence[float]] = []
    accepted: list[tuple[RecordRef, Any]] = []
    pending: dict[str, tuple[int, State]] = {}
    key_field = spec.parser.key_field
    for index, record in enumerate(records):  # step 2
        parsed = spec.parser.parse(record)
        if isinstance(parsed, Rejection):
            result.rejections.append((record, parsed))
            continue
        entity = getattr(parsed, key_field)
        carried = pending.get(entity)
        previous = carried[1] if carried is not None else state.get(entity)
        features, new_state = spec.featurize(parsed, previous)
        pending[entity] = (index, new_state)
        rows.append(features)
        accepted.append((record, parsed))
    for entity, (index, new_state) in pending.items():  # step 3
        before_state_write(index)
        state[entity] = new_state
    if not accepted:
        return result
    matrix = np.asarray(rows, dtype=np.float32)  # step 4
    scores = scorer.score_batch(matrix)
    reasons = scorer.reasons_batch(matrix, top=3)
    decided_at = now()
    names = list(scorer.feature_names)
    for (record, event), row, score, why in zip(accepted, rows, scores, reasons, strict=True):
        decision = _decision(spec, scorer, record, event, names, row, float(score), why,
                             decided_at)  # fmt: skip
        result.decisions.append((decision.entity_id, encode(decision), decision))
    return result


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
        outcome=scorer.outcome(score),
        reasons=[Reason(feature=f, contribution=round(float(c), 6)) for f, c in reasons],
        event_time=event.event_time,
        decided_at=decided_at,
    )


def apply_labels(
    spec: LabelSpec,
    records: Sequence[RecordRef],
    state: MutableMapping[str, State],
    before_state_write: Callable[[int], None] = lambda index: None,
) -> list[tuple[RecordRef, Rejection]]:
    """Apply every valid label of a batch to the state of its key, in order; return the
    rejected records with their reason (they become dead letters, like bad events)."""
    rejections: list[tuple[RecordRef, Rejection]] = []
    for index, record in enumerate(records):
        parsed = spec.parser.parse(record)
        if isinstance(parsed, Rejection):
            rejections.append((record, parsed))
            continue
        key = getattr(parsed, spec.parser.key_field)
        new_state = spec.update(parsed, state.get(key))
        before_state_write(index)
        state[key] = new_state
    return rejections
