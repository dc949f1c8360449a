"""The supply-chain reference table: locations, products and where each may be sold.

`supply-chain-v1.json` holds GS1 master data a brand owner keeps anyway:

- `sites`: every location (SGLN EPC URI, as in an event's `biz_location`) with its `role`
  (factory, distributor, retailer) and `country` (ISO 3166-1 alpha-2);
- `products`: every GTIN-14 with the countries where it is `authorised_countries` for sale
  (a retailer outside them selling it is grey-market diversion) and whether its tags answer a
  cryptographic challenge (`tag_authentication`).

The GTIN of a scanned item comes from its SGTIN EPC (GS1 EPC Tag Data Standard 2.1, 6.3.1):
`urn:epc:id:sgtin:<company prefix>.<indicator><item reference>.<serial>` is GTIN-14
`<indicator><company prefix><item reference><check digit>`, the check digit being the GS1
mod-10 one (General Specifications 7.9.1).
"""

from __future__ import annotations

import enum
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from attestcore.errors import ConfigError
from detectors.reference import ReferenceDataDigest

SUPPLY_REFERENCE_FORMAT = "attestream.supply-reference/1"
SUPPLY_REFERENCE_FILE = Path(__file__).with_name("supply-chain-v1.json")


class SiteRole(str, enum.Enum):
    FACTORY = "factory"
    DISTRIBUTOR = "distributor"
    RETAILER = "retailer"


# Position along the chain, as a feature value: goods flow from lower to higher.
ROLE_RANK = {SiteRole.FACTORY: 0, SiteRole.DISTRIBUTOR: 1, SiteRole.RETAILER: 2}


class ReferenceSite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    biz_location: str
    code: str
    role: SiteRole
    country: str
    lat: float
    lon: float
    tz: str


class ReferenceProduct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    gtin: str
    epc_company_prefix: str
    epc_item_reference: str
    name: str
    maker: str  # the code of the factory site that commissions it
    authorised_countries: list[str]
    tag_authentication: bool


class SupplyReferenceFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: str
    version: str
    effective_from: str
    description: str
    sites: list[ReferenceSite]
    products: list[ReferenceProduct]


@dataclass(frozen=True)
class SupplyReference:
    """The parsed table, indexed for the feature functions, with the digest of its bytes."""

    name: str
    version: str
    sha256: str
    sites: dict[str, ReferenceSite]  # by biz_location
    products: dict[str, ReferenceProduct]  # by GTIN-14

    def digest(self) -> ReferenceDataDigest:
        return ReferenceDataDigest(
            name=self.name, format=SUPPLY_REFERENCE_FORMAT, version=self.version, sha256=self.sha256
        )

    def site(self, biz_location: str) -> ReferenceSite | None:
        return self.sites.get(biz_location)

    def product_of(self, epc: str) -> ReferenceProduct | None:
        try:
            return self.products.get(gtin_from_epc(epc))
        except ValueError:
            return None


def gs1_check_digit(digits: str) -> int:
    """GS1 mod-10: weights 3, 1, 3... from the rightmost digit; the check makes a multiple of 10.

    EPC TDS 2.1 6.3.1's example `urn:epc:id:sgtin:0614141.812345.6789` is GTIN 80614141123458:
    `gs1_check_digit("8061414112345") == 8`.
    """
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def gtin_from_epc(epc: str) -> str:
    """GTIN-14 of an SGTIN EPC pure-identity URI; ValueError if it is not one."""
    prefix = "urn:epc:id:sgtin:"
    parts = epc[len(prefix) :].split(".") if epc.startswith(prefix) else []
    if len(parts) != 3 or not (parts[0] + parts[1]).isdigit() or len(parts[0] + parts[1]) != 13:
        raise ValueError(f"not an SGTIN EPC URI with a 13-digit GTIN part: {epc!r}")
    company, item = parts[0], parts[1]
    data = item[0] + company + item[1:]
    return data + str(gs1_check_digit(data))


def parse_supply_reference(data: bytes, name: str) -> SupplyReference:
    """Validate a reference file's bytes; a bad file is a `ConfigError` naming it."""
    try:
        doc = msgspec.json.decode(data, type=SupplyReferenceFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"supply reference {name} is malformed: {exc}") from exc
    if doc.format != SUPPLY_REFERENCE_FORMAT:
        raise ConfigError(
            f"supply reference {name} is {doc.format!r}, not {SUPPLY_REFERENCE_FORMAT}"
        )
    products = {}
    for product in doc.products:
        epc_gtin = gtin_from_epc(
            f"urn:epc:id:sgtin:{product.epc_company_prefix}.{product.epc_item_reference}.0"
        )
        if epc_gtin != product.gtin:
            raise ConfigError(f"supply reference {name}: {product.gtin} should be {epc_gtin}")
        products[product.gtin] = product
    return SupplyReference(
        name=name,
        version=doc.version,
        sha256=hashlib.sha256(data).hexdigest(),
        sites={site.biz_location: site for site in doc.sites},
        products=products,
    )


def load_supply_reference(path: Path = SUPPLY_REFERENCE_FILE) -> SupplyReference:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read supply reference {path}: {exc}") from exc
    return parse_supply_reference(data, path.name)


@functools.cache
def default_supply_reference() -> SupplyReference:
    """The shipped table, read once per process (it is immutable, so caching keeps features
    pure: the same file bytes give the same table, and the digest names those bytes)."""
    return load_supply_reference()
