"""The shipped supply-chain reference table: GTINs, digest, and every way a file is refused."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attestcore.errors import ConfigError
from detectors.reference.supply import (
    SUPPLY_REFERENCE_FILE,
    SiteRole,
    default_supply_reference,
    gs1_check_digit,
    gtin_from_epc,
    load_supply_reference,
    parse_supply_reference,
)


def test_gtin_from_the_epc_tag_data_standard_example() -> None:
    # EPC TDS 2.1 section 6.3.1: urn:epc:id:sgtin:0614141.812345.6789 is GTIN 80614141123458.
    assert gtin_from_epc("urn:epc:id:sgtin:0614141.812345.6789") == "80614141123458"
    # EAN-13 4006381333931 by hand, weights 3, 1, 3... from the right of 400638133393:
    # 3 * (3+3+3+8+6+0) + (9+3+1+3+0+4) = 69 + 20 = 89, and 89 + 1 is a multiple of 10.
    assert gs1_check_digit("400638133393") == 1


@pytest.mark.parametrize(
    "epc",
    ["urn:epc:id:sgln:0614141.12345.0", "urn:epc:id:sgtin:0614141.81234.6789", "sgtin:1.2.3"],
)
def test_not_an_sgtin_is_a_value_error(epc: str) -> None:
    with pytest.raises(ValueError, match="not an SGTIN"):
        gtin_from_epc(epc)
    assert default_supply_reference().product_of(epc) is None


def test_the_digest_names_the_file_bytes() -> None:
    ref = default_supply_reference()
    assert ref.sha256 == hashlib.sha256(SUPPLY_REFERENCE_FILE.read_bytes()).hexdigest()
    digest = ref.digest()
    assert (digest.name, digest.version) == ("supply-chain-v1.json", "1")
    assert digest.format == "attestream.supply-reference/1"


def test_every_product_is_made_at_a_factory_and_sold_somewhere() -> None:
    ref = default_supply_reference()
    codes = {s.code: s for s in ref.sites.values()}
    countries = {s.country for s in ref.sites.values() if s.role == SiteRole.RETAILER}
    for product in ref.products.values():
        assert codes[product.maker].role == SiteRole.FACTORY
        assert set(product.authorised_countries) <= countries
    # Grey market needs products with somewhere they may not be sold.
    assert any(set(p.authorised_countries) != countries for p in ref.products.values())


def edited(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    doc = json.loads(SUPPLY_REFERENCE_FILE.read_text())
    change(doc)
    path = tmp_path / "supply-chain-test.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_wrong_gtin_check_digit_is_refused(tmp_path: Path) -> None:
    def wrong(doc: dict[str, Any]) -> None:
        doc["products"][0]["gtin"] = doc["products"][0]["gtin"][:-1] + "0"

    with pytest.raises(ConfigError, match="should be"):
        load_supply_reference(edited(tmp_path, wrong))


def test_a_wrong_format_or_role_is_refused(tmp_path: Path) -> None:
    def other_format(doc: dict[str, Any]) -> None:
        doc["format"] = "something/2"

    def bad_role(doc: dict[str, Any]) -> None:
        doc["sites"][0]["role"] = "warehouse"

    with pytest.raises(ConfigError, match="not attestream.supply-reference/1"):
        load_supply_reference(edited(tmp_path, other_format))
    with pytest.raises(ConfigError, match="malformed"):
        load_supply_reference(edited(tmp_path, bad_role))
    with pytest.raises(ConfigError, match="malformed"):
        parse_supply_reference(b"{not json", "x.json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_supply_reference(tmp_path / "missing.json")
