"""The event archive and the entity index of one batch: rows, digest check. Pure.

The sequencer archives each event's exact bytes (carried by its decision record in the
`attestcore.schemas.EVENT_HEADER` header) and indexes each decision under the entities its
investigation fields name, in step 1 of its durability order (ledger/sequencer.py). Bytes
whose SHA-256 is not the decision's `event_sha256` are **refused**: the entry is still
logged (the decision is what the detector published, and its digest already commits to the
genuine event, which stays readable at the decision's `source` while Kafka keeps it), but no
archive row is written and the refusal is counted and logged. Dead-lettering the decision
instead would remove a genuine decision from the ledger because of damage in a copy beside
it. See docs/ledger-format.md, "Event archive and entity index".

Columns are built one whole column at a time, once per batch (docs/benchmarks.md); the only
per-event work is the one SHA-256 the digest check needs.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from attestcore.schemas import Decision, PaymentContext, ScanContext
from ledger.chain import Incoming
from ledger.timeline_copy import encode_copy, event_position, timeline_copy

ARCHIVE_COLUMNS = ("event_sha256", "topic", "partition", "offset", "event", "archived_at")
INDEX_COLUMNS = (
    "entity_kind",
    "entity_value",
    "event_time",
    "chain",
    "seq",
    "decision_id",
    "detector",
    "outcome",
    "timeline_step",
)
"""The `entity_index` columns. `timeline_step` is the decision's `TimelineCopy`
(ledger/timeline_copy.py) on the rows of every entity kind but `event_id`, empty on those
and on rows written before it existed."""


CONTEXT_COLUMNS = (
    "chain",
    "seq",
    "decision_id",
    "kind",
    "customer_id",
    "terminal_id",
    "amount",
    "currency",
    "channel",
    "mcc",
    "country",
    "epc",
    "gtin",
    "biz_step",
    "biz_location",
    "read_point",
)
"""The `entry_context` columns: a format-2 entry's investigation fields, typed, one row per
entry; the members a kind does not have are empty ('' and 0.0), `gtin` too when it is null."""

_PAYMENT_FIELDS = ("customer_id", "terminal_id", "amount", "currency", "channel", "mcc", "country")
_SCAN_FIELDS = ("epc", "gtin", "biz_step", "biz_location", "read_point")


def context_values(context: PaymentContext | ScanContext) -> dict[str, Any]:
    """The `entry_context` values (from `kind` on) of investigation fields, as stored."""
    values: dict[str, Any] = {name: "" for name in CONTEXT_COLUMNS[3:]}
    values["amount"] = 0.0
    if isinstance(context, PaymentContext):
        values["kind"] = "payment"
        values.update((name, getattr(context, name)) for name in _PAYMENT_FIELDS)
        values["channel"] = context.channel.value
    else:
        values["kind"] = "scan"
        values.update((name, getattr(context, name)) for name in _SCAN_FIELDS)
        values["gtin"] = context.gtin or ""
        values["biz_step"] = context.biz_step.value
    return values


class EntityKind(enum.StrEnum):
    """What an entity index row names: an entity of a decision's investigation fields, or the
    decision's event id (every decision, investigation fields or not)."""

    EVENT_ID = "event_id"
    CUSTOMER = "customer"
    TERMINAL = "terminal"
    EPC = "epc"
    GTIN = "gtin"
    BIZ_LOCATION = "biz_location"
    READ_POINT = "read_point"


@dataclass(frozen=True)
class RefusedEvent:
    """Event bytes not archived: their digest is not the decision's `event_sha256`."""

    chain: int
    seq: int
    event_id: str
    claimed_sha256: str
    actual_sha256: str

    def detail(self) -> str:
        return (
            f"chain {self.chain} seq {self.seq} (event {self.event_id}): the attached event"
            f" bytes hash to {self.actual_sha256}, the decision names {self.claimed_sha256}"
        )


@dataclass
class ArchiveBatch:
    """What one batch adds to `event_archive` and `entity_index`, column by column."""

    archive: dict[str, list[Any]]
    index: dict[str, list[Any]]
    contexts: dict[str, list[Any]]
    refused: list[RefusedEvent] = field(default_factory=list)

    @property
    def archived(self) -> int:
        return len(self.archive["event_sha256"])


def entities(item: Incoming) -> list[tuple[EntityKind, str]]:
    """The (kind, value) pairs a decision is indexed under."""
    return decision_entities(item.decision)


def decision_entities(decision: Decision) -> list[tuple[EntityKind, str]]:
    """The (kind, value) pairs `decision` is indexed under: its event id, and the entities of
    its investigation fields (a search checks the entities it did not look up by these)."""
    found = [(EntityKind.EVENT_ID, decision.event_id)]
    context = decision.context
    if isinstance(context, PaymentContext):
        found += [
            (EntityKind.CUSTOMER, context.customer_id),
            (EntityKind.TERMINAL, context.terminal_id),
        ]
    elif isinstance(context, ScanContext):
        found += [
            (EntityKind.EPC, context.epc),
            (EntityKind.BIZ_LOCATION, context.biz_location),
            (EntityKind.READ_POINT, context.read_point),
        ]
        if context.gtin is not None:
            found.append((EntityKind.GTIN, context.gtin))
    return found


def archive_batch(chain: int, first_seq: int, logged: Sequence[Incoming]) -> ArchiveBatch:
    """The archive rows (digest checked) and index rows of the entries `first_seq...`."""
    archive: dict[str, list[Any]] = {name: [] for name in ARCHIVE_COLUMNS}
    index: dict[str, list[Any]] = {name: [] for name in INDEX_COLUMNS}
    contexts: dict[str, list[Any]] = {name: [] for name in CONTEXT_COLUMNS}
    refused: list[RefusedEvent] = []
    sha256 = hashlib.sha256
    for seq, item in enumerate(logged, start=first_seq):
        decision = item.decision
        if decision.context is not None:
            contexts["seq"].append(seq)
            contexts["decision_id"].append(decision.decision_id)
            for name, value in context_values(decision.context).items():
                contexts[name].append(value)
        archived = (
            item.event is not None and sha256(item.event).hexdigest() == decision.event_sha256
        )
        position = event_position(item.event) if archived else None
        step = encode_copy(timeline_copy(decision, position))
        for kind, value in entities(item):
            index["timeline_step"].append(b"" if kind is EntityKind.EVENT_ID else step)
            index["entity_kind"].append(kind.value)
            index["entity_value"].append(value)
            index["event_time"].append(decision.event_time)
            index["seq"].append(seq)
            index["decision_id"].append(decision.decision_id)
            index["detector"].append(decision.detector.value)
            index["outcome"].append(decision.outcome)
        if item.event is None:
            continue  # a record from before the archive: logged, nothing to archive
        if not archived:
            digest = sha256(item.event).hexdigest()
            refused.append(
                RefusedEvent(chain, seq, decision.event_id, decision.event_sha256, digest)
            )
            continue
        archive["event_sha256"].append(decision.event_sha256)
        archive["topic"].append(decision.source.topic)
        archive["partition"].append(decision.source.partition)
        archive["offset"].append(decision.source.offset)
        archive["event"].append(item.event)
    index["chain"] = [chain] * len(index["seq"])
    contexts["chain"] = [chain] * len(contexts["seq"])
    archived_at = datetime.now(UTC).replace(microsecond=0)
    archive["archived_at"] = [archived_at] * len(archive["event_sha256"])
    return ArchiveBatch(archive, index, contexts, refused)


class ArchivedEvent(NamedTuple):
    """One archived copy of an event, as stored (the bytes exactly)."""

    event_sha256: str
    topic: str
    partition: int
    offset: int
    event: bytes

    def digest_matches(self) -> bool:
        """Whether the bytes hash to the key they are stored under."""
        return hashlib.sha256(self.event).hexdigest() == self.event_sha256


class EntityHit(NamedTuple):
    """One decision on an entity: where its entry is, and what the index says of it."""

    event_time: datetime
    chain: int
    seq: int
    decision_id: str
    detector: str
    outcome: str


@dataclass(frozen=True)
class EntityPage:
    hits: list[EntityHit]
    next_after: EntityHit | None
    """Pass as `after` to read the next page; None when this page was the last."""


class TimelineRow(NamedTuple):
    """One index row of a timeline: the decision, and its stored `TimelineCopy` bytes (empty
    on a row written before the copy existed)."""

    hit: EntityHit
    step: bytes


class StoredCopy(NamedTuple):
    """An index row's timeline copy as a verifier reads it, by (chain, seq)."""

    seq: int
    entity_kind: str
    entity_value: str
    event_time: datetime
    decision_id: str
    detector: str
    outcome: str
    step: bytes


class CopyPosition(NamedTuple):
    """An index row whose copied position the database found different from its archived
    event's (`event` None: no archived event with the copy's digest)."""

    chain: int
    seq: int
    entity_kind: str
    entity_value: str
    step: bytes
    event: bytes | None
