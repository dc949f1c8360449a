"""Competing tracks of one EPC: which physical item does each scan belong to?

One EPC may be on two items (the genuine one and a copy), and the first one seen is not
necessarily the genuine one. So the state keeps up to `MAX_TRACKS` *tracks*, each the last
`MAX_TRACK` scans of one hypothesised physical item in event-time order, and each scored by
its plausibility as the genuine item (`plausibility`). A scan joins the track it fits at the
lowest cost (`fit`) or starts a new one when it fits none; a scan whose tag challenge failed,
a pallet-level read and an error declaration never start or extend a track.

The cost of a scan on a track is `-ln P(the genuine item's reads look like this)` under the
learned calibration (`detectors.supply_calibration`):

- free: the next step of a life (GS1 CBV order), a duplicate of a read, a late upload placed
  at its event time, a customer bringing a sold item to another site (a return at any shop,
  a repair at a service site), the shop shipping what it sold, and a receipt explained by a
  known despatch to it or by a declared source at the track's last site (a missed shipping
  read);
- a missed read, `-ln(site miss rate)`: a second sale without a return read, a return
  without a sale read, a receipt after a sale without a return authorisation, any other read
  of a sold item at another site than its shop (a sold item is with its customer: it was
  brought back somewhere, unread); and a move to
  another site without a shipping read, which also costs `-ln` of how common such a move
  (between these two site roles) is;
- impossible (`HARD`): faster than the learned speed cap (except along one of the EPC's known
  despatches: the brand's own logistics may fly), a read after a decommissioning, a
  commissioning or packing after later steps. Reads closer in time than the clock skew
  allowance are checked in both orders.

A track entry is `[event time, lat, lon, biz_location, biz_step, role rank or None,
event_id]`; a track is `{"e": entries, "n": scans joined, "c": commissioned at a factory,
"v": verified challenges, "x": receipts matching a despatch, "sold": open sales,
"dead": decommissioning time or None, "out": [event_id, destination, event time] of the shipping
that sent it out of the product's authorised markets, or None; absent in older states}`. A scan
that only missed reads explain joins its cheapest track at their cost (`fit_cost`), so one
missed read never splits an item's life.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from attestcore.schemas import BizStep
from detectors.geo import haversine_km
from detectors.supply_calibration import SupplyCalibration

Entry = list[Any]
Track = dict[str, Any]

MAX_TRACKS = 3  # the genuine item, a copy, and room for one more before the least plausible goes
MAX_TRACK = 6  # scans remembered per track: enough for the neighbours of a late upload
HARD = 99.0  # the cost of a read no genuine life explains (a feature value, so finite)
_TS, _LAT, _LON, _SITE, _STEP, _ROLE, _ID = range(7)

# Plausibility as the genuine item, in log-odds: commissioning at a factory is the strongest
# proof of origin, a passed challenge proves the tag's key, a receipt matching a despatch
# proves the brand's own logistics moved it, and each fitting scan adds a little. Capped so
# a long-lived copy cannot outgrow an item with a proven origin.
W_COMMISSIONED = 3.0
W_VERIFIED = 1.0
MAX_VERIFIED = 3
W_DESPATCHED = 0.5
MAX_DESPATCHED = 4
W_SCAN = 0.2
MAX_SCANS = 5

# What may follow a sale without a missed read: the customer returns it (at any shop), a
# service site repairs it, the shop ships it to the customer or destroys it. At another site
# than the shop, only what a customer brings in. A receipt after a sale needs a return
# authorisation (a repair or a return by post) or it costs a missed read.
_CUSTOMER_BRINGS = {BizStep.RETURNING, BizStep.REPAIRING}
_AFTER_SALE = {*_CUSTOMER_BRINGS, BizStep.SHIPPING, BizStep.DECOMMISSIONING}


def new_track() -> Track:
    return {"e": [], "n": 0, "c": 0, "v": 0, "x": 0, "sold": 0, "dead": None, "out": None}


def plausibility(track: Track) -> float:
    return float(
        W_COMMISSIONED * track["c"]
        + W_VERIFIED * min(track["v"], MAX_VERIFIED)
        + W_DESPATCHED * min(track["x"], MAX_DESPATCHED)
        + W_SCAN * min(track["n"], MAX_SCANS)
    )


def primary_index(tracks: list[Track]) -> int | None:
    """The most plausible track (the earliest-started on a tie), or None without tracks."""
    if not tracks:
        return None
    return max(range(len(tracks)), key=lambda i: (plausibility(tracks[i]), -i))


@dataclass(frozen=True)
class Fit:
    """How one scan relates to one track."""

    before: Entry | None  # the track's scan just before it in event time
    after: Entry | None  # and just after it (a late upload has one)
    duplicate: bool
    unshipped: bool  # a move to another site without a shipping (or sale) read before it
    speed: float  # highest implied speed to a neighbour, km/h; -1 without neighbours
    speed_entry: Entry | None  # the neighbour giving it
    impossible: bool  # faster than the speed cap
    order_violation: bool
    after_decommissioning: bool
    missed_reads: int  # reads a genuine life would have had to miss to give this one
    cost: float


def neighbours(track: Track, ts: float) -> tuple[Entry | None, Entry | None]:
    entries = track["e"]
    i = bisect.bisect_right([e[_TS] for e in entries], ts)
    return (entries[i - 1] if i > 0 else None), (entries[i] if i < len(entries) else None)


def fit(
    here: Entry,
    track: Track,
    cal: SupplyCalibration,
    explained: bool,
    routes: frozenset[tuple[str, str]] = frozenset(),
) -> Fit:
    """The cost of `here` on `track`; `explained`: a receipt a despatch or declared source
    accounts for, so a move without a shipping read is no missed read. `routes`: the
    (from, to) sites of this EPC's known despatches; a move along one is the brand's own
    logistics, whatever its speed (goods flown where the calibration saw only trucks), so the
    speed and its cap are those of the other moves."""
    before, after = neighbours(track, here[_TS])
    duplicate = any(
        n is not None
        and n[_SITE] == here[_SITE]
        and n[_STEP] == here[_STEP]
        and abs(n[_TS] - here[_TS]) <= max(cal.duplicate_window_s, cal.clock_skew_s)
        for n in (before, after)
    )
    moves = [(a, b) for a, b in ((before, here), (here, after)) if a is not None and b is not None]
    speeds = [
        (_speed_kmh(a, b, cal.clock_skew_s), b if a is here else a)
        for a, b in moves
        if (a[_SITE], b[_SITE]) not in routes
    ]
    speed, speed_entry = max(speeds, key=lambda s: s[0], default=(-1.0, None))
    unshipped = [
        (a, b)
        for a, b in moves
        if _unshipped(a, b, here, explained)
        and not (abs(b[_TS] - a[_TS]) <= cal.clock_skew_s and not _unshipped(b, a, here, explained))
    ]
    hard_order, missed_order = _order(moves, track, here, cal, explained)
    dead = track["dead"]
    after_dead = dead is not None and here[_TS] > dead and not duplicate
    impossible = speed > cal.speed_cap_kmh
    missed = 0 if duplicate else len(unshipped) + missed_order
    cost = 0.0
    if not duplicate:
        surprise = sum(_unshipped_cost(a, b, cal) for a, b in unshipped)
        surprise += missed_order * -math.log(cal.miss_rate(here[_SITE]))
        cost = min(HARD, surprise)
        if impossible or hard_order or after_dead:
            cost = HARD
    return Fit(
        before,
        after,
        duplicate,
        bool(unshipped) and not duplicate,
        speed,
        speed_entry,
        impossible,
        hard_order and not duplicate,
        after_dead,
        missed,
        cost,
    )


def _order(
    moves: list[tuple[Entry, Entry]],
    track: Track,
    here: Entry,
    cal: SupplyCalibration,
    explained: bool,
) -> tuple[bool, int]:
    """(an order no life allows, reads missed to allow it) over the scan's two moves; two
    reads within the clock skew allowance may be in either order. A receipt after a sale
    that the receipt's data explains (a return authorisation) misses nothing."""
    hard, missed = False, 0
    for a, b in moves:
        moved = a[_SITE] != b[_SITE]
        rule = step_rule(a[_STEP], b[_STEP], moved)
        if rule == 1 and b is here and explained and b[_STEP] == BizStep.RECEIVING.value:
            rule = 0
        if rule and abs(b[_TS] - a[_TS]) <= cal.clock_skew_s:
            rule = min(rule, step_rule(b[_STEP], a[_STEP], moved))
        hard = hard or rule == 2
        missed += rule == 1
    step = BizStep(here[_STEP])
    if step == BizStep.RETURNING and track["sold"] == 0 and here[_TS] > _last_ts(track):
        missed += 1  # a return whose sale read was missed
    return hard, missed


def step_rule(previous: str, step: str, moved: bool = False) -> int:
    """0 if `step` may follow `previous` in a genuine life (GS1 CBV), 1 if only after a missed
    read (a second sale needs a return between; after a sale, a read at another site
    (`moved`) needs one unless a customer brings the item there), 2 if never (nothing comes
    back to commissioning or packing after it left the factory, nothing after a
    decommissioning)."""
    before, now = BizStep(previous), BizStep(step)
    if before == BizStep.DECOMMISSIONING:
        return 2
    if now == BizStep.COMMISSIONING:
        return 2
    if now == BizStep.PACKING:
        return 0 if before in (BizStep.COMMISSIONING, BizStep.PACKING) else 2
    if before == BizStep.RETAIL_SELLING:
        if now in (_CUSTOMER_BRINGS if moved else _AFTER_SALE):
            return 0
        return 1  # a return read missed between
    return 0


def _unshipped_cost(a: Entry, b: Entry, cal: SupplyCalibration) -> float:
    """`-ln P`: the shipping read at `b`'s arrival was missed, and the item made this kind of
    move (a distribution centre to a shop is common, a shop to another shop is rare)."""
    return -math.log(cal.miss_rate(b[_SITE])) - math.log(cal.move_share(a[_ROLE], b[_ROLE]))


def _unshipped(a: Entry, b: Entry, here: Entry, explained: bool) -> bool:
    """A move from `a` to `b` at another site with no shipping (or sale) read before it, and,
    when it is the move onto this scan, no receipt data explaining it."""
    if a[_SITE] == b[_SITE] or a[_STEP] in (BizStep.SHIPPING.value, BizStep.RETAIL_SELLING.value):
        return False
    return not (b is here and explained)


def _last_ts(track: Track) -> float:
    return float(track["e"][-1][_TS]) if track["e"] else -math.inf


def _speed_kmh(a: Entry, b: Entry, skew_s: float) -> float:
    """The speed needed if the two readers' clocks were off by the skew allowance between
    them: two reads a minute apart may have been up to that much further apart."""
    hours = (abs(float(b[_TS]) - float(a[_TS])) + skew_s) / 3600
    return km_between(a, b) / hours


def km_between(a: Entry, b: Entry) -> float:
    return haversine_km(a[_LAT], a[_LON], b[_LAT], b[_LON])


def extended(track: Track, here: Entry, duplicate: bool, verified: bool, matched: bool) -> Track:
    """A new track with `here` joined; a duplicate read changes nothing."""
    step = BizStep(here[_STEP])
    entries = [list(e) for e in track["e"]]
    new = dict(track, e=entries)
    if duplicate:
        return new
    bisect.insort_right(entries, list(here), key=lambda e: e[_TS])
    new["e"] = entries[-MAX_TRACK:]
    new["n"] = track["n"] + 1
    new["c"] = 1 if step == BizStep.COMMISSIONING and here[_ROLE] == 0 else track["c"]
    new["v"] = track["v"] + verified
    new["x"] = track["x"] + matched
    if step == BizStep.RETAIL_SELLING:
        new["sold"] = track["sold"] + 1
    elif step == BizStep.RETURNING:
        new["sold"] = max(0, track["sold"] - 1)
    if step == BizStep.DECOMMISSIONING:
        new["dead"] = here[_TS]
    return new


def bounded(tracks: list[Track], keep: int) -> list[Track]:
    """At most `MAX_TRACKS`, the least plausible dropped first, never the track `keep`."""
    out = [dict(t) for t in tracks]
    while len(out) > MAX_TRACKS:
        drop = min(
            (i for i in range(len(out)) if i != keep), key=lambda i: (plausibility(out[i]), i)
        )
        out.pop(drop)
        keep -= drop < keep
    return out


def nearest_entry(track: Track, ts: float) -> Entry | None:
    """The track's scan closest in time to `ts` (what an investigator compares a scan with)."""
    return min(track["e"], key=lambda e: (abs(e[_TS] - ts), e[_TS]), default=None)


def retracted(tracks: list[Track], event_id: str) -> list[Track]:
    """Tracks without the entry of an event declared in error (EPCIS 2.0 errorDeclaration)."""
    return [dict(t, e=[list(e) for e in t["e"] if e[_ID] != event_id]) for t in tracks]
