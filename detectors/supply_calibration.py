"""Track-model quantities learned from genuine training scans, shipped as reference data.

The authenticity features compare a scan with its EPC's tracks (`detectors.supply_tracks`).
How fast goods really move, how often a site's reads are missed, how long a despatch takes
and how far apart two reads of one read event lie are not guessed: `fit_calibration` measures
them on the genuine (label 0) scans of a labelled training file, and the result is published
as `detectors/reference/supply-calibration-v1.json`. Like the master data it is read by the
feature functions, named by SHA-256 in the model card, and never edited once published: a
refit is a new version, then a retrained model.

Each quantity, how it is measured (per EPC, the genuine scans in event-time order):

- `speed_cap_kmh`: the highest implied speed between consecutive scans at
  two sites (distance over the time plus the clock skew allowance);
- `site_miss_rate`: per receiving site, the share of arrivals (a scan at another site than
  the scan before) not preceded by a shipping scan, i.e. with a missed read, with one pseudo
  arrival of each kind (Laplace); `miss_rate_default` is the same over all sites;
- `duplicate_window_s`: the 99th percentile of the time between consecutive reads with the
  same site and step (the same read event seen twice);
- `transit_hours_q99`: per distance band of `TRANSIT_BAND_KM`, the 99th percentile of the
  hours from a despatch (shipping with a despatch advice) to its receipt;
- `role_move_share`: per pair of site roles (`"1>2"`: distribution centre to shop, role ranks
  of `detectors.reference.supply.ROLE_RANK`), the share of genuine moves from the first role
  that go to the second, with one pseudo move of each kind; a move without a shipping read
  costs the missed read and this move's rarity (a distribution centre to another one).

`clock_skew_s` is not fitted: it is the wire contract's allowed skew between a reader's
clock and the stream's (`streams.pipeline.DEFAULT_MAX_CLOCK_SKEW_S`, 300 s).
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from attestcore.errors import ConfigError
from attestcore.schemas import BizStep, BizTransactionType, SupplyChainEvent
from detectors.geo import haversine_km
from detectors.reference import ReferenceDataDigest
from detectors.reference.supply import ROLE_RANK, default_supply_reference

CALIBRATION_FORMAT = "attestream.supply-calibration/1"
CALIBRATION_FILE = Path(__file__).with_name("reference") / "supply-calibration-v1.json"
CLOCK_SKEW_S = 300.0  # the wire contract's allowed reader clock skew (see module docstring)
TRANSIT_BAND_KM = 250.0
SPEED_QUANTILE = 100.0  # the fastest genuine move: the model reads speed_ratio, a ratio to it
DUPLICATE_QUANTILE = 99.0
TRANSIT_QUANTILE = 99.0


class SupplyCalibration(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    format: str
    version: str
    description: str
    fitted_on: str
    clock_skew_s: float
    speed_cap_kmh: float
    duplicate_window_s: float
    miss_rate_default: float
    site_miss_rate: dict[str, float]
    transit_band_km: float
    transit_hours_q99: list[float]
    role_move_share: dict[str, float]

    def miss_rate(self, site: str) -> float:
        return self.site_miss_rate.get(site, self.miss_rate_default)

    def move_share(self, from_role: int | None, to_role: int | None) -> float:
        """How common a genuine move between these roles is; 1 when a role is unknown."""
        if from_role is None or to_role is None:
            return 1.0
        return self.role_move_share.get(f"{from_role}>{to_role}", 1.0)

    def transit_bound_hours(self, km: float) -> float:
        """The 99th-percentile transit time of the distance band `km` falls in; beyond the
        bands seen, the last band's hours scaled by distance."""
        band = int(km // self.transit_band_km)
        if band < len(self.transit_hours_q99):
            return self.transit_hours_q99[band]
        last = len(self.transit_hours_q99)
        return self.transit_hours_q99[-1] * (band + 1) / last


@functools.cache
def default_calibration() -> tuple[SupplyCalibration, ReferenceDataDigest]:
    return load_calibration(CALIBRATION_FILE)


def load_calibration(path: Path) -> tuple[SupplyCalibration, ReferenceDataDigest]:
    try:
        data = path.read_bytes()
        calibration = msgspec.json.decode(data, type=SupplyCalibration)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"cannot read supply calibration {path}: {exc}") from exc
    if calibration.format != CALIBRATION_FORMAT or not calibration.transit_hours_q99:
        raise ConfigError(f"supply calibration {path} is not {CALIBRATION_FORMAT}")
    digest = ReferenceDataDigest(
        name=path.name,
        format=CALIBRATION_FORMAT,
        version=calibration.version,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return calibration, digest


def _genuine_lives(labelled: Iterable[Any]) -> list[list[SupplyChainEvent]]:
    lives: dict[str, list[SupplyChainEvent]] = defaultdict(list)
    for scan in labelled:
        if scan.label == 0:
            lives[scan.event.epc].append(scan.event)
    return [sorted(life, key=lambda e: e.event_time) for life in lives.values()]


def _desadv(event: SupplyChainEvent) -> str | None:
    return next(
        (t.id for t in event.biz_transactions if t.type == BizTransactionType.DESPATCH_ADVICE),
        None,
    )


def fit_calibration(labelled: Sequence[Any], fitted_on: str, version: str = "1") -> bytes:
    """The calibration file's bytes, measured on `labelled` scans (`.event`, `.label`)."""
    speeds: list[float] = []
    gaps: list[float] = []
    arrivals: dict[str, list[int]] = defaultdict(lambda: [1, 2])  # [missed + 1, arrivals + 2]
    transits: dict[int, list[float]] = defaultdict(list)
    roles: dict[str, int] = {}
    moves: dict[tuple[int, int], int] = defaultdict(int)
    for life in _genuine_lives(labelled):
        despatched: dict[str, SupplyChainEvent] = {}
        for a, b in zip(life, life[1:], strict=False):
            dt = (b.event_time - a.event_time).total_seconds()
            if a.biz_location == b.biz_location:
                if a.biz_step == b.biz_step:
                    gaps.append(dt)
                continue
            km = haversine_km(a.lat, a.lon, b.lat, b.lon)
            speeds.append(km / (dt + CLOCK_SKEW_S) * 3600)
            pair = (_role(a, roles), _role(b, roles))
            if pair[0] >= 0 and pair[1] >= 0:
                moves[pair] += 1
            counts = arrivals[b.biz_location]
            counts[0] += a.biz_step not in (BizStep.SHIPPING, BizStep.RETAIL_SELLING)
            counts[1] += 1
        for event in life:
            advice = _desadv(event)
            if advice is None:
                continue
            if event.biz_step == BizStep.SHIPPING:
                despatched[advice] = event
            elif event.biz_step == BizStep.RECEIVING and advice in despatched:
                sent = despatched[advice]
                km = haversine_km(sent.lat, sent.lon, event.lat, event.lon)
                hours = (event.event_time - sent.event_time).total_seconds() / 3600
                transits[int(km // TRANSIT_BAND_KM)].append(hours)
    if not speeds or not transits:
        raise ConfigError("the labelled scans hold no genuine moves or despatches to fit on")
    total = [sum(c[0] - 1 for c in arrivals.values()) + 1, sum(c[1] - 2 for c in arrivals.values())]
    bands = _monotone(
        [_quantile(transits.get(b, []), TRANSIT_QUANTILE) for b in range(max(transits) + 1)]
    )
    calibration = SupplyCalibration(
        format=CALIBRATION_FORMAT,
        version=version,
        description=(
            "Track-model quantities of the authenticity detector, measured on the genuine scans"
            " of the training data (detectors/supply_calibration.py documents each). A new fit"
            " is a new file; never edit a published one: model cards name it by its SHA-256."
        ),
        fitted_on=fitted_on,
        clock_skew_s=CLOCK_SKEW_S,
        speed_cap_kmh=round(float(np.percentile(speeds, SPEED_QUANTILE)), 3),
        duplicate_window_s=round(float(np.percentile(gaps, DUPLICATE_QUANTILE)), 3)
        if gaps
        else 0.0,
        miss_rate_default=round(total[0] / (total[1] + 2), 6),
        site_miss_rate={site: round(c[0] / c[1], 6) for site, c in sorted(arrivals.items())},
        transit_band_km=TRANSIT_BAND_KM,
        transit_hours_q99=[round(h, 3) for h in bands],
        role_move_share=_move_shares(moves),
    )
    return msgspec.json.format(msgspec.json.encode(calibration), indent=2) + b"\n"


def _role(event: SupplyChainEvent, cache: dict[str, int]) -> int:
    """The role rank of the event's site in the shipped reference table, -1 if unknown."""
    if event.biz_location not in cache:
        site = default_supply_reference().site(event.biz_location)
        cache[event.biz_location] = -1 if site is None else ROLE_RANK[site.role]
    return cache[event.biz_location]


def _move_shares(moves: dict[tuple[int, int], int]) -> dict[str, float]:
    ranks = sorted(set(ROLE_RANK.values()))
    shares = {}
    for a in ranks:
        total = sum(moves.get((a, b), 0) + 1 for b in ranks)
        for b in ranks:
            shares[f"{a}>{b}"] = round((moves.get((a, b), 0) + 1) / total, 6)
    return shares


def _quantile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def _monotone(hours: list[float]) -> list[float]:
    """Fill bands without data from the band before and never let a farther band be faster."""
    out: list[float] = []
    for h in hours:
        previous = out[-1] if out else 0.0
        out.append(previous if math.isnan(h) else max(h, previous))
    return out


def main(argv: Sequence[str] = sys.argv[1:]) -> None:
    """`python -m detectors.supply_calibration [COUNT] [SEED]`: refit on the training data
    the shipped model is trained on (the simulator's, `make calibration`)."""
    from detectors.simulate_supply import DEFAULT_COUNT, simulate_supply

    count = int(argv[0]) if argv else DEFAULT_COUNT
    seed = int(argv[1]) if len(argv) > 1 else 0
    scans = simulate_supply(count, seed=seed)
    data = fit_calibration(scans, f"simulated: {count} scans, seed {seed}")
    CALIBRATION_FILE.write_bytes(data)


if __name__ == "__main__":
    main()
