"""Feature functions: purity, JSON round trips of state, and hand-computed values.

Distances are checked against the haversine formula on the equator, where it reduces to the
arc length: one degree of longitude is pi * R / 180 km with R = 6371.0088 km, i.e.
`python3 -c "import math; print(math.pi * 6371.0088 / 180)"` = 111.1950802335329.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from attestcore.schemas import (
    Channel,
    PaymentTransaction,
    SupplyChainEvent,
)
from detectors.features import (
    MAX_DEVICES,
    MISSING,
    PAYMENT_FEATURES,
    SUPPLY_FEATURES,
    FeatureVector,
    State,
    initial_payment_state,
    initial_supply_state,
    payment_features,
    supply_features,
)
from detectors.geo import haversine_km
from detectors.simulate_payments import LabelledPayment
from detectors.simulate_supply import LabelledScan

KM_PER_DEGREE = 111.1950802335329
MONDAY = datetime(2025, 3, 3, tzinfo=UTC)


def pay(
    at: datetime, amount: float, lon: float = 0.0, device: str | None = None, mcc: str = "5411"
) -> PaymentTransaction:
    return PaymentTransaction(
        event_id=f"tx-{at.timestamp():.0f}",
        event_time=at,
        source="test",
        customer_id="C1",
        terminal_id="T1",
        amount=amount,
        currency="EUR",
        channel=Channel.CARD_PRESENT,
        mcc=mcc,
        country="FR",
        lat=0.0,
        lon=lon,
        device_id=device,
    )


EventT = TypeVar("EventT", PaymentTransaction, SupplyChainEvent)
Featurize = Callable[[EventT, State], tuple[FeatureVector, State]]


def run(
    featurize: Featurize[EventT], initial: Callable[[], State], events: Sequence[EventT]
) -> tuple[list[dict[str, float]], State]:
    state = initial()
    vectors = []
    for event in events:
        vector, state = featurize(event, state)
        vectors.append(dict(zip(featurize_names(featurize), vector, strict=True)))
    return vectors, state


def featurize_names(featurize: Callable[..., object]) -> tuple[str, ...]:
    return PAYMENT_FEATURES if featurize is payment_features else SUPPLY_FEATURES


def test_geo_distance_on_the_equator_and_a_known_city_pair() -> None:
    assert haversine_km(0, 0, 0, 1) == pytest.approx(KM_PER_DEGREE, rel=1e-12)
    # Paris - London: about 344 km (the great-circle figure published for the pair).
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)
    assert haversine_km(10, 20, 10, 20) == 0.0


def test_payment_windows_of_1_7_and_30_days() -> None:
    events = [
        pay(MONDAY + timedelta(hours=10), 10.0),
        pay(MONDAY + timedelta(hours=12), 20.0),
        pay(MONDAY + timedelta(days=3, hours=9), 30.0),
        pay(MONDAY + timedelta(days=10, hours=9), 40.0),
        pay(MONDAY + timedelta(days=40, hours=9), 50.0),
    ]
    v, state = run(payment_features, initial_payment_state, events)
    assert (v[1]["customer_tx_count_1d"], v[1]["customer_mean_amount_1d"]) == (2.0, 15.0)
    assert (v[2]["customer_tx_count_1d"], v[2]["customer_mean_amount_1d"]) == (1.0, 30.0)
    assert (v[2]["customer_tx_count_7d"], v[2]["customer_mean_amount_7d"]) == (3.0, 20.0)
    # Day 10: the 7-day window is days 4..10, the 30-day one days -19..10.
    assert (v[3]["customer_tx_count_7d"], v[3]["customer_mean_amount_7d"]) == (1.0, 40.0)
    assert (v[3]["customer_tx_count_30d"], v[3]["customer_mean_amount_30d"]) == (4.0, 25.0)
    assert v[3]["amount_to_mean_30d"] == pytest.approx(40 / 25)
    # Day 40: everything before day 11 has left the 30-day window, and the state.
    assert (v[4]["customer_tx_count_30d"], v[4]["customer_mean_amount_30d"]) == (1.0, 50.0)
    assert [b[0] for b in state["days"]] == [20_150 + 40]  # 2025-03-03 is UTC day 20150


def test_payment_time_distance_and_calendar_features() -> None:
    saturday_3am = MONDAY + timedelta(days=5, hours=3)
    events = [
        pay(saturday_3am, 10.0, lon=0.0, device="d1"),
        pay(saturday_3am + timedelta(hours=2), 100.0, lon=1.0, device="d1", mcc="6051"),
        pay(saturday_3am + timedelta(days=2, hours=9), 5.0, lon=1.0, device="d2"),
    ]
    v, _ = run(payment_features, initial_payment_state, events)
    assert v[0]["seconds_since_previous_tx"] == MISSING
    assert v[0]["km_from_previous_terminal"] == MISSING
    assert (v[0]["is_night"], v[0]["is_weekend"], v[0]["new_device"]) == (1.0, 1.0, 1.0)
    assert v[1]["seconds_since_previous_tx"] == 7_200.0
    assert v[1]["km_from_previous_terminal"] == pytest.approx(KM_PER_DEGREE)
    assert (v[1]["new_device"], v[1]["mcc_seen_before"]) == (0.0, 0.0)
    assert v[1]["log_amount"] == pytest.approx(math.log1p(100.0))
    assert (v[2]["is_night"], v[2]["is_weekend"]) == (0.0, 0.0)  # Monday 12:00
    assert (v[2]["new_device"], v[2]["mcc_seen_before"]) == (1.0, 1.0)


def test_device_and_mcc_memory_is_bounded() -> None:
    state = initial_payment_state()
    for i in range(3 * MAX_DEVICES):
        _, state = payment_features(pay(MONDAY + timedelta(minutes=i), 1.0, device=f"d{i}"), state)
    assert len(state["devices"]) == MAX_DEVICES
    assert state["devices"][-1] == f"d{3 * MAX_DEVICES - 1}"


def _replay_both_ways(
    featurize: Featurize[EventT], initial: Callable[[], State], events: Sequence[EventT]
) -> None:
    """Features with the live state, and with the state sent through JSON at every step."""
    live, stored = initial(), initial()
    for event in events:
        before = copy.deepcopy(live)
        vector, live = featurize(event, live)
        assert featurize(event, before) == (vector, live), "not deterministic"
        assert before == copy.deepcopy(before)
        stored = json.loads(json.dumps(stored))
        stored_vector, stored = featurize(event, stored)
        assert stored_vector == vector
        assert all(isinstance(x, float) for x in vector)


def test_payment_features_are_pure_and_state_survives_json(
    payments: list[LabelledPayment],
) -> None:
    customer = payments[0].event.customer_id
    history = [p.event for p in payments if p.event.customer_id == customer]
    assert len(history) > 20
    _replay_both_ways(payment_features, initial_payment_state, history)


def test_supply_features_are_pure_and_state_survives_json(scans: list[LabelledScan]) -> None:
    clone = next(s.event.epc for s in scans if s.scenario == "cloned_serial")
    history = [s.event for s in scans if s.event.epc == clone]
    _replay_both_ways(supply_features, initial_supply_state, history)


def test_the_given_state_is_not_mutated() -> None:
    state = initial_payment_state()
    _, state = payment_features(pay(MONDAY, 5.0, device="d"), state)
    frozen = json.dumps(state)
    payment_features(pay(MONDAY + timedelta(days=1), 6.0, device="e"), state)
    assert json.dumps(state) == frozen
