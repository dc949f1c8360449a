"""An entity's events in time order, each with its decision; for scans and payments, where it
happened and how far and how fast it moved from the event before.

The events come from the entity index (`ledger.archive`), oldest first, as one range of its
primary key. Each index row carries the timeline's copy of its decision and of its event's
position (`ledger.timeline_copy`, checked by `forensic verify`), so a timeline reads
nothing else. A row written before the copy existed has none: that decision is read from
its entry's bytes and its position from the event archive (by the decision's
`event_sha256`), as a timeline always did; `Timeline.read_from` says how many came from
each. Distance is great-circle (haversine, on the mean Earth radius) from the previous
event of the timeline that has a position, speed that distance over the time between the
two events: a 900 km/h hop between two scans of one EPC is the impossible travel a
counterfeit shows. An event with several decisions is one event: the distance is measured
from the previous event, not from the same one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from attestcore.errors import UsageError
from attestcore.schemas import PaymentContext, Reason, ScanContext
from ledger.archive import EntityKind, TimelineRow
from ledger.entry import decode_entry
from ledger.timeline_copy import (
    Position,
    TimelineCopy,
    decode_copy,
    event_position,
    timeline_copy,
)

__all__ = ["Position", "Step", "Timeline", "TimelineCopy", "event_position", "timeline"]

EARTH_RADIUS_KM = 6371.0088
"""The mean Earth radius (IUGG): the haversine distance's sphere."""

MAX_EVENTS = 10_000


class TimelineStore(Protocol):
    """What a timeline reads (`ledger.archive_store.ArchiveStore` has it)."""

    def timeline_entity(
        self,
        kind: EntityKind,
        value: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> tuple[list[TimelineRow], bool]: ...

    def entries_at(
        self, positions: Sequence[tuple[int, int]]
    ) -> Mapping[tuple[int, int], bytes]: ...

    def archived_events_by_digest(self, digests: Sequence[str]) -> Mapping[str, bytes]: ...


@dataclass(frozen=True)
class Step:
    """One decision of the timeline, and its event's movement from the event before."""

    chain: int
    seq: int
    decision: TimelineCopy
    """What the timeline shows of the decision (the index's copy, or read from the entry)."""
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
    read_from: dict[str, int]
    """How many steps were read from the entity index's copies (`index`), and how many,
    from rows written before the copies, from the entries and the event archive."""


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
    rows, more = store.timeline_entity(kind, value, since, until, limit)
    found, copied = read_decisions(store, rows)
    steps: list[Step] = []
    previous: tuple[datetime, Position] | None = None
    previous_event: str | None = None
    for chain, seq, decision in found:
        position = decision.position
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
    read_from = {"index": copied, "entries": len(found) - copied}
    return Timeline(kind, value, steps, more, read_from)


def read_decisions(
    store: TimelineStore, rows: Sequence[TimelineRow]
) -> tuple[list[tuple[int, int, TimelineCopy]], int]:
    """Each row's decision, in the rows' order, and how many were the rows' copies: its
    copy, or for a row without one (written before the copies; or a copy that does not
    decode, which `forensic verify` names) its entry's decision with its archived event's
    position. A row whose entry is missing is left out."""
    copies = {(r.hit.chain, r.hit.seq): decode_copy(r.step) for r in rows if r.step}
    copied = sum(1 for copy in copies.values() if copy is not None)
    older = [(r.hit.chain, r.hit.seq) for r in rows if copies.get((r.hit.chain, r.hit.seq)) is None]
    if older:
        entries = store.entries_at(older)
        decisions = {at: decode_entry(bytes(entry)).decision for at, entry in entries.items()}
        events = store.archived_events_by_digest(
            sorted({d.event_sha256 for d in decisions.values()})
        )
        for at, decision in decisions.items():
            copies[at] = timeline_copy(decision, event_position(events.get(decision.event_sha256)))
    found = []
    for row in rows:
        at = (row.hit.chain, row.hit.seq)
        copy = copies.get(at)
        if copy is not None:
            found.append((at[0], at[1], copy))
    return found, copied


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
        "read_from": line.read_from,
    }
