"""World B: determinism, its own network, readers and tactics, labelled like world A."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import msgspec
import numpy as np
import pytest
from typer.testing import CliRunner

from attestcore.errors import UsageError
from attestcore.schemas import BizStep, SupplyChainEvent, TagAuth, encode
from attestream.commands.simulate import app
from detectors.reference.supply import SiteRole, default_supply_reference
from detectors.simulate_supply import LabelledScan, read_labelled_scans, simulate_supply
from detectors.simulate_supply_b import simulate_supply_b
from detectors.supply_world_b import MISSED_READ, NOISE_B, TACTICS_B, build_world_b

DOC = Path(__file__).parents[3] / "docs" / "detectors.md"
REF = default_supply_reference()


@pytest.fixture(scope="module")
def world_b() -> list[LabelledScan]:
    return simulate_supply_b(20_000, seed=4, run_id="unit-b")


def _site(scan: LabelledScan) -> str:
    site = REF.site(scan.event.biz_location)
    assert site is not None
    return site.code


def test_same_seed_and_run_give_the_same_bytes() -> None:
    first = simulate_supply_b(1_500, seed=7, run_id="r1")
    assert msgspec.json.encode(first) == msgspec.json.encode(simulate_supply_b(1_500, 7, "r1"))
    assert msgspec.json.encode(first) != msgspec.json.encode(simulate_supply_b(1_500, 8, "r1"))
    assert first[0].event.event_id == "sb-r1-00000000" and len(first) == 1_500


def test_no_epc_is_shared_with_world_a_of_the_same_run() -> None:
    a = {s.event.epc for s in simulate_supply(2_000, seed=1, run_id="same")}
    b = {s.event.epc for s in simulate_supply_b(2_000, seed=1, run_id="same")}
    assert a and b and not a & b


def test_every_tactic_and_noise_kind_occurs_and_is_documented(
    world_b: list[LabelledScan],
) -> None:
    assert {s.scenario for s in world_b} == {*TACTICS_B, ""}
    assert all(s.label == (1 if s.scenario else 0) for s in world_b)
    assert 0.004 < sum(s.label for s in world_b) / len(world_b) < 0.03
    assert {k for s in world_b for k in s.noise} == set(NOISE_B)
    doc = DOC.read_text(encoding="utf-8")
    assert all(f"`{name}`" in doc for name in (*TACTICS_B, *NOISE_B))


def test_every_event_is_a_valid_wire_event_at_a_reference_site(
    world_b: list[LabelledScan],
) -> None:
    decoder = msgspec.json.Decoder(SupplyChainEvent)
    for s in world_b:
        assert decoder.decode(encode(s.event)) == s.event
        assert s.event.biz_location in REF.sites


def test_readers_miss_six_to_twenty_four_percent_and_clocks_are_minutes_off() -> None:
    world = build_world_b(np.random.default_rng(0))
    assert all(MISSED_READ[0] <= m <= MISSED_READ[1] for m in world.readers.miss.values())
    skews = np.array(list(world.readers.skew.values()))
    assert np.abs(skews).max() <= 900 and (np.abs(skews) > 60).mean() > 0.5


def test_older_than_an_earlier_arrival_only_by_late_upload_or_clock(
    world_b: list[LabelledScan],
) -> None:
    """Arrival order: a genuine scan older than one already seen of its EPC was uploaded late
    or read by a reader whose clock is off (a pallet read then lands before its neighbour)."""
    newest: dict[str, float] = {}
    out_of_order = Counter[str]()
    for s in world_b:
        ts = s.event.event_time.timestamp()
        if s.label == 0 and ts < newest.get(s.event.epc, ts):
            assert {"late_upload", "clock_skew"} & set(s.noise), s.event.event_id
            out_of_order.update(k for k in s.noise if k in ("late_upload", "clock_skew"))
        newest[s.event.epc] = max(ts, newest.get(s.event.epc, ts))
    assert out_of_order["late_upload"] > 0


def test_pallets_are_read_together(world_b: list[LabelledScan]) -> None:
    groups: dict[tuple[str, int], set[str]] = defaultdict(set)
    for s in world_b:
        if "pallet_read" in s.noise and s.event.biz_step == BizStep.COMMISSIONING:
            minute = int(s.event.event_time.timestamp()) // 600
            groups[(s.event.reader_id, minute)].add(s.event.epc)
    assert max(len(epcs) for epcs in groups.values()) >= 12


def _by_epc(scans: list[LabelledScan]) -> dict[str, list[LabelledScan]]:
    lives: dict[str, list[LabelledScan]] = defaultdict(list)
    for s in scans:
        lives[s.event.epc].append(s)
    return lives


def test_tactics_leave_the_traces_they_promise(world_b: list[LabelledScan]) -> None:
    lives = _by_epc(world_b)
    checked = Counter[str]()
    reentered = Counter[str]()
    for epc, scans in lives.items():
        copy = [s for s in scans if s.label]
        genuine = [s for s in scans if not s.label]
        if not copy:
            continue
        first = min(copy, key=lambda s: s.event.event_time)
        tactic = first.scenario
        if tactic == "clone_same_city":
            shops = [
                _site(g)
                for g in genuine
                if g.event.biz_step == BizStep.RECEIVING and _site(g).startswith("shop-")
            ]
            city = _site(first).rsplit("-", 1)[0]
            assert any(s.startswith(city) and s != _site(first) for s in shops) or not shops
        elif tactic == "return_swap":
            # Returned at the shop that sold the genuine item (the return read may be missed).
            assert first.event.biz_step in (BizStep.RETURNING, BizStep.RETAIL_SELLING)
            assert len({_site(s) for s in copy}) == 1
        elif tactic == "distributor_entry":
            assert REF.sites[first.event.biz_location].role == SiteRole.DISTRIBUTOR
        elif tactic == "diversion_reentry":
            product = REF.product_of(epc)
            assert product is not None
            sites = [REF.sites[s.event.biz_location] for s in copy]
            assert all(site.role == SiteRole.RETAILER for site in sites)
            # Back in an authorised country (unless both re-entry reads were missed).
            reentered[tactic] += any(site.country in product.authorised_countries for site in sites)
        elif tactic == "clone_before_genuine":
            shelf = [g for g in genuine if REF.sites[g.event.biz_location].role.value == "retailer"]
            # Received before the genuine item reached any shop (unless that read was missed).
            if shelf and first.event.biz_step == BizStep.RECEIVING:
                assert first.event.event_time.timestamp() < min(
                    g.event.event_time.timestamp() for g in shelf
                )
        checked[tactic] += 1
    assert set(checked) == set(TACTICS_B)
    assert reentered["diversion_reentry"] > checked["diversion_reentry"] / 2


def test_genuine_tags_verify_unless_unchecked_or_a_read_error(
    world_b: list[LabelledScan],
) -> None:
    for s in world_b:
        product = REF.product_of(s.event.epc)
        assert product is not None
        if s.label == 0 and not product.tag_authentication:
            assert s.event.tag_auth == TagAuth.ABSENT
        if s.label == 0 and s.event.tag_auth == TagAuth.FAILED:
            assert "read_error" in s.noise


def test_cli_writes_world_b_in_the_labelled_file_format(tmp_path: Path) -> None:
    out = tmp_path / "b.jsonl"
    args = ["supply-chain", "--world", "b", "--count", "500", "--seed", "2", "--data-out"]
    result = CliRunner().invoke(app, [*args, str(out)])
    assert result.exit_code == 0, result.output
    assert read_labelled_scans(out) == simulate_supply_b(500, seed=2)
    unknown = CliRunner().invoke(app, ["supply-chain", "--world", "c", "--data-out", str(out)])
    assert isinstance(unknown.exception, UsageError)
    assert "unknown world 'c'" in str(unknown.exception)
