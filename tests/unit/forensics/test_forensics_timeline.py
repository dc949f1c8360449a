"""An entity's timeline (forensics/timeline.py): events in time order with their decisions,
the great-circle distance and the speed from the event before."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from search_ledger import START, SearchLedger, payment, scan, without_timeline_copies

from attestcore.errors import UsageError
from attestcore.schemas import BizStep
from forensics.timeline import (
    EARTH_RADIUS_KM,
    Position,
    haversine_km,
    movement,
    timeline,
    timeline_json,
)
from ledger.archive import EntityKind

EPC = "urn:epc:id:sgtin:0614141.812345.6789"
ONE_DEGREE_KM = 2 * math.pi * EARTH_RADIUS_KM / 360


def test_great_circle_distances() -> None:
    equator = haversine_km(Position(0.0, 0.0), Position(0.0, 1.0))
    assert equator == pytest.approx(ONE_DEGREE_KM, rel=1e-12)
    assert pytest.approx(111.195, abs=1e-3) == ONE_DEGREE_KM
    meridian = haversine_km(Position(10.0, 5.0), Position(11.0, 5.0))
    assert meridian == pytest.approx(ONE_DEGREE_KM, rel=1e-12)
    # At 60 degrees north a degree of longitude is about half as long (the great circle is a
    # little shorter than the parallel's arc).
    north = haversine_km(Position(60.0, 0.0), Position(60.0, 1.0))
    # Two points on one parallel: half the chord is R cos(lat) sin(dlon / 2).
    chord = (
        2 * EARTH_RADIUS_KM * math.asin(math.cos(math.radians(60)) * math.sin(math.radians(0.5)))
    )
    assert north == pytest.approx(chord, rel=1e-9)
    assert north < ONE_DEGREE_KM / 2 < north + 0.001
    pole_to_pole = haversine_km(Position(90.0, 0.0), Position(-90.0, 0.0))
    assert pole_to_pole == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)
    assert haversine_km(Position(48.1, 11.6), Position(48.1, 11.6)) == 0.0


def test_speed_is_distance_over_the_hours_between_the_events() -> None:
    here, there = Position(0.0, 0.0), Position(0.0, 2.0)
    distance, hours, speed = movement((START, here), START + timedelta(minutes=30), there)
    assert distance == pytest.approx(2 * ONE_DEGREE_KM)
    assert hours == 0.5
    assert speed == pytest.approx(4 * ONE_DEGREE_KM)
    same_second = movement((START, here), START, there)
    assert same_second[0] == pytest.approx(2 * ONE_DEGREE_KM) and same_second[2] is None
    assert movement(None, START, there) == (None, None, None)
    assert movement((START, here), START, None) == (None, None, None)


def scans_of_one_epc() -> SearchLedger:
    """Four scans of one EPC, logged out of time order (a late upload), and noise."""
    ledger = SearchLedger()
    ledger.log(
        [
            scan(1, EPC, START, 0.0, 0.0, "urn:loc:factory", BizStep.COMMISSIONING),
            scan(2, EPC, START + timedelta(hours=3), 0.0, 3.0, "urn:loc:dc", BizStep.SHIPPING),
            scan(9, "urn:epc:id:sgtin:0614141.812345.1", START, 10.0, 10.0, "urn:loc:other"),
            payment(0, "C1", "T1", 0.2),
        ]
    )
    ledger.log(
        [
            scan(
                4,
                EPC,
                START + timedelta(hours=4),
                0.0,
                93.0,
                "urn:loc:store",
                BizStep.RETAIL_SELLING,
                score=0.97,
            ),
            scan(3, EPC, START + timedelta(hours=2), 0.0, 1.0, "urn:loc:truck", BizStep.RECEIVING),
        ]
    )
    return ledger


def test_an_epc_timeline_is_in_time_order_with_distance_and_speed() -> None:
    line = timeline(scans_of_one_epc(), EntityKind.EPC, EPC)
    assert [s.decision.event_id for s in line.steps] == ["sc-1", "sc-3", "sc-2", "sc-4"]
    assert not line.truncated
    first, truck, dc, store = line.steps
    assert first.distance_km is None and first.speed_kmh is None
    assert first.position == Position(0.0, 0.0)
    assert truck.distance_km == pytest.approx(ONE_DEGREE_KM)  # 0,0 -> 0,1 in 2 h
    assert truck.speed_kmh == pytest.approx(ONE_DEGREE_KM / 2)
    assert dc.distance_km == pytest.approx(2 * ONE_DEGREE_KM)  # 0,1 -> 0,3 in 1 h
    assert dc.speed_kmh == pytest.approx(2 * ONE_DEGREE_KM)
    assert store.distance_km == pytest.approx(90 * ONE_DEGREE_KM)  # a quarter of the equator
    assert store.speed_kmh == pytest.approx(90 * ONE_DEGREE_KM)  # in one hour: impossible
    data = timeline_json(line)
    assert data["events"][3]["biz_location"] == "urn:loc:store"
    assert data["events"][3]["biz_step"] == "retail_selling"
    assert data["events"][3]["outcome"] == "counterfeit"
    assert data["events"][3]["reasons"][0] == {"feature": "x", "contribution": 0.97}


def test_a_timeline_window_and_limit() -> None:
    ledger = scans_of_one_epc()
    window = timeline(
        ledger, EntityKind.EPC, EPC, START + timedelta(hours=2), START + timedelta(hours=4)
    )
    assert [s.decision.event_id for s in window.steps] == ["sc-3", "sc-2"]
    assert window.steps[0].distance_km is None, "the window starts the measuring"
    short = timeline(ledger, EntityKind.EPC, EPC, limit=2)
    assert len(short.steps) == 2 and short.truncated
    with pytest.raises(UsageError):
        timeline(ledger, EntityKind.EPC, EPC, limit=0)


def test_an_event_without_an_archived_position_has_no_distance() -> None:
    ledger = SearchLedger()
    first, _ = scan(1, EPC, START, 0.0, 0.0, "urn:loc:a")
    second, event = scan(2, EPC, START + timedelta(hours=1), 0.0, 1.0, "urn:loc:b")
    third, event3 = scan(3, EPC, START + timedelta(hours=2), 0.0, 2.0, "urn:loc:c")
    ledger.log([(first, None), (second, event), (third, event3)])  # the first not archived
    steps = timeline(ledger, EntityKind.EPC, EPC).steps
    assert [s.position for s in steps] == [None, Position(0.0, 1.0), Position(0.0, 2.0)]
    assert steps[1].distance_km is None
    assert steps[2].distance_km == pytest.approx(ONE_DEGREE_KM)


def test_a_timeline_reads_only_the_index_range_and_its_copies() -> None:
    ledger = scans_of_one_epc()
    line = timeline(ledger, EntityKind.EPC, EPC)
    assert ledger.calls == ["timeline_entity"]
    assert line.read_from == {"index": 4, "entries": 0}
    assert [s.decision.event_id for s in line.steps] == ["sc-1", "sc-3", "sc-2", "sc-4"]
    assert timeline_json(line)["read_from"] == {"index": 4, "entries": 0}


def test_a_ledger_from_before_the_copies_gives_the_same_timeline() -> None:
    copied = scans_of_one_epc()
    old = scans_of_one_epc()
    without_timeline_copies(old)
    new_line, old_line = timeline(copied, EntityKind.EPC, EPC), timeline(old, EntityKind.EPC, EPC)
    assert old.calls == ["timeline_entity", "entries_at", "archived_events_by_digest"]
    assert old_line.read_from == {"index": 0, "entries": 4}
    new_json, old_json = timeline_json(new_line), timeline_json(old_line)
    assert new_json.pop("read_from") != old_json.pop("read_from")
    assert new_json == old_json
    assert old_line.steps[3].speed_kmh == pytest.approx(90 * ONE_DEGREE_KM)

    # Half and half (a ledger migrated in the middle of the entity's events): still the same.
    mixed = scans_of_one_epc()
    first_two = sorted(k for k in mixed.steps if k[:2] == ("epc", EPC))[:2]
    mixed.steps.update(dict.fromkeys(first_two, b""))
    mixed_line = timeline(mixed, EntityKind.EPC, EPC)
    assert mixed_line.read_from == {"index": 2, "entries": 2}
    mixed_json = timeline_json(mixed_line)
    mixed_json.pop("read_from")
    assert mixed_json == old_json


def test_a_copy_that_does_not_decode_is_read_from_the_entry() -> None:
    ledger = scans_of_one_epc()
    key = next(k for k in ledger.steps if k[0] == "epc" and k[1] == EPC)
    ledger.steps[key] = b'{"lat":'
    line = timeline(ledger, EntityKind.EPC, EPC)
    assert line.read_from == {"index": 3, "entries": 1}
    assert [s.decision.event_id for s in line.steps] == ["sc-1", "sc-3", "sc-2", "sc-4"]
