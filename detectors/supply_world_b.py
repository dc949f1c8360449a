"""World B: a second supply chain over the same master data, written apart from the first.

The first simulator (`detectors.simulate_supply`) was written together with the authenticity
features, so a model's figures on it say little about data it was not shaped by. This world
keeps only the master data (sites, products, authorised countries of the reference table) and
models the rest its own way, so training on one world and testing on the other measures how
far the features and the model carry:

- routes: Chinese goods go by sea (25-45 days port to port) or, one pallet in five, by air
  (30-90 h door to door) to a port hub (Rotterdam or Hamburg); European and Turkish goods go
  by road to the hub nearest their factory. From the hub a pallet goes to a regional
  distribution centre (one of the two nearest the shops it serves, often across a border),
  then items go to shops one by one;
- items travel in pallets of 12-48 of one product: every item of a pallet is read within
  seconds at each pallet read (commissioning to the regional centre);
- dwell times are heavy-tailed (log-normal: most stays are hours, some are months);
- after a sale: a return at another shop of the country (`return_elsewhere`), a repair at the
  maker or the hub (`repair`), a store transfer to any authorised shop (`store_transfer`);
- readers: every site misses 6-24 % of reads (`missed_read`), every reader's clock is off by
  minutes (`clock_skew`, marked when over a minute), some readers upload hours late
  (`late_upload`), a fifth of shops and half of the centres cannot run the tag challenge;
- business data (despatch advices, sources, destinations, return authorisations) as world B's
  partners record it, not every partner and not always (`detectors.supply_paperwork_b`).

Counterfeit tactics are in `detectors.supply_tactics_b`. Scans are labelled in the file format
of the first world (`LabelledScan`), so every tool reads both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from attestcore.errors import UsageError
from attestcore.schemas import Action, BizStep, SupplyChainEvent, TagAuth
from detectors.simulate_supply import DISPOSITION, LabelledScan
from detectors.supply_paperwork_b import MISSING_PAPERWORK, business_data, sends_business_data
from detectors.supply_world import HOUR, Product, Site, World, build_world, km

DAY = 24 * HOUR
WORLD_B_TAG = "B"  # EPC serials of world B start with it, so no EPC is shared with world A
PALLET_SIZE = (12, 48)
COMMISSIONING_DAYS = 120
HUBS = ("dc-rotterdam", "dc-hamburg")
AIR_SHARE = 0.2  # of pallets from overseas factories
SEA_DAYS = (25.0, 45.0)
AIR_HOURS = (30.0, 90.0)
ROAD_KMH = (35.0, 80.0)
SOLD_SHARE = 0.85
RETURN_ELSEWHERE_SHARE = 0.05
REPAIR_SHARE = 0.03
TRANSFER_SHARE = 0.05
MISSED_READ = (0.06, 0.24)  # per site, drawn once
CLOCK_SKEW_SD_S = 240.0  # per reader, drawn once; +-15 min at most
LATE_READER_SHARE = 0.15  # readers that buffer and upload in batches
LATE_UPLOAD_SHARE = 0.5  # of such a reader's reads
SHOP_WITHOUT_CHALLENGE = 0.2
DC_WITHOUT_CHALLENGE = 0.5
READ_ERROR = 0.01
DOORS = 4

TACTICS_B = (
    "clone_before_genuine",
    "clone_same_city",
    "diversion_reentry",
    "return_swap",
    "distributor_entry",
)
NOISE_B = (
    "missed_read",
    "clock_skew",
    "late_upload",
    "pallet_read",
    "air_freight",
    "cross_border",
    "return_elsewhere",
    "repair",
    "store_transfer",
    "read_error",
    "missing_paperwork",
)


@dataclass
class Read:
    """One read in world B: true time, which reader, and the truth about it."""

    ts: int
    item: int
    epc: str
    step: BizStep
    site: Site
    door: int
    auth: TagAuth
    label: int = 0
    tactic: str = ""
    noise: set[str] = field(default_factory=set)
    delay: int = 0
    # What the site's systems record beside the read (`detectors.supply_paperwork_b`): the
    # despatch advice a shipment goes under or a receipt cites, where a shipment goes, who a
    # receipt came from, a return authorisation.
    desadv: str = ""
    dest: Site | None = None
    sender: Site | None = None
    rma: str = ""


@dataclass(frozen=True)
class Readers:
    """What each site's readers do: miss rate, clock skew and upload delay per door."""

    miss: dict[str, float]
    skew: dict[tuple[str, int], int]
    late: dict[tuple[str, int], bool]
    challenge: dict[str, bool]
    paperwork: dict[str, bool]  # the site sends EPCIS business data (wire version 2)


@dataclass(frozen=True)
class WorldB:
    base: World
    readers: Readers
    hubs: tuple[Site, ...]

    def site(self, code: str) -> Site:
        sites = (*self.base.factories, *self.base.distributors, *self.base.retailers)
        return next(s for s in sites if s.code == code)

    def regional_centres(self, shop: Site) -> tuple[Site, ...]:
        """The two distribution centres nearest a shop: either may serve it."""
        return tuple(sorted(self.base.distributors, key=lambda dc: km(dc, shop))[:2])

    def same_city(self, shop: Site) -> tuple[Site, ...]:
        city = shop.code.rsplit("-", 1)[0]
        return tuple(s for s in self.base.retailers if s != shop and s.code.startswith(city))


def build_world_b(rng: np.random.Generator) -> WorldB:
    base = build_world()
    sites = (*base.factories, *base.distributors, *base.retailers)
    doors = [(s.code, d) for s in sites for d in range(1, DOORS + 1)]
    readers = Readers(
        miss={s.code: float(rng.uniform(*MISSED_READ)) for s in sites},
        skew={k: int(np.clip(rng.normal(0, CLOCK_SKEW_SD_S), -900, 900)) for k in doors},
        late={k: bool(rng.random() < LATE_READER_SHARE) for k in doors},
        challenge={s.code: _can_challenge(rng, s) for s in sites},
        paperwork={s.code: sends_business_data(rng, s, HUBS) for s in sites},
    )
    world = WorldB(base, readers, ())
    return WorldB(base, readers, tuple(world.site(code) for code in HUBS))


def _can_challenge(rng: np.random.Generator, site: Site) -> bool:
    share = {"retailer": SHOP_WITHOUT_CHALLENGE, "distributor": DC_WITHOUT_CHALLENGE}
    return bool(rng.random() >= share.get(site.role.value, 0.0))


def dwell(rng: np.random.Generator, median_hours: float, sigma: float = 1.1) -> int:
    """A heavy-tailed stay: log-normal around `median_hours`, at least ten minutes."""
    return max(600, int(rng.lognormal(np.log(median_hours), sigma) * HOUR))


def road(rng: np.random.Generator, a: Site, b: Site) -> int:
    return int(km(a, b) / rng.uniform(*ROAD_KMH) * HOUR + dwell(rng, 6, 0.6))


def genuine_auth(rng: np.random.Generator, world: WorldB, product: Product, site: Site) -> TagAuth:
    if not product.crypto_tags or not world.readers.challenge[site.code]:
        return TagAuth.ABSENT
    return TagAuth.FAILED if rng.random() < READ_ERROR else TagAuth.VERIFIED


def copy_auth(world: WorldB, product: Product, site: Site) -> TagAuth:
    if product.crypto_tags and world.readers.challenge[site.code]:
        return TagAuth.FAILED
    return TagAuth.ABSENT


def product_of(world: WorldB, epc: str) -> Product:
    prefix = epc.removeprefix("urn:epc:id:sgtin:").rsplit(".", 1)[0]
    return next(p for p in world.base.products if p.epc_prefix == prefix)


def read_noise(rng: np.random.Generator, world: WorldB, reads: list[Read]) -> list[Read]:
    """What the readers make of one physical item's reads: some missed, some late, every
    one with its reader's clock; a pallet read's misses are independent per tag. The read
    after a missed one carries the mark: it is the one that arrives across the gap."""
    out = []
    missed = False
    for read in reads:
        if read.step != BizStep.COMMISSIONING and rng.random() < world.readers.miss[read.site.code]:
            missed = True
            continue
        if missed:
            read.noise.add("missed_read")
            missed = False
        reader = (read.site.code, read.door)
        if world.readers.late[reader] and rng.random() < LATE_UPLOAD_SHARE:
            read.delay = int(rng.lognormal(np.log(4 * HOUR), 0.8))
            read.noise.add("late_upload")
        if abs(world.readers.skew[reader]) > 60:
            read.noise.add("clock_skew")
        if read.auth == TagAuth.FAILED and not read.label:
            read.noise.add("read_error")
        if (
            read.step == BizStep.RECEIVING
            and read.desadv
            and world.readers.paperwork[read.site.code]
            and rng.random() < MISSING_PAPERWORK
        ):
            read.desadv = ""
            read.noise.add("missing_paperwork")
        out.append(read)
    return out


def to_labelled(world: WorldB, read: Read, index: int, run: str, start: datetime) -> LabelledScan:
    """The wire event as the reader reports it: its own clock, its door, the site's offset."""
    site = read.site
    action = {BizStep.COMMISSIONING: Action.ADD, BizStep.DECOMMISSIONING: Action.DELETE}
    clock = read.ts + world.readers.skew[(site.code, read.door)]
    event = SupplyChainEvent(
        event_id=f"sb-{run}-{index:08d}",
        event_time=start + timedelta(seconds=clock),
        event_time_zone_offset=site.tz,
        epc=read.epc,
        action=action.get(read.step, Action.OBSERVE),
        biz_step=read.step,
        disposition=DISPOSITION[read.step],
        read_point=f"{site.biz_location[:-1]}{read.door}",
        biz_location=site.biz_location,
        lat=site.lat,
        lon=site.lon,
        reader_id=f"rdr-{site.code}-{read.door}",
        tag_auth=read.auth,
        **(business_data(read) if world.readers.paperwork[site.code] else {}),
    )
    return LabelledScan(event, read.label, read.tactic, tuple(sorted(read.noise)))


def run_tag(run: str) -> str:
    return WORLD_B_TAG + hashlib.sha256(run.encode()).hexdigest()[:5].upper()


def check_count(count: int) -> None:
    if count < 1:
        raise UsageError(f"count must be positive, got {count}")
