"""Wire contracts: what source systems produce and what the detectors emit.

The typed structs here are the single definition of each message. `make schemas` publishes
them as JSON Schema under `docs/schemas/` for producers in any language
(attestream/published_schemas.py); a test checks that the published files match this module.

All values are UTF-8 JSON. Times are RFC 3339 with an explicit offset (payments: UTC).

Records keyed by their entity (payments: `customer_id`, scans: `epc`, labels: `terminal_id`).
A record the detectors cannot decide goes to the dead-letter topic unchanged, with headers
naming why (`attestream-dlq-reason`: `oversized` over `MAX_EVENT_BYTES`, `not_json`,
`schema_violation`, `missing_key`, `key_mismatch`, `event_time_in_future` beyond the worker's
clock plus its allowed skew, `non_finite` features, `processing_error`) and where it was read
(`attestream-source-topic`, `-partition`, `-offset`): docs/operations.md, "Detection: one
decision or one dead letter per record".
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

Identifier = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-/]+$")]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0)]
AwareTime = Annotated[datetime, Meta(tz=True)]
Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
EPC = Annotated[
    str, Meta(pattern=r"^urn:epc:id:sgtin:[0-9]+\.[0-9]+\.[0-9A-Za-z]+$", max_length=128)
]
GTIN = Annotated[str, Meta(pattern=r"^[0-9]{14}$")]
Amount = Annotated[float, Meta(ge=0.0, le=1_000_000_000.0)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
MCC = Annotated[str, Meta(pattern=r"^[0-9]{4}$")]
Country = Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]

# The header of a decision record that carries the exact bytes of the event it was made on:
# the ledger archives them when their SHA-256 equals the decision's `event_sha256`
# (docs/ledger-format.md, "Event archive and entity index").
EVENT_HEADER = "attestream-event"

# The largest value accepted on an input topic. Larger records are dead-lettered as
# oversized before any parsing, so a hostile producer cannot make the agent parse megabytes.
MAX_EVENT_BYTES = 16 * 1024


class Channel(str, enum.Enum):
    CARD_PRESENT = "card_present"
    ECOMMERCE = "ecommerce"
    CONTACTLESS = "contactless"
    ATM = "atm"


class PaymentTransaction(Struct, kw_only=True, forbid_unknown_fields=True):
    """A card payment as the issuer's authorisation system sees it."""

    event_id: Identifier
    event_time: AwareTime
    source: Identifier
    customer_id: Identifier
    terminal_id: Identifier
    amount: Amount
    currency: Currency
    channel: Channel
    mcc: MCC
    country: Country
    lat: Latitude
    lon: Longitude
    device_id: Identifier | None = None


class PaymentLabel(Struct, kw_only=True, forbid_unknown_fields=True):
    """The issuer's late verdict on one payment, keyed by terminal id.

    Every payment gets exactly one: a chargeback (`fraud` true) when the card holder disputes
    it, or, once the confirmation window has passed without one, a confirmation (`fraud`
    false). `label_time` is when the verdict became known, days after `transaction_time`.
    """

    label_id: Identifier
    label_time: AwareTime
    transaction_id: Identifier
    transaction_time: AwareTime
    customer_id: Identifier
    terminal_id: Identifier
    fraud: bool


class Action(str, enum.Enum):
    ADD = "ADD"
    OBSERVE = "OBSERVE"
    DELETE = "DELETE"


class BizStep(str, enum.Enum):
    """The GS1 CBV business steps the supply-chain detector understands."""

    COMMISSIONING = "commissioning"
    PACKING = "packing"
    SHIPPING = "shipping"
    RECEIVING = "receiving"
    STORING = "storing"
    RETAIL_SELLING = "retail_selling"
    RETURNING = "returning"
    DECOMMISSIONING = "decommissioning"


class TagAuth(str, enum.Enum):
    VERIFIED = "verified"
    FAILED = "failed"
    ABSENT = "absent"


class SupplyChainEvent(Struct, kw_only=True, forbid_unknown_fields=True):
    """A subset of a GS1 EPCIS 2.0 ObjectEvent for one serialised item (one EPC)."""

    event_id: Identifier
    event_time: AwareTime
    event_time_zone_offset: Annotated[str, Meta(pattern=r"^[+-](0[0-9]|1[0-4]):[0-5][0-9]$")]
    epc: EPC
    action: Action
    biz_step: BizStep
    disposition: Annotated[str, Meta(min_length=1, max_length=64)]
    read_point: Identifier
    biz_location: Identifier
    lat: Latitude
    lon: Longitude
    reader_id: Identifier
    tag_auth: TagAuth


class SourceRef(Struct, kw_only=True, forbid_unknown_fields=True):
    """Where an event was read: enough to find the exact record again in Kafka."""

    topic: str
    partition: Annotated[int, Meta(ge=0)]
    offset: Annotated[int, Meta(ge=0)]


class Reason(Struct, kw_only=True, forbid_unknown_fields=True):
    """One feature's contribution (in log-odds) to a score."""

    feature: str
    contribution: float


class Detector(str, enum.Enum):
    FRAUD = "fraud"
    AUTHENTICITY = "authenticity"


class PaymentContext(
    Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="payment"
):
    """What an investigator asks about a payment, copied from the event the decision is on."""

    customer_id: Identifier
    terminal_id: Identifier
    amount: Amount
    currency: Currency
    channel: Channel
    mcc: MCC
    country: Country


class ScanContext(Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="scan"):
    """What an investigator asks about an EPCIS scan, copied from the event the decision is
    on; `gtin` is derived from the SGTIN EPC (GS1 EPC TDS 2.1 section 6.3.1), None when the
    EPC's company prefix and item reference are not the 13 digits a GTIN-14 needs."""

    epc: EPC
    gtin: GTIN | None
    biz_step: BizStep
    biz_location: Identifier
    read_point: Identifier


DecisionContext = PaymentContext | ScanContext


class Decision(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One detector's verdict on one event: what the ledger records and proves.

    `context` (the event's investigation fields) is left out of the encoding when it is
    None: decisions made before it existed encode exactly as they did, and are logged as
    entries of format version 1 (docs/ledger-format.md, "Entries").
    """

    decision_id: Sha256Hex
    event_id: Identifier
    event_sha256: Sha256Hex
    source: SourceRef
    entity_id: Identifier
    detector: Detector
    model_id: str
    model_sha256: Sha256Hex
    features: dict[str, float]
    score: Annotated[float, Meta(ge=0.0, le=1.0)]
    outcome: str
    reasons: list[Reason]
    event_time: AwareTime
    decided_at: AwareTime
    context: DecisionContext | None = None


OUTCOMES: dict[Detector, tuple[str, str, str]] = {
    Detector.FRAUD: ("approve", "review", "block"),
    Detector.AUTHENTICITY: ("authentic", "suspect", "counterfeit"),
}


def decision_id(event_id: str, detector: Detector | str, model_sha256: str) -> str:
    """Deterministic id: a replay of the same event through the same model yields the same id."""
    name = detector.value if isinstance(detector, Detector) else detector
    material = b"\x00".join((event_id.encode(), name.encode(), model_sha256.encode()))
    return hashlib.sha256(material).hexdigest()


# The wire messages, published as docs/schemas/<name>.json (attestream/published_schemas.py).
SCHEMAS: dict[str, type[Struct]] = {
    "payment-transaction": PaymentTransaction,
    "payment-label": PaymentLabel,
    "supply-chain-event": SupplyChainEvent,
    "decision": Decision,
}

_ENCODER = msgspec.json.Encoder()


def encode(message: Struct) -> bytes:
    return _ENCODER.encode(message)
