"""The learned track calibration: what it measures, and that the shipped file is the fit of
the documented training data."""

from __future__ import annotations

import msgspec
import pytest
from supply_traces import SITES, hours_of, legacy, life, loc, scan

from attestcore.errors import ConfigError
from attestcore.schemas import BizStep
from detectors.geo import haversine_km
from detectors.simulate_supply import LabelledScan, simulate_supply
from detectors.supply_calibration import (
    CALIBRATION_FILE,
    CLOCK_SKEW_S,
    SupplyCalibration,
    fit_calibration,
    load_calibration,
)


def labelled(events: list, label: int = 0) -> list[LabelledScan]:  # type: ignore[type-arg]
    return [LabelledScan(event=e, label=label) for e in events]


def test_the_fit_measures_speed_misses_transit_and_moves() -> None:
    genuine = life()
    missed = [legacy(e) for e in life(epc=genuine[0].epc.replace("TEST0001", "TEST0009"))]
    del missed[5]  # the distribution centre's shipping read is missed
    copy = scan(500, BizStep.RECEIVING, "shop-rome-1")
    data = fit_calibration(labelled(genuine) + labelled(missed) + labelled([copy], 1), "hand-built")
    cal = msgspec.json.decode(data, type=SupplyCalibration)
    pairs = zip(genuine, genuine[1:], strict=False)
    moves = [(a, b) for a, b in pairs if a.biz_location != b.biz_location]
    fastest = max(
        haversine_km(a.lat, a.lon, b.lat, b.lon)
        / ((hours_of(b) - hours_of(a)) * 3600 + CLOCK_SKEW_S)
        * 3600
        for a, b in moves
    )
    assert cal.speed_cap_kmh == pytest.approx(fastest, abs=1e-3)
    # Berlin: two arrivals, one after a missed shipping read, plus the Laplace pseudo counts.
    assert cal.miss_rate(loc("shop-berlin-1")) == pytest.approx(2 / 4)
    assert cal.miss_rate(loc("dc-hamburg")) == pytest.approx(1 / 4)
    stuttgart, hamburg = SITES["fac-stuttgart"], SITES["dc-hamburg"]
    km = haversine_km(stuttgart.lat, stuttgart.lon, hamburg.lat, hamburg.lon)
    band = int(km // cal.transit_band_km)
    assert cal.transit_hours_q99[band] >= hours_of(genuine[3]) - hours_of(genuine[2])
    assert cal.move_share(1, 2) == pytest.approx((2 + 1) / (2 + 3))  # both DC-to-shop moves


def test_the_shipped_calibration_is_the_fit_of_the_training_data() -> None:
    """`make calibration` refits it: the same simulation gives the same bytes."""
    calibration, digest = load_calibration(CALIBRATION_FILE)
    assert calibration.fitted_on == "simulated: 100000 scans, seed 0"
    assert fit_calibration(simulate_supply(100_000, seed=0), calibration.fitted_on) == (
        CALIBRATION_FILE.read_bytes()
    )
    assert digest.name == CALIBRATION_FILE.name


def test_a_broken_calibration_file_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "supply-calibration-v1.json"
    path.write_text("{}")
    with pytest.raises(ConfigError, match="cannot read supply calibration"):
        load_calibration(path)
