"""An entity's events in time order, each with its decision; for scans and payments, where it
happened and how far and how fast it moved from the event before.

The events come from the entity index (`ledger.archive`), oldest first; each decision from
its entry's bytes. Where an event happened (latitude, longitude) is in the event itself, read
from the event archive by the decision's `event_sha256`; the investigation columns give the
scan's business location and step. Distance is great-circle (haversine, on the mean Earth
radius) from the previous event of the timeline that has a position, speed that distance
over the time between the two events: a 900 km/h hop between two scans of one EPC is the
impossible travel a counterfeit shows. An event with several decisions is one event: the
distance is measured from the previous event, not from the same one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import msgspec

from attestcore.errors import UsageError
from attestcore.schemas import Decision, PaymentContext, Reason, ScanContext
from forensics.search import SearchStore
from ledger.archive import EntityKind
from ledger.entry import decode_entry

EARTH_RADIUS_KM = 6371.0088
"""The mean Earth radius (IUGG): the haversine distance's sphere."""

MAX_EVENTS = 10_000


class TimelineStore(SearchStore, Protocol):
    """What a timeline reads (`ledger.archive_store.ArchiveStore` has it)."""

    def archived_events_by_digest(self, digests: Sequence[str]) -> Mapping[str, bytes]: ...


class Position(msgspec.Struct):
    """Where an event happened, as the event states it."""

    lat: float
    lon: float


@dataclass(frozen=True)
class Step:
    """One decision of the timeline, and its event's movement from the event before."""

    chain: int
    seq: int
    decision: Decision
    position: Position | None
    distance_km: float | None
    """From the previous event with a position; None for the first or without a position."""
    hours: float | None
    speed_kmh: float | None
    """None when there is no distance, or the two events happened in the same second."""


@dataclass(frozen=True)
class Timeline:
    kind: EntityKind
    value: str
    steps: list[Step]
    truncated: bool
    """More events than `limit` match: narrow the time range to see the rest."""


def haversine_km(a: Position, b: Position) -> float:
    """The great-circle distance between two positions, in kilometres."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlam = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def movement(
    previous: tuple[datetime, Position] | None, at: datetime, position: Position | None
) -> tuple[float | None, float | None, float | None]:
    """(distance km, hours, speed km/h) from the previous positioned event to this one."""
    if previous is None or position is None:
        return None, None, None
    distance = haversine_km(previous[1], position)
    hours = (at - previous[0]).total_seconds() / 3600
    return distance, hours, distance / hours if hours > 0 else None


def timeline(
    store: TimelineStore,
    kind: EntityKind,
    value: str,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> Timeline:
    """The entity's decisions with `since <= event_time < until`, oldest first, at most
    `limit`, each with its event's position, distance and speed from the event before."""
    if not 1 <= limit <= MAX_EVENTS:
        raise UsageError(f"the limit must be between 1 and {MAX_EVENTS}, got {limit}")
    page = store.search_entity(kind, value, since, until, limit)
    entries = store.entries_at([(h.chain, h.seq) for h in page.hits])
    found = [
        (h.chain, h.seq, decode_entry(bytes(entries[(h.chain, h.seq)])).decision)
        for h in page.hits
        if (h.chain, h.seq) in entries
    ]
    events = store.archived_events_by_digest(sorted({d.event_sha256 for _, _, d in found}))
    steps: list[Step] = []
    previous: tuple[datetime, Position] | None = None
    previous_event: str | None = None
    for chain, seq, decision in found:
        position = event_position(events.get(decision.event_sha256))
        if decision.event_id == previous_event and steps:
            # Another decision on the same event: the same movement as the step before.
            last = steps[-1]
            steps.append(
                Step(chain, seq, decision, position, last.distance_km, last.hours, last.speed_kmh)
            )
            continue
        distance, hours, speed = movement(previous, decision.event_time, position)
        steps.append(Step(chain, seq, decision, position, distance, hours, speed))
        previous_event = decision.event_id
        if position is not None:
            previous = (decision.event_time, position)
    return Timeline(kind, value, steps, page.next_after is not None)


def event_position(event: bytes | None) -> Position | None:
    """The `lat` and `lon` an archived event states (payments and EPCIS scans both do);
    None when the event is not archived or states no position."""
    if event is None:
        return None
    try:
        return msgspec.json.decode(event, type=Position)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def reason_json(reason: Reason) -> dict[str, Any]:
    """A reason as the timeline and the explanation show it: with its evidence (the
    conflicting scan's event id, place and time; the failed challenge; the despatch not
    matched) when the decision names one."""
    data: dict[str, Any] = {"feature": reason.feature, "contribution": reason.contribution}
    evidence = reason.evidence
    if evidence is not None:
        data["evidence"] = {
            "kind": evidence.kind,
            "detail": evidence.detail,
            "event_id": evidence.event_id,
            "biz_location": evidence.biz_location,
            "event_time": None if evidence.event_time is None else evidence.event_time.isoformat(),
        }
    return data


def step_json(step: Step) -> dict[str, Any]:
    d = step.decision
    data: dict[str, Any] = {
        "event_time": d.event_time.isoformat(),
        "event_id": d.event_id,
        "decision_id": d.decision_id,
        "entry": {"chain": step.chain, "seq": step.seq},
        "detector": d.detector.value,
        "score": d.score,
        "outcome": d.outcome,
        "reasons": [reason_json(r) for r in d.reasons],
        "lat": step.position.lat if step.position else None,
        "lon": step.position.lon if step.position else None,
        "distance_km": step.distance_km,
        "hours": step.hours,
        "speed_kmh": step.speed_kmh,
    }
    context = d.context
    if isinstance(context, ScanContext):
        data.update(
            epc=context.epc,
            biz_step=context.biz_step.value,
            biz_location=context.biz_location,
            read_point=context.read_point,
        )
    elif isinstance(context, PaymentContext):
        data.update(
            customer_id=context.customer_id,
            terminal_id=context.terminal_id,
            amount=context.amount,
            currency=context.currency,
        )
    return data


def timeline_json(line: Timeline) -> dict[str, Any]:
    return {
        "entity": {"kind": line.kind.value, "value": line.value},
        "events": [step_json(step) for step in line.steps],
        "truncated": line.truncated,
    }
