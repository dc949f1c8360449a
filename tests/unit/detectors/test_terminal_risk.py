"""Terminal risk uses only the labels that had arrived, counted by hour of arrival.

Hand-built case (UTC, 2025-03-03 is a Monday), terminal T1:

    label                      arrives          fraud
    a: chargeback              Mon 10:00        yes
    b: confirmation            Mon 10:30        no
    c: confirmation            Tue 09:00        no
    d: chargeback              Wed 12:00        yes   (after every payment below)

A payment on Tue at 10:15 sees a, b, c (all arrived before 10:00 Tue): 3 labels, 1 fraud in
the last 1, 7 and 30 days; the last chargeback 24 hours before its hour. A payment at Tue 09:30
sees only a and b (c arrived in its own hour): 2 labels, rate 0.5. Neither ever sees d.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from attestcore.schemas import Channel, PaymentLabel, PaymentTransaction
from detectors.features import MISSING
from detectors.fraud_features import FRAUD_FEATURES, FraudFeaturizer, replay_payments
from detectors.simulate_payments import LabelledPayment
from detectors.terminal_risk import (
    RECENT_LABELS,
    TERMINAL_FEATURES,
    TERMINAL_HORIZON_DAYS,
    apply_label,
    initial_terminal_state,
    terminal_features,
)

MONDAY = datetime(2025, 3, 3, tzinfo=UTC)
H = timedelta(hours=1)


def label(name: str, at: datetime, fraud: bool, terminal: str = "T1") -> PaymentLabel:
    return PaymentLabel(
        label_id=f"lb-{name}",
        label_time=at,
        transaction_id=f"tx-{name}",
        transaction_time=at - timedelta(days=7),
        customer_id="C9",
        terminal_id=terminal,
        fraud=fraud,
    )


LABELS = [
    label("a", MONDAY + 10 * H, True),
    label("b", MONDAY + 10.5 * H, False),
    label("c", MONDAY + 33 * H, False),
    label("d", MONDAY + 60 * H, True),
]


def features_at(at: datetime, labels: list[PaymentLabel]) -> dict[str, float]:
    state = None
    for item in labels:
        state = apply_label(item, state)
    return dict(zip(TERMINAL_FEATURES, terminal_features(at.timestamp(), state), strict=True))


@pytest.mark.parametrize("order", [LABELS, LABELS[::-1]])
def test_a_payment_sees_only_labels_arrived_before_its_hour(order: list[PaymentLabel]) -> None:
    """Even when the future label d is already in the state (read ahead), it does not count."""
    tue_1015 = features_at(MONDAY + 34.25 * H, order)
    for width in (1, 7, 30):
        assert tue_1015[f"terminal_labels_{width}d"] == 3.0
        assert tue_1015[f"terminal_fraud_rate_{width}d"] == pytest.approx(1 / 3)
    assert tue_1015["terminal_hours_since_chargeback"] == 24.0
    assert tue_1015["terminal_recent_fraud_share"] == pytest.approx(1 / 3) and RECENT_LABELS == 3
    tue_0930 = features_at(MONDAY + 33.5 * H, order)
    assert (tue_0930["terminal_labels_1d"], tue_0930["terminal_fraud_rate_1d"]) == (2.0, 0.5)
    assert tue_0930["terminal_recent_fraud_share"] == 0.5


def test_windows_close_and_missing_values() -> None:
    nothing = features_at(MONDAY, [])
    assert nothing["terminal_labels_30d"] == 0.0
    assert nothing["terminal_fraud_rate_30d"] == MISSING
    assert nothing["terminal_hours_since_chargeback"] == MISSING
    assert nothing["terminal_recent_fraud_share"] == MISSING
    # Wednesday 11:00: the 1-day window (from Tue 11:00) holds no label any more.
    wednesday = features_at(MONDAY + 59 * H, LABELS[:3])
    assert (wednesday["terminal_labels_1d"], wednesday["terminal_fraud_rate_1d"]) == (0.0, MISSING)
    assert wednesday["terminal_labels_7d"] == 3.0


def test_state_is_pure_bounded_and_survives_json() -> None:
    state = initial_terminal_state()
    for hour in range(24 * (TERMINAL_HORIZON_DAYS + 5)):
        before = copy.deepcopy(state)
        new = apply_label(label(str(hour), MONDAY + hour * H, hour % 5 == 0), state)
        assert state == before  # never mutated
        state = json.loads(json.dumps(new))
    assert len(state["hours"]) == 24 * TERMINAL_HORIZON_DAYS
    at = (MONDAY + 24 * (TERMINAL_HORIZON_DAYS + 5) * H).timestamp()
    labels_1d, fraud_rate_1d = terminal_features(at, state)[:2]
    assert labels_1d == 24.0 and fraud_rate_1d == pytest.approx(5 / 24)


def payment(
    name: str, at: datetime, terminal: str, fraud: int, label_at: datetime, customer: str = "C1"
) -> LabelledPayment:
    event = PaymentTransaction(
        event_id=f"tx-{name}",
        event_time=at,
        source="test",
        customer_id=customer,
        terminal_id=terminal,
        amount=10.0,
        currency="EUR",
        channel=Channel.CARD_PRESENT,
        mcc="5411",
        country="FR",
        lat=48.85,
        lon=2.35,
    )
    return LabelledPayment(event, fraud, "compromised_terminal" if fraud else "", label_at)


def test_the_replay_counts_a_label_only_once_it_has_arrived() -> None:
    """Two fraudulent payments at T1 on Monday: the first one's chargeback arrives Wednesday
    at 08:00, the second one's only Friday. Thursday's payment sees one chargeback; Monday's
    payments, and Wednesday 08:30's (same hour as the arrival), see none."""
    history = [
        payment("1", MONDAY + 9 * H, "T1", 1, MONDAY + 56 * H),
        payment("2", MONDAY + 11 * H, "T1", 1, MONDAY + 4 * 24 * H + 8 * H),
        payment("3", MONDAY + 56.5 * H, "T1", 0, MONDAY + 7 * 24 * H, customer="C2"),
        payment("4", MONDAY + 3 * 24 * H, "T1", 0, MONDAY + 10 * 24 * H, customer="C3"),
        payment("5", MONDAY + 5 * 24 * H, "T1", 0, MONDAY + 12 * 24 * H, customer="C4"),
    ]
    rows = {
        event.event_id: dict(zip(FRAUD_FEATURES, vector, strict=True))
        for _, event, vector in replay_payments(history)
    }
    frauds_7d = {
        k: v["terminal_labels_7d"] * max(v["terminal_fraud_rate_7d"], 0) for k, v in rows.items()
    }
    assert frauds_7d == {"tx-1": 0, "tx-2": 0, "tx-3": 0, "tx-4": 1.0, "tx-5": 2.0}
    assert rows["tx-4"]["terminal_hours_since_chargeback"] == 72 - 56


def test_the_featurizer_reads_terminal_state_and_never_writes_it() -> None:
    terminals = {"T1": apply_label(LABELS[0], None)}
    frozen = json.dumps(terminals)
    featurize = FraudFeaturizer(terminals)
    event = payment("x", MONDAY + 32 * H, "T1", 0, MONDAY).event
    vector, state = featurize(event, None)
    named = dict(zip(FRAUD_FEATURES, vector, strict=True))
    assert named["terminal_fraud_rate_1d"] == 1.0 and named["customer_tx_count_1d"] == 1.0
    assert json.dumps(terminals) == frozen and "hours" not in state
    assert featurize(event, state)[0] != vector  # the customer's own state moved on
