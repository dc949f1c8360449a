"""Terminal risk from late labels: pure functions over a terminal's label history.

The handbook (Le Borgne et al., chapter 3.4) describes a terminal by the number of its
transactions and the share of them that were fraud over 1, 7 and 30 days, shifted back by the
7-day delay after which labels are known. Here the same idea is computed from what actually
arrived: every payment gets exactly one label event (`attestcore.schemas.PaymentLabel`: a
chargeback, or a confirmation once the window passed without one), and a terminal's state
counts those labels by the UTC hour they *arrived*. A payment in hour H sees the labels that
arrived in hours H - 24 w .. H - 1 for a window of w days, never one of hour H or later, so:

- nothing is used before it is known, whatever the label delays (with the handbook's fixed
  7-day delay these are, to the hour, the handbook's shifted windows);
- the result does not depend on how label and payment events interleave within an hour,
  which is what lets the stream (two topics read concurrently) agree with the offline replay.

Beyond the handbook, two features read the most recent labels: the hours since the last
chargeback, and the fraud share of the last `RECENT_LABELS` labels. A compromised terminal
stays compromised for weeks, so one fresh chargeback says more than a rate diluted by the
genuine payments of the days before the compromise.

The state is a small JSON dict, bounded whatever the terminal's traffic: one
`[arrival_hour, labels, frauds]` bucket per hour with labels, for the last
`TERMINAL_HORIZON_DAYS` days (at most 24 x 37 buckets).
"""

from __future__ import annotations

import math
from typing import Any

from attestcore.schemas import PaymentLabel
from detectors.features_payments import MISSING, WINDOW_DAYS, FeatureVector, State

TERMINAL_STATE_VERSION = 2
SECONDS_PER_HOUR = 3_600
# Buckets kept: the widest window, plus a week of slack for labels read ahead of payments
# (a fast replay of history can deliver labels of hours whose payments are not scored yet).
TERMINAL_HORIZON_DAYS = max(WINDOW_DAYS) + 7
RECENT_LABELS = 3  # "the last few labels": enough to see a run of chargebacks

TERMINAL_FEATURES: tuple[str, ...] = (
    *(
        name
        for width in WINDOW_DAYS
        for name in (f"terminal_labels_{width}d", f"terminal_fraud_rate_{width}d")
    ),
    "terminal_hours_since_chargeback",
    "terminal_recent_fraud_share",
)


def initial_terminal_state() -> State:
    """A terminal with no label yet."""
    return {"v": TERMINAL_STATE_VERSION, "hours": []}


def utc_hour(ts: float) -> int:
    return math.floor(ts / SECONDS_PER_HOUR)


def apply_label(label: PaymentLabel, state: State | None) -> State:
    """The terminal's state with one more label, counted in the hour it arrived."""
    hour = utc_hour(label.label_time.timestamp())
    fraud = 1 if label.fraud else 0
    # Buckets are replaced, never changed: the given state stays intact.
    buckets = list((state or initial_terminal_state())["hours"])
    for i, (bucket_hour, labels, frauds) in enumerate(buckets):
        if bucket_hour == hour:
            buckets[i] = [hour, labels + 1, frauds + fraud]
            break
    else:
        buckets.append([hour, 1, fraud])
        buckets.sort(key=lambda b: b[0])
    horizon = buckets[-1][0] - 24 * TERMINAL_HORIZON_DAYS + 1
    return {"v": TERMINAL_STATE_VERSION, "hours": [b for b in buckets if b[0] >= horizon]}


def terminal_features(event_ts: float, state: State | None) -> FeatureVector:
    """The features of `TERMINAL_FEATURES`, from labels that arrived before the payment's hour.

    The rate of a window without labels, the hours since a chargeback when there was none in
    the horizon, and the recent share without any label do not exist: `MISSING`.
    """
    hour = utc_hour(event_ts)
    arrived: list[list[Any]] = [] if state is None else [b for b in state["hours"] if b[0] < hour]
    values: list[float] = []
    for width in WINDOW_DAYS:
        labels = frauds = 0
        for bucket_hour, n, n_fraud in arrived:
            if bucket_hour >= hour - 24 * width:
                labels += n
                frauds += n_fraud
        values += [float(labels), frauds / labels if labels else MISSING]
    chargebacks = [b[0] for b in arrived if b[2] > 0]
    values.append(float(hour - chargebacks[-1]) if chargebacks else MISSING)
    values.append(_recent_fraud_share(arrived))
    return tuple(values)


def _recent_fraud_share(arrived: list[list[Any]]) -> float:
    """Fraud share of the latest hours' labels, going back until `RECENT_LABELS` are counted
    (a busy hour can hold more: its whole count is taken)."""
    labels = frauds = 0
    for _, n, n_fraud in reversed(arrived):
        labels += n
        frauds += n_fraud
        if labels >= RECENT_LABELS:
            break
    return frauds / labels if labels else MISSING
