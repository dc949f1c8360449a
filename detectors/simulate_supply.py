"""Seeded synthetic GS1 EPCIS scans of serialised items, with labelled counterfeits.

Genuine items follow the usual life of a serialised product (GS1 CBV business steps):
commissioning, packing and shipping at a factory; receiving, storing and shipping at a
distributor; receiving at a shop; retail_selling days later. Lead times come from the distance
travelled at lorry/freight speeds plus handling time. Some genuine items are returned (and
sometimes sold again), some are destroyed at the distributor (decommissioning), some are still
on the shelf when the simulation ends. A few shops' readers cannot authenticate tags, so a
genuine scan there reads `tag_auth: absent`; elsewhere a rare read error gives `failed`.

Counterfeits are injected as whole copies of an item; their scans are labelled 1:

- `cloned_serial`: a second copy of a genuine EPC turns up at a shop far away around the time
  the genuine item is at its distributor or shop (impossible travel). The genuine item's own
  scans stay labelled 0, even those that look odd because the clone came first.
- `injected_fake`: an EPC under a real company prefix that was never commissioned, with a tag
  that fails authentication or has none.
- `lifecycle_violation`: a copy of an item that was already sold (sold twice without a
  return) or destroyed (seen after decommissioning) re-enters a shop.

Event ids are `sc-<run_id>-<n>`; EPC serials embed a tag derived from the run id, so two runs
fed into one stream do not look like re-commissioned items.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from msgspec import Struct

from attestream.errors import UsageError
from detectors.geo import haversine_km
from detectors.labelled import DEFAULT_START, check_run_id, read_jsonl, write_jsonl
from streams.schemas import Action, BizStep, SupplyChainEvent, TagAuth

DEFAULT_COUNT = 40_000
HOUR = 3_600
DAY = 86_400
SCANS_PER_ITEM = 7  # a little under the real mean, so one batch of items usually suffices
# Items are commissioned over this many days: long against an item's life (about a month), so
# most items complete their life before the stream is cut at `count` scans.
COMMISSIONING_DAYS = 60
CLONE_RATE = 0.025  # counterfeit copies per genuine item, for each scenario
FAKE_RATE = 0.025
LIFECYCLE_RATE = 0.025
CLONE_MIN_KM = 800.0  # a clone shows up at least this far from where the genuine item is
RETURN_RATE = 0.04
DESTROY_RATE = 0.015
SOLD_RATE = 0.9
READ_ERROR_RATE = 0.003  # a genuine tag failing authentication (damaged tag, bad read)

DISPOSITION = {
    BizStep.COMMISSIONING: "active",
    BizStep.PACKING: "in_progress",
    BizStep.SHIPPING: "in_transit",
    BizStep.RECEIVING: "in_progress",
    BizStep.STORING: "sellable_not_active",
    BizStep.RETAIL_SELLING: "retail_sold",
    BizStep.RETURNING: "returned",
    BizStep.DECOMMISSIONING: "destroyed",
}


@dataclass(frozen=True)
class Site:
    """A place with RFID readers: a factory, a distribution centre or a shop."""

    code: str
    kind: str
    lat: float
    lon: float
    tz: str
    gln_prefix: str
    item_refs: tuple[str, ...] = ()
    can_authenticate: bool = True

    @property
    def biz_location(self) -> str:
        return f"urn:epc:id:sgln:{self.gln_prefix}.{hash_digits(self.code):05d}.0"


def hash_digits(text: str) -> int:
    """A stable 5-digit location reference for a site code (Python's hash() is salted)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100_000


FACTORIES = (
    Site("fac-shenzhen", "factory", 22.5431, 114.0579, "+08:00", "6901234", ("012345", "054321")),
    Site("fac-stuttgart", "factory", 48.7758, 9.1829, "+01:00", "4012345", ("100200", "100300")),
    Site("fac-milan", "factory", 45.4642, 9.1900, "+01:00", "8001234", ("070001",)),
    Site("fac-izmir", "factory", 38.4237, 27.1428, "+03:00", "8691234", ("030303",)),
)
DISTRIBUTORS = (
    Site("dc-rotterdam", "distributor", 51.9244, 4.4777, "+01:00", "5012345"),
    Site("dc-hamburg", "distributor", 53.5511, 9.9937, "+01:00", "5012345"),
    Site("dc-lyon", "distributor", 45.7640, 4.8357, "+01:00", "5012345"),
    Site("dc-warsaw", "distributor", 52.2297, 21.0122, "+01:00", "5012345"),
    Site("dc-madrid", "distributor", 40.4168, -3.7038, "+01:00", "5012345"),
)
_SHOP_CITIES = (
    ("paris", 48.8566, 2.3522, "+01:00"),
    ("berlin", 52.5200, 13.4050, "+01:00"),
    ("amsterdam", 52.3676, 4.9041, "+01:00"),
    ("madrid", 40.4168, -3.7038, "+01:00"),
    ("barcelona", 41.3874, 2.1686, "+01:00"),
    ("rome", 41.9028, 12.4964, "+01:00"),
    ("vienna", 48.2082, 16.3738, "+01:00"),
    ("prague", 50.0755, 14.4378, "+01:00"),
    ("brussels", 50.8503, 4.3517, "+01:00"),
    ("munich", 48.1351, 11.5820, "+01:00"),
    ("copenhagen", 55.6761, 12.5683, "+01:00"),
    ("lisbon", 38.7223, -9.1393, "+00:00"),
    ("dublin", 53.3498, -6.2603, "+00:00"),
    ("warsaw", 52.2297, 21.0122, "+01:00"),
)
SHOPS = tuple(
    Site(
        f"shop-{city}-{n}",
        "shop",
        round(lat + 0.01 * (n - 1), 5),
        round(lon + 0.015 * (n - 1), 5),
        tz,
        "3012345",
        can_authenticate=(i * 3 + n) % 10 != 0,  # one shop in ten reads tags without auth
    )
    for i, (city, lat, lon, tz) in enumerate(_SHOP_CITIES)
    for n in (1, 2, 3)
)
SITES = FACTORIES + DISTRIBUTORS + SHOPS


def _nearest_shops(site: Site, n: int = 12) -> tuple[Site, ...]:
    return tuple(sorted(SHOPS, key=lambda s: haversine_km(site.lat, site.lon, s.lat, s.lon))[:n])


# Each distribution centre supplies the dozen shops nearest to it.
SHOPS_SERVED = {dc.code: _nearest_shops(dc) for dc in DISTRIBUTORS}


class LabelledScan(Struct, frozen=True):
    """A simulated scan with its truth: label 1 is a counterfeit copy, `scenario` says which."""

    event: SupplyChainEvent
    label: int
    scenario: str = ""


@dataclass
class _Scan:
    ts: int  # seconds since the simulation start
    item: int
    epc: str
    step: BizStep
    site: Site
    tag_auth: TagAuth = TagAuth.VERIFIED
    label: int = 0
    scenario: str = ""


def simulate_supply(
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    run_id: str | None = None,
    start: datetime = DEFAULT_START,
) -> list[LabelledScan]:
    """Exactly `count` labelled scans in event-time order, ids `sc-<run_id>-<n>`."""
    run = check_run_id(run_id if run_id is not None else f"seed{seed}")
    if count < 1:
        raise UsageError(f"count must be positive, got {count}")
    rng = np.random.default_rng(seed)
    tag = hashlib.sha256(run.encode()).hexdigest()[:6].upper()
    lives: list[list[_Scan]] = []
    while sum(len(life) for life in lives) < count:
        n_items = max(10, count // SCANS_PER_ITEM)
        for _ in range(n_items):
            item = len(lives)
            epc = _epc(FACTORIES[item % len(FACTORIES)], item, f"{tag}{item:08d}")
            t0 = int(rng.integers(COMMISSIONING_DAYS * DAY))
            lives.append(_genuine_life(rng, item, epc, t0))
    scans = [scan for life in lives for scan in life]
    scans += _clones(rng, lives) + _fakes(rng, lives, tag) + _lifecycle_copies(rng, lives)
    scans.sort(key=lambda s: (s.ts, s.item, s.epc))
    return [_to_event(scan, i, run, start) for i, scan in enumerate(scans[:count])]


def _epc(factory: Site, item: int, serial: str) -> str:
    ref = factory.item_refs[item // len(FACTORIES) % len(factory.item_refs)]
    return f"urn:epc:id:sgtin:{factory.gln_prefix}.{ref}.{serial}"


def _pick(rng: np.random.Generator, sites: tuple[Site, ...] | list[Site]) -> Site:
    return sites[int(rng.integers(len(sites)))]


def _travel_seconds(rng: np.random.Generator, a: Site, b: Site) -> int:
    """Road or freight at 25-60 km/h door to door, plus 4-24 h of handling."""
    km = haversine_km(a.lat, a.lon, b.lat, b.lon)
    return int(km / rng.uniform(25, 60) * HOUR + rng.uniform(4, 24) * HOUR)


def _genuine_auth(rng: np.random.Generator, site: Site) -> TagAuth:
    if not site.can_authenticate:
        return TagAuth.ABSENT
    return TagAuth.FAILED if rng.random() < READ_ERROR_RATE else TagAuth.VERIFIED


def _genuine_life(rng: np.random.Generator, item: int, epc: str, t0: int) -> list[_Scan]:
    """One genuine item's scans from commissioning to (usually) its sale."""
    factory = FACTORIES[item % len(FACTORIES)]
    dc = _pick(rng, DISTRIBUTORS)
    shop = _pick(rng, SHOPS_SERVED[dc.code])
    life: list[_Scan] = []

    def scan(ts: int, step: BizStep, site: Site) -> int:
        life.append(_Scan(ts, item, epc, step, site, _genuine_auth(rng, site)))
        return ts

    t = scan(t0, BizStep.COMMISSIONING, factory)
    t = scan(t + int(rng.uniform(0.5, 6) * HOUR), BizStep.PACKING, factory)
    t = scan(t + int(rng.uniform(2, 24) * HOUR), BizStep.SHIPPING, factory)
    t = scan(t + _travel_seconds(rng, factory, dc), BizStep.RECEIVING, dc)
    t = scan(t + int(rng.uniform(1, 12) * HOUR), BizStep.STORING, dc)
    if rng.random() < DESTROY_RATE:
        scan(t + int(rng.uniform(1, 10) * DAY), BizStep.DECOMMISSIONING, dc)
        return life
    t = scan(t + int(rng.uniform(0.5, 5) * DAY), BizStep.SHIPPING, dc)
    t = scan(t + _travel_seconds(rng, dc, shop), BizStep.RECEIVING, shop)
    if rng.random() >= SOLD_RATE:
        return life
    t = scan(t + int(rng.uniform(1, 21) * DAY), BizStep.RETAIL_SELLING, shop)
    if rng.random() < RETURN_RATE:
        t = scan(t + int(rng.uniform(1, 14) * DAY), BizStep.RETURNING, shop)
        if rng.random() < 0.5:
            scan(t + int(rng.uniform(1, 10) * DAY), BizStep.RETAIL_SELLING, shop)
    return life


def _count(rng: np.random.Generator, rate: float, items: int) -> int:
    """How many copies to inject: Poisson, but at least one so every scenario occurs."""
    return max(1, int(rng.poisson(rate * items)))


def _copy_scans(
    rng: np.random.Generator, item: int, epc: str, ts: int, shop: Site, auth: TagAuth, scenario: str
) -> list[_Scan]:
    """A counterfeit copy received at a shop and, usually, sold there a few days later."""
    scans = [_Scan(ts, item, epc, BizStep.RECEIVING, shop, auth, 1, scenario)]
    if rng.random() < 0.8:
        sold = ts + int(rng.uniform(0.5, 6) * DAY)
        scans.append(_Scan(sold, item, epc, BizStep.RETAIL_SELLING, shop, auth, 1, scenario))
    return scans


def _copy_auth(rng: np.random.Generator, shop: Site, p_verified: float) -> TagAuth:
    """A copied tag cannot answer the authentication challenge, unless the attack is good."""
    if not shop.can_authenticate:
        return TagAuth.ABSENT
    return TagAuth.VERIFIED if rng.random() < p_verified else TagAuth.FAILED


def _clones(rng: np.random.Generator, lives: list[list[_Scan]]) -> list[_Scan]:
    copies: list[_Scan] = []
    for _ in range(_count(rng, CLONE_RATE, len(lives))):
        life = lives[int(rng.integers(len(lives)))]
        anchor = life[min(len(life) - 1, int(rng.integers(3, 8)))]
        far = [
            s
            for s in SHOPS
            if haversine_km(anchor.site.lat, anchor.site.lon, s.lat, s.lon) >= CLONE_MIN_KM
        ]
        shop = _pick(rng, far)
        ts = max(life[0].ts + HOUR, anchor.ts + int(rng.uniform(-6, 24) * HOUR))
        auth = _copy_auth(rng, shop, p_verified=0.3)
        copies += _copy_scans(rng, anchor.item, anchor.epc, ts, shop, auth, "cloned_serial")
    return copies


def _fakes(rng: np.random.Generator, lives: list[list[_Scan]], tag: str) -> list[_Scan]:
    """Never-commissioned EPCs: serials in a range the factories do not use (a 9 prefix)."""
    copies: list[_Scan] = []
    horizon = max(scan.ts for life in lives for scan in life)
    for n in range(_count(rng, FAKE_RATE, len(lives))):
        item = len(lives) + n
        epc = _epc(_pick(rng, FACTORIES), item, f"{tag}9{n:07d}")
        shop = _pick(rng, SHOPS)
        auth = TagAuth.FAILED if shop.can_authenticate and rng.random() < 0.6 else TagAuth.ABSENT
        ts = int(rng.integers(horizon))
        copies += _copy_scans(rng, item, epc, ts, shop, auth, "injected_fake")
    return copies


def _lifecycle_copies(rng: np.random.Generator, lives: list[list[_Scan]]) -> list[_Scan]:
    """Copies of sold items (sold twice) and of destroyed ones (seen after decommissioning)."""
    ended = [
        life for life in lives if life[-1].step in (BizStep.RETAIL_SELLING, BizStep.DECOMMISSIONING)
    ]
    copies: list[_Scan] = []
    for _ in range(_count(rng, LIFECYCLE_RATE, len(lives))):
        last = ended[int(rng.integers(len(ended)))][-1]
        shop = _pick(rng, [s for s in SHOPS if s != last.site])
        ts = last.ts + int(rng.uniform(1, 14) * DAY)
        auth = _copy_auth(rng, shop, p_verified=0.5)
        copies += _copy_scans(rng, last.item, last.epc, ts, shop, auth, "lifecycle_violation")
    return copies


def _to_event(scan: _Scan, index: int, run: str, start: datetime) -> LabelledScan:
    site = scan.site
    door = 1 + hash_digits(scan.epc) % 3  # which dock door or till read the tag
    action = {
        BizStep.COMMISSIONING: Action.ADD,
        BizStep.DECOMMISSIONING: Action.DELETE,
    }.get(scan.step, Action.OBSERVE)
    event = SupplyChainEvent(
        event_id=f"sc-{run}-{index:08d}",
        event_time=start + timedelta(seconds=scan.ts),
        event_time_zone_offset=site.tz,
        epc=scan.epc,
        action=action,
        biz_step=scan.step,
        disposition=DISPOSITION[scan.step],
        read_point=site.biz_location[:-1] + str(door),
        biz_location=site.biz_location,
        lat=site.lat,
        lon=site.lon,
        reader_id=f"rdr-{site.code}-{door}",
        tag_auth=scan.tag_auth,
    )
    return LabelledScan(event, scan.label, scan.scenario)


def write_labelled_scans(path: Path, scans: list[LabelledScan]) -> int:
    """Write the labelled dataset (see `detectors.labelled` for the format)."""
    return write_jsonl(path, scans)


def read_labelled_scans(path: Path) -> list[LabelledScan]:
    return read_jsonl(path, LabelledScan)
