"""World B's business data: how its partners' systems fill EPCIS 2.0's business fields.

World B has its own habits, not the first world's (`detectors.simulate_supply`):

- Not every partner sends business data. Factories and the port hubs always do, a regional
  centre 9 times in 10, a shop 6 in 10 (drawn once per site). The others send version 1
  messages, which carry none.
- A despatch advice (GS1 CBV `desadv`) covers a whole pallet from a factory or a hub (every
  item of the pallet, each read by its own tag, cites the same advice) or one order from a
  regional centre or a shop. Its id is the sender's `<site>-ASN-<reference>`.
- A shipment names its destination twice, as owning party and as location. A receipt cites the
  advice it came with and names its source by owning party only, with no location.
- Paperwork goes missing: 3 % of the receipts at a site that sends business data cite no advice
  (`missing_paperwork`).
- A shop that takes back a customer's purchase issues a return authorisation (`rma`) 6 times in
  10. A repair always travels under one.
- Grey traders abroad send the brand no business data about what they sell on.

Counterfeiters copy paperwork: a copy's receipt cites an advice in a real sender's format that
the sender never sent (`detectors.supply_tactics_b`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attestcore.schemas import (
    SUPPLY_SCHEMA_VERSION,
    BizStep,
    BizTransaction,
    BizTransactionType,
    SourceDest,
    SourceDestType,
)
from detectors.supply_world import Site

if TYPE_CHECKING:
    from detectors.supply_world_b import Read

SENDS_BUSINESS_DATA = {"factory": 1.0, "distributor": 0.9, "retailer": 0.6}
MISSING_PAPERWORK = 0.03  # of receipts at a site that sends business data
RETURN_AUTHORISED = 0.6  # of customers' returns at a shop


def sends_business_data(rng: np.random.Generator, site: Site, hubs: tuple[str, ...]) -> bool:
    if site.code in hubs:
        return True
    return bool(rng.random() < SENDS_BUSINESS_DATA[site.role.value])


def party(site: Site) -> str:
    """The site's owning party: its company's party GLN (the SGLN's company prefix)."""
    company = site.biz_location.removeprefix("urn:epc:id:sgln:").split(".", 1)[0]
    return f"urn:epc:id:pgln:{company}.00000"


def advice_id(site: Site, reference: str) -> str:
    """A despatch advice's id as its sender numbers it: `P<pallet>` for a pallet, the
    order's reference otherwise."""
    return f"{site.code}-ASN-{reference}"


def return_authorisation(site: Site, item: int, rng: np.random.Generator) -> str:
    """The RMA a shop issues for a customer's return, or none (the shop did not issue one)."""
    return f"{site.code}-RMA-{item:08d}" if rng.random() < RETURN_AUTHORISED else ""


def business_data(read: Read) -> dict[str, Any]:
    """The version 2 fields of a read at a site that sends business data."""
    data: dict[str, Any] = {"schema_version": SUPPLY_SCHEMA_VERSION}
    transactions = []
    if read.desadv:
        transactions.append(BizTransaction(type=BizTransactionType.DESPATCH_ADVICE, id=read.desadv))
    if read.rma:
        transactions.append(
            BizTransaction(type=BizTransactionType.RETURN_MERCHANDISE_AUTHORISATION, id=read.rma)
        )
    if transactions:
        data["biz_transactions"] = transactions
    if read.step == BizStep.SHIPPING and read.dest is not None:
        data["destination_list"] = [
            SourceDest(type=SourceDestType.OWNING_PARTY, id=party(read.dest)),
            SourceDest(type=SourceDestType.LOCATION, id=read.dest.biz_location),
        ]
    if read.step == BizStep.RECEIVING and read.sender is not None:
        data["source_list"] = [SourceDest(type=SourceDestType.OWNING_PARTY, id=party(read.sender))]
    return data
