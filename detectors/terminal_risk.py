"""Terminal risk from late labels: pure functions over a terminal's label history.

The handbook (Le Borgne et al., chapter 3.4) describes a terminal by the number of its
transactions and the share of them that were fraud over 1, 7 and 30 days, shifted back by the
7-day delay after which labels are known. Here the same idea is computed from what actually
arrived: every payment gets exactly one label event (`streams.schemas.PaymentLabel`: a
chargeback, or a confirmation once the window passed without one), and a terminal's state
counts those labels by the UTC day they *arrived*. A payment on day D sees the labels that
arrived on days D - w .. D - 1 for a window of w days, never one that arrived on day D or
later, so:

- nothing is used before it is known, whatever the label delays (with the handbook's fixed
  7-day delay these are the labels of the payments of days D - 7 - w .. D - 8);
- the result does not depend on how label and payment events interleave within a day, which
  is what makes the stream (two topics read concurrently) agree with the offline replay.

The state is a small JSON dict, bounded whatever the terminal's traffic: one
`[arrival_day, labels, frauds]` bucket per day for the last `TERMINAL_HORIZON_DAYS` days.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.features_payments import MISSING, SECONDS_PER_DAY, WINDOW_DAYS, FeatureVector, State
from streams.schemas import PaymentLabel

TERMINAL_STATE_VERSION = 1
# Buckets kept: the widest window, plus a week of slack for labels read ahead of payments
# (a fast replay of history can deliver labels of days whose payments are not scored yet).
TERMINAL_HORIZON_DAYS = max(WINDOW_DAYS) + 7

TERMINAL_FEATURES: tuple[str, ...] = tuple(
    name
    for width in WINDOW_DAYS
    for name in (f"terminal_labels_{width}d", f"terminal_fraud_rate_{width}d")
)


def initial_terminal_state() -> State:
    """A terminal with no label yet."""
    return {"v": TERMINAL_STATE_VERSION, "days": []}


def utc_day(ts: float) -> int:
    return math.floor(ts / SECONDS_PER_DAY)


def apply_label(label: PaymentLabel, state: State | None) -> State:
    """The terminal's state with one more label, counted on the day it arrived."""
    day = utc_day(label.label_time.timestamp())
    buckets = [list(b) for b in (state or initial_terminal_state())["days"]]
    for bucket in buckets:
        if bucket[0] == day:
            bucket[1] += 1
            bucket[2] += 1 if label.fraud else 0
            break
    else:
        buckets.append([day, 1, 1 if label.fraud else 0])
        buckets.sort(key=lambda b: b[0])
    horizon = buckets[-1][0] - TERMINAL_HORIZON_DAYS + 1
    return {"v": TERMINAL_STATE_VERSION, "days": [b for b in buckets if b[0] >= horizon]}


def terminal_features(event_ts: float, state: State | None) -> FeatureVector:
    """Label count and fraud rate over each window, in `TERMINAL_FEATURES` order.

    The rate of a window without labels does not exist: `MISSING`.
    """
    day = utc_day(event_ts)
    days: list[list[Any]] = [] if state is None else state["days"]
    values: list[float] = []
    for width in WINDOW_DAYS:
        labels = frauds = 0
        for bucket_day, n, n_fraud in days:
            if day - width <= bucket_day < day:
                labels += n
                frauds += n_fraud
        values += [float(labels), frauds / labels if labels else MISSING]
    return tuple(values)
