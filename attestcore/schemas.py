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
    REPAIRING = "repairing"


class TagAuth(str, enum.Enum):
    VERIFIED = "verified"
    FAILED = "failed"
    ABSENT = "absent"


# GS1 CBV 2.0 section 7.4 (source/destination types) and 7.3 (business transaction types):
# the subset the authenticity detector reads.
class SourceDestType(str, enum.Enum):
    OWNING_PARTY = "owning_party"
    POSSESSING_PARTY = "possessing_party"
    LOCATION = "location"


class BizTransactionType(str, enum.Enum):
    DESPATCH_ADVICE = "desadv"
    PURCHASE_ORDER = "po"
    RECEIVING_ADVICE = "recadv"
    RETURN_MERCHANDISE_AUTHORISATION = "rma"


class ErrorReason(str, enum.Enum):
    """EPCIS 2.0 section 7.4.1.4 error declaration reasons (GS1 CBV 2.0 section 7.5)."""

    DID_NOT_OCCUR = "did_not_occur"
    INCORRECT_DATA = "incorrect_data"


class SourceDest(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One entry of an EPCIS `sourceList` or `destinationList`: a party (SGLN or PGLN) or a
    location (SGLN), typed as GS1 CBV 2.0 7.4 says."""

    type: SourceDestType
    id: Identifier


class BizTransaction(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One entry of an EPCIS `bizTransactionList`: a despatch advice, a purchase order..."""

    type: BizTransactionType
    id: Identifier


class ErrorDeclaration(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """EPCIS 2.0 `errorDeclaration`: this event (same `event_id` as the one in error) did not
    happen as recorded; `corrective_event_ids` name the events that replace it."""

    declaration_time: AwareTime
    reason: ErrorReason
    corrective_event_ids: Annotated[list[Identifier], Meta(max_length=8)] = []


# Version 2 of the supply wire message added aggregation, source/destination, business
# transactions and error declarations; a message without `schema_version` is version 1 and
# is still accepted, and a version 1 message encodes exactly as it did (`omit_defaults`).
SUPPLY_SCHEMA_VERSION = 2
MAX_CHILD_EPCS = 64
MAX_PARTIES = 8


class SupplyChainEvent(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A subset of a GS1 EPCIS 2.0 ObjectEvent for one serialised item (one EPC).

    From version 2 it may also carry what EPCIS 2.0 records beside the item: `parent_id`, the
    SSCC (or SGTIN) of the pallet or case the item was aggregated in, and set when the item
    was read through it (a pallet-level read, `child_epcs` listing the pallet's other items);
    `source_list` and `destination_list` (owning party, location); `biz_transactions` (the
    despatch advice a shipment or receipt belongs to, the purchase order); and an
    `error_declaration` retracting the earlier event with the same `event_id`.
    """

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
    schema_version: Annotated[int, Meta(ge=1, le=SUPPLY_SCHEMA_VERSION)] = 1
    parent_id: Identifier | None = None
    child_epcs: Annotated[list[EPC], Meta(max_length=MAX_CHILD_EPCS)] = []
    source_list: Annotated[list[SourceDest], Meta(max_length=MAX_PARTIES)] = []
    destination_list: Annotated[list[SourceDest], Meta(max_length=MAX_PARTIES)] = []
    biz_transactions: Annotated[list[BizTransaction], Meta(max_length=MAX_PARTIES)] = []
    error_declaration: ErrorDeclaration | None = None


class SourceRef(Struct, kw_only=True, forbid_unknown_fields=True):
    """Where an event was read: enough to find the exact record again in Kafka."""

    topic: str
    partition: Annotated[int, Meta(ge=0)]
    offset: Annotated[int, Meta(ge=0)]


class Evidence(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What an investigator can check behind a reason: the earlier scan this one conflicts
    with, the challenge that failed, the despatch a receipt does not match."""

    kind: Annotated[str, Meta(min_length=1, max_length=64)]
    detail: Annotated[str, Meta(max_length=512)]
    event_id: Identifier | None = None
    biz_location: Identifier | None = None
    event_time: AwareTime | None = None


class Reason(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One feature's contribution (in log-odds) to a score, with its evidence when the
    detector has one; a reason without evidence encodes exactly as before it existed."""

    feature: str
    contribution: float
    evidence: Evidence | None = None


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
