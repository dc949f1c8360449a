"""The simulated supply chain's world, built from the shipped reference table.

Sites and products come from `detectors/reference/supply-chain-v1.json`, so the simulator and
the detector agree on where every location is and where every product may be sold. What the
table does not say is simulated here: which shop readers can run the tag authentication
challenge, and the raw scans (`SimScan`) before they become wire events.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from attestcore.schemas import BizStep, TagAuth
from detectors.geo import haversine_km
from detectors.reference.supply import SiteRole, SupplyReference, default_supply_reference

HOUR = 3_600
DAY = 86_400


@dataclass(frozen=True)
class Site:
    """A place with RFID readers: a factory, a distribution centre or a shop."""

    code: str
    role: SiteRole
    country: str
    lat: float
    lon: float
    tz: str
    biz_location: str
    can_authenticate: bool = True
    business_data: bool = True  # its systems send EPCIS business data (wire version 2)


@dataclass(frozen=True)
class Product:
    """A GTIN: its EPC prefix, maker, where it may be sold, whether its tags are crypto tags."""

    gtin: str
    epc_prefix: str  # "<company prefix>.<indicator + item reference>"
    maker: Site
    authorised: frozenset[str]
    crypto_tags: bool


@dataclass(frozen=True)
class World:
    factories: tuple[Site, ...]
    distributors: tuple[Site, ...]
    retailers: tuple[Site, ...]
    products: tuple[Product, ...]

    def authorised_retailers(self, product: Product) -> tuple[Site, ...]:
        return tuple(s for s in self.retailers if s.country in product.authorised)

    def unauthorised_retailers(self, product: Product) -> tuple[Site, ...]:
        return tuple(s for s in self.retailers if s.country not in product.authorised)

    def nearest_distributor(self, site: Site) -> Site:
        return min(self.distributors, key=lambda dc: km(dc, site))


@dataclass
class SimScan:
    """One read before it becomes a wire event: event time, arrival time and its truth."""

    ts: int  # event time, seconds since the simulation start
    item: int  # which physical item (a genuine item or one counterfeit copy)
    epc: str
    step: BizStep
    site: Site
    tag_auth: TagAuth = TagAuth.VERIFIED
    label: int = 0
    scenario: str = ""
    noise: list[str] = field(default_factory=list)
    delay: int = 0  # seconds between the read and its upload (late uploads)
    desadv: str = ""  # the despatch advice a shipping or receiving scan belongs to
    source: Site | None = None  # where a received item was despatched from
    destination: Site | None = None  # where a shipped item is despatched to

    @property
    def arrival(self) -> int:
        return self.ts + self.delay


def km(a: Site, b: Site) -> float:
    return haversine_km(a.lat, a.lon, b.lat, b.lon)


def build_world(reference: SupplyReference | None = None) -> World:
    ref = reference if reference is not None else default_supply_reference()
    # One site in five still sends version 1 messages, without business data (no despatch
    # advice, source or destination): a brand's partners upgrade one by one.
    sites = [
        Site(s.code, s.role, s.country, s.lat, s.lon, s.tz, s.biz_location, True, i % 5 != 2)
        for i, s in enumerate(ref.sites.values())
    ]
    retailers = tuple(
        # One shop in ten has readers without the authentication challenge: genuine crypto
        # tags read `absent` there, as copies do.
        dataclasses.replace(s, can_authenticate=i % 10 != 3)
        for i, s in enumerate(x for x in sites if x.role == SiteRole.RETAILER)
    )
    by_code = {s.code: s for s in sites}
    products = tuple(
        Product(
            p.gtin,
            f"{p.epc_company_prefix}.{p.epc_item_reference}",
            by_code[p.maker],
            frozenset(p.authorised_countries),
            p.tag_authentication,
        )
        for p in ref.products.values()
    )
    return World(
        tuple(s for s in sites if s.role == SiteRole.FACTORY),
        tuple(s for s in sites if s.role == SiteRole.DISTRIBUTOR),
        retailers,
        products,
    )


def pick(rng: np.random.Generator, options: tuple[Site, ...] | list[Site]) -> Site:
    return options[int(rng.integers(len(options)))]


def travel_seconds(rng: np.random.Generator, a: Site, b: Site) -> int:
    """Road or rail at 25-60 km/h door to door, plus 4-24 h of handling."""
    return int(km(a, b) / rng.uniform(25, 60) * HOUR + rng.uniform(4, 24) * HOUR)


def hours(rng: np.random.Generator, low: float, high: float) -> int:
    return int(rng.uniform(low, high) * HOUR)


def days(rng: np.random.Generator, low: float, high: float) -> int:
    return int(rng.uniform(low, high) * DAY)


def genuine_auth(
    rng: np.random.Generator, product: Product, site: Site, error_rate: float
) -> tuple[TagAuth, bool]:
    """What a genuine tag answers, and whether that was a read error (a damaged tag)."""
    if not product.crypto_tags or not site.can_authenticate:
        return TagAuth.ABSENT, False
    if rng.random() < error_rate:
        return TagAuth.FAILED, True
    return TagAuth.VERIFIED, False


def copy_auth(product: Product, site: Site) -> TagAuth:
    """A copied tag carries the EPC but not the tag's secret key, so it fails the challenge
    wherever the product has crypto tags and the reader asks; elsewhere nothing is checked."""
    if product.crypto_tags and site.can_authenticate:
        return TagAuth.FAILED
    return TagAuth.ABSENT
