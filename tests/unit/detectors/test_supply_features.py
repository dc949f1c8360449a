"""Supply-chain features on hand-built scan histories, one per counterfeit pattern and noise kind.

Sites and products are the shipped reference table's. Distances are haversine on the table's
coordinates; the ones asserted are recomputed here with `detectors.geo.haversine_km`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from attestcore.schemas import Action, BizStep, SupplyChainEvent, TagAuth
from detectors.features_supply import (
    MAX_CONFLICT_SITES,
    MAX_TRACK,
    MISSING,
    SUPPLY_FEATURES,
    State,
    initial_supply_state,
    order_violation,
    supply_features,
)
from detectors.geo import haversine_km
from detectors.reference.supply import ReferenceSite, default_supply_reference

T0 = datetime(2025, 3, 3, 8, tzinfo=UTC)
# Cordless drill: crypto tags, authorised in AT BE CZ DE DK NL PL (not FR).
DRILL = "urn:epc:id:sgtin:4012345.010020.TEST0001"
REF = default_supply_reference()
SITES = {s.code: s for s in REF.sites.values()}


def scan(
    hours: float,
    step: BizStep,
    site: str,
    auth: TagAuth = TagAuth.VERIFIED,
    epc: str = DRILL,
) -> SupplyChainEvent:
    where: ReferenceSite = SITES[site]
    return SupplyChainEvent(
        event_id=f"sc-{site}-{hours}",
        event_time=T0 + timedelta(hours=hours),
        event_time_zone_offset="+00:00",
        epc=epc,
        action=Action.OBSERVE,
        biz_step=step,
        disposition="in_progress",
        read_point=where.biz_location,
        biz_location=where.biz_location,
        lat=where.lat,
        lon=where.lon,
        reader_id="r1",
        tag_auth=auth,
    )


def run(events: list[SupplyChainEvent]) -> tuple[list[dict[str, float]], State]:
    state = initial_supply_state()
    vectors = []
    for event in events:
        vector, state = supply_features(event, state)
        assert len(vector) == len(SUPPLY_FEATURES)
        vectors.append(dict(zip(SUPPLY_FEATURES, vector, strict=True)))
    return vectors, state


def to_berlin_shop() -> list[SupplyChainEvent]:
    """A genuine drill: Stuttgart factory, Hamburg distribution centre, a Berlin shop."""
    return [
        scan(0, BizStep.COMMISSIONING, "fac-stuttgart"),
        scan(2, BizStep.PACKING, "fac-stuttgart"),
        scan(10, BizStep.SHIPPING, "fac-stuttgart"),
        scan(40, BizStep.RECEIVING, "dc-hamburg"),
        scan(44, BizStep.STORING, "dc-hamburg"),
        scan(90, BizStep.SHIPPING, "dc-hamburg"),
        scan(110, BizStep.RECEIVING, "shop-berlin-1"),
        scan(300, BizStep.RETAIL_SELLING, "shop-berlin-1"),
    ]


def test_a_genuine_life_raises_nothing() -> None:
    v, state = run(to_berlin_shop())
    for name in (
        "order_violation",
        "moved_without_shipping",
        "duplicate_read",
        "after_decommissioning",
        "at_conflict_site",
        "unauthorised_region",
        "tag_auth_failed",
    ):
        assert all(x[name] == 0.0 for x in v), name
    assert v[0]["commissioned"] == 1.0 and v[0]["first_seen_role"] == 0.0
    assert v[0]["speed_kmh"] == MISSING and v[0]["seconds_since_track"] == MISSING
    assert v[3]["site_role_change"] == 1.0 and v[6]["site_role"] == 2.0
    assert v[-1]["sales_without_return"] == 1.0 and v[-1]["conflicts_before"] == 0.0
    assert v[-1]["auth_verified_before"] == 7.0 and v[-1]["tag_auth_expected"] == 1.0
    assert state["conflicts"] == 0 and len(state["track"]) == MAX_TRACK


def test_impossible_travel_is_a_conflict_and_the_genuine_track_survives() -> None:
    """A copy read in Lisbon 3 h after the genuine drill in Hamburg; then the drill moves on."""
    events = to_berlin_shop()[:5]
    copy = scan(47, BizStep.RECEIVING, "shop-lisbon-1", auth=TagAuth.FAILED)
    events += [copy, scan(90, BizStep.SHIPPING, "dc-hamburg")]
    v, state = run(events)
    hamburg, lisbon = SITES["dc-hamburg"], SITES["shop-lisbon-1"]
    km = haversine_km(hamburg.lat, hamburg.lon, lisbon.lat, lisbon.lon)
    assert v[5]["km_from_track"] == pytest.approx(km)
    assert v[5]["speed_kmh"] == pytest.approx(km / 3) and km / 3 > 600
    assert v[5]["moved_without_shipping"] == 1.0 and v[5]["tag_auth_failed"] == 1.0
    # The genuine item's next read is compared with its own track, not with the copy.
    assert v[6]["speed_kmh"] == 0.0 and v[6]["moved_without_shipping"] == 0.0
    assert v[6]["conflicts_before"] == 1.0 and v[6]["at_conflict_site"] == 0.0
    assert state["conflict_sites"] == [lisbon.biz_location]


def test_a_clone_on_another_shelf_keeps_conflicting() -> None:
    events = to_berlin_shop()[:7]
    events += [
        scan(200, BizStep.RECEIVING, "shop-prague-1"),  # sideways, no shipping: a second copy
        scan(250, BizStep.RETAIL_SELLING, "shop-berlin-1"),  # the genuine one is sold
        scan(320, BizStep.RETAIL_SELLING, "shop-prague-1"),  # the clone is sold too
    ]
    v, _ = run(events)
    assert v[7]["moved_without_shipping"] == 1.0 and v[7]["site_role_change"] == 0.0
    assert v[8]["moved_without_shipping"] == 0.0 and v[8]["sales_without_return"] == 1.0
    assert v[9]["at_conflict_site"] == 1.0 and v[9]["order_violation"] == 1.0
    assert v[9]["sales_without_return"] == 2.0


def test_diversion_to_an_unauthorised_country() -> None:
    """The drill is not authorised in France: a Paris shop is grey market, Hamburg is not."""
    events = to_berlin_shop()[:6] + [scan(100, BizStep.RECEIVING, "shop-paris-1")]
    v, _ = run(events)
    assert v[6]["unauthorised_region"] == 1.0 and v[6]["moved_without_shipping"] == 0.0
    assert all(x["unauthorised_region"] == 0.0 for x in v[:6])
    unknown = "urn:epc:id:sgtin:0614141.812345.6789"  # EPC TDS example: not in our table
    vector, _ = supply_features(
        scan(1, BizStep.RECEIVING, "shop-paris-1", epc=unknown), initial_supply_state()
    )
    named = dict(zip(SUPPLY_FEATURES, vector, strict=True))
    assert named["unauthorised_region"] == MISSING and named["tag_auth_expected"] == MISSING


def test_sold_twice_and_sold_again_after_a_return() -> None:
    sold_twice, _ = run(to_berlin_shop() + [scan(400, BizStep.RETAIL_SELLING, "shop-berlin-1")])
    assert sold_twice[-1]["order_violation"] == 1.0
    assert sold_twice[-1]["sales_without_return"] == 2.0
    returned = to_berlin_shop() + [
        scan(400, BizStep.RETURNING, "shop-berlin-1"),
        scan(500, BizStep.RETAIL_SELLING, "shop-berlin-1"),
    ]
    v, _ = run(returned)
    assert [x["order_violation"] for x in v[-2:]] == [0.0, 0.0]
    assert v[-1]["sales_without_return"] == 1.0


def test_seen_after_decommissioning_but_not_a_late_read_from_before() -> None:
    events = to_berlin_shop()[:5] + [
        scan(100, BizStep.DECOMMISSIONING, "dc-hamburg"),
        scan(80, BizStep.STORING, "dc-hamburg"),  # uploaded late: read before the destruction
        scan(300, BizStep.RECEIVING, "shop-vienna-1"),
    ]
    v, state = run(events)
    assert v[6]["after_decommissioning"] == 0.0 and v[6]["late_seconds"] == 20 * 3600.0
    assert v[7]["after_decommissioning"] == 1.0
    assert state["decommissioned_ts"] == (T0 + timedelta(hours=100)).timestamp()


def test_a_duplicate_read_is_not_travel_nor_a_second_sale() -> None:
    genuine = to_berlin_shop()
    again = scan(300 + 30 / 3600, BizStep.RETAIL_SELLING, "shop-berlin-1")  # 30 s later
    v, state = run(genuine + [again])
    assert v[-1]["duplicate_read"] == 1.0 and v[-1]["speed_kmh"] == 0.0
    assert v[-1]["order_violation"] == 0.0 and v[-1]["sales_without_return"] == 1.0
    assert state["sold"] == 1 and state["conflicts"] == 0


def test_a_late_commissioning_upload_is_not_a_step_back() -> None:
    events = to_berlin_shop()
    late = [events[3], events[4], events[0], events[1], events[2], *events[5:]]
    v, _ = run(late)
    assert v[0]["commissioned"] == 0.0 and v[0]["first_seen_role"] == 1.0
    assert v[2]["commissioned"] == 1.0 and v[2]["late_seconds"] == 44 * 3600.0
    assert all(x["order_violation"] == 0.0 for x in v)
    assert v[-1]["conflicts_before"] == 0.0


def test_a_missed_shipping_read_is_a_gap_not_a_conflict() -> None:
    events = [e for e in to_berlin_shop() if e.event_id != "sc-dc-hamburg-90"]
    v, state = run(events)
    assert v[5]["moved_without_shipping"] == 1.0 and v[5]["site_role_change"] == 1.0
    assert v[5]["speed_kmh"] < 120 and state["conflicts"] == 0


def test_step_order_rules() -> None:
    assert order_violation("receiving", BizStep.PACKING)
    assert not order_violation("receiving", BizStep.SHIPPING)
    assert order_violation("shipping", BizStep.RETURNING)
    assert order_violation(BizStep.RETAIL_SELLING, BizStep.RECEIVING)
    assert not order_violation(BizStep.RETAIL_SELLING, BizStep.RETURNING)


def test_state_is_bounded_json_and_not_mutated() -> None:
    state = initial_supply_state()
    shops = [
        "shop-paris-1",
        "shop-rome-1",
        "shop-lisbon-1",
        "shop-dublin-1",
        "shop-warsaw-1",
        "shop-vienna-1",
    ]
    events = to_berlin_shop() + [scan(400 + i, BizStep.RECEIVING, s) for i, s in enumerate(shops)]
    for event in events:
        frozen = json.dumps(state)
        vector, new_state = supply_features(event, state)
        assert json.dumps(state) == frozen
        again, _ = supply_features(event, json.loads(frozen))
        assert again == vector
        state = new_state
    assert len(state["track"]) == MAX_TRACK
    assert len(state["conflict_sites"]) == MAX_CONFLICT_SITES
    assert state["conflicts"] == len(shops)
