"""The investigation fields a decision carries, copied from its event (streams/investigation.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from attestcore.schemas import (
    Action,
    BizStep,
    Channel,
    PaymentContext,
    PaymentTransaction,
    ScanContext,
    SupplyChainEvent,
    TagAuth,
)
from streams.investigation import decision_context, gtin_or_none

AT = datetime(2025, 3, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("epc", "gtin"),
    [
        # GS1 EPC TDS 2.1 section 6.3.1: indicator 8 moves to the front, check digit 8.
        ("urn:epc:id:sgtin:0614141.812345.6789", "80614141123458"),
        # 4012345 + 010020: indicator 0, data 0401234510020; weights 3,1,3,... from the
        # right give 36, so the check digit is 4.
        ("urn:epc:id:sgtin:4012345.010020.C", "04012345100204"),
        # Company prefix and item reference of 5 digits, not the 13 a GTIN-14 needs.
        ("urn:epc:id:sgtin:1.2.3", None),
    ],
)
def test_the_gtin_is_derived_from_an_sgtin_epc(epc: str, gtin: str | None) -> None:
    assert gtin_or_none(epc) == gtin


def test_a_payment_carries_who_where_and_how_much() -> None:
    event = PaymentTransaction(
        event_id="p1",
        event_time=AT,
        source="issuer",
        customer_id="C1",
        terminal_id="T9",
        amount=42.0,
        currency="EUR",
        channel=Channel.ECOMMERCE,
        mcc="5999",
        country="FR",
        lat=48.8,
        lon=2.3,
    )
    assert decision_context(event) == PaymentContext(
        customer_id="C1",
        terminal_id="T9",
        amount=42.0,
        currency="EUR",
        channel=Channel.ECOMMERCE,
        mcc="5999",
        country="FR",
    )


def test_a_scan_carries_its_epc_gtin_step_and_place() -> None:
    event = SupplyChainEvent(
        event_id="s1",
        event_time=AT,
        event_time_zone_offset="+01:00",
        epc="urn:epc:id:sgtin:0614141.812345.6789",
        action=Action.OBSERVE,
        biz_step=BizStep.SHIPPING,
        disposition="in_transit",
        read_point="urn:rp:1",
        biz_location="urn:loc:1",
        lat=1.0,
        lon=2.0,
        reader_id="r1",
        tag_auth=TagAuth.VERIFIED,
    )
    assert decision_context(event) == ScanContext(
        epc=event.epc,
        gtin="80614141123458",
        biz_step=BizStep.SHIPPING,
        biz_location="urn:loc:1",
        read_point="urn:rp:1",
    )


def test_other_events_carry_none() -> None:
    assert decision_context(object()) is None
