"""Poison events through the pure pipeline: each record ends as exactly one decision or one
rejection, the rest of its batch is decided, and a rejected event leaves its entity's state
as if it had not been seen."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import numpy as np
import pytest

from attestcore.schemas import Channel, PaymentLabel, PaymentTransaction, encode
from detectors.features_payments import (
    MAX_AMOUNT_RATIO,
    PAYMENT_FEATURES,
    initial_payment_state,
    payment_features,
)
from streams.app import JSONStates
from streams.intake import RecordRef, RejectReason
from streams.pipeline import BatchResult, DetectorSpec, State, apply_labels, decide_batch

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def payment(n: int, at: datetime, customer: str = "C1", amount: float = 42.0) -> PaymentTransaction:
    return PaymentTransaction(
        event_id=f"tx-{n}",
        event_time=at,
        source="test",
        customer_id=customer,
        terminal_id="T1",
        amount=amount,
        currency="EUR",
        channel=Channel.CARD_PRESENT,
        mcc="5411",
        country="DE",
        lat=48.1,
        lon=11.6,
    )


def record(event: PaymentTransaction, offset: int) -> RecordRef:
    return RecordRef("tx", 0, offset, event.customer_id.encode(), encode(event))


def records(events: Sequence[PaymentTransaction]) -> list[RecordRef]:
    return [record(e, i) for i, e in enumerate(events)]


def decide(spec: DetectorSpec, batch: list[RecordRef], state: Any) -> BatchResult:
    result = decide_batch(spec, batch, state, now=lambda: NOW)
    assert len(result.decisions) + len(result.rejections) == len(batch)
    return result


def reasons(result: BatchResult) -> dict[int, RejectReason]:
    return {r.offset: rejection.reason for r, rejection in result.rejections}


def decided(result: BatchResult) -> list[str]:
    return [d.event_id for _, _, d in result.decisions]


def ordinary(start: int, count: int, customer: str = "C1") -> list[PaymentTransaction]:
    return [payment(start + i, NOW - timedelta(hours=count - i), customer) for i in range(count)]


def test_a_payment_dated_2099_is_dead_lettered_and_the_customer_goes_on(
    fraud: DetectorSpec,
) -> None:
    """The payment of 2099 would move the customer's windows past every genuine payment
    (before: it was approved, and every later payment of the customer raised
    ZeroDivisionError in the features)."""
    future = payment(0, datetime(2099, 1, 1, tzinfo=UTC))
    state = JSONStates({})
    first = decide(fraud, records([future, *ordinary(1, 5)]), state)
    assert reasons(first) == {0: RejectReason.EVENT_TIME_IN_FUTURE}
    assert decided(first) == [f"tx-{i}" for i in range(1, 6)]
    later = decide(fraud, [record(e, 10 + i) for i, e in enumerate(ordinary(6, 5))], state)
    assert len(later.decisions) == 5


def test_the_clock_skew_is_allowed_and_no_more(fraud: DetectorSpec) -> None:
    within = payment(0, NOW + timedelta(seconds=299))
    beyond = payment(1, NOW + timedelta(seconds=301), customer="C2")
    result = decide(fraud, records([within, beyond]), {})
    assert decided(result) == ["tx-0"]
    assert reasons(result) == {1: RejectReason.EVENT_TIME_IN_FUTURE}
    wider = decide_batch(fraud, records([beyond]), {}, now=lambda: NOW, max_clock_skew_s=600)
    assert len(wider.decisions) == 1


def test_a_payment_older_than_the_window_horizon_is_decided(fraud: DetectorSpec) -> None:
    """Its own day is out of the customer's 30-day horizon (a second simulator run does
    this); before, `total / count` divided by zero."""
    state: dict[str, State] = {}
    decide(fraud, records(ordinary(0, 3)), state)
    old = payment(9, NOW - timedelta(days=45), amount=10.0)
    result = decide(fraud, [record(old, 9)], state)
    features = result.decisions[0][2].features
    assert features["customer_tx_count_30d"] == 1.0
    assert features["customer_mean_amount_30d"] == 10.0


def test_denormal_and_huge_amounts_give_finite_features() -> None:
    state = initial_payment_state()
    for n, amount in enumerate([5e-324, 5e-324, 1e9, 0.0, -0.0, 1e9]):
        at = NOW + timedelta(minutes=n)
        features, state = payment_features(payment(n, at, amount=amount), state)
        named = dict(zip(PAYMENT_FEATURES, features, strict=True))
        assert all(math.isfinite(v) for v in features), named
        assert np.isfinite(np.asarray(features, dtype=np.float32)).all()
    ratio, _ = payment_features(payment(9, NOW, amount=1e9), {**state, "recent": [[0, 5e-324]]})
    assert ratio[PAYMENT_FEATURES.index("amount_to_median_recent")] == MAX_AMOUNT_RATIO


class Poisoned:
    """A featurizer that raises on one event id and otherwise is the stream's own."""

    def __init__(self, featurize: Any, event_id: str) -> None:
        self.featurize, self.event_id = featurize, event_id

    def __call__(self, event: Any, state: State | None) -> Any:
        if event.event_id == self.event_id:
            raise KeyError("poisoned " + "x" * 1000)
        return self.featurize(event, state)


def test_an_exception_deciding_one_event_dead_letters_it_alone(fraud: DetectorSpec) -> None:
    events = [*ordinary(0, 4), *ordinary(4, 4, customer="C2")]
    poisoned = replace(fraud, featurize=Poisoned(fraud.featurize, "tx-2"))
    state: dict[str, State] = {}
    result = decide(poisoned, records(events), state)
    assert reasons(result) == {2: RejectReason.PROCESSING_ERROR}
    rejection = result.rejections[0][1]
    assert rejection.error_class == "KeyError" and rejection.event_id == "tx-2"
    assert rejection.detail.startswith("'poisoned xxx") and len(rejection.detail) <= 300
    assert decided(result) == [e.event_id for e in events if e.event_id != "tx-2"]
    without: dict[str, State] = {}
    decide(fraud, records([e for e in events if e.event_id != "tx-2"]), without)
    assert state == without


class FlakyScorer:
    """The stream's scorer, except that it raises on any matrix holding the poisoned amount
    and scores NaN for another."""

    def __init__(self, scorer: Any, poison: float, nan: float) -> None:
        self.scorer, self.poison, self.nan = scorer, poison, nan
        self.model_id, self.model_sha256 = scorer.model_id, scorer.model_sha256
        self.feature_names = scorer.feature_names

    def score_batch(self, features: np.ndarray) -> np.ndarray:
        if (features[:, 0] == self.poison).any():
            raise ValueError("the model cannot take this row")
        scores: np.ndarray = self.scorer.score_batch(features)
        scores[features[:, 0] == self.nan] = np.nan
        return scores

    def reasons_batch(self, features: np.ndarray, top: int = 3) -> Any:
        return self.scorer.reasons_batch(features, top)

    def outcome(self, score: float) -> str:
        return str(self.scorer.outcome(score))


def test_a_failing_batch_scorer_falls_back_event_by_event(fraud: DetectorSpec) -> None:
    """Scoring fails after the poisoned payment was carried into its customer's state: the
    state is rebuilt without it, and the customer's later payments are decided as if it had
    never arrived."""
    events = ordinary(0, 6)
    events[1] = payment(1, events[1].event_time, amount=666.0)
    events[3] = payment(3, events[3].event_time, amount=777.0)
    flaky = replace(fraud, scorer=FlakyScorer(fraud.scorer, poison=666.0, nan=777.0))
    state: dict[str, State] = {}
    result = decide(flaky, records(events), state)
    assert reasons(result) == {1: RejectReason.PROCESSING_ERROR, 3: RejectReason.NON_FINITE}
    kept = [e for e in events if e.event_id not in ("tx-1", "tx-3")]
    without: dict[str, State] = {}
    clean = decide(fraud, records(kept), without)
    assert state == without
    assert [d.features for _, _, d in result.decisions] == [
        d.features for _, _, d in clean.decisions
    ]


def test_a_state_write_that_raises_dead_letters_that_entity_only(fraud: DetectorSpec) -> None:
    class Refusing(dict[str, State]):
        def __setitem__(self, key: str, value: State) -> None:
            if key == "C2":
                raise OSError("table unavailable")
            super().__setitem__(key, value)

    state = Refusing()
    result = decide(fraud, records([*ordinary(0, 2), *ordinary(2, 2, customer="C2")]), state)
    assert reasons(result) == {2: RejectReason.PROCESSING_ERROR, 3: RejectReason.PROCESSING_ERROR}
    assert list(state) == ["C1"]


def label(n: int, at: datetime, terminal: str = "T1") -> RecordRef:
    event = PaymentLabel(
        label_id=f"lb-{n}",
        label_time=at,
        transaction_id=f"tx-{n}",
        transaction_time=at - timedelta(days=7),
        customer_id="C1",
        terminal_id=terminal,
        fraud=n % 2 == 0,
    )
    return RecordRef("labels", 0, n, terminal.encode(), msgspec.json.encode(event))


def test_labels_from_the_future_or_raising_are_dead_lettered_alone(fraud: DetectorSpec) -> None:
    assert fraud.labels is not None
    update = fraud.labels.update

    def poisoned(event: PaymentLabel, state: State | None) -> State:
        if event.label_id == "lb-2":
            raise ArithmeticError("bad label")
        return update(event, state)

    spec = replace(fraud.labels, update=poisoned)
    terminals: dict[str, State] = {}
    batch = [
        label(0, NOW),
        label(1, datetime(2099, 1, 1, tzinfo=UTC)),
        label(2, NOW),
        label(3, NOW, terminal="T2"),
    ]
    rejected = apply_labels(spec, batch, terminals, now=lambda: NOW)
    assert [(r.offset, why.reason) for r, why in rejected] == [
        (1, RejectReason.EVENT_TIME_IN_FUTURE),
        (2, RejectReason.PROCESSING_ERROR),
    ]
    assert rejected[1][1].error_class == "ArithmeticError"
    assert sorted(terminals) == ["T1", "T2"]
    assert sum(b[1] for b in terminals["T1"]["hours"]) == 1


@pytest.mark.parametrize("field", ["lat", "lon"])
def test_extreme_coordinates_and_times_are_decided(fraud: DetectorSpec, field: str) -> None:
    """Poles and the antimeridian, then a payment of the year 1 after the customer's newest."""
    events = [
        msgspec.structs.replace(payment(0, NOW - timedelta(days=3)), **{field: 90.0}),
        msgspec.structs.replace(payment(1, NOW - timedelta(days=2)), **{field: -90.0}),
        payment(2, NOW),
        payment(3, datetime(1, 1, 1, tzinfo=UTC)),
    ]
    result = decide(fraud, records(events), {})
    assert len(result.decisions) == 4
    for _, _, d in result.decisions:
        assert all(math.isfinite(v) for v in d.features.values()) and 0 <= d.score <= 1


def test_a_feature_beyond_float32_is_dead_lettered_as_non_finite(fraud: DetectorSpec) -> None:
    """1e39 is a finite float but infinite as the model reads it (float32)."""
    featurize = fraud.featurize

    def overflowing(event: Any, state: State | None) -> Any:
        features, new_state = featurize(event, state)
        return (1e39, *features[1:]) if event.event_id == "tx-1" else features, new_state

    state: dict[str, State] = {}
    result = decide(replace(fraud, featurize=overflowing), records(ordinary(0, 3)), state)
    assert reasons(result) == {1: RejectReason.NON_FINITE}
    assert "amount" in result.rejections[0][1].detail
    without: dict[str, State] = {}
    decide(fraud, records([e for e in ordinary(0, 3) if e.event_id != "tx-1"]), without)
    assert state == without
