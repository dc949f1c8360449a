"""The supply-chain simulator: determinism, every scenario and noise kind, documented labels."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import msgspec
import pytest

from attestcore.schemas import BizStep, SupplyChainEvent, TagAuth, encode
from detectors.geo import haversine_km
from detectors.reference.supply import SiteRole, default_supply_reference
from detectors.simulate_supply import (
    NOISE_KINDS,
    SCENARIOS,
    LabelledScan,
    read_labelled_scans,
    simulate_supply,
    write_labelled_scans,
)
from detectors.supply_scenarios import IMPOSSIBLE_MIN_KMH

DOC = Path(__file__).parents[3] / "docs" / "detectors.md"


def test_same_seed_and_run_give_the_same_bytes() -> None:
    first = simulate_supply(1_500, seed=7, run_id="r1")
    assert msgspec.json.encode(first) == msgspec.json.encode(simulate_supply(1_500, 7, "r1"))
    assert msgspec.json.encode(first) != msgspec.json.encode(simulate_supply(1_500, 8, "r1"))


def test_ids_and_serials_are_unique_across_runs() -> None:
    a = simulate_supply(800, seed=3, run_id="a")
    b = simulate_supply(800, seed=3, run_id="b")
    ids_a = {s.event.event_id for s in a}
    assert len(ids_a) == 800 and not ids_a & {s.event.event_id for s in b}
    assert not {s.event.epc for s in a} & {s.event.epc for s in b}
    assert a[0].event.event_id == "sc-a-00000000"


def test_arrival_order_only_late_uploads_arrive_out_of_event_time(
    scans: list[LabelledScan],
) -> None:
    """Scans come in arrival order: a genuine item's scan older than one that arrived before
    it was uploaded late (a copy's scans are checked apart: they are another physical item)."""
    assert len(scans) == 12_000
    assert [s.event.event_id for s in scans] == [f"sc-unit-{i:08d}" for i in range(12_000)]
    newest: dict[str, float] = {}
    late = 0
    for s in scans:
        if s.label:
            continue
        ts = s.event.event_time.timestamp()
        if ts < newest.get(s.event.epc, ts):
            assert "late_upload" in s.noise, s.event.event_id
            late += 1
        newest[s.event.epc] = max(ts, newest.get(s.event.epc, ts))
    assert late > 0


def test_every_scenario_and_noise_kind_occurs_and_is_documented(
    scans: list[LabelledScan],
) -> None:
    scenarios = Counter(s.scenario for s in scans)
    assert set(scenarios) == set(SCENARIOS) | {""}
    assert all(s.label == (1 if s.scenario else 0) for s in scans)
    assert 0.004 < sum(s.label for s in scans) / len(scans) < 0.03
    noise = Counter(kind for s in scans for kind in s.noise)
    assert set(noise) == set(NOISE_KINDS)
    genuine_noisy = [s for s in scans if s.noise and not s.scenario]
    assert genuine_noisy and all(s.label == 0 for s in genuine_noisy)
    doc = DOC.read_text(encoding="utf-8")
    assert all(f"`{name}`" in doc for name in (*SCENARIOS, *NOISE_KINDS))


def test_noise_rates_are_near_the_documented_ones(scans: list[LabelledScan]) -> None:
    genuine = [s for s in scans if s.label == 0]
    rate = Counter(kind for s in genuine for kind in s.noise)
    assert 0.02 < rate["missed_read"] / len(genuine) < 0.06
    assert 0.02 < rate["duplicate_read"] / len(genuine) < 0.045


def test_a_duplicate_read_repeats_an_earlier_read(scans: list[LabelledScan]) -> None:
    seen: dict[str, list[SupplyChainEvent]] = defaultdict(list)
    for s in scans:
        e = s.event
        if "duplicate_read" in s.noise:
            original = [
                p
                for p in seen[e.epc]
                if (p.biz_step, p.biz_location) == (e.biz_step, e.biz_location)
            ]
            assert original, e.event_id
            gap = (e.event_time - original[-1].event_time).total_seconds()
            assert 0 < gap <= 900 and e.reader_id != original[-1].reader_id
        seen[e.epc].append(e)


def test_genuine_tags_verify_unless_unchecked_or_a_read_error(scans: list[LabelledScan]) -> None:
    ref = default_supply_reference()
    for s in scans:
        product = ref.product_of(s.event.epc)
        assert product is not None
        if s.label == 0 and not product.tag_authentication:
            assert s.event.tag_auth == TagAuth.ABSENT
        if s.label == 0 and s.event.tag_auth == TagAuth.FAILED:
            assert "read_error" in s.noise


def test_every_event_validates_against_the_wire_schema(scans: list[LabelledScan]) -> None:
    decoder = msgspec.json.Decoder(SupplyChainEvent)
    ref = default_supply_reference()
    for s in scans:
        assert decoder.decode(encode(s.event)) == s.event
        assert s.event.biz_location in ref.sites


def test_fakes_were_never_commissioned(scans: list[LabelledScan]) -> None:
    commissioned = {s.event.epc for s in scans if s.event.biz_step == BizStep.COMMISSIONING}
    fakes = [s for s in scans if s.scenario == "injected_fake"]
    assert fakes and all(s.event.epc not in commissioned for s in fakes)
    assert all(s.event.tag_auth != TagAuth.VERIFIED for s in fakes)


def test_impossible_travel_copies_outrun_any_freight(scans: list[LabelledScan]) -> None:
    """A copy's first scan against the genuine item's latest read before it in event time.

    The genuine read the copy was placed after can itself be a missed read, so a few copies
    compare with an older read; most must still be faster than `IMPOSSIBLE_MIN_KMH`.
    """
    genuine: dict[str, list[SupplyChainEvent]] = defaultdict(list)
    for s in scans:
        if s.label == 0:
            genuine[s.event.epc].append(s.event)
    speeds = []
    for s in [s for s in scans if s.scenario == "impossible_travel"]:
        e = s.event
        before = [g for g in genuine[e.epc] if g.event_time <= e.event_time]
        if before and e.biz_step == BizStep.RECEIVING:
            g = max(before, key=lambda g: g.event_time)
            hours = max((e.event_time - g.event_time).total_seconds() / 3600, 1 / 60)
            speeds.append(haversine_km(g.lat, g.lon, e.lat, e.lon) / hours)
    assert speeds and sum(v >= IMPOSSIBLE_MIN_KMH for v in speeds) / len(speeds) > 0.85


def test_clones_turn_up_at_another_shop(scans: list[LabelledScan]) -> None:
    shelves: dict[str, set[str]] = defaultdict(set)
    for s in scans:
        e = s.event
        if s.label == 0 and e.biz_step == BizStep.RECEIVING:
            shelves[e.epc].add(e.biz_location)
        elif s.scenario == "cloned_serial" and e.biz_step == BizStep.RECEIVING:
            assert e.biz_location not in shelves[e.epc]


def test_grey_market_is_an_unauthorised_country_and_nothing_else_is(
    scans: list[LabelledScan],
) -> None:
    ref = default_supply_reference()
    diverted = 0
    for s in scans:
        site = ref.sites[s.event.biz_location]
        product = ref.product_of(s.event.epc)
        assert product is not None
        if site.role != SiteRole.RETAILER:
            continue
        authorised = site.country in product.authorised_countries
        if s.scenario == "grey_market":
            assert not authorised
            diverted += 1
        elif s.label == 0:
            assert authorised, s.event.event_id
    assert diverted > 0


def test_lifecycle_copies_come_after_the_genuine_life(scans: list[LabelledScan]) -> None:
    life: dict[str, list[SupplyChainEvent]] = defaultdict(list)
    for s in scans:
        if s.label == 0:
            life[s.event.epc].append(s.event)
    copies = [s.event for s in scans if s.scenario == "lifecycle_violation"]
    assert copies
    for e in copies:
        assert all(g.event_time < e.event_time for g in life[e.epc])
    ends = [max(life[e.epc], key=lambda g: g.event_time).biz_step for e in copies if life[e.epc]]
    final = sum(step in (BizStep.RETAIL_SELLING, BizStep.DECOMMISSIONING) for step in ends)
    assert final / len(ends) > 0.85  # the rest lost their last read (a missed read)


def test_labelled_file_round_trips(tmp_path: Path) -> None:
    scans = simulate_supply(300, seed=2, run_id="file")
    path = tmp_path / "scans.jsonl"
    write_labelled_scans(path, scans)
    assert read_labelled_scans(path) == scans
    line = msgspec.json.decode(path.read_bytes().splitlines()[0])
    assert set(line) == {"event", "label", "scenario", "noise"}


@pytest.mark.parametrize("count", [0, -5])
def test_a_count_below_one_is_refused(count: int) -> None:
    from attestcore.errors import UsageError

    with pytest.raises(UsageError, match="count"):
        simulate_supply(count)


def test_cli_writes_the_labelled_file_the_docs_train_on(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from attestream.commands.simulate import app

    out = tmp_path / "scans.jsonl"
    args = ["supply-chain", "--count", "500", "--seed", "3", "--data-out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert read_labelled_scans(out) == simulate_supply(500, seed=3)


def test_despatch_advices_name_where_the_goods_should_arrive(scans: list[LabelledScan]) -> None:
    """A receipt cites its shipment's despatch advice; a grey-market receipt is somewhere
    else than the advice names; sites without business data send version 1 messages."""
    destinations = {
        t.id: s.event.destination_list[0].id
        for s in scans
        if s.event.biz_step == BizStep.SHIPPING and s.event.destination_list
        for t in s.event.biz_transactions
    }
    matched = {0: 0, 1: 0}
    elsewhere = {0: 0, 1: 0}
    for s in scans:
        if s.event.biz_step != BizStep.RECEIVING:
            continue
        for t in s.event.biz_transactions:
            if t.id in destinations:
                same = destinations[t.id] == s.event.biz_location
                (matched if same else elsewhere)[s.label] += 1
    assert elsewhere[0] == 0 and matched[0] > 100
    grey = [s for s in scans if s.scenario == "grey_market" and s.event.biz_transactions]
    assert grey and elsewhere[1] > 0
    versions = {s.event.schema_version for s in scans}
    assert versions == {1, 2}
    assert all(not s.event.biz_transactions for s in scans if s.event.schema_version == 1)
