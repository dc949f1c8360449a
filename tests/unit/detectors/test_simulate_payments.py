from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from attestream.errors import MalformedError, UsageError
from detectors.labelled import read_ground_truth, write_ground_truth
from detectors.simulate_payments import (
    HIGH_AMOUNT,
    LabelledPayment,
    read_labelled_payments,
    simulate_payments,
    write_labelled_payments,
)
from streams.schemas import PaymentTransaction, encode

SCENARIOS = {"high_amount", "compromised_terminal", "compromised_customer", "account_takeover"}


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
    assert set(counts) == SCENARIOS | {""}
    assert all(counts[s] > 0 for s in SCENARIOS)
    assert all(p.label == (1 if p.scenario else 0) for p in payments)
    fraud_rate = sum(p.label for p in payments) / len(payments)
    assert 0.005 < fraud_rate < 0.03


def test_scenarios_look_like_their_description(payments: list[LabelledPayment]) -> None:
    high = [p for p in payments if p.scenario == "high_amount"]
    assert all(p.event.amount > HIGH_AMOUNT for p in high)
    takeovers = [p for p in payments if p.scenario == "account_takeover"]
    assert all(p.event.device_id and p.event.channel == "ecommerce" for p in takeovers)
    assert {p.event.mcc for p in takeovers} <= {"6051", "4829", "7995", "5944"}


def test_every_event_validates_against_the_wire_schema(payments: list[LabelledPayment]) -> None:
    decoder = msgspec.json.Decoder(PaymentTransaction)
    for p in payments:
        assert decoder.decode(encode(p.event)) == p.event
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
