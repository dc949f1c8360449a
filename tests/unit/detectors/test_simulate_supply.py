from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import msgspec

from detectors.geo import haversine_km
from detectors.simulate_supply import (
    LabelledScan,
    read_labelled_scans,
    simulate_supply,
    write_labelled_scans,
)
from streams.schemas import BizStep, SupplyChainEvent, TagAuth, encode

SCENARIOS = {"cloned_serial", "injected_fake", "lifecycle_violation"}


def test_same_seed_and_run_give_the_same_bytes() -> None:
    first = simulate_supply(1_500, seed=7, run_id="r1")
    assert msgspec.json.encode(first) == msgspec.json.encode(simulate_supply(1_500, 7, "r1"))


def test_ids_and_serials_are_unique_across_runs() -> None:
    a = simulate_supply(800, seed=3, run_id="a")
    b = simulate_supply(800, seed=3, run_id="b")
    ids_a = {s.event.event_id for s in a}
    assert len(ids_a) == 800 and not ids_a & {s.event.event_id for s in b}
    assert not {s.event.epc for s in a} & {s.event.epc for s in b}
    assert a[0].event.event_id == "sc-a-00000000"


def test_exact_count_in_event_time_order(scans: list[LabelledScan]) -> None:
    times = [s.event.event_time for s in scans]
    assert len(scans) == 12_000 and times == sorted(times)


def test_every_scenario_is_injected(scans: list[LabelledScan]) -> None:
    counts = Counter(s.scenario for s in scans)
    assert set(counts) == SCENARIOS | {""}
    assert all(s.label == (1 if s.scenario else 0) for s in scans)
    assert 0.003 < sum(s.label for s in scans) / len(scans) < 0.05


def test_genuine_tags_mostly_verify(scans: list[LabelledScan]) -> None:
    genuine = Counter(s.event.tag_auth for s in scans if s.label == 0)
    assert genuine[TagAuth.VERIFIED] / sum(genuine.values()) > 0.9


def test_every_event_validates_against_the_wire_schema(scans: list[LabelledScan]) -> None:
    decoder = msgspec.json.Decoder(SupplyChainEvent)
    for s in scans:
        assert decoder.decode(encode(s.event)) == s.event


def test_fakes_were_never_commissioned(scans: list[LabelledScan]) -> None:
    commissioned = {s.event.epc for s in scans if s.event.biz_step == BizStep.COMMISSIONING}
    fakes = [s for s in scans if s.scenario == "injected_fake"]
    assert fakes and all(s.event.epc not in commissioned for s in fakes)
    assert all(s.event.tag_auth != TagAuth.VERIFIED for s in fakes)


def test_a_clone_travels_impossibly_fast(scans: list[LabelledScan]) -> None:
    """Each clone's first scan is far from the genuine item's latest scan before it."""
    last_genuine: dict[str, SupplyChainEvent] = {}
    first_seen: set[str] = set()
    distances = []
    for s in scans:
        e = s.event
        if s.scenario == "cloned_serial" and e.epc not in first_seen and e.epc in last_genuine:
            first_seen.add(e.epc)
            g = last_genuine[e.epc]
            distances.append(haversine_km(g.lat, g.lon, e.lat, e.lon))
        elif s.label == 0:
            last_genuine[e.epc] = e
    assert distances and min(distances) >= 800


def test_lifecycle_copies_come_after_a_sale_or_destruction(scans: list[LabelledScan]) -> None:
    history: dict[str, list[BizStep]] = defaultdict(list)
    for s in scans:
        if s.scenario == "lifecycle_violation" and s.event.biz_step == BizStep.RECEIVING:
            assert history[s.event.epc][-1] in (BizStep.RETAIL_SELLING, BizStep.DECOMMISSIONING)
        history[s.event.epc].append(s.event.biz_step)


def test_labelled_file_round_trips(tmp_path: Path) -> None:
    scans = simulate_supply(200, seed=2, run_id="file")
    path = tmp_path / "scans.jsonl"
    write_labelled_scans(path, scans)
    assert read_labelled_scans(path) == scans
