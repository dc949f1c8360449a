"""World B's genuine lives, in pallets, and the simulation that writes its labelled scans.

See `detectors.supply_world_b` for the world and `docs/detectors.md` (authenticity, "A second
world") for every rate. Seeded: the same seed and run id give the same bytes. Event ids are
`sb-<run_id>-<n>`; EPC serials start with `B` and a tag of the run id, so no EPC of world B
is ever one of world A's (whose serials are hexadecimal digits of their own run tag).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import numpy as np

from attestcore.schemas import BizStep
from detectors.labelled import DEFAULT_START, check_run_id
from detectors.simulate_supply import LabelledScan
from detectors.supply_paperwork_b import advice_id, return_authorisation
from detectors.supply_tactics_b import counterfeit_reads
from detectors.supply_world import HOUR, Product, Site, km
from detectors.supply_world_b import (
    AIR_HOURS,
    AIR_SHARE,
    COMMISSIONING_DAYS,
    DAY,
    PALLET_SIZE,
    REPAIR_SHARE,
    RETURN_ELSEWHERE_SHARE,
    SEA_DAYS,
    SOLD_SHARE,
    TRANSFER_SHARE,
    Read,
    WorldB,
    build_world_b,
    check_count,
    dwell,
    genuine_auth,
    read_noise,
    road,
    run_tag,
    to_labelled,
)

DEFAULT_COUNT_B = 100_000
SCANS_PER_ITEM_B = 8
DESTROYED_SHARE = 0.01


def simulate_supply_b(
    count: int = DEFAULT_COUNT_B,
    seed: int = 0,
    run_id: str | None = None,
    start: datetime = DEFAULT_START,
) -> list[LabelledScan]:
    """Exactly `count` labelled scans of world B in arrival order, ids `sb-<run_id>-<n>`."""
    run = check_run_id(run_id if run_id is not None else f"b-seed{seed}")
    check_count(count)
    # Separate generators: the readers, the goods, the attacks and the noise never shift
    # each other's draws.
    world = build_world_b(np.random.default_rng([seed, 0]))
    goods_rng = np.random.default_rng([seed, 1])
    tag = run_tag(run)
    target = count * 1.2  # reads before the readers miss some
    while True:
        lives = _goods(goods_rng, world, tag, target)
        attack_rng, noise_rng = (np.random.default_rng([seed, part]) for part in (2, 3))
        items = lives + counterfeit_reads(attack_rng, world, lives, tag)
        reads = [read for item in items for read in read_noise(noise_rng, world, item)]
        if len(reads) >= count:
            break
        target *= 1.5  # rare: a small count and many misses; draw again, more goods
        goods_rng = np.random.default_rng([seed, 1])
    reads.sort(key=lambda r: (r.ts + r.delay, r.ts, r.item))
    return [to_labelled(world, read, i, run, start) for i, read in enumerate(reads[:count])]


def _goods(rng: np.random.Generator, world: WorldB, tag: str, target: float) -> list[list[Read]]:
    """Pallets of genuine goods until their lives hold `target` reads."""
    lives: list[list[Read]] = []
    reads = 0
    while reads < target:
        product = world.base.products[int(rng.integers(len(world.base.products)))]
        t0 = int(rng.integers(COMMISSIONING_DAYS * DAY))
        pallet = pallet_lives(rng, world, product, len(lives), tag, t0)
        reads += sum(len(life) for life in pallet)
        lives += pallet
    return lives


def pallet_lives(
    rng: np.random.Generator, world: WorldB, product: Product, first: int, tag: str, t0: int
) -> list[list[Read]]:
    """One pallet from commissioning to its regional centre, then each item on its own."""
    shops = world.base.authorised_retailers(product)
    anchor = shops[int(rng.integers(len(shops)))]
    centres = world.regional_centres(anchor)
    centre = centres[int(rng.integers(len(centres)))]
    served = [s for s in shops if centre in world.regional_centres(s)] or [anchor]
    size = int(rng.integers(PALLET_SIZE[0], PALLET_SIZE[1] + 1))
    epcs = [f"urn:epc:id:sgtin:{product.epc_prefix}.{tag}{first + i:07d}" for i in range(size)]
    lives: list[list[Read]] = [[] for _ in epcs]
    pallet = _Pallet(rng, world, product, lives, epcs, first)
    t = pallet.read(t0, BizStep.COMMISSIONING, product.maker)
    t = pallet.read(t + dwell(rng, 2, 0.5), BizStep.PACKING, product.maker)
    hub = _hub(rng, world, product.maker)
    t = pallet.ship(t + dwell(rng, 12), product.maker, hub)
    t, leg = _to_hub(rng, product.maker, hub, t)
    t = pallet.receive(t, hub, leg)
    t = pallet.read(t + dwell(rng, 3, 0.8), BizStep.STORING, hub)
    if centre != hub:
        t = pallet.ship(t + dwell(rng, 24, 1.3), hub, centre)
        border = ("cross_border",) if centre.country != hub.country else ()
        t = pallet.receive(t + road(rng, hub, centre), centre, border)
        t = pallet.read(t + dwell(rng, 2, 0.8), BizStep.STORING, centre)
    for n, life in enumerate(lives):
        item = _Item(rng, world, product, life, epcs[n], first + n)
        item.onwards(centre, served[int(rng.integers(len(served)))], t + int(rng.integers(60)))
    return lives


def _hub(rng: np.random.Generator, world: WorldB, maker: Site) -> Site:
    """Overseas goods go to either port hub, European goods to the hub nearest their factory."""
    if maker.country != "CN":
        return min(world.hubs, key=lambda h: km(h, maker))
    return world.hubs[int(rng.integers(len(world.hubs)))]


def _to_hub(
    rng: np.random.Generator, maker: Site, hub: Site, t: int
) -> tuple[int, tuple[str, ...]]:
    """When the goods reach the hub: by road from Europe, by sea or air from overseas."""
    if maker.country != "CN":
        return t + road(rng, maker, hub), ()
    if rng.random() < AIR_SHARE:
        return t + int(rng.uniform(*AIR_HOURS) * HOUR), ("air_freight",)
    return t + int(rng.uniform(*SEA_DAYS) * DAY), ()


class _Pallet:
    """Reads every item of a pallet at once: the same reader, seconds apart."""

    def __init__(
        self,
        rng: np.random.Generator,
        world: WorldB,
        product: Product,
        lives: list[list[Read]],
        epcs: list[str],
        first: int,
    ) -> None:
        self.rng, self.world, self.product = rng, world, product
        self.lives, self.epcs, self.first = lives, epcs, first
        self.advice, self.dest, self.sender = "", cast(Site | None, None), cast(Site | None, None)

    def read(self, t: int, step: BizStep, site: Site, noise: tuple[str, ...] = ()) -> int:
        door = int(self.rng.integers(1, 5))
        for n, (life, epc) in enumerate(zip(self.lives, self.epcs, strict=True)):
            auth = genuine_auth(self.rng, self.world, self.product, site)
            marks = {"pallet_read", *noise}
            read = Read(t + 2 * n, self.first + n, epc, step, site, door, auth, noise=marks)
            read.desadv = self.advice
            read.dest = self.dest if step == BizStep.SHIPPING else None
            read.sender = self.sender if step == BizStep.RECEIVING else None
            life.append(read)
        return t + 2 * len(self.epcs)

    def ship(self, t: int, site: Site, to: Site) -> int:
        """The pallet leaves under one despatch advice naming `to`."""
        self.advice, self.dest, self.sender = advice_id(site, f"P{self.first:08d}"), to, site
        t = self.read(t, BizStep.SHIPPING, site)
        return t

    def receive(self, t: int, site: Site, noise: tuple[str, ...] = ()) -> int:
        """Every item's receipt cites the pallet's advice and its sender."""
        t = self.read(t, BizStep.RECEIVING, site, noise)
        self.advice, self.dest, self.sender = "", None, None
        return t


class _Item:
    """One genuine item after its pallet is broken up at the regional centre."""

    def __init__(
        self,
        rng: np.random.Generator,
        world: WorldB,
        product: Product,
        life: list[Read],
        epc: str,
        item: int,
    ) -> None:
        self.rng, self.world, self.product = rng, world, product
        self.life, self.epc, self.item = life, epc, item

    def read(self, t: int, step: BizStep, site: Site, *noise: str) -> int:
        door = int(self.rng.integers(1, 5))
        auth = genuine_auth(self.rng, self.world, self.product, site)
        self.life.append(Read(t, self.item, self.epc, step, site, door, auth, noise=set(noise)))
        return t

    def ship(self, t: int, site: Site, to: Site, *noise: str) -> int:
        """A shipment of one order, under its own despatch advice naming `to`."""
        self.read(t, BizStep.SHIPPING, site, *noise)
        shipped = self.life[-1]
        shipped.desadv = advice_id(site, f"{self.item:08d}-{len(self.life)}")
        shipped.dest = to
        return t

    def receive(self, t: int, site: Site, *noise: str) -> int:
        """A receipt citing the last shipment's advice and naming its sender."""
        shipped = next(r for r in reversed(self.life) if r.step == BizStep.SHIPPING)
        self.read(t, BizStep.RECEIVING, site, *noise)
        self.life[-1].desadv, self.life[-1].sender = shipped.desadv, shipped.site
        self.life[-1].rma = shipped.rma
        return t

    def onwards(self, centre: Site, shop: Site, t: int) -> None:
        rng = self.rng
        if rng.random() < DESTROYED_SHARE:
            self.read(t + dwell(rng, 240), BizStep.DECOMMISSIONING, centre)
            return
        t = self.ship(t + dwell(rng, 72, 1.2), centre, shop)
        border = ("cross_border",) if shop.country != centre.country else ()
        t = self.receive(t + road(rng, centre, shop), shop, *border)
        if rng.random() < TRANSFER_SHARE:
            shop, t = self._transfer(shop, t)
        if rng.random() >= SOLD_SHARE:
            return
        t = self.read(t + dwell(rng, 240, 1.0), BizStep.RETAIL_SELLING, shop)
        after = rng.random()
        if after < RETURN_ELSEWHERE_SHARE:
            self._return_elsewhere(shop, t)
        elif after < RETURN_ELSEWHERE_SHARE + REPAIR_SHARE:
            self._repair(shop, t)

    def _transfer(self, shop: Site, t: int) -> tuple[Site, int]:
        """Stock rebalancing to any authorised shop, however far."""
        others = [s for s in self.world.base.authorised_retailers(self.product) if s != shop]
        if not others:
            return shop, t
        to = others[int(self.rng.integers(len(others)))]
        t = self.ship(t + dwell(self.rng, 120), shop, to, "store_transfer")
        t = self.receive(t + road(self.rng, shop, to), to, "store_transfer")
        return to, t

    def _return_elsewhere(self, shop: Site, t: int) -> None:
        """The buyer brings it back to another shop of the same country; often resold there."""
        country = [s for s in self.world.base.retailers if s.country == shop.country and s != shop]
        if not country:
            return
        to = country[int(self.rng.integers(len(country)))]
        t = self.read(t + dwell(self.rng, 120), BizStep.RETURNING, to, "return_elsewhere")
        self.life[-1].rma = return_authorisation(to, self.item, self.rng)
        if self.rng.random() < 0.5:
            self.read(t + dwell(self.rng, 96), BizStep.RETAIL_SELLING, to, "return_elsewhere")

    def _repair(self, shop: Site, t: int) -> None:
        """Handed in at the shop, repaired at the maker (or the hub for overseas makers),
        handed back to the buyer at the same shop."""
        maker = self.product.maker
        service = maker if maker.country != "CN" else self.world.hubs[0]
        rng = self.rng
        t = self.read(t + dwell(rng, 24 * 30), BizStep.RETURNING, shop, "repair")
        rma = self.life[-1].rma = f"{shop.code}-RMA-{self.item:08d}"
        t = self.ship(t + dwell(rng, 24), shop, service, "repair")
        self.life[-1].rma = rma
        t = self.receive(t + road(rng, shop, service), service, "repair")
        t = self.ship(t + dwell(rng, 24 * 7), service, shop, "repair")
        self.life[-1].rma = rma
        t = self.receive(t + road(rng, service, shop), shop, "repair")
        self.read(t + dwell(rng, 48), BizStep.RETAIL_SELLING, shop, "repair")
