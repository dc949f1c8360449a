"""Seeded synthetic GS1 EPCIS scans of serialised items, with labelled counterfeits and noise.

No public labelled EPCIS data set exists, so this simulator is the ground truth of the
authenticity detector; `docs/detectors.md` documents it with every rate.

Genuine life (GS1 CBV business steps): commissioning, packing and shipping at the product's
factory; receiving, storing and shipping at the distribution centre nearest to the shop the
item is meant for; receiving at that shop (a shop in a country where the product is
authorised, per the reference table); retail_selling days later. Lead times come from the
distance at road/rail speeds plus handling. Some items are destroyed at the distributor
(decommissioning), some moved to another shop nearby (a store transfer), some returned and
sometimes sold again, some still unsold when the simulation ends.

Counterfeits (label 1, `scenario` names it): the copy scenarios of `detectors.supply_scenarios`
and `grey_market`, a genuine item diverted by its distributor to a shop in a country where the
product is not authorised (its scans there are label 1).

Honest noise (label 0 when it hits a genuine item; `noise` names it on the scans it affects):

- `missed_read`: a read that never happened (4 % of reads after commissioning); the item's
  next scan carries the mark;
- `duplicate_read`: the same read again by another antenna seconds to minutes later (3 %);
- `late_upload`: a read uploaded hours or days after it happened, so it reaches the stream
  after later reads of the item (10 % of factory commissioning batches, 2 % of other reads);
- `read_error`: a genuine crypto tag failing the challenge (0.5 % of challenges);
- `commissioning_lost`: the commissioning event never uploaded (0.3 % of items);
- `store_transfer`: the scans of a genuine move between two shops (3 % of shelved items).

Scans come out in *arrival* order (the order a stream sees them), each with its true event
time, so a late upload is older than the scan before it. Event ids are `sc-<run_id>-<n>`;
EPC serials embed a tag derived from the run id, so two runs in one stream never share an EPC.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from msgspec import Struct

from attestcore.errors import UsageError
from attestcore.schemas import (
    SUPPLY_SCHEMA_VERSION,
    Action,
    BizStep,
    BizTransaction,
    BizTransactionType,
    SourceDest,
    SourceDestType,
    SupplyChainEvent,
)
from detectors.labelled import DEFAULT_START, check_run_id, read_jsonl, write_jsonl
from detectors.supply_scenarios import counterfeit_copies
from detectors.supply_world import (
    Product,
    SimScan,
    Site,
    World,
    build_world,
    days,
    genuine_auth,
    hours,
    km,
    pick,
    travel_seconds,
)

DEFAULT_COUNT = 100_000  # about 1,000 counterfeit scans: 200 in the validation fifth
SCANS_PER_ITEM = 7  # a little under the real mean, so one batch of items usually suffices
# Items are commissioned over this many days: long against an item's life (about a month), so
# most items complete their life before the stream is cut at `count` scans.
COMMISSIONING_DAYS = 60
GREY_MARKET_RATE = 0.012  # share of items diverted, as many as each copy scenario
DESTROY_RATE = 0.015
SOLD_RATE = 0.9
RETURN_RATE = 0.04
RESALE_RATE = 0.5
STORE_TRANSFER_RATE = 0.03
STORE_TRANSFER_MAX_KM = 400.0
GREY_SHOPS = 5  # a diverter ships to one of the few unauthorised shops nearest its warehouse

MISSED_READ_RATE = 0.04
DUPLICATE_READ_RATE = 0.03
LATE_COMMISSIONING_RATE = 0.10
LATE_UPLOAD_RATE = 0.02
READ_ERROR_RATE = 0.005
LOST_COMMISSIONING_RATE = 0.003

SCENARIOS = (
    "cloned_serial",
    "impossible_travel",
    "injected_fake",
    "grey_market",
    "lifecycle_violation",
)
NOISE_KINDS = (
    "missed_read",
    "duplicate_read",
    "late_upload",
    "read_error",
    "commissioning_lost",
    "store_transfer",
)

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


class LabelledScan(Struct, frozen=True):
    """A simulated scan with its truth: label 1 is a counterfeit, `scenario` says which;
    `noise` lists the honest noise kinds that touched this scan (whatever its label)."""

    event: SupplyChainEvent
    label: int
    scenario: str = ""
    noise: tuple[str, ...] = ()


def simulate_supply(
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    run_id: str | None = None,
    start: datetime = DEFAULT_START,
) -> list[LabelledScan]:
    """Exactly `count` labelled scans in arrival order, ids `sc-<run_id>-<n>`."""
    run = check_run_id(run_id if run_id is not None else f"seed{seed}")
    if count < 1:
        raise UsageError(f"count must be positive, got {count}")
    rng = np.random.default_rng(seed)
    world = build_world()
    tag = hashlib.sha256(run.encode()).hexdigest()[:6].upper()
    lives: list[list[SimScan]] = []
    while sum(len(life) for life in lives) < count:
        for _ in range(max(10, count // SCANS_PER_ITEM)):
            item = len(lives)
            product = world.products[int(rng.integers(len(world.products)))]
            epc = f"urn:epc:id:sgtin:{product.epc_prefix}.{tag}{item:08d}"
            t0 = int(rng.integers(COMMISSIONING_DAYS * 86_400))
            lives.append(_genuine_life(rng, world, product, item, epc, t0))
    items = lives + counterfeit_copies(rng, world, lives, tag)
    scans = [scan for scans in items for scan in _with_noise(rng, scans)]
    scans.sort(key=lambda s: (s.arrival, s.ts, s.item))
    return [_to_event(scan, i, run, start) for i, scan in enumerate(scans[:count])]


class _Life:
    """Builds one item's scans in event-time order."""

    def __init__(self, rng: np.random.Generator, product: Product, item: int, epc: str) -> None:
        self.rng, self.product, self.item, self.epc = rng, product, item, epc
        self.scans: list[SimScan] = []

    def scan(
        self, ts: int, step: BizStep, site: Site, scenario: str = "", noise: tuple[str, ...] = ()
    ) -> int:
        auth, error = genuine_auth(self.rng, self.product, site, READ_ERROR_RATE)
        marks = [*noise, "read_error"] if error else list(noise)
        label = 1 if scenario else 0
        scan = SimScan(ts, self.item, self.epc, step, site, auth, label, scenario, marks)
        self.scans.append(scan)
        return ts

    def despatch(self, ts: int, site: Site, to: Site, noise: tuple[str, ...] = ()) -> int:
        """A shipping scan with its despatch advice naming `to` (the receipt cites it)."""
        self.scan(ts, BizStep.SHIPPING, site, noise=noise)
        self.scans[-1].desadv = f"DA-{self.epc.rsplit('.', 1)[1]}-{len(self.scans)}"
        self.scans[-1].destination = to
        return ts

    def receive(self, ts: int, site: Site, scenario: str = "", noise: tuple[str, ...] = ()) -> int:
        """A receiving scan citing the last despatch advice and its source."""
        shipped = next(s for s in reversed(self.scans) if s.desadv)
        self.scan(ts, BizStep.RECEIVING, site, scenario, noise)
        self.scans[-1].desadv, self.scans[-1].source = shipped.desadv, shipped.site
        return ts


def _genuine_life(
    rng: np.random.Generator, world: World, product: Product, item: int, epc: str, t0: int
) -> list[SimScan]:
    """One genuine item from commissioning to (usually) its sale, a destruction or a diversion."""
    life = _Life(rng, product, item, epc)
    shop = pick(rng, world.authorised_retailers(product))
    dc = world.nearest_distributor(shop)
    t = life.scan(t0, BizStep.COMMISSIONING, product.maker)
    t = life.scan(t + hours(rng, 0.5, 6), BizStep.PACKING, product.maker)
    t = life.despatch(t + hours(rng, 2, 24), product.maker, dc)
    t = life.receive(t + travel_seconds(rng, product.maker, dc), dc)
    t = life.scan(t + hours(rng, 1, 12), BizStep.STORING, dc)
    if rng.random() < DESTROY_RATE:
        life.scan(t + days(rng, 1, 10), BizStep.DECOMMISSIONING, dc)
        return life.scans
    grey = world.unauthorised_retailers(product)
    scenario = ""
    intended = shop  # the despatch advice names it even when the goods go elsewhere
    if grey and rng.random() < GREY_MARKET_RATE:
        shop = pick(rng, sorted(grey, key=lambda s: km(s, dc))[:GREY_SHOPS])
        scenario = "grey_market"
    t = life.despatch(t + days(rng, 0.5, 5), dc, intended)
    t = life.receive(t + travel_seconds(rng, dc, shop), shop, scenario)
    if not scenario and rng.random() < STORE_TRANSFER_RATE:
        shop, t = _store_transfer(rng, world, life, shop, t)
    _on_sale(rng, life, shop, t, scenario)
    return life.scans


def _store_transfer(
    rng: np.random.Generator, world: World, life: _Life, shop: Site, t: int
) -> tuple[Site, int]:
    """A genuine move to another authorised shop nearby (stock rebalancing)."""
    near = [
        s
        for s in world.authorised_retailers(life.product)
        if s != shop and km(s, shop) <= STORE_TRANSFER_MAX_KM
    ]
    if not near:
        return shop, t
    to = pick(rng, near)
    mark = ("store_transfer",)
    t = life.despatch(t + days(rng, 1, 7), shop, to, noise=mark)
    t = life.receive(t + travel_seconds(rng, shop, to), to, noise=mark)
    return to, t


def _on_sale(rng: np.random.Generator, life: _Life, shop: Site, t: int, scenario: str) -> None:
    if rng.random() >= SOLD_RATE:
        return
    t = life.scan(t + days(rng, 1, 21), BizStep.RETAIL_SELLING, shop, scenario)
    if rng.random() < RETURN_RATE:
        t = life.scan(t + days(rng, 1, 14), BizStep.RETURNING, shop, scenario)
        if rng.random() < RESALE_RATE:
            life.scan(t + days(rng, 1, 10), BizStep.RETAIL_SELLING, shop, scenario)


def _with_noise(rng: np.random.Generator, scans: list[SimScan]) -> list[SimScan]:
    """One item's scans as the stream receives them: some missed, some twice, some late."""
    first = scans[0]
    commissioning = first.step == BizStep.COMMISSIONING
    lost = commissioning and rng.random() < LOST_COMMISSIONING_RATE
    late = rng.random() < LATE_COMMISSIONING_RATE
    out: list[SimScan] = []
    missed = False
    for scan in scans:
        if lost:
            scan.noise.append("commissioning_lost")
        if scan.step == BizStep.COMMISSIONING:
            if lost:
                continue
            if late:
                scan.delay = hours(rng, 6, 96)
        elif rng.random() < MISSED_READ_RATE:
            missed = True
            continue
        elif rng.random() < LATE_UPLOAD_RATE:
            scan.delay = hours(rng, 1, 48)
        if scan.delay:
            scan.noise.append("late_upload")
        if missed:
            scan.noise.append("missed_read")
            missed = False
        out.append(scan)
        if rng.random() < DUPLICATE_READ_RATE:
            again = int(rng.uniform(2, 900))
            out.append(
                SimScan(
                    scan.ts + again,
                    scan.item,
                    scan.epc,
                    scan.step,
                    scan.site,
                    scan.tag_auth,
                    scan.label,
                    scan.scenario,
                    [*scan.noise, "duplicate_read"],
                    scan.delay,
                    scan.desadv,
                    scan.source,
                    scan.destination,
                )
            )
    return out


def _to_event(scan: SimScan, index: int, run: str, start: datetime) -> LabelledScan:
    site = scan.site
    # Which dock door or till read the tag; a duplicate read comes from the next one.
    door = (
        1
        + (
            int(hashlib.sha256(scan.epc.encode()).hexdigest()[:4], 16)
            + ("duplicate_read" in scan.noise)
        )
        % 3
    )
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
        **(_business_data(scan) if site.business_data else {}),
    )
    return LabelledScan(event, scan.label, scan.scenario, tuple(dict.fromkeys(scan.noise)))


def _business_data(scan: SimScan) -> dict[str, Any]:
    """The EPCIS 2.0 business data of a scan: despatch advice, source and destination."""
    data: dict[str, Any] = {"schema_version": SUPPLY_SCHEMA_VERSION}
    if scan.desadv:
        data["biz_transactions"] = [
            BizTransaction(type=BizTransactionType.DESPATCH_ADVICE, id=scan.desadv)
        ]
    if scan.source is not None:
        data["source_list"] = [
            SourceDest(type=SourceDestType.LOCATION, id=scan.source.biz_location)
        ]
    if scan.destination is not None:
        data["destination_list"] = [
            SourceDest(type=SourceDestType.LOCATION, id=scan.destination.biz_location)
        ]
    return data


def write_labelled_scans(path: Path, scans: list[LabelledScan]) -> int:
    """Write the labelled dataset (see `detectors.labelled` for the format)."""
    return write_jsonl(path, scans)


def read_labelled_scans(path: Path) -> list[LabelledScan]:
    return read_jsonl(path, LabelledScan)
