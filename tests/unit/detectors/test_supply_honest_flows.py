"""Legitimate flows and honest noise, each in a small hand-built trace, stay quiet: no scan
conflicts with the item's own track, and no second track is started."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from supply_traces import (
    EARBUDS,
    PALLET,
    SITES,
    conflicts,
    earbuds_life,
    hours_of,
    legacy,
    life,
    loc,
    quiet,
    run,
    scan,
)

from attestcore.schemas import BizStep, SourceDest, SourceDestType, SupplyChainEvent, TagAuth
from detectors.features_supply import MISSING
from detectors.geo import haversine_km
from detectors.supply_calibration import default_calibration


def assert_quiet(events: list) -> list[dict[str, float]]:  # type: ignore[type-arg]
    v, _, state = run(events)
    assert [conflicts(x) for x in v] == [[] for _ in v]
    assert all(quiet(x) for x in v)
    assert len(state["tracks"]) == 1 and all(x["started_track"] == 0.0 for x in v)
    return v


def test_a_return_at_another_shop_after_the_sale_and_a_resale_there() -> None:
    genuine = earbuds_life()
    sold = hours_of(genuine[-1])
    v = assert_quiet(
        [
            *genuine,
            scan(sold + 72, BizStep.RETURNING, "shop-brussels-1", TagAuth.ABSENT, genuine[0].epc),
            scan(
                sold + 200,
                BizStep.RETAIL_SELLING,
                "shop-brussels-1",
                TagAuth.ABSENT,
                genuine[0].epc,
            ),
        ]
    )
    assert v[-1]["sales_without_return"] == 1.0


def test_an_order_sold_at_the_shop_and_shipped_from_it_to_the_customer() -> None:
    genuine = earbuds_life()
    sold = hours_of(genuine[-1])
    assert_quiet(
        [*genuine, scan(sold + 5, BizStep.SHIPPING, "shop-amsterdam-1", TagAuth.ABSENT, EARBUDS)]
    )


def test_a_repair_at_the_factory_after_the_sale() -> None:
    genuine = life()
    sold = hours_of(genuine[-1])
    assert_quiet(
        [
            *genuine,
            scan(sold + 200, BizStep.RECEIVING, "fac-stuttgart", rma="RMA-1"),
            scan(sold + 220, BizStep.REPAIRING, "fac-stuttgart"),
            scan(sold + 300, BizStep.SHIPPING, "fac-stuttgart"),
        ]
    )


def test_a_store_transfer() -> None:
    genuine = life()[:7]
    t = hours_of(genuine[-1])
    v = assert_quiet(
        [
            *genuine,
            scan(t + 48, BizStep.SHIPPING, "shop-berlin-1", desadv="DA-T", to="shop-munich-1"),
            scan(t + 70, BizStep.RECEIVING, "shop-munich-1", desadv="DA-T", source="shop-berlin-1"),
            scan(t + 200, BizStep.RETAIL_SELLING, "shop-munich-1"),
        ]
    )
    assert v[-2]["receipt_expected"] == 1.0 and v[-2]["transit_ratio"] <= 1


def test_a_multi_hop_route_through_two_distribution_centres() -> None:
    genuine = life(dc="dc-hamburg", shop="shop-warsaw-1")
    t = hours_of(genuine[4])
    hops = [
        scan(t + 20, BizStep.SHIPPING, "dc-hamburg", desadv="DA-H", to="dc-warsaw"),
        scan(t + 50, BizStep.RECEIVING, "dc-warsaw", desadv="DA-H", source="dc-hamburg"),
        scan(t + 60, BizStep.STORING, "dc-warsaw"),
        scan(t + 90, BizStep.SHIPPING, "dc-warsaw", desadv="DA-W", to="shop-warsaw-1"),
        scan(t + 100, BizStep.RECEIVING, "shop-warsaw-1", desadv="DA-W", source="dc-warsaw"),
        scan(t + 300, BizStep.RETAIL_SELLING, "shop-warsaw-1"),
    ]
    assert_quiet([*genuine[:5], *hops])


def test_one_missed_read_is_explained_by_the_receipt_or_costs_one_missed_read() -> None:
    """The distribution centre's shipping read is missed. A version 2 receipt names its
    source, so nothing is amiss; a version 1 receipt joins the track at the cost of one
    missed read, and the item's later scans are back to normal."""
    events = [e for i, e in enumerate(life()) if i != 5]
    v = assert_quiet(events)
    assert v[5]["missed_reads"] == 0.0
    old = [legacy(e) for e in events]
    v1, _, state = run(old)
    assert v1[5]["missed_reads"] == 1.0 and v1[5]["fit_cost"] > 0
    assert v1[5]["started_track"] == 0.0 and len(state["tracks"]) == 1
    assert v1[6]["fit_cost"] == 0.0 and v1[6]["plausibility_gap"] == -1.0


def test_a_missed_shipping_read_explained_by_the_receipt_naming_its_sending_party() -> None:
    """The centre's shipping read is missed and the receipt names its source only as an owning
    party: a party GLN with the centre's GS1 Company Prefix accounts for the move; a party of
    another company does not."""
    events = [e for i, e in enumerate(life()) if i != 5]
    centre = loc("dc-hamburg").removeprefix("urn:epc:id:sgln:").split(".")[0]

    def named_by(company: str) -> list[SupplyChainEvent]:
        party = SourceDest(type=SourceDestType.OWNING_PARTY, id=f"urn:epc:id:pgln:{company}.00000")
        return [*events[:5], msgspec.structs.replace(events[5], source_list=[party]), events[6]]

    v = assert_quiet(named_by(centre))
    assert v[5]["declared_source_matches"] == 1.0 and v[5]["receipt_expected"] == 1.0
    other, _, state = run(named_by("9999999"))
    assert other[5]["declared_source_matches"] == 0.0 and other[5]["receipt_expected"] == 0.0
    assert other[5]["started_track"] == 1.0 and len(state["tracks"]) == 2


def test_a_pallet_level_read() -> None:
    genuine = life()
    storing = genuine[4]
    pallet = msgspec.structs.replace(storing, parent_id=PALLET, tag_auth=TagAuth.ABSENT)
    v = assert_quiet([*genuine[:4], pallet, *genuine[5:]])
    assert v[4]["pallet_read"] == 1.0


def test_reader_clock_skew_of_minutes() -> None:
    """Two Berlin shops: the receiving reader's clock runs 4 minutes behind the shipping
    one, so the receipt's event time is before the despatch's."""
    genuine = life()[:7]
    t = hours_of(genuine[-1]) + 48
    skew = timedelta(minutes=4)
    assert skew.total_seconds() < default_calibration()[0].clock_skew_s
    shipped = scan(t, BizStep.SHIPPING, "shop-berlin-1", desadv="DA-S", to="shop-berlin-2")
    received = scan(t, BizStep.RECEIVING, "shop-berlin-2", desadv="DA-S", source="shop-berlin-1")
    received = msgspec.structs.replace(received, event_time=received.event_time - skew)
    assert_quiet(
        [*genuine, shipped, received, scan(t + 100, BizStep.RETAIL_SELLING, "shop-berlin-2")]
    )


def test_a_late_upload_of_hours() -> None:
    genuine = life()
    late = [*genuine[:4], genuine[5], genuine[6], genuine[4], genuine[7]]  # storing 60 h late
    v = assert_quiet(late)
    assert v[6]["late_seconds"] > 0


def test_duplicate_reads_are_not_a_second_sale() -> None:
    genuine = life()
    again = msgspec.structs.replace(
        genuine[-1],
        event_id="sc-again",
        event_time=genuine[-1].event_time + timedelta(seconds=30),
    )
    v = assert_quiet([*genuine, again])
    assert v[-1]["duplicate_read"] == 1.0 and v[-1]["sales_without_return"] == 1.0


def test_air_freight_along_a_known_despatch() -> None:
    """Shenzhen to Rotterdam in 20 h is far beyond any truck the calibration measured, but the
    factory's despatch advice names Rotterdam: the brand's own logistics flew it. The storing
    read after a missed receipt is explained the same way."""
    genuine = earbuds_life()
    flown = [*genuine[:3], scan(30, BizStep.RECEIVING, "dc-rotterdam", TagAuth.ABSENT, EARBUDS)]
    fast_km = haversine_km(*_coords("fac-shenzhen"), *_coords("dc-rotterdam"))
    assert fast_km / 20 > default_calibration()[0].speed_cap_kmh
    v = assert_quiet([*flown, *genuine[4:]])
    assert v[3]["fit_cost"] == 0.0 and v[3]["receipt_expected"] == 1.0
    assert v[3]["speed_ratio"] == MISSING  # no move outside a known despatch to measure
    missed_receipt = [*genuine[:3], scan(30, BizStep.STORING, "dc-rotterdam", TagAuth.ABSENT)]
    assert_quiet([*missed_receipt[:3], msgspec.structs.replace(missed_receipt[3], epc=EARBUDS)])


def _coords(code: str) -> tuple[float, float]:
    return SITES[code].lat, SITES[code].lon


def test_a_damaged_tag_failing_where_its_own_track_expects_it() -> None:
    """The genuine tag fails its challenge at the sale, the next step of its own life: a
    failed challenge, but on the track (a read error), unlike a copy's elsewhere."""
    genuine = life()
    damaged = msgspec.structs.replace(genuine[-1], tag_auth=TagAuth.FAILED)
    v, _, state = run([*genuine[:-1], damaged])
    assert v[-1]["tag_auth_failed"] == 1.0 and v[-1]["failed_off_track"] == 0.0
    assert v[-1]["fit_cost"] == 0.0 and len(state["tracks"]) == 1
