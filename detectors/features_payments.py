"""Payment features per customer: `(event, state) -> (features, new_state)`, pure.

The rules of `detectors.features` hold here: no clock, no randomness, the given state never
mutated, a small JSON state of bounded size (it lives in a faust Table changelog), floats in
`PAYMENT_FEATURES` order. The windows follow the fraud handbook (Le Borgne et al., chapter 3.4):
a customer's count and mean amount over 1, 7 and 30 days, weekend and night flags; the rest
(amount against the customer's mean, time and distance since the previous payment, a new
device, a merchant category never used) go beyond it.

A value that does not exist yet (time since the previous payment, on a customer's first one)
is `MISSING` (-1.0): every real value of those features is >= 0, so a tree separates it with
one split. Times are epoch seconds in UTC; "days" are UTC calendar days.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Any

from attestcore.schemas import Channel, PaymentTransaction
from detectors.geo import haversine_km

State = dict[str, Any]
FeatureVector = tuple[float, ...]

STATE_VERSION = 2
MISSING = -1.0
SECONDS_PER_DAY = 86_400
WINDOW_DAYS = (1, 7, 30)
NIGHT_END_HOUR = 6  # payments from 00:00 to 05:59 UTC count as night (handbook ch. 3.4)
MAX_DEVICES = 8  # recent devices remembered per customer (most recent last)
MAX_MCCS = 32  # recent merchant categories remembered per customer
MAX_RECENT = 32  # recent (time, amount) pairs remembered per customer
SMALL_AMOUNT = 2.0  # card testers probe with payments below this (a euro or two)
# Amount ratios are capped here: an amount over a mean or median of denormal amounts
# (5e-324) would otherwise overflow to infinity. No genuine ratio comes near it (amounts are
# at most 1e9), and it is far inside float32's range, which the model reads.
MAX_AMOUNT_RATIO = 1e12

PAYMENT_FEATURES: tuple[str, ...] = (
    "amount",
    "log_amount",
    "is_night",
    "is_weekend",
    "is_ecommerce",
    "customer_tx_count_1d",
    "customer_mean_amount_1d",
    "customer_tx_count_7d",
    "customer_mean_amount_7d",
    "customer_tx_count_30d",
    "customer_mean_amount_30d",
    "amount_to_mean_30d",
    "seconds_since_previous_tx",
    "km_from_previous_terminal",
    "new_device",
    "mcc_seen_before",
    "amount_to_median_recent",
    "customer_tx_count_1h",
    "customer_small_tx_count_24h",
)


def initial_payment_state() -> State:
    """A customer never seen before.

    `days` holds `[utc_day, count, amount_sum]` buckets for the last `max(WINDOW_DAYS)` days,
    oldest first: enough for every window at a fixed size. `recent` holds the last
    `MAX_RECENT` payments as `[ts, amount]`, for the short windows and the median amount.
    """
    return {
        "v": STATE_VERSION,
        "days": [],
        "last_ts": None,
        "last_lat": None,
        "last_lon": None,
        "devices": [],
        "mccs": [],
        "recent": [],
    }


def payment_features(event: PaymentTransaction, state: State) -> tuple[FeatureVector, State]:
    """The feature vector of one payment given its customer's state, and the updated state.

    Window counts and means include the payment itself (as in the handbook), so a customer's
    first payment has count 1 and mean = amount.

    Every window, count and list is computed in one pass where the first version took one
    per window; each sum still adds the same values in the same order, so the values are
    bit for bit the first version's (tests/reference_payment_features.py).
    """
    ts = event.event_time.timestamp()
    day = math.floor(ts / SECONDS_PER_DAY)
    amount = float(event.amount)
    seen = _add_to_day(state["days"], day, amount)
    # Over the buckets before the horizon drops old days, so a payment older than the
    # horizon still counts itself (count >= 1) and its windows are defined.
    windows = _windows(seen, day)
    buckets = _within_horizon(seen)
    mean_30d = windows[-1]
    device = event.device_id
    weekday = (day + 3) % 7  # Monday = 0; 1970-01-01 (day 0) was a Thursday
    hour = math.floor(ts % SECONDS_PER_DAY / 3600)
    recent = state["recent"]
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
        *_recent_features(recent, ts, amount),
    )
    if len(recent) >= MAX_RECENT:
        recent = recent[len(recent) - MAX_RECENT + 1 :]
    new_state = {
        "v": STATE_VERSION,
        "days": buckets,
        "last_ts": ts,
        "last_lat": event.lat,
        "last_lon": event.lon,
        "devices": _remember(state["devices"], device, MAX_DEVICES),
        "mccs": _remember(state["mccs"], event.mcc, MAX_MCCS),
        "recent": [*recent, [ts, amount]],
    }
    return features, new_state


_time_of, _amount_of = itemgetter(0), itemgetter(1)  # of a `recent` pair [ts, amount]


def _recent_features(recent: list[list[float]], ts: float, amount: float) -> FeatureVector:
    """Amount against the median of the customer's last payments (robust to a few inflated
    fraudulent ones, unlike the mean), payments in the last hour and small "probe" payments
    in the last day, both counting this one.

    Counted on the sorted times and amounts (a payment of the last hour is one of the last
    day too); only a customer with a small amount among the last payments needs a pass over
    them, to pair each small amount with its time.
    """
    amounts = sorted(map(_amount_of, recent))
    times = sorted(map(_time_of, recent))
    last_hour = bisect_right(times, ts) - bisect_left(times, ts - 3_600)
    small = 0
    if amounts and amounts[0] < SMALL_AMOUNT:
        day_ago = ts - SECONDS_PER_DAY
        for t, a in recent:
            if a < SMALL_AMOUNT and day_ago <= t <= ts:
                small += 1
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
    bounds the state. Days are unique and sorted, so most payments (today's bucket, or a new
    day after the newest) touch only the end of the list.
    """
    buckets = list(days)  # buckets are replaced, never changed: the given state stays intact
    newest = buckets[-1][0] if buckets else None
    if newest == day:
        _, count, total = buckets[-1]
        buckets[-1] = [day, count + 1, total + amount]
        return buckets
    if newest is None or newest < day:
        buckets.append([day, 1, amount])
        return buckets
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


_SHORT, _MIDDLE, _LONG = WINDOW_DAYS


def _windows(buckets: list[list[Any]], day: int) -> list[float]:
    """Count and mean amount over the UTC days `day - width + 1 .. day` inclusive, for each
    width of WINDOW_DAYS: `[count_1d, mean_1d, count_7d, mean_7d, count_30d, mean_30d]`.
    Each sum adds its buckets oldest first, as one pass per window would."""
    c1 = c2 = c3 = 0
    t1 = t2 = t3 = 0.0
    for bucket_day, n, amount_sum in buckets:
        age = day - bucket_day
        if age < 0 or age >= _LONG:
            continue
        c3 += n
        t3 += amount_sum
        if age < _MIDDLE:
            c2 += n
            t2 += amount_sum
            if age < _SHORT:
                c1 += n
                t1 += amount_sum
    return [float(c1), t1 / c1, float(c2), t2 / c2, float(c3), t3 / c3]


def _remember(items: list[str], item: str | None, limit: int) -> list[str]:
    """Most-recently-used list: `item` moved to the end, the oldest dropped beyond `limit`."""
    if item is None:
        return list(items)
    if items and items[-1] == item and items.count(item) == 1:
        return items[-limit:]  # already the most recent: most payments
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
