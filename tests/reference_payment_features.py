"""The customer features as first written, one helper per window and list: the reference
the faster `detectors.features_payments.payment_features` is compared with, value for value
and state for state (tests/unit/detectors/test_payment_features_reference.py)."""

from __future__ import annotations

import math
from typing import Any

from attestcore.schemas import Channel, PaymentTransaction
from detectors.features_payments import (
    MAX_AMOUNT_RATIO,
    MAX_DEVICES,
    MAX_MCCS,
    MAX_RECENT,
    MISSING,
    NIGHT_END_HOUR,
    SECONDS_PER_DAY,
    SMALL_AMOUNT,
    STATE_VERSION,
    WINDOW_DAYS,
    FeatureVector,
    State,
)
from detectors.geo import haversine_km


def reference_payment_features(
    event: PaymentTransaction, state: State
) -> tuple[FeatureVector, State]:
    """The feature vector of one payment given its customer's state, and the updated state.

    Window counts and means include the payment itself (as in the handbook), so a customer's
    first payment has count 1 and mean = amount.
    """
    ts = event.event_time.timestamp()
    day = math.floor(ts / SECONDS_PER_DAY)
    amount = float(event.amount)
    seen = _add_to_day(state["days"], day, amount)
    windows: list[float] = []
    for width in WINDOW_DAYS:
        # Over the buckets before the horizon drops old days, so a payment older than the
        # horizon still counts itself (count >= 1) and its windows are defined.
        count, total = _window(seen, day, width)
        windows += [float(count), total / count]
    buckets = _within_horizon(seen)
    mean_30d = windows[-1]
    device = event.device_id
    weekday = (day + 3) % 7  # Monday = 0; 1970-01-01 (day 0) was a Thursday
    hour = math.floor(ts % SECONDS_PER_DAY / 3600)
    features = (
        amount,
        math.log1p(amount),
        1.0 if hour < NIGHT_END_HOUR else 0.0,
        1.0 if weekday >= 5 else 0.0,
        1.0 if event.channel == Channel.ECOMMERCE else 0.0,
        *windows,
        _ratio(amount, mean_30d, 1.0),
        _seconds_since(state["last_ts"], ts),
        _km_from(state["last_lat"], state["last_lon"], event.lat, event.lon),
        1.0 if device is not None and device not in state["devices"] else 0.0,
        1.0 if event.mcc in state["mccs"] else 0.0,
        *_recent_features(state["recent"], ts, amount),
    )
    new_state = {
        "v": STATE_VERSION,
        "days": buckets,
        "last_ts": ts,
        "last_lat": event.lat,
        "last_lon": event.lon,
        "devices": _remember(state["devices"], device, MAX_DEVICES),
        "mccs": _remember(state["mccs"], event.mcc, MAX_MCCS),
        "recent": [*state["recent"], [ts, amount]][-MAX_RECENT:],
    }
    return features, new_state


def _recent_features(recent: list[list[float]], ts: float, amount: float) -> FeatureVector:
    """Amount against the median of the customer's last payments (robust to a few inflated
    fraudulent ones, unlike the mean), payments in the last hour and small "probe" payments
    in the last day, both counting this one."""
    amounts = []
    last_hour = small = 0
    for t, a in recent:
        amounts.append(a)
        if ts - SECONDS_PER_DAY <= t <= ts:
            last_hour += t >= ts - 3_600
            small += a < SMALL_AMOUNT
    amounts.sort()
    middle = len(amounts) // 2
    median = (amounts[middle] + amounts[~middle]) / 2 if amounts else 0.0
    return (
        _ratio(amount, median, MISSING),
        float(last_hour + 1),
        float(small + (1 if amount < SMALL_AMOUNT else 0)),
    )


def _ratio(amount: float, reference: float, undefined: float) -> float:
    """`amount / reference`, `undefined` without a positive reference, capped so that it never
    overflows (`MAX_AMOUNT_RATIO`)."""
    if not reference > 0:
        return undefined
    if amount >= reference * MAX_AMOUNT_RATIO:
        return MAX_AMOUNT_RATIO
    return amount / reference


def _add_to_day(days: list[list[Any]], day: int, amount: float) -> list[list[Any]]:
    """New bucket list (oldest first) with the payment added to its own day's bucket.

    A late (out-of-order) payment lands in its own day's bucket too; `_within_horizon` then
    bounds the state.
    """
    buckets = list(days)  # buckets are replaced, never changed: the given state stays intact
    for i, (bucket_day, count, total) in enumerate(buckets):
        if bucket_day == day:
            buckets[i] = [day, count + 1, total + amount]
            break
    else:
        buckets.append([day, 1, amount])
        buckets.sort(key=lambda b: b[0])
    return buckets


def _within_horizon(buckets: list[list[Any]]) -> list[list[Any]]:
    """The buckets of the widest window measured from the newest day seen, so the state stays
    bounded whatever the order of payments."""
    horizon = buckets[-1][0] - max(WINDOW_DAYS) + 1
    if buckets[0][0] >= horizon:
        return buckets  # nothing to drop: most payments
    return [b for b in buckets if b[0] >= horizon]


def _window(buckets: list[list[Any]], day: int, width: int) -> tuple[int, float]:
    """Count and amount sum over UTC days `day - width + 1 .. day` inclusive."""
    count, total = 0, 0.0
    for bucket_day, n, amount_sum in buckets:
        if day - width < bucket_day <= day:
            count += n
            total += amount_sum
    return count, total


def _remember(items: list[str], item: str | None, limit: int) -> list[str]:
    """Most-recently-used list: `item` moved to the end, the oldest dropped beyond `limit`."""
    if item is None:
        return list(items)
    kept = [x for x in items if x != item]
    kept.append(item)
    return kept[-limit:]


def _seconds_since(last_ts: float | None, ts: float) -> float:
    # An event older than the last one (out of order) counts as simultaneous, never negative.
    return MISSING if last_ts is None else max(0.0, ts - last_ts)


def _km_from(lat: float | None, lon: float | None, to_lat: float, to_lon: float) -> float:
    if lat is None or lon is None:
        return MISSING
    return haversine_km(lat, lon, to_lat, to_lon)
