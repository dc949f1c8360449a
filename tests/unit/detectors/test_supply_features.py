"""Supply-chain features on hand-built scan histories: lifecycle rules, impossible travel,
the learned calibration, and the state's bounds. Sites and products are the shipped
reference table's; distances are recomputed here with `detectors.geo.haversine_km`."""

from __future__ import annotations

import json

import pytest
from supply_traces import SITES, conflicts, hours_of, life, quiet, run, scan

from attestcore.schemas import BizStep, TagAuth
from detectors.features_supply import (
    MISSING,
    SUPPLY_FEATURES,
    initial_supply_state,
    supply_features,
)
from detectors.geo import haversine_km
from detectors.supply_calibration import default_calibration
from detectors.supply_despatch import MAX_DESPATCHES
from detectors.supply_tracks import HARD, MAX_TRACK, MAX_TRACKS, step_rule

CAL = default_calibration()[0]


def test_a_genuine_life_is_quiet_and_proves_its_origin() -> None:
    v, _, state = run(life())
    assert all(quiet(x) for x in v)
    assert v[0]["commissioned"] == 1.0 and v[0]["hypotheses"] == 1.0
    assert v[0]["speed_ratio"] == MISSING and v[0]["plausibility_gap"] == MISSING
    assert v[3]["receipt_expected"] == 1.0 and v[3]["declared_source_matches"] == 1.0
    assert v[-1]["sales_without_return"] == 1.0 and v[-1]["auth_verified_before"] == 7.0
    (track,) = state["tracks"]
    assert track["c"] == 1 and track["v"] == 8 and track["x"] == 2
    assert len(track["e"]) == MAX_TRACK and state["despatches"] == []


def test_impossible_travel_starts_a_track_and_the_genuine_one_goes_on() -> None:
    """A copy (earbuds-style, no crypto tag) read in Lisbon 3 h after the drill in Hamburg."""
    events = life()[:5]
    t = hours_of(events[4])
    copy = scan(t + 3, BizStep.RECEIVING, "shop-lisbon-1", TagAuth.ABSENT)
    v, vectors, state = run([*events, copy, life()[5]])
    hamburg, lisbon = SITES["dc-hamburg"], SITES["shop-lisbon-1"]
    km = haversine_km(hamburg.lat, hamburg.lon, lisbon.lat, lisbon.lon)
    assert v[5]["km_from_track"] == pytest.approx(km)
    speed = km / ((3 * 3600 + CAL.clock_skew_s) / 3600)
    assert v[5]["speed_ratio"] == pytest.approx(speed / CAL.speed_cap_kmh)
    assert v[5]["fit_cost"] == HARD and v[5]["started_track"] == 1.0
    assert {"speed_ratio", "plausibility_gap"} <= set(conflicts(v[5]))
    assert dict(vectors[5].evidence)["speed_ratio"].event_id == events[4].event_id
    # The genuine item's next read is compared with its own track, not with the copy.
    assert quiet(v[6]) and v[6]["fit_cost"] == 0.0 and v[6]["hypotheses"] == 2.0
    assert len(state["tracks"]) == 2


def test_sold_twice_costs_a_missed_return_and_a_return_does_not() -> None:
    genuine = life()
    sold = hours_of(genuine[-1])
    v, _, _ = run([*genuine, scan(sold + 100, BizStep.RETAIL_SELLING, "shop-berlin-1")])
    assert v[-1]["missed_reads"] == 1.0 and v[-1]["sales_without_return"] == 2.0
    returned = [
        *genuine,
        scan(sold + 100, BizStep.RETURNING, "shop-berlin-1"),
        scan(sold + 200, BizStep.RETAIL_SELLING, "shop-berlin-1"),
    ]
    v, _, _ = run(returned)
    assert [x["missed_reads"] for x in v[-2:]] == [0.0, 0.0]
    assert v[-1]["sales_without_return"] == 1.0


def test_seen_after_decommissioning_but_not_a_late_read_from_before() -> None:
    events = life()[:5]
    t = hours_of(events[4])
    events += [
        scan(t + 60, BizStep.DECOMMISSIONING, "dc-hamburg"),
        scan(t + 40, BizStep.STORING, "dc-hamburg", tag="late"),  # uploaded late
        scan(t + 300, BizStep.RECEIVING, "shop-vienna-1", TagAuth.ABSENT),
    ]
    v, vectors, _ = run(events)
    assert v[6]["after_decommissioning"] == 0.0 and v[6]["late_seconds"] == 20 * 3600.0
    assert v[7]["after_decommissioning"] == 1.0 and v[7]["started_track"] == 1.0
    lifecycle = dict(vectors[7].evidence)["after_decommissioning"]
    assert lifecycle.event_id == events[5].event_id


def test_a_late_commissioning_upload_is_not_a_step_back() -> None:
    events = life()
    late = [events[3], events[4], events[0], events[1], events[2], *events[5:]]
    v, _, state = run(late)
    assert v[0]["commissioned"] == 0.0 and v[2]["commissioned"] == 1.0
    assert v[2]["late_seconds"] > 0 and all(x["order_violation"] == 0.0 for x in v)
    assert len(state["tracks"]) == 1


def test_step_rules() -> None:
    assert step_rule("receiving", "packing") == 2
    assert step_rule("receiving", "shipping") == 0
    assert step_rule("retail_selling", "retail_selling") == 1
    assert step_rule("retail_selling", "returning") == 0
    assert step_rule("retail_selling", "repairing") == 0
    assert step_rule("retail_selling", "receiving") == 1  # unless a return authorisation
    assert step_rule("decommissioning", "receiving") == 2
    assert step_rule("retail_selling", "shipping") == 0  # the shop ships what it sold
    assert step_rule("retail_selling", "shipping", moved=True) == 1  # elsewhere: not the sold one
    assert step_rule("retail_selling", "returning", moved=True) == 0  # returned at any shop


def test_unknown_products_and_places_are_missing() -> None:
    unknown = "urn:epc:id:sgtin:0614141.812345.6789"  # EPC TDS example: not in our table
    vector, _ = supply_features(
        scan(1, BizStep.RECEIVING, "shop-paris-1", epc=unknown), initial_supply_state()
    )
    named = dict(zip(SUPPLY_FEATURES, vector, strict=True))
    assert named["unauthorised_region"] == MISSING and named["tag_auth_expected"] == MISSING


def test_state_is_bounded_json_and_not_mutated() -> None:
    state = initial_supply_state()
    shops = ["shop-paris-1", "shop-rome-1", "shop-lisbon-1", "shop-dublin-1", "shop-warsaw-1"]
    t = hours_of(life()[-1])
    events = life() + [
        scan(t + 1 + i, BizStep.SHIPPING, s, TagAuth.ABSENT, desadv=f"DA-{i}", to=s)
        for i, s in enumerate(shops)
    ]
    for event in events:
        frozen = json.dumps(state)
        vector, new_state = supply_features(event, state)
        assert json.dumps(state) == frozen
        again, _ = supply_features(event, json.loads(frozen))
        assert again == vector and again.evidence == vector.evidence
        state = new_state
    assert len(state["tracks"]) == MAX_TRACKS
    assert all(len(t["e"]) <= MAX_TRACK for t in state["tracks"])
    assert len(state["despatches"]) <= MAX_DESPATCHES
    assert any(t["c"] == 1 for t in state["tracks"])  # the genuine track is never dropped


def test_a_state_written_by_the_first_seen_track_model_is_upgraded() -> None:
    """A stream table written by the version 2 detector keeps working: its one track becomes
    the only hypothesis, with its scans, sale and commissioning."""
    events = life()
    old = {
        "v": 2,
        "scans": 8,
        "commissioned": 1,
        "first_role": 0,
        "newest_ts": events[-1].event_time.timestamp(),
        "sold": 1,
        "returned": 0,
        "decommissioned_ts": None,
        "track": [
            [e.event_time.timestamp(), e.lat, e.lon, e.biz_location, e.biz_step.value, r]
            for e, r in zip(events[2:], (0, 1, 1, 1, 2, 2), strict=True)
        ],
        "conflicts": 0,
        "conflict_sites": [],
        "auth_failures": 0,
        "auth_verified": 8,
    }
    sold = hours_of(events[-1])
    again = scan(sold + 50, BizStep.RETAIL_SELLING, "shop-berlin-1")
    vector, state = supply_features(again, json.loads(json.dumps(old)))
    named = dict(zip(SUPPLY_FEATURES, vector, strict=True))
    assert named["sales_without_return"] == 2.0 and named["missed_reads"] == 1.0
    assert named["scans_before"] == 8.0 and named["track_commissioned"] == 1.0
    assert state["v"] == 3 and len(state["tracks"]) == 1
    assert len(state["tracks"][0]["e"]) == MAX_TRACK
