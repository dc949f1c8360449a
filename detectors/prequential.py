"""The fraud handbook's prequential protocol and card precision, in numpy.

Definitions from Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud
Detection - Practical Handbook* (chapters 4.2, 5.2), re-stated here:

- A fold trains on `train_days` days, leaves `delay_days` days out (their labels would not be
  known yet when the model is put to use) and tests on the `test_days` days after that.
  Folds move back in time by `test_days`, so their test weeks do not overlap.
- Cards known to be compromised are taken out of the test days: those with a fraud in the
  training days, and, for test day i, those with a fraud on the day `delay_days + 1` days
  before it (its labels have arrived by then).
- Card precision top-k of one day: group the day's payments by card, score a card by its
  highest payment score and label it compromised if any of its payments that day is fraud,
  take the k best-scored cards, and count the compromised share (ties broken by card order).
  Over a test period, a card found compromised in a day's top k is left out of the later
  days, and the daily values are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    """Day numbers (0 = the first day of the data) of one prequential fold."""

    train_start: int
    train_days: int
    delay_days: int
    test_days: int

    @property
    def test_start(self) -> int:
        return self.train_start + self.train_days + self.delay_days

    @property
    def test_end(self) -> int:
        return self.test_start + self.test_days

    def train_mask(self, day: np.ndarray) -> np.ndarray:
        return (day >= self.train_start) & (day < self.train_start + self.train_days)

    def test_mask(self, day: np.ndarray, card: np.ndarray, label: np.ndarray) -> np.ndarray:
        """The fold's test payments, without those of cards already known compromised."""
        fraud = label.astype(bool)
        known = set(card[self.train_mask(day) & fraud].tolist())
        keep = np.zeros(len(day), dtype=bool)
        for test_day in range(self.test_start, self.test_end):
            newly_known = (day == test_day - self.delay_days - 1) & fraud
            known |= set(card[newly_known].tolist())
            today = np.flatnonzero(day == test_day)
            keep[today] = ~np.isin(card[today], list(known))
        return keep


def prequential_folds(
    n_days: int, folds: int, train_days: int = 7, delay_days: int = 7, test_days: int = 7
) -> list[Fold]:
    """`folds` folds whose latest test period ends with the data, each `test_days` earlier
    than the one before; the first is the latest."""
    span = train_days + delay_days + test_days
    result = []
    for k in range(folds):
        start = n_days - span - k * test_days
        if start < 0:
            raise ValueError(f"{n_days} days hold only {k} fold(s) of {span} days")
        result.append(Fold(start, train_days, delay_days, test_days))
    return result


def card_precision_top_k_day(
    card: np.ndarray, score: np.ndarray, label: np.ndarray, k: int
) -> tuple[float, list[int]]:
    """One day's card precision top-k, and the compromised cards in that top k."""
    if len(card) == 0:
        return 0.0, []
    cards, inverse = np.unique(card, return_inverse=True)
    best = np.full(len(cards), -np.inf)
    np.maximum.at(best, inverse, score)
    compromised = np.zeros(len(cards), dtype=bool)
    np.logical_or.at(compromised, inverse, label.astype(bool))
    top = np.argsort(-best, kind="stable")[:k]
    found = cards[top][compromised[top]]
    return len(found) / k, [int(c) for c in found]


def card_precision_top_k(
    day: np.ndarray, card: np.ndarray, score: np.ndarray, label: np.ndarray, k: int = 100
) -> tuple[float, list[float]]:
    """Mean daily card precision top-k over the days present, and the daily values."""
    detected: set[int] = set()
    daily: list[float] = []
    for d in np.unique(day):
        today = (day == d) & ~np.isin(card, list(detected))
        precision, found = card_precision_top_k_day(card[today], score[today], label[today], k)
        daily.append(precision)
        detected.update(found)
    return (float(np.mean(daily)) if daily else 0.0), daily


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over folds, as the handbook reports them."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0
