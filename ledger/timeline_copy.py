"""The timeline's copy of a decision in the entity index: what a timeline step shows. Pure.

A timeline reads one entity's index range (`ledger.archive_store`), which is contiguous in
the index however the entity's events are spread over the ledger. Reading each decision's
entry and archived event instead costs a separate granule of each table per event (~0.9 s
for 500 events on a 2,000,000-entry ledger, docs/benchmarks.md), so the sequencer writes,
beside each index row of an entity a timeline can be asked for (every kind but `event_id`),
the fields the timeline shows: the decision's id, event, time, detector, score, outcome,
reasons with their evidence and investigation fields, and where the event happened (its
`lat` and `lon`, the position a timeline measures distance and speed from).

The copy is derived data: `forensic verify` checks every field against the entry bytes,
and the position against the archived event (forensics/verify_archive.py), and names a
difference `timeline_copy_mismatch`. An index row written before the copy existed has an
empty one; a timeline reads that decision from its entry and archived event, as before.
See docs/ledger-format.md, "Event archive and entity index".
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from attestcore.schemas import Decision, DecisionContext, Detector, Reason


class Position(msgspec.Struct, frozen=True):
    """Where an event happened, as the event states it."""

    lat: float
    lon: float


class TimelineCopy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a timeline step shows of one decision, and its event's position. `lat` and `lon`
    come first: a verifier's database reads them as the first members of these names."""

    lat: float | None
    lon: float | None
    event_sha256: str
    decision_id: str
    event_id: str
    event_time: datetime
    detector: Detector
    score: float
    outcome: str
    reasons: list[Reason]
    context: DecisionContext | None

    @property
    def position(self) -> Position | None:
        if self.lat is None or self.lon is None:
            return None
        return Position(self.lat, self.lon)


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(TimelineCopy)


def event_position(event: bytes | None) -> Position | None:
    """The `lat` and `lon` an event's bytes state (payments and EPCIS scans both do); None
    when there are no bytes or they state no position."""
    if event is None:
        return None
    try:
        return msgspec.json.decode(event, type=Position)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def timeline_copy(decision: Decision, position: Position | None) -> TimelineCopy:
    """The copy of `decision` a timeline shows, with its event's position."""
    return TimelineCopy(
        lat=None if position is None else position.lat,
        lon=None if position is None else position.lon,
        event_sha256=decision.event_sha256,
        decision_id=decision.decision_id,
        event_id=decision.event_id,
        event_time=decision.event_time,
        detector=decision.detector,
        score=decision.score,
        outcome=decision.outcome,
        reasons=decision.reasons,
        context=decision.context,
    )


def encode_copy(copy: TimelineCopy) -> bytes:
    return _ENCODER.encode(copy)


def decode_copy(data: bytes) -> TimelineCopy | None:
    """The stored copy; None when the bytes are not one (a damaged or edited row)."""
    try:
        return _DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def differing_fields(stored: TimelineCopy, expected: TimelineCopy) -> list[str]:
    """The names of the fields in which two copies differ."""
    return [
        name
        for name in TimelineCopy.__struct_fields__
        if getattr(stored, name) != getattr(expected, name)
    ]
