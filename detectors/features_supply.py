"""Supply-chain features per EPC: `(event, state) -> (features, new_state)`, pure.

The rules of `detectors.features` hold here (no clock, no randomness, the given state never
mutated, a small JSON state of bounded size). The one input besides `(event, state)` is the
versioned reference table (`detectors.reference.supply`), immutable and named by digest in the
model card.

The state keeps the item's *track*: its last `MAX_TRACK` scans that fit a genuine life, in
event-time order. A new scan is compared with its neighbours on the track (the scan just before
it in event time and, for a late upload, the one just after), which is what makes the features
robust to honest noise and sharp against copies (the clone-detection literature's checks on
EPCIS traces: time-location conflicts, supply-chain order, lifecycle):

- a late upload is placed where its event time says, so it neither looks like travel nor like
  a step backwards;
- a missed read leaves a gap: a move to a site further down the chain without a shipping scan,
  at a plausible speed, still fits;
- a duplicate read (same site, same step, within `DUPLICATE_WINDOW_S`) is recognised and not
  counted as a second sale;
- a scan that does not fit (impossible speed, a step that cannot follow, a sideways or backward
  move without shipping, a sighting after decommissioning) is a *conflict*: it is counted and
  its site remembered, but it does not join the track. So when a copy and the genuine item are
  both scanned, the genuine item's own later scans are still compared with its own track and
  the copy's scans keep conflicting. The first copy seen of an EPC is taken as the genuine one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from attestcore.schemas import BizStep, SupplyChainEvent, TagAuth
from detectors.geo import haversine_km
from detectors.reference.supply import (
    ROLE_RANK,
    SiteRole,
    SupplyReference,
    default_supply_reference,
)

State = dict[str, Any]
FeatureVector = tuple[float, ...]

SUPPLY_STATE_VERSION = 2
MISSING = -1.0
MAX_TRACK = 6  # fitting scans remembered per EPC: enough for the neighbours of a late upload
MAX_CONFLICT_SITES = 4
# Two antennas or a re-scan at one dock door or till read the same tag seconds to minutes
# apart; an hour covers a pallet being read again on the way out of the same door.
DUPLICATE_WINDOW_S = 3_600
# Faster than any lorry or train door to door (the simulator's freight runs at 25-60 km/h):
# above it one of the two reads cannot be of the same physical item.
PLAUSIBLE_KMH = 120.0
MIN_TRAVEL_HOURS = 1 / 60  # two reads a second apart are not infinitely fast: floor at 1 min

SUPPLY_FEATURES: tuple[str, ...] = (
    "scans_before",
    "commissioned",
    "commissioning_count",
    "first_seen_role",
    "site_role",
    "late_seconds",
    "seconds_since_track",
    "km_from_track",
    "speed_kmh",
    "moved_without_shipping",
    "site_role_change",
    "duplicate_read",
    "order_violation",
    "after_decommissioning",
    "sales_without_return",
    "conflicts_before",
    "at_conflict_site",
    "unauthorised_region",
    "tag_auth_expected",
    "tag_auth_failed",
    "tag_auth_absent",
    "auth_failures_before",
    "auth_verified_before",
)

# Where each GS1 CBV business step sits in an item's life. Shipping, receiving, storing and
# returning repeat at every hop, so they share a rank; a step of lower rank than the one before
# it means the item went backwards (a copy re-entering the chain).
STEP_RANK: dict[BizStep, int] = {
    BizStep.COMMISSIONING: 0,
    BizStep.PACKING: 1,
    BizStep.SHIPPING: 2,
    BizStep.RECEIVING: 2,
    BizStep.STORING: 2,
    BizStep.RETURNING: 2,
    BizStep.RETAIL_SELLING: 3,
    BizStep.DECOMMISSIONING: 4,
}

# A track entry: [event time (epoch s), lat, lon, biz_location, biz_step, role rank or None].
_TS, _LAT, _LON, _SITE, _STEP, _ROLE = range(6)


def initial_supply_state() -> State:
    """An EPC never scanned before."""
    return {
        "v": SUPPLY_STATE_VERSION,
        "scans": 0,
        "commissioned": 0,
        "first_role": None,
        "newest_ts": None,
        "sold": 0,
        "returned": 0,
        "decommissioned_ts": None,
        "track": [],
        "conflicts": 0,
        "conflict_sites": [],
        "auth_failures": 0,
        "auth_verified": 0,
    }


def order_violation(previous: str | BizStep, step: str | BizStep) -> bool:
    """True if `step` cannot directly follow `previous` in a genuine item's life (GS1 CBV).

    Only a return may follow a sale (a second sale needs a return first); a return needs a
    sale before it; otherwise the step must not go back in `STEP_RANK`. Decommissioning is
    final, which `after_decommissioning` checks against the time of the decommissioning.
    """
    before, now = BizStep(previous), BizStep(step)
    if before == BizStep.RETAIL_SELLING:
        return now != BizStep.RETURNING
    if now == BizStep.RETURNING:
        return True
    return STEP_RANK[now] < STEP_RANK[before]


@dataclass(frozen=True)
class _TrackFit:
    """How one scan relates to its EPC's track (see the module docstring)."""

    before: list[Any] | None  # the track's scan just before it in event time
    after: list[Any] | None  # and just after it (a late upload has one)
    duplicate: bool
    unshipped: bool  # another site than a neighbour's, without a shipping scan between
    backwards_unshipped: bool  # ... and sideways or up the chain
    role_change: float
    speed: float
    out_of_order: bool
    after_decommissioning: bool
    at_conflict_site: bool

    @property
    def conflict(self) -> bool:
        return not self.duplicate and (
            self.out_of_order
            or self.after_decommissioning
            or self.speed > PLAUSIBLE_KMH
            or self.backwards_unshipped
            or self.at_conflict_site
        )


def _fit(here: list[Any], state: State) -> _TrackFit:
    before, after = _neighbours(state["track"], here[_TS])
    duplicate = any(_same_read(here, n) for n in (before, after) if n is not None)
    moves = [(a, b) for a, b in ((before, here), (here, after)) if a is not None and b is not None]
    unshipped = [m for m in moves if m[0][_SITE] != m[1][_SITE] and m[0][_STEP] != "shipping"]
    dead = state["decommissioned_ts"]
    return _TrackFit(
        before=before,
        after=after,
        duplicate=duplicate,
        unshipped=bool(unshipped),
        backwards_unshipped=any(_role_change(m) <= 0 for m in unshipped),
        role_change=_role_change(moves[0]) if moves else MISSING,
        speed=max((_speed_kmh(a, b) for a, b in moves), default=MISSING),
        out_of_order=not duplicate and any(order_violation(a[_STEP], b[_STEP]) for a, b in moves),
        after_decommissioning=dead is not None and here[_TS] > dead and not duplicate,
        at_conflict_site=here[_SITE] in state["conflict_sites"],
    )


def supply_features(
    event: SupplyChainEvent, state: State, reference: SupplyReference | None = None
) -> tuple[FeatureVector, State]:
    """The feature vector of one scan given its EPC's state, and the updated state."""
    ref = reference if reference is not None else default_supply_reference()
    ts = event.event_time.timestamp()
    site = ref.site(event.biz_location)
    role = None if site is None else ROLE_RANK[site.role]
    here: list[Any] = [ts, event.lat, event.lon, event.biz_location, event.biz_step.value, role]
    fit = _fit(here, state)
    step = event.biz_step
    counted = not fit.duplicate
    is_sale = counted and step == BizStep.RETAIL_SELLING
    is_return = counted and step == BizStep.RETURNING
    commissioned = state["commissioned"] + (1 if counted and step == BizStep.COMMISSIONING else 0)
    first_role = role if state["scans"] == 0 else state["first_role"]
    newest = state["newest_ts"]
    features = (
        float(state["scans"]),
        1.0 if commissioned > 0 else 0.0,
        float(commissioned),
        _or_missing(first_role),
        _or_missing(role),
        0.0 if newest is None else max(0.0, newest - ts),
        MISSING if fit.before is None else ts - fit.before[_TS],
        _km(fit.before if fit.before is not None else fit.after, here),
        fit.speed,
        1.0 if fit.unshipped else 0.0,
        fit.role_change,
        1.0 if fit.duplicate else 0.0,
        1.0 if fit.out_of_order else 0.0,
        1.0 if fit.after_decommissioning else 0.0,
        float(state["sold"] - state["returned"] + is_sale - is_return),
        float(state["conflicts"]),
        1.0 if fit.at_conflict_site else 0.0,
        _unauthorised_region(ref, event.epc, site),
        _tag_auth_expected(ref, event.epc),
        1.0 if event.tag_auth == TagAuth.FAILED else 0.0,
        1.0 if event.tag_auth == TagAuth.ABSENT else 0.0,
        float(state["auth_failures"]),
        float(state["auth_verified"]),
    )
    new_state = _next_state(state, event, here, fit, commissioned, first_role)
    return features, new_state


def _next_state(
    state: State,
    event: SupplyChainEvent,
    here: list[Any],
    fit: _TrackFit,
    commissioned: int,
    first_role: int | None,
) -> State:
    """A fresh state: a fitting scan joins the track and counts; a conflict is remembered."""
    ts, step, newest = here[_TS], event.biz_step, state["newest_ts"]
    joins = not fit.duplicate and not fit.conflict
    conflict_sites = list(state["conflict_sites"])
    if fit.conflict:
        conflict_sites = _remember_site(conflict_sites, event.biz_location)
    return {
        "v": SUPPLY_STATE_VERSION,
        "scans": state["scans"] + 1,
        "commissioned": commissioned,
        "first_role": first_role,
        "newest_ts": ts if newest is None else max(newest, ts),
        "sold": state["sold"] + (1 if joins and step == BizStep.RETAIL_SELLING else 0),
        "returned": state["returned"] + (1 if joins and step == BizStep.RETURNING else 0),
        "decommissioned_ts": ts
        if joins and step == BizStep.DECOMMISSIONING
        else state["decommissioned_ts"],
        "track": _with_entry(state["track"], here) if joins else [list(e) for e in state["track"]],
        "conflicts": state["conflicts"] + (1 if fit.conflict else 0),
        "conflict_sites": conflict_sites,
        "auth_failures": state["auth_failures"] + (1 if event.tag_auth == TagAuth.FAILED else 0),
        "auth_verified": state["auth_verified"] + (1 if event.tag_auth == TagAuth.VERIFIED else 0),
    }


def _neighbours(track: list[list[Any]], ts: float) -> tuple[list[Any] | None, list[Any] | None]:
    """The track's entries just before (at or earlier) and just after (later) `ts`."""
    i = bisect.bisect_right([entry[_TS] for entry in track], ts)
    return (track[i - 1] if i > 0 else None), (track[i] if i < len(track) else None)


def _same_read(a: list[Any], b: list[Any]) -> bool:
    return bool(
        a[_SITE] == b[_SITE] and a[_STEP] == b[_STEP] and abs(a[_TS] - b[_TS]) <= DUPLICATE_WINDOW_S
    )


def _km(a: list[Any] | None, b: list[Any]) -> float:
    return MISSING if a is None else haversine_km(a[_LAT], a[_LON], b[_LAT], b[_LON])


def _speed_kmh(a: list[Any], b: list[Any]) -> float:
    hours: float = max(abs(b[_TS] - a[_TS]) / 3600, MIN_TRAVEL_HOURS)
    return _km(a, b) / hours


def _role_change(move: tuple[list[Any], list[Any]]) -> float:
    """+1 a step down the chain (factory -> distributor), 0 sideways, negative backwards.

    An unknown site counts as sideways: nothing says the move was forwards.
    """
    a, b = move
    if a[_ROLE] is None or b[_ROLE] is None:
        return 0.0
    return float(b[_ROLE] - a[_ROLE])


def _or_missing(value: int | None) -> float:
    return MISSING if value is None else float(value)


def _unauthorised_region(ref: SupplyReference, epc: str, site: Any) -> float:
    """1 at a retailer in a country where the product may not be sold; 0 elsewhere.

    Factories and distributors may hold goods for any market, so only a retailer counts.
    Unknown product or location: MISSING.
    """
    product = ref.product_of(epc)
    if product is None or site is None:
        return MISSING
    if site.role != SiteRole.RETAILER:
        return 0.0
    return 0.0 if site.country in product.authorised_countries else 1.0


def _tag_auth_expected(ref: SupplyReference, epc: str) -> float:
    product = ref.product_of(epc)
    if product is None:
        return MISSING
    return 1.0 if product.tag_authentication else 0.0


def _with_entry(track: list[list[Any]], entry: list[Any]) -> list[list[Any]]:
    """A new track with `entry` in event-time order; the oldest dropped beyond `MAX_TRACK`."""
    entries = [list(e) for e in track]
    bisect.insort_right(entries, entry, key=lambda e: e[_TS])
    return entries[-MAX_TRACK:]


def _remember_site(sites: list[str], site: str) -> list[str]:
    kept = [s for s in sites if s != site]
    kept.append(site)
    return kept[-MAX_CONFLICT_SITES:]
