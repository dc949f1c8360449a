"""The evidence behind a scan's features, for the reasons an investigator acts on.

A feature value says that something is wrong; the evidence says what to look at: the earlier
scan this one conflicts with (its event id, place and time), the tag challenge that failed and
the last one that passed, the despatch a receipt does not match. `collect_evidence` returns
`(feature name, Evidence)` pairs; the decision attaches each to the reason of that feature.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from attestcore.schemas import Evidence, SupplyChainEvent, TagAuth
from detectors.geo import haversine_km
from detectors.reference.supply import SupplyReference
from detectors.supply_despatch import Receipt
from detectors.supply_tracks import Fit, Track, nearest_entry, plausibility

_TS, _LAT, _LON, _SITE, _STEP, _ROLE, _ID = range(7)


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _place(ref: SupplyReference, location: str) -> str:
    site = ref.site(location)
    return location if site is None else f"{site.code} ({location})"


def _scan_evidence(
    kind: str, entry: list[Any], event: SupplyChainEvent, ref: SupplyReference, why: str
) -> Evidence:
    km = haversine_km(entry[_LAT], entry[_LON], event.lat, event.lon)
    hours = abs(event.event_time.timestamp() - entry[_TS]) / 3600
    detail = (
        f"{why}: {entry[_STEP]} at {_place(ref, entry[_SITE])} at {_when(entry[_TS]).isoformat()},"
        f" {km:.0f} km and {hours:.1f} h from this scan"
    )
    return Evidence(
        kind=kind,
        detail=detail[:512],
        event_id=entry[_ID],
        biz_location=entry[_SITE],
        event_time=_when(entry[_TS]),
    )


def collect_evidence(
    event: SupplyChainEvent,
    features: dict[str, float],
    state: dict[str, Any],
    fitted: Fit | None,
    others: list[Track],
    receipt: Receipt,
    ref: SupplyReference,
    left_market: list[Any] | None = None,
) -> list[tuple[str, Evidence]]:
    found: list[tuple[str, Evidence]] = []
    ts = event.event_time.timestamp()
    if others and (features["plausibility_gap"] > 0 or features["started_track"] > 0):
        rival = max(others, key=plausibility)
        entry = nearest_entry(rival, ts)
        if entry is not None:
            why = "the same EPC on another item, more plausibly the genuine one"
            if features["plausibility_gap"] <= 0:
                why = "the same EPC on another item this scan cannot follow"
            found += [
                (name, _scan_evidence("conflicting_scan", entry, event, ref, why))
                for name in ("plausibility_gap", "started_track")
            ]
    if fitted is not None and fitted.speed_entry is not None and features["speed_ratio"] > 1:
        why = f"faster than goods move ({fitted.speed:.0f} km/h)"
        found.append(
            (
                "speed_ratio",
                _scan_evidence("impossible_travel", fitted.speed_entry, event, ref, why),
            )
        )
    if fitted is not None and (fitted.order_violation or fitted.after_decommissioning):
        near = fitted.before or fitted.after
        if near is not None:
            name = "after_decommissioning" if fitted.after_decommissioning else "order_violation"
            why = "a step no genuine life takes after (or before) this scan"
            found.append((name, _scan_evidence("lifecycle", near, event, ref, why)))
    if event.tag_auth == TagAuth.FAILED:
        challenge = _challenge(event, state, ref)
        found += [(n, challenge) for n in ("tag_auth_failed", "failed_after_pass")]
        near = None if fitted is None else fitted.before or fitted.after
        if features["failed_off_track"] == 1.0:
            why = "the tag challenge failed where the item's track does not lead"
            off = (
                challenge
                if near is None
                else _scan_evidence("failed_challenge", near, event, ref, why)
            )
            found.append(("failed_off_track", off))
    found += _despatch_evidence(event, receipt, ref, features["receipt_expected"])
    if features["unauthorised_region"] == 1.0 and left_market is not None:
        event_id, location, ts = left_market
        detail = (
            f"the item left its authorised markets before: {_place(ref, location)}, where the"
            f" product is not authorised, at {_when(ts).isoformat()}"
        )
        evidence = Evidence(
            kind="unauthorised_region",
            detail=detail[:512],
            event_id=event_id,
            biz_location=location,
            event_time=_when(ts),
        )
        found.append(("unauthorised_region", evidence))
    elif features["unauthorised_region"] == 1.0:
        detail = (
            f"{_place(ref, event.biz_location)} is in a country where the product is not authorised"
        )
        found.append(
            ("unauthorised_region", Evidence(kind="unauthorised_region", detail=detail[:512]))
        )
    return found


def _challenge(event: SupplyChainEvent, state: dict[str, Any], ref: SupplyReference) -> Evidence:
    here = f"the tag challenge failed at {_place(ref, event.biz_location)}"
    last = state["last_verified"]
    if last is None:
        return Evidence(kind="failed_challenge", detail=f"{here}; it never passed before"[:512])
    detail = (
        f"{here}; it passed {state['auth_verified']} time(s) before, last at"
        f" {_place(ref, last[1])} at {_when(last[2]).isoformat()}: another tag carries this EPC"
    )
    return Evidence(
        kind="failed_challenge",
        detail=detail[:512],
        event_id=last[0],
        biz_location=last[1],
        event_time=_when(last[2]),
    )


def _despatch_evidence(
    event: SupplyChainEvent, receipt: Receipt, ref: SupplyReference, expected: float
) -> list[tuple[str, Evidence]]:
    here = _place(ref, event.biz_location)
    found: list[tuple[str, Evidence]] = []
    despatch = receipt.mismatch
    if despatch is not None:
        detail = (
            f"despatch advice {despatch[0]} from {_place(ref, despatch[3])} at"
            f" {_when(despatch[2]).isoformat()} names {_place(ref, despatch[1])}, not {here}"
        )
        evidence = Evidence(
            kind="despatch_mismatch",
            detail=detail[:512],
            event_id=despatch[4],
            biz_location=despatch[3],
            event_time=_when(despatch[2]),
        )
        found += [("despatch_mismatch", evidence), ("receipt_expected", evidence)]
    elif expected == 0.0:
        detail = f"no despatch of this EPC to {here} is known"
        found.append(("receipt_expected", Evidence(kind="no_despatch", detail=detail[:512])))
    shipped = receipt.matched if receipt.matched is not None else receipt.mismatch
    if shipped is not None and receipt.transit_ratio > 1:
        detail = (
            f"received {receipt.transit_ratio:.1f} times the usual longest transit after"
            f" despatch advice {shipped[0]} from {_place(ref, shipped[3])}"
        )
        found.append(
            (
                "transit_ratio",
                Evidence(
                    kind="late_receipt",
                    detail=detail[:512],
                    event_id=shipped[4],
                    biz_location=shipped[3],
                    event_time=_when(shipped[2]),
                ),
            )
        )
    return found
