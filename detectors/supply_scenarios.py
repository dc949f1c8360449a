"""Counterfeit copies injected into the simulated supply chain (every scan of one is label 1).

Each scenario follows a pattern reported in the clone-detection literature on RFID/EPCIS
traces; `docs/detectors.md` (authenticity) describes them with their rates:

- `cloned_serial`: the EPC of a genuine item seen on a shop shelf is written on a copy that
  turns up at another shop while the genuine item is still on sale: one EPC at two places.
- `impossible_travel`: a copy is read far from where the genuine item was read shortly before,
  faster than any freight could go (at least `IMPOSSIBLE_MIN_KMH`).
- `injected_fake`: an EPC under a real product's prefix that was never commissioned, entering
  at a shop or, one time in four, through a distributor; a crypto-tag product's fake fails the
  tag challenge wherever the reader asks.
- `lifecycle_violation`: a copy of an item already sold (sold twice without a return) or
  destroyed (seen after decommissioning) re-enters a shop.

Grey-market diversion is not a copy but the genuine item sent to an unauthorised market, so
it is simulated with the item's life (`detectors.simulate_supply`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attestcore.schemas import BizStep
from detectors.supply_world import (
    DAY,
    HOUR,
    Product,
    SimScan,
    Site,
    World,
    copy_auth,
    days,
    km,
    pick,
)

COPY_RATE = 0.012  # copies per genuine item, for each copy scenario
COPY_SOLD_RATE = 0.8  # a copy on a shelf is usually sold a few days later
CLONE_MIN_KM = 20.0  # "another shop": not the same shopping street
IMPOSSIBLE_MIN_KM = 600.0
IMPOSSIBLE_MIN_KMH = 150.0  # 2.5x the fastest simulated freight (60 km/h)
FAKE_VIA_DISTRIBUTOR = 0.25

_FINAL = (BizStep.RETAIL_SELLING, BizStep.DECOMMISSIONING)
COPY_SCENARIOS = ("cloned_serial", "impossible_travel", "injected_fake", "lifecycle_violation")


def counterfeit_copies(
    rng: np.random.Generator, world: World, lives: list[list[SimScan]], tag: str
) -> list[list[SimScan]]:
    """Every scenario's copies, one list of scans per copy, with item numbers after `lives`."""
    makers: list[Callable[[np.random.Generator, World, list[list[SimScan]], int], list[SimScan]]]
    makers = [_clone, _impossible_travel, _lifecycle_copy]
    copies: list[list[SimScan]] = []
    for make in makers:
        for _ in range(_count(rng, len(lives))):
            copy = make(rng, world, lives, len(lives) + len(copies))
            if copy:
                copies.append(copy)
    horizon = max(scan.ts for life in lives for scan in life)
    for n in range(_count(rng, len(lives))):
        copies.append(_fake(rng, world, len(lives) + len(copies), f"{tag}9{n:07d}", horizon))
    return copies


def _count(rng: np.random.Generator, items: int) -> int:
    """How many copies to inject: Poisson, but at least one so every scenario occurs."""
    return max(1, int(rng.poisson(COPY_RATE * items)))


def _product(world: World, epc: str) -> Product:
    prefix = epc.removeprefix("urn:epc:id:sgtin:").rsplit(".", 1)[0]
    return next(p for p in world.products if p.epc_prefix == prefix)


def _on_shelf(
    rng: np.random.Generator,
    world: World,
    item: int,
    epc: str,
    ts: int,
    shop: Site,
    scenario: str,
) -> list[SimScan]:
    """A copy received at a shop and, usually, sold there a few days later."""
    auth = copy_auth(_product(world, epc), shop)
    scans = [SimScan(ts, item, epc, BizStep.RECEIVING, shop, auth, 1, scenario)]
    if rng.random() < COPY_SOLD_RATE:
        sold = ts + days(rng, 0.5, 6)
        scans.append(SimScan(sold, item, epc, BizStep.RETAIL_SELLING, shop, auth, 1, scenario))
    return scans


def _clone(
    rng: np.random.Generator, world: World, lives: list[list[SimScan]], item: int
) -> list[SimScan]:
    life = lives[int(rng.integers(len(lives)))]
    shelf = [
        s
        for s in life
        if s.label == 0 and s.step == BizStep.RECEIVING and s.site in world.retailers
    ]
    if not shelf:
        return []
    seen = shelf[0]
    others = [s for s in world.retailers if km(s, seen.site) >= CLONE_MIN_KM]
    ts = seen.ts + days(rng, 0.5, 10)
    return _on_shelf(rng, world, item, seen.epc, ts, pick(rng, others), "cloned_serial")


def _impossible_travel(
    rng: np.random.Generator, world: World, lives: list[list[SimScan]], item: int
) -> list[SimScan]:
    life = lives[int(rng.integers(len(lives)))]
    genuine = [s for s in life if s.label == 0]
    seen = genuine[int(rng.integers(len(genuine)))]
    far = [s for s in world.retailers if km(s, seen.site) >= IMPOSSIBLE_MIN_KM]
    if not far:
        return []
    shop = pick(rng, far)
    # At most distance / IMPOSSIBLE_MIN_KMH after the genuine read, at least 3 minutes.
    limit_h = km(seen.site, shop) / IMPOSSIBLE_MIN_KMH
    ts = seen.ts + max(180, int(rng.uniform(0.05, 1.0) * limit_h * HOUR))
    return _on_shelf(rng, world, item, seen.epc, ts, shop, "impossible_travel")


def _lifecycle_copy(
    rng: np.random.Generator, world: World, lives: list[list[SimScan]], item: int
) -> list[SimScan]:
    ended = [life[-1] for life in lives if life[-1].step in _FINAL and life[-1].label == 0]
    last = ended[int(rng.integers(len(ended)))]
    shop = pick(rng, [s for s in world.retailers if s != last.site])
    ts = last.ts + days(rng, 1, 14)
    return _on_shelf(rng, world, item, last.epc, ts, shop, "lifecycle_violation")


def _fake(
    rng: np.random.Generator, world: World, item: int, serial: str, horizon: int
) -> list[SimScan]:
    """A never-commissioned serial: at a shop, or through a distributor to a shop."""
    product = world.products[int(rng.integers(len(world.products)))]
    epc = f"urn:epc:id:sgtin:{product.epc_prefix}.{serial}"
    shop = pick(rng, world.retailers)
    ts = int(rng.integers(horizon))
    if rng.random() >= FAKE_VIA_DISTRIBUTOR:
        return _on_shelf(rng, world, item, epc, ts, shop, "injected_fake")
    dc = world.nearest_distributor(shop)
    scans = [
        SimScan(ts, item, epc, BizStep.RECEIVING, dc, copy_auth(product, dc), 1, "injected_fake"),
        SimScan(
            ts + days(rng, 0.5, 4),
            item,
            epc,
            BizStep.SHIPPING,
            dc,
            copy_auth(product, dc),
            1,
            "injected_fake",
        ),
    ]
    # The distributor ships the fake on with its own despatch advice, as it would a genuine item.
    scans[-1].desadv, scans[-1].destination = f"DA-{serial}-2", shop
    arrival = scans[-1].ts + int(km(dc, shop) / 40 * HOUR + DAY / 2)
    shelf = _on_shelf(rng, world, item, epc, arrival, shop, "injected_fake")
    shelf[0].desadv, shelf[0].source = scans[-1].desadv, dc
    return scans + shelf
