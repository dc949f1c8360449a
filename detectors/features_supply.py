"""Supply-chain features per EPC: `(event, state) -> (features, new_state)`, pure.

The rules of `detectors.features` hold here (no clock, no randomness, the given state never
mutated, a small JSON state of bounded size). The inputs besides `(event, state)` are the
versioned reference table (`detectors.reference.supply`) and the learned track calibration
(`detectors.supply_calibration`), both immutable and named by digest in the model card.

The state keeps competing tracks of the EPC (`detectors.supply_tracks`): the first item seen
is not trusted to be the genuine one. Each scan is placed on the track it fits best, or
starts a new one, and its features say how well it fits, whether a more plausible track
(commissioned, verified, moved by the brand's despatches) exists beside it, and what the
EPCIS business data says: is this receipt the destination of a known despatch of this EPC,
in the expected time (`detectors.supply_despatch`)? The returned vector carries the
evidence behind its features (`SupplyVector.evidence`): the conflicting scan, the failed
challenge, the despatch not matched, which the decision's reasons name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from attestcore.schemas import BizStep, Evidence, SourceDestType, SupplyChainEvent, TagAuth
from detectors.geo import haversine_km
from detectors.reference.supply import (
    ROLE_RANK,
    SiteRole,
    SupplyReference,
    default_supply_reference,
)
from detectors.supply_calibration import SupplyCalibration, default_calibration
from detectors.supply_despatch import Receipt, check_receipt, despatch_routes, with_despatch
from detectors.supply_evidence import collect_evidence
from detectors.supply_tracks import (
    HARD,
    Fit,
    Track,
    bounded,
    extended,
    fit,
    new_track,
    plausibility,
    primary_index,
    retracted,
)

State = dict[str, Any]

SUPPLY_STATE_VERSION = 3
MISSING = -1.0

SUPPLY_FEATURES: tuple[str, ...] = (
    "scans_before",
    "commissioned",
    "site_role",
    "late_seconds",
    "hypotheses",
    "started_track",
    "plausibility_gap",
    "track_commissioned",
    "track_verified",
    "track_scans",
    "fit_cost",
    "missed_reads",
    "seconds_since_track",
    "km_from_track",
    "speed_ratio",
    "unshipped_move",
    "duplicate_read",
    "order_violation",
    "after_decommissioning",
    "sales_without_return",
    "receipt_expected",
    "despatch_mismatch",
    "transit_ratio",
    "declared_source_matches",
    "pallet_read",
    "error_declared",
    "unauthorised_region",
    "tag_auth_expected",
    "tag_auth_failed",
    "tag_auth_absent",
    "failed_after_pass",
    "failed_off_track",
    "auth_failures_before",
    "auth_verified_before",
)


class SupplyVector(tuple[float, ...]):
    """A feature vector (`SUPPLY_FEATURES` order) with the evidence behind its features:
    `(feature name, Evidence)` pairs, not features themselves and not part of any state."""

    evidence: tuple[tuple[str, Evidence], ...]

    def __new__(
        cls, values: Iterable[float], evidence: Iterable[tuple[str, Evidence]] = ()
    ) -> SupplyVector:
        vector = super().__new__(cls, values)
        vector.evidence = tuple(evidence)
        return vector


def initial_supply_state() -> State:
    """An EPC never scanned before."""
    return {
        "v": SUPPLY_STATE_VERSION,
        "scans": 0,
        "newest_ts": None,
        "tracks": [],
        "despatches": [],
        "auth_failures": 0,
        "auth_verified": 0,
        "last_verified": None,  # [event_id, biz_location, event time] of the last passed challenge
    }


def upgraded_state(state: State) -> State:
    """A state of this version; a version 2 state (one first-seen track, written by the
    detector before competing tracks) becomes one track with the same scans and counts, so a
    stream's table keeps working across the upgrade. Returns `state` itself when current."""
    if state.get("v") == SUPPLY_STATE_VERSION:
        return state
    new = initial_supply_state()
    new.update(
        scans=state["scans"],
        newest_ts=state["newest_ts"],
        auth_failures=state["auth_failures"],
        auth_verified=state["auth_verified"],
    )
    if state["track"]:
        track = new_track()
        track.update(
            e=[[*entry[:6], ""] for entry in state["track"]],
            n=len(state["track"]),
            c=1 if state["commissioned"] else 0,
            v=min(state["auth_verified"], len(state["track"])),
            sold=max(0, state["sold"] - state["returned"]),
            dead=state["decommissioned_ts"],
        )
        new["tracks"] = [track]
    return new


class _Placement:
    """Where a scan goes: which track it is compared with, and whether it joins or starts one."""

    def __init__(self, index: int | None, fitted: Fit | None, joins: bool, starts: bool) -> None:
        self.index, self.fitted, self.joins, self.starts = index, fitted, joins, starts


def supply_features(
    event: SupplyChainEvent,
    state: State,
    reference: SupplyReference | None = None,
    calibration: SupplyCalibration | None = None,
) -> tuple[SupplyVector, State]:
    """The feature vector of one scan given its EPC's state, and the updated state."""
    ref = reference if reference is not None else default_supply_reference()
    cal = calibration if calibration is not None else default_calibration()[0]
    state = upgraded_state(state)
    ts = event.event_time.timestamp()
    site = ref.site(event.biz_location)
    role = None if site is None else ROLE_RANK[site.role]
    here: list[Any] = [ts, event.lat, event.lon, event.biz_location, event.biz_step.value, role]
    here.append(event.event_id)
    tracks: list[Track] = state["tracks"]
    if event.error_declaration is not None:
        tracks = retracted(tracks, event.event_id)
    receipt = check_receipt(event, state["despatches"], cal)
    routes = despatch_routes(state["despatches"])
    fits = [fit(here, t, cal, receipt.explains(t, ts), routes) for t in tracks]
    place = _place(event, tracks, fits, receipt)
    new_tracks = _next_tracks(tracks, place, here, event, receipt)
    # A new track is appended (and `bounded` keeps the order); a joined or compared one keeps
    # its index, since only starting a track can drop one.
    track = new_tracks[-1] if place.starts else None
    if not place.starts and place.index is not None:
        track = new_tracks[place.index]
    gap = _plausibility_gap(new_tracks, track)
    # A scan that starts a track more plausible than every other (the genuine item's
    # commissioning after a copy was seen) is compared with nothing: the conflict is the
    # other track's, whose scans say so.
    fitted = None if place.starts and gap < 0 else place.fitted
    # The item this scan most likely is (the track it fits best) was shipped out of the
    # product's authorised markets: to a retailer in a country it may not be sold in.
    left = None if place.index is None else tracks[place.index].get("out")
    region = 1.0 if left is not None else _unauthorised_region(ref, event.epc, site)
    if track is not None and (place.joins or place.starts) and track.get("out") is None:
        track["out"] = _leaves_market(ref, event)
    failed = event.tag_auth == TagAuth.FAILED
    newest = state["newest_ts"]
    values = (
        float(state["scans"]),
        1.0 if any(t["c"] for t in new_tracks) else 0.0,
        MISSING if role is None else float(role),
        0.0 if newest is None else max(0.0, newest - ts),
        float(len(new_tracks)),
        1.0 if place.starts and tracks else 0.0,
        gap,
        MISSING if track is None else float(track["c"]),
        MISSING if track is None else float(track["v"]),
        MISSING if track is None else float(track["n"]),
        MISSING if fitted is None else fitted.cost,
        MISSING if fitted is None else float(fitted.missed_reads),
        _since(fitted, ts),
        _km(fitted, event),
        MISSING if fitted is None or fitted.speed < 0 else fitted.speed / cal.speed_cap_kmh,
        0.0 if fitted is None else float(fitted.unshipped),
        0.0 if fitted is None else float(fitted.duplicate),
        0.0 if fitted is None else float(fitted.order_violation),
        0.0 if fitted is None else float(fitted.after_decommissioning),
        MISSING if track is None else float(track["sold"]),
        _expected(receipt, fitted),
        receipt.mismatch_flag,
        receipt.transit_ratio,
        _declared_matches(receipt, fitted),
        1.0 if event.parent_id is not None else 0.0,
        1.0 if event.error_declaration is not None else 0.0,
        region,
        _tag_auth_expected(ref, event.epc),
        1.0 if failed else 0.0,
        1.0 if event.tag_auth == TagAuth.ABSENT else 0.0,
        1.0 if failed and state["auth_verified"] > 0 else 0.0,
        1.0 if failed and (fitted is None or fitted.cost > 0.0) else 0.0,
        float(state["auth_failures"]),
        float(state["auth_verified"]),
    )
    features = dict(zip(SUPPLY_FEATURES, values, strict=True))
    others = [t for t in new_tracks if t is not track]
    evidence = collect_evidence(event, features, state, fitted, others, receipt, ref, left)
    new_state = _next_state(state, event, new_tracks, receipt, joined=place.joins or place.starts)
    return SupplyVector(values, evidence), new_state


def _place(
    event: SupplyChainEvent, tracks: list[Track], fits: list[Fit], receipt: Receipt
) -> _Placement:
    """Join the cheapest track; start a new one when none fits (a read no genuine life
    explains, or a receipt of the brand's logistics no despatch or declared source
    explains; a read that missed reads explain joins, at their cost); never for a failed
    challenge, a pallet-level read or an error declaration."""
    best = None
    if fits:
        best = min(range(len(fits)), key=lambda i: (fits[i].cost, -plausibility(tracks[i]), i))
    fitted = fits[best] if best is not None else None
    if (
        event.tag_auth == TagAuth.FAILED
        or event.parent_id is not None
        or event.error_declaration is not None
    ):
        return _Placement(best, fitted, joins=False, starts=False)
    if best is None or fitted is None:
        return _Placement(None, None, joins=False, starts=True)
    ts = event.event_time.timestamp()
    unexplained = (
        receipt.v2_receipt
        and not receipt.explains(tracks[best], ts)
        and fitted.before is not None
        and fitted.before[3] != event.biz_location
    )
    if fitted.cost >= HARD or unexplained:
        return _Placement(best, fitted, joins=False, starts=True)
    return _Placement(best, fitted, joins=True, starts=False)


def _next_tracks(
    tracks: list[Track],
    place: _Placement,
    here: list[Any],
    event: SupplyChainEvent,
    receipt: Receipt,
) -> list[Track]:
    verified = event.tag_auth == TagAuth.VERIFIED
    matched = receipt.matched is not None
    out = [dict(t) for t in tracks]
    if place.joins and place.index is not None and place.fitted is not None:
        duplicate = place.fitted.duplicate
        out[place.index] = extended(tracks[place.index], here, duplicate, verified, matched)
        return bounded(out, place.index)
    if place.starts:
        out.append(extended(new_track(), here, False, verified, matched))
        return bounded(out, len(out) - 1)
    return out


def _plausibility_gap(tracks: list[Track], track: Track | None) -> float:
    """How much more plausible the best other track is than this scan's (> 0: this scan
    belongs to a less plausible item than another one with its EPC); MISSING when alone."""
    if track is None:
        index = primary_index(tracks)
        return MISSING if index is None else 0.0
    others = [plausibility(t) for t in tracks if t is not track]
    return MISSING if not others else max(others) - plausibility(track)


def _next_state(
    state: State, event: SupplyChainEvent, tracks: list[Track], receipt: Receipt, joined: bool
) -> State:
    ts, newest = event.event_time.timestamp(), state["newest_ts"]
    verified = event.tag_auth == TagAuth.VERIFIED
    despatches = [list(d) for d in state["despatches"]]
    if receipt.matched is not None:
        despatches = [d for d in despatches if d != receipt.matched]
    if joined and event.biz_step == BizStep.SHIPPING:
        despatches = with_despatch(despatches, event)
    last = [event.event_id, event.biz_location, ts] if verified else state["last_verified"]
    return {
        "v": SUPPLY_STATE_VERSION,
        "scans": state["scans"] + 1,
        "newest_ts": ts if newest is None else max(newest, ts),
        "tracks": tracks,
        "despatches": despatches,
        "auth_failures": state["auth_failures"] + (1 if event.tag_auth == TagAuth.FAILED else 0),
        "auth_verified": state["auth_verified"] + (1 if verified else 0),
        "last_verified": last,
    }


def _since(fitted: Fit | None, ts: float) -> float:
    if fitted is None or fitted.before is None:
        return MISSING
    return float(ts - fitted.before[0])


def _km(fitted: Fit | None, event: SupplyChainEvent) -> float:
    near = None if fitted is None else (fitted.before or fitted.after)
    return MISSING if near is None else haversine_km(near[1], near[2], event.lat, event.lon)


def _expected(receipt: Receipt, fitted: Fit | None) -> float:
    """1 for a receipt a known despatch to here, a return authorisation or a declared source
    at the item's previous site (its shipping read missed) accounts for; 0 for any other
    receipt; MISSING for a scan that is no receipt."""
    if receipt.expected != 0.0:
        return receipt.expected  # 1, or MISSING for a version 1 receipt
    return 1.0 if _declared_matches(receipt, fitted) == 1.0 else 0.0


def _declared_matches(receipt: Receipt, fitted: Fit | None) -> float:
    if not receipt.declared_sources and not receipt.declared_parties:
        return MISSING
    before = None if fitted is None else fitted.before
    return 1.0 if before is not None and receipt.declares(before[3]) else 0.0


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


def _leaves_market(ref: SupplyReference, event: SupplyChainEvent) -> list[Any] | None:
    """`[event_id, destination, event time]` when this scan ships its item out of the
    product's authorised markets: to a retailer outside them, named as the shipment's
    destination (EPCIS `destinationList`); None otherwise. A read at such a retailer is
    flagged by itself and marks nothing: it may be a copy's, joined to the genuine track."""
    ts = event.event_time.timestamp()
    if event.biz_step != BizStep.SHIPPING:
        return None
    for dest in event.destination_list:
        if dest.type == SourceDestType.LOCATION:
            there = ref.site(dest.id)
            if _unauthorised_region(ref, event.epc, there) == 1.0:
                return [event.event_id, dest.id, ts]
    return None


def _tag_auth_expected(ref: SupplyReference, epc: str) -> float:
    product = ref.product_of(epc)
    if product is None:
        return MISSING
    return 1.0 if product.tag_authentication else 0.0
