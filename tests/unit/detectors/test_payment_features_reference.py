"""The one-pass customer features against their first version, value for value.

`payment_features` computes its windows, counts and lists in one pass each; the reference
(`reference_payment_features`, the first version kept for tests) takes one per window. The
two must give the same floats, bit for bit, and the same states, in arrival order and in any
order (late payments land in older days' buckets, out-of-order times count as simultaneous).
"""

from __future__ import annotations

import random
import struct

import msgspec
from reference_payment_features import reference_payment_features

from attestcore.schemas import PaymentTransaction
from detectors.features_payments import (
    MAX_RECENT,
    FeatureVector,
    State,
    initial_payment_state,
    payment_features,
)
from detectors.simulate_payments import LabelledPayment


def bits(vector: FeatureVector) -> list[bytes]:
    """Each float's IEEE 754 bytes: equal floats that differ in sign of zero differ here."""
    return [struct.pack("<d", value) for value in vector]


def replay_both(events: list[PaymentTransaction]) -> int:
    """Feed both versions the same events, each customer's state carried (and round-tripped
    through JSON, as the stream's changelog does); return how many were compared."""
    fast: dict[str, State] = {}
    reference: dict[str, State] = {}
    for event in events:
        key = event.customer_id
        vector, fast[key] = payment_features(event, fast.get(key) or initial_payment_state())
        expected, reference[key] = reference_payment_features(
            event, reference.get(key) or initial_payment_state()
        )
        assert bits(vector) == bits(expected), event.event_id
        assert fast[key] == reference[key], event.event_id
        fast[key] = msgspec.json.decode(msgspec.json.encode(fast[key]))
        reference[key] = msgspec.json.decode(msgspec.json.encode(reference[key]))
    return len(events)


def test_arrival_order_matches_the_first_version(payments: list[LabelledPayment]) -> None:
    assert replay_both([p.event for p in payments]) == len(payments)


def test_shuffled_payments_match_the_first_version(payments: list[LabelledPayment]) -> None:
    """Out of order: late payments in older buckets, days before the horizon, the same
    device and merchant category again and again, more than MAX_RECENT per customer."""
    events = [p.event for p in payments]
    rng = random.Random(7)
    few_customers = [
        msgspec.structs.replace(e, customer_id=f"C{i % 3}", device_id=f"D{i % 2}")
        for i, e in enumerate(events[:600])
    ]
    rng.shuffle(few_customers)
    assert len(few_customers) // 3 > MAX_RECENT
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert replay_both(few_customers + shuffled) == len(few_customers) + len(events)
