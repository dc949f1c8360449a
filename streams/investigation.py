"""The investigation fields a decision carries (`Decision.context`), copied from its event.

Investigators ask for "all blocked payments at terminal Y" or "everything that happened to
this EPC, where and in which business step": the ledger can answer only what its entries
hold, so each decision carries these fields of the event it was made on, and the sequencer
indexes them (ledger/entity_index.py; docs/ledger-format.md, "Entries").
"""

from __future__ import annotations

from attestcore.schemas import (
    DecisionContext,
    PaymentContext,
    PaymentTransaction,
    ScanContext,
    SupplyChainEvent,
)
from detectors.reference.supply import gtin_from_epc


def gtin_or_none(epc: str) -> str | None:
    """The GTIN-14 of an SGTIN EPC, or None when its GTIN part is not 13 digits (the EPC
    pattern of the wire schema allows any number)."""
    try:
        return gtin_from_epc(epc)
    except ValueError:
        return None


def decision_context(event: object) -> DecisionContext | None:
    """The investigation fields of a payment or a scan; None for any other event."""
    if isinstance(event, PaymentTransaction):
        return PaymentContext(
            customer_id=event.customer_id,
            terminal_id=event.terminal_id,
            amount=event.amount,
            currency=event.currency,
            channel=event.channel,
            mcc=event.mcc,
            country=event.country,
        )
    if isinstance(event, SupplyChainEvent):
        return ScanContext(
            epc=event.epc,
            gtin=gtin_or_none(event.epc),
            biz_step=event.biz_step,
            biz_location=event.biz_location,
            read_point=event.read_point,
        )
    return None
