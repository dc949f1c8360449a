"""World B's counterfeit tactics: chosen to avoid the traces the first world's attacks leave.

Every scan of a counterfeit physical item is label 1 with its tactic; a genuine item's own
scans stay label 0 even when a copy makes them look wrong.

- `clone_before_genuine`: the serial leaks before the goods ship (a label printer, a
  photographed carton): a copy is received and sold at an authorised shop up to 20 days
  before the genuine item is commissioned, or while it is still on its way to its shop. The
  copy is the first of the EPC anyone sees at a shop.
- `clone_same_city`: a copy at another shop of the genuine item's city (1-3 km away) while
  the genuine item is on the shelf: no distance, no speed to give it away.
- `diversion_reentry`: a genuine item shipped by its regional centre goes to a country where
  the product is not authorised (received there at a shop half the time), then is brought
  back weeks later to an authorised shop of another country (parallel import). The scans
  after the centre's shipping read are label 1.
- `return_swap`: a buyer returns a copy in place of the genuine item, with the genuine tag
  moved onto the copy half the time (the challenge then verifies); the return and any resale
  are the copy's.
- `distributor_entry`: a batch of 3-10 copies of one pallet's serials enters through a real
  distribution centre (received, stored, shipped) and goes on to authorised shops, as
  genuine goods do.
"""

from __future__ import annotations

import numpy as np

from attestcore.schemas import BizStep
from detectors.supply_paperwork_b import advice_id, return_authorisation
from detectors.supply_world import Site, km
from detectors.supply_world_b import (
    DAY,
    Read,
    WorldB,
    copy_auth,
    dwell,
    genuine_auth,
    product_of,
    road,
)

TACTIC_RATE = 0.01  # copies (or diverted items) per genuine item, per tactic
BATCH_SIZE = (3, 10)
COPY_SOLD = 0.8
NEAR_SHOPS = 6  # a batch entering at a centre goes to one of the shops nearest it


class _Copy:
    """The reads of one counterfeit physical item carrying `epc`."""

    def __init__(
        self, rng: np.random.Generator, world: WorldB, item: int, epc: str, tactic: str
    ) -> None:
        self.rng, self.world, self.item, self.epc, self.tactic = rng, world, item, epc, tactic
        self.product = product_of(world, epc)
        self.reads: list[Read] = []
        self.transplanted = False  # a genuine tag moved onto the copy answers the challenge

    def read(self, t: int, step: BizStep, site: Site) -> int:
        if self.transplanted:
            auth = genuine_auth(self.rng, self.world, self.product, site)
        else:
            auth = copy_auth(self.world, self.product, site)
        door = int(self.rng.integers(1, 5))
        self.reads.append(Read(t, self.item, self.epc, step, site, door, auth, 1, self.tactic))
        return t

    def forged_receipt(self, t: int, site: Site, sender: Site) -> int:
        """A receipt citing a despatch advice in `sender`'s format that it never sent: the
        delivery note came with the copy."""
        self.read(t, BizStep.RECEIVING, site)
        forged = f"{int(self.rng.integers(10**8)):08d}-{int(self.rng.integers(2, 6))}"
        self.reads[-1].desadv, self.reads[-1].sender = advice_id(sender, forged), sender
        return t

    def on_shelf(self, t: int, shop: Site, shipped: Read | None = None) -> list[Read]:
        """Received at a shop (citing `shipped`'s advice, or a forged one) and often sold."""
        if shipped is None:
            t = self.forged_receipt(t, shop, self.world.regional_centres(shop)[0])
        else:
            t = self.read(t, BizStep.RECEIVING, shop)
            self.reads[-1].desadv, self.reads[-1].sender = shipped.desadv, shipped.site
        if self.rng.random() < COPY_SOLD:
            self.read(t + dwell(self.rng, 72), BizStep.RETAIL_SELLING, shop)
        return self.reads


def counterfeit_reads(
    rng: np.random.Generator, world: WorldB, lives: list[list[Read]], tag: str
) -> list[list[Read]]:
    """Copies as new items (numbered after `lives`); diversions and swaps change `lives`."""
    copies: list[list[Read]] = []

    def next_item() -> int:
        return len(lives) + len(copies)

    def count() -> int:
        return max(1, int(rng.poisson(TACTIC_RATE * len(lives))))

    for make in (_clone_before_genuine, _clone_same_city, _return_swap):
        for _ in range(count()):
            life = lives[int(rng.integers(len(lives)))]
            copy = make(rng, world, life, next_item())
            if copy:
                copies.append(copy)
    for _ in range(count()):
        _divert(rng, world, lives[int(rng.integers(len(lives)))])
    for _ in range(max(1, count() // 10)):
        for copy in _distributor_batch(rng, world, lives, next_item()):
            copies.append(copy)
    return copies


def _first(life: list[Read], step: BizStep, role: str) -> Read | None:
    return next((r for r in life if r.step == step and r.site.role.value == role), None)


def _clone_before_genuine(
    rng: np.random.Generator, world: WorldB, life: list[Read], item: int
) -> list[Read]:
    commissioned = life[0].ts
    arrived = _first(life, BizStep.RECEIVING, "retailer")
    latest = arrived.ts if arrived else commissioned + 30 * DAY
    t = int(rng.uniform(commissioned - 20 * DAY, latest - DAY))
    copy = _Copy(rng, world, item, life[0].epc, "clone_before_genuine")
    shops = world.base.authorised_retailers(copy.product)
    return copy.on_shelf(t, shops[int(rng.integers(len(shops)))])


def _clone_same_city(
    rng: np.random.Generator, world: WorldB, life: list[Read], item: int
) -> list[Read]:
    arrived = _first(life, BizStep.RECEIVING, "retailer")
    if arrived is None or not world.same_city(arrived.site):
        return []
    neighbours = world.same_city(arrived.site)
    t = arrived.ts + dwell(rng, 72)
    copy = _Copy(rng, world, item, arrived.epc, "clone_same_city")
    return copy.on_shelf(t, neighbours[int(rng.integers(len(neighbours)))])


def _return_swap(
    rng: np.random.Generator, world: WorldB, life: list[Read], item: int
) -> list[Read]:
    sale = next((r for r in life if r.step == BizStep.RETAIL_SELLING), None)
    if sale is None or any(r.ts > sale.ts for r in life):
        return []  # only an item whose life ends with its sale
    copy = _Copy(rng, world, item, sale.epc, "return_swap")
    copy.transplanted = bool(rng.random() < 0.5)
    t = copy.read(sale.ts + dwell(rng, 24 * 10), BizStep.RETURNING, sale.site)
    copy.reads[-1].rma = return_authorisation(sale.site, item, rng)
    if rng.random() < 0.7:
        copy.read(t + dwell(rng, 96), BizStep.RETAIL_SELLING, sale.site)
    return copy.reads


def _divert(rng: np.random.Generator, world: WorldB, life: list[Read]) -> None:
    """Rewrite a genuine life from its regional centre's shipping read on (in place)."""
    leaving = next(
        (
            i
            for i, r in enumerate(life)
            if r.step == BizStep.SHIPPING and r.site.role.value == "distributor"
        ),
        None,
    )
    if leaving is None or life[-1].label:
        return
    product = product_of(world, life[0].epc)
    grey = world.base.unauthorised_retailers(product)
    if not grey:
        return
    shipped = life[leaving]  # still in the authorised chain: label 0
    del life[leaving + 1 :]
    t = shipped.ts
    tail = _Copy(rng, world, shipped.item, shipped.epc, "diversion_reentry")
    tail.transplanted = True  # the genuine item itself: its tag answers the challenge
    abroad = grey[int(rng.integers(len(grey)))]
    shipped.dest = abroad  # the order came from abroad; the centre shipped what was ordered
    if rng.random() < 0.5:
        t = tail.read(t + road(rng, shipped.site, abroad), BizStep.RECEIVING, abroad)
        tail.reads[-1].desadv, tail.reads[-1].sender = shipped.desadv, shipped.site
        # The grey trader's onward sale goes under no business data the brand sees.
        t = tail.read(t + dwell(rng, 24 * 14), BizStep.SHIPPING, abroad)
    back = [
        s for s in world.base.authorised_retailers(product) if s.country != shipped.site.country
    ] or list(world.base.authorised_retailers(product))
    shop = back[int(rng.integers(len(back)))]
    t = tail.forged_receipt(t + int(rng.uniform(14, 45) * DAY), shop, abroad)
    if rng.random() < 0.8:
        tail.read(t + dwell(rng, 120), BizStep.RETAIL_SELLING, shop)
    life += tail.reads


def _distributor_batch(
    rng: np.random.Generator, world: WorldB, lives: list[list[Read]], first: int
) -> list[list[Read]]:
    """Copies of several serials of one pallet, entering at a real distribution centre."""
    start = int(rng.integers(len(lives)))
    size = int(rng.integers(BATCH_SIZE[0], BATCH_SIZE[1] + 1))
    life = lives[start]
    # A pallet's lives are consecutive, commissioned seconds apart.
    chosen = [other for other in lives[start : start + size] if other[0].ts - life[0].ts < 200]
    centre = world.base.distributors[int(rng.integers(len(world.base.distributors)))]
    hub = world.hubs[int(rng.integers(len(world.hubs)))]  # where the copies claim to come from
    t = life[0].ts + int(rng.uniform(5, 40) * DAY)
    copies = []
    for n, genuine in enumerate(chosen):
        copy = _Copy(rng, world, first + n, genuine[0].epc, "distributor_entry")
        at = copy.forged_receipt(t + 2 * n, centre, hub)
        at = copy.read(at + dwell(rng, 3, 0.8), BizStep.STORING, centre)
        near = sorted(world.base.authorised_retailers(copy.product), key=lambda s: km(s, centre))
        shop = near[int(rng.integers(min(NEAR_SHOPS, len(near))))]
        # Received, the copies are the centre's stock: it ships them under its own advice.
        at = copy.read(at + dwell(rng, 48, 1.2), BizStep.SHIPPING, centre)
        shipped = copy.reads[-1]
        shipped.desadv, shipped.dest = advice_id(centre, f"{first + n:08d}-1"), shop
        copies.append(copy.on_shelf(at + road(rng, centre, shop), shop, shipped))
    return copies
