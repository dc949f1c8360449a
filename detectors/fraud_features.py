"""The fraud detector's features: the customer's history and the terminal's label history.

A payment's vector is `payment_features` (its customer's state, `detectors.features_payments`)
followed
by `terminal_features` (its terminal's label state, `detectors.terminal_risk`). The two states
live apart because they are keyed apart: the stream reads payments keyed by customer and
labels keyed by terminal. Customer state is read and written by the payment itself; terminal
state only by labels, and the payment merely reads it (see docs/detectors.md, "Terminal
risk online").

`FraudFeaturizer` is the one function both paths call: the stream hands it a faust
GlobalTable of terminal states, and the offline replay (`replay_payments`) a dict it fills by
applying the label events in arrival order, so the vectors agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from attestcore.schemas import PaymentLabel, PaymentTransaction
from detectors.features_payments import (
    PAYMENT_FEATURES,
    FeatureVector,
    State,
    initial_payment_state,
    payment_features,
)
from detectors.simulate_payments import LabelledPayment, arrival_order
from detectors.terminal_risk import TERMINAL_FEATURES, apply_label, terminal_features

FRAUD_FEATURES: tuple[str, ...] = PAYMENT_FEATURES + TERMINAL_FEATURES


class FraudFeaturizer:
    """`(payment, customer state or None) -> (features, new customer state)`, reading the
    payment's terminal state from `terminals` (never writing it)."""

    names = FRAUD_FEATURES

    def __init__(self, terminals: Mapping[str, State] | None = None) -> None:
        self.terminals: Mapping[str, State] = {} if terminals is None else terminals

    def attach(self, terminals: Mapping[str, State]) -> None:
        """Read terminal states from `terminals` from now on (the stream's GlobalTable)."""
        self.terminals = terminals

    def __call__(
        self, event: PaymentTransaction, state: State | None
    ) -> tuple[FeatureVector, State]:
        customer, new_state = payment_features(
            event, state if state is not None else initial_payment_state()
        )
        terminal = terminal_features(
            event.event_time.timestamp(), self.terminals.get(event.terminal_id)
        )
        return customer + terminal, new_state


def replay_payments(
    payments: Sequence[LabelledPayment],
) -> Iterator[tuple[int, PaymentTransaction, FeatureVector]]:
    """Each payment's index, event and features, replaying payments and labels in the order
    the issuer receives them (`arrival_order`), as the stream does."""
    index = {id(p.event): i for i, p in enumerate(payments)}
    terminals: dict[str, State] = {}
    customers: dict[str, State] = {}
    featurize = FraudFeaturizer(terminals)
    for item in arrival_order(payments):
        if isinstance(item, PaymentLabel):
            terminals[item.terminal_id] = apply_label(item, terminals.get(item.terminal_id))
        else:
            vector, customers[item.customer_id] = featurize(item, customers.get(item.customer_id))
            yield index[id(item)], item, vector
