"""Pure feature functions: `(event, state) -> (features, new_state)`.

The stream calls them on every event with the entity's state from a faust Table, and training
replays history through the very same functions (`detectors.dataset`), so what the model
learnt on is exactly what it sees online. To make that hold they:

- depend only on `(event, state)`: no clock, no randomness, no module state;
- never mutate the state they are given, and return a fresh one;
- keep the state a small plain dict of JSON types (str, int, float, list, None), bounded in
  size whatever the entity's history, because it is stored in a Table changelog;
- return floats in the order of `PAYMENT_FEATURES` / `SUPPLY_FEATURES`.

A value that does not exist yet (time since the previous payment, on a customer's first one)
is `MISSING` (-1.0): every real value of those features is >= 0, so a tree separates it with
one split. Times are epoch seconds in UTC; "days" are UTC calendar days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attestcore.schemas import Detector, PaymentTransaction, SupplyChainEvent
from detectors.features_payments import (
    MAX_DEVICES,
    MISSING,
    PAYMENT_FEATURES,
    SECONDS_PER_DAY,
    WINDOW_DAYS,
    FeatureVector,
    State,
    initial_payment_state,
    payment_features,
)
from detectors.features_supply import (
    SUPPLY_FEATURES,
    initial_supply_state,
    supply_features,
)
from detectors.fraud_features import FRAUD_FEATURES, FraudFeaturizer
from detectors.reference import ReferenceDataDigest
from detectors.reference.supply import default_supply_reference
from detectors.supply_calibration import default_calibration

__all__ = [
    "FEATURES",
    "FEATURE_SPECS",
    "FRAUD_FEATURES",
    "MAX_DEVICES",
    "MISSING",
    "PAYMENT_FEATURES",
    "SECONDS_PER_DAY",
    "SUPPLY_FEATURES",
    "WINDOW_DAYS",
    "FeatureSpec",
    "FeatureVector",
    "State",
    "initial_payment_state",
    "initial_supply_state",
    "payment_features",
    "supply_features",
]


# --- payments: per customer `detectors.features_payments`, per terminal from late labels
# `detectors.terminal_risk`, both together `detectors.fraud_features` ----------------------------
# --- supply chain, state per EPC: see `detectors.features_supply` ------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    """What the stream and the replay need to featurise one detector's events."""

    detector: Detector
    names: tuple[str, ...]
    entity: Callable[[Any], str]  # the Table key: whose state an event reads and updates
    featurize: Callable[[Any, State], tuple[FeatureVector, State]]
    initial_state: Callable[[], State]
    # The reference files the features read, recorded by digest in the model card.
    reference_data: Callable[[], tuple[ReferenceDataDigest, ...]] = tuple


def _customer(event: PaymentTransaction) -> str:
    return event.customer_id


def _epc(event: SupplyChainEvent) -> str:
    return event.epc


FEATURE_SPECS: dict[Detector, FeatureSpec] = {
    # The fraud features also read terminal risk, which only labels update: `build_dataset`
    # replays payments with their labels (`detectors.fraud_features.replay_payments`) and the
    # stream attaches its terminal table; this featurizer alone sees no label.
    Detector.FRAUD: FeatureSpec(
        Detector.FRAUD, FRAUD_FEATURES, _customer, FraudFeaturizer(), initial_payment_state
    ),
    Detector.AUTHENTICITY: FeatureSpec(
        Detector.AUTHENTICITY,
        SUPPLY_FEATURES,
        _epc,
        supply_features,
        initial_supply_state,
        lambda: (default_supply_reference().digest(), default_calibration()[1]),
    ),
}
FEATURES: dict[Detector, tuple[str, ...]] = {d: spec.names for d, spec in FEATURE_SPECS.items()}
