from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pytest

from attestcore.errors import MalformedError, UsageError
from attestcore.schemas import PaymentLabel, PaymentTransaction, encode
from detectors.labelled import read_ground_truth, write_ground_truth
from detectors.payment_scenarios import (
    ALL_SCENARIOS,
    CUSTOMER_COMPROMISE_DAYS,
    HANDBOOK_SCENARIOS,
    RISKY,
    TERMINAL_COMPROMISE_DAYS,
    episode_days,
)
from detectors.simulate_payments import (
    HANDBOOK_LABELS,
    HIGH_AMOUNT,
    RISKY_MCCS,
    LabelledPayment,
    arrival_order,
    payment_label,
    read_labelled_payments,
    simulate_payment_days,
    simulate_payments,
    write_labelled_payments,
)

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def handbook_days() -> list[LabelledPayment]:
    """A tenth of the handbook's population (same density) over 40 days, scenarios 1-3."""
    return simulate_payment_days(40, customers=500, terminals=1_000, seed=5, run_id="hb")


def test_same_seed_and_run_give_the_same_bytes() -> None:
    first = simulate_payments(2_000, seed=7, run_id="r1")
    again = simulate_payments(2_000, seed=7, run_id="r1")
    assert msgspec.json.encode(first) == msgspec.json.encode(again)


def test_another_seed_gives_other_payments() -> None:
    a = simulate_payments(500, seed=1, run_id="r")
    b = simulate_payments(500, seed=2, run_id="r")
    assert [p.event.amount for p in a] != [p.event.amount for p in b]


def test_event_ids_are_unique_within_and_across_runs() -> None:
    a = [p.event.event_id for p in simulate_payments(1_000, seed=3, run_id="a")]
    b = [p.event.event_id for p in simulate_payments(1_000, seed=3, run_id="b")]
    assert len(set(a)) == len(a) == 1_000
    assert not set(a) & set(b)
    assert a[0] == "tx-a-00000000"


def test_default_run_id_comes_from_the_seed() -> None:
    assert simulate_payments(1, seed=42)[0].event.event_id == "tx-seed42-00000000"


def test_exact_count_in_event_time_order(payments: list[LabelledPayment]) -> None:
    times = [p.event.event_time for p in payments]
    assert len(payments) == 30_000
    assert times == sorted(times)


def test_every_scenario_is_injected_and_labelled(payments: list[LabelledPayment]) -> None:
    counts = Counter(p.scenario for p in payments)
    assert set(counts) == set(ALL_SCENARIOS) | {""}
    assert all(p.label == (1 if p.scenario else 0) for p in payments)
    fraud_rate = sum(p.label for p in payments) / len(payments)
    assert 0.003 < fraud_rate < 0.02


def test_handbook_run_has_only_scenarios_1_to_3_at_the_handbook_rate(
    handbook_days: list[LabelledPayment],
) -> None:
    counts = Counter(p.scenario for p in handbook_days)
    assert set(counts) == set(HANDBOOK_SCENARIOS) | {""}
    # The handbook: 0.84 % fraud over 183 days; the first weeks here have fewer compromises
    # still running, so a little less.
    assert 0.005 < sum(p.label for p in handbook_days) / len(handbook_days) < 0.011
    per_day = len(handbook_days) / 40 / 500  # U(0, 4) a day, minus times outside the day
    assert 1.85 < per_day < 2.05
    assert all(p.label_time == p.event.event_time + 7 * DAY for p in handbook_days)


def test_handbook_scenarios_look_like_their_description(
    handbook_days: list[LabelledPayment],
) -> None:
    assert all(
        p.label
        for p in handbook_days
        if p.event.amount > HIGH_AMOUNT and p.scenario != "compromised_customer"
    )
    compromised = {
        p.event.terminal_id for p in handbook_days if p.scenario == "compromised_terminal"
    }
    assert compromised
    for terminal in compromised:
        history = [p for p in handbook_days if p.event.terminal_id == terminal]
        # Every payment of a compromised terminal within 28 days of its first fraud is fraud.
        first = min(p.event.event_time for p in history if p.scenario == "compromised_terminal")
        end = first.replace(hour=0, minute=0, second=0) + TERMINAL_COMPROMISE_DAYS * DAY
        assert all(p.label for p in history if first <= p.event.event_time < end)
    multiplied = [p for p in handbook_days if p.scenario == "compromised_customer"]
    assert multiplied
    customers = {p.event.customer_id for p in multiplied}
    for customer in itertools.islice(sorted(customers), 20):
        mine = [p for p in handbook_days if p.event.customer_id == customer]
        hit = [p for p in mine if p.scenario == "compromised_customer"]
        span = max(p.event.event_time for p in hit) - min(p.event.event_time for p in hit)
        assert span < 2 * CUSTOMER_COMPROMISE_DAYS * DAY


def test_extra_scenarios_look_like_their_description(payments: list[LabelledPayment]) -> None:
    devices: dict[str, set[str]] = {}
    for p in payments:
        if not p.label and p.event.device_id:
            devices.setdefault(p.event.customer_id, set()).add(p.event.device_id)
    takeovers = [p for p in payments if p.scenario == "account_takeover"]
    assert all(p.event.channel == "ecommerce" and p.event.mcc in RISKY_MCCS for p in takeovers)
    assert all(p.event.device_id not in devices.get(p.event.customer_id, ()) for p in takeovers)
    testing = [p for p in payments if p.scenario == "card_testing"]
    for _, episode in itertools.groupby(testing, key=lambda p: p.event.device_id):
        amounts = [p.event.amount for p in episode]
        if len(amounts) > 1:  # the cut to exactly `count` payments may end an episode early
            assert max(amounts[:-1]) <= 2.0 < 120.0 <= amounts[-1] or max(amounts) <= 2.0
    merchants = [p for p in payments if p.scenario == "compromised_merchant"]
    assert len({p.event.terminal_id for p in merchants}) < len(merchants)


def label_time(payment: LabelledPayment) -> datetime:
    """When the issuer learns the payment's label: the simulator sets it on every payment."""
    assert payment.label_time is not None, payment.event.event_id
    return payment.label_time


def test_labels_arrive_late_chargebacks_within_the_confirmation_window(
    payments: list[LabelledPayment],
) -> None:
    delays = np.array([(label_time(p) - p.event.event_time) / DAY for p in payments])
    fraud = np.array([p.label for p in payments], dtype=bool)
    assert np.all(delays[~fraud] == 7.0)
    assert np.all((delays[fraud] >= 1.0) & (delays[fraud] <= 7.0))
    assert 1.5 < np.median(delays[fraud]) < 4.0  # days, not hours, and not all at the cap


def test_label_events_and_arrival_order() -> None:
    payments = simulate_payments(400, seed=1, run_id="arr")
    label = payment_label(payments[0])
    assert (label.transaction_id, label.terminal_id, label.fraud) == (
        payments[0].event.event_id,
        payments[0].event.terminal_id,
        bool(payments[0].label),
    )
    assert label.label_time == payments[0].label_time
    merged = arrival_order(payments)
    assert len(merged) == 2 * len(payments)
    times = [x.label_time if isinstance(x, PaymentLabel) else x.event_time for x in merged]
    assert times == sorted(times)
    seen: set[str] = set()
    for item in merged:  # a label never arrives before its payment
        if isinstance(item, PaymentLabel):
            assert item.transaction_id in seen
        else:
            seen.add(item.event_id)
    legacy = msgspec.structs.replace(payments[0], label_time=None)
    assert payment_label(legacy).label_time == payments[0].event.event_time + 7 * DAY
    assert HANDBOOK_LABELS.chargeback_min_days == HANDBOOK_LABELS.confirm_days == 7.0


def test_episode_counts_follow_the_rate() -> None:
    rng = np.random.default_rng(0)
    assert len(episode_days(rng, 2.0, 30)) == 60  # the handbook's exactly 2 a day
    assert 20 < len(episode_days(rng, 0.5, 100)) < 80
    assert len(episode_days(rng, 0.0, 10)) == 1  # every enabled scenario happens once


def test_takeovers_use_risky_merchants_far_from_home() -> None:
    payments = simulate_payment_days(
        20, customers=400, terminals=4_000, seed=2, run_id="ato", scenarios=("account_takeover",)
    )
    takeovers = [p for p in payments if p.scenario == "account_takeover"]
    assert takeovers and RISKY == 2
    homes: dict[str, list[tuple[float, float]]] = {}
    for p in payments:
        if not p.label:
            homes.setdefault(p.event.customer_id, []).append((p.event.lat, p.event.lon))
    for p in takeovers:
        usual = homes.get(p.event.customer_id)
        if usual:
            lat, lon = np.mean(usual, axis=0)
            km = np.hypot((p.event.lat - lat) * 111.2, (p.event.lon - lon) * 73.2)
            assert km > 15.0


def test_every_event_validates_against_the_wire_schema(payments: list[LabelledPayment]) -> None:
    decoder = msgspec.json.Decoder(PaymentTransaction)
    labels = msgspec.json.Decoder(PaymentLabel)
    for p in payments[:5_000]:
        assert decoder.decode(encode(p.event)) == p.event
        assert labels.decode(encode(payment_label(p))) == payment_label(p)
    assert {p.event.currency for p in payments} == {"EUR"}
    assert {len(p.event.mcc) for p in payments} == {4}


def test_labelled_file_and_ground_truth_round_trip(tmp_path: Path) -> None:
    payments = simulate_payments(300, seed=1, run_id="file")
    path = tmp_path / "payments.jsonl"
    assert write_labelled_payments(path, payments) == 300
    assert read_labelled_payments(path) == payments
    truth = tmp_path / "truth.jsonl"
    write_ground_truth(truth, payments)
    rows = read_ground_truth(truth)
    assert [(g.event_id, g.label, g.scenario) for g in rows] == [
        (p.event.event_id, p.label, p.scenario) for p in payments
    ]
    assert set(msgspec.json.decode(truth.read_bytes().splitlines()[0])) == {
        "event_id",
        "label",
        "scenario",
    }


def test_a_bad_line_is_a_malformed_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = msgspec.json.encode(simulate_payments(1, seed=0)[0])
    path.write_bytes(good + b"\n" + good.replace(b'"EUR"', b'"euro"') + b"\n")
    with pytest.raises(MalformedError, match=r"bad.jsonl:2: not a LabelledPayment"):
        read_labelled_payments(path)


@pytest.mark.parametrize("run_id", ["", "has space", "x" * 65, "a/b"])
def test_run_ids_that_cannot_be_event_ids_are_refused(run_id: str) -> None:
    with pytest.raises(UsageError, match="run id"):
        simulate_payments(10, run_id=run_id)


def test_unknown_scenarios_are_refused() -> None:
    with pytest.raises(UsageError, match="unknown fraud scenarios"):
        simulate_payments(10, scenarios=("high_amount", "phishing"))
