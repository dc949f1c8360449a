"""Which logged decisions an investigator asks for: filters over the entries' searchable columns.

A query is a line of `key=value` terms (shell quoting allowed), all of which must hold:

    entity=C3 detector=fraud outcome=review score=0.8..1 since=24h

| key | selects entries whose decision has |
|---|---|
| `entity`, `event`, `detector`, `outcome` | this `entity_id`, `event_id`, `detector`, `outcome` |
| `model` | this `model_sha256` |
| `score` | a score in `LO..HI` (both inclusive; either side may be left out) |
| `from`, `to` | an `event_time` at or after `from` and before `to` (RFC 3339, whole seconds) |
| `since` | an `event_time` within this long before now (`90s`, `30m`, `24h`, `7d`) |

`parse_query` turns the text into an `EntryFilter` with absolute times, which is what the
store's `entries_matching` selects by and what a case bundle records; `matches` checks a
decision against it, so a verifier can confirm that every bundled entry fits the recorded
filter. Pure: no storage client.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from attestcore.errors import UsageError
from attestcore.schemas import Decision

Score = Annotated[float, Meta(ge=0.0, le=1.0, description="a score between 0 and 1")]

KEYS = ("entity", "event", "detector", "outcome", "model", "score", "from", "to", "since")
_TEXT_FIELDS = {
    "entity": "entity_id",
    "event": "event_id",
    "detector": "detector",
    "outcome": "outcome",
    "model": "model_sha256",
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)([smhd])$")


class EntryFilter(msgspec.Struct, kw_only=True, frozen=True):
    """Conditions on a logged decision, all of which must hold (unset: any value). Times are
    whole seconds, UTC: `event_time_from` inclusive, `event_time_to` exclusive."""

    entity_id: str | None = None
    event_id: str | None = None
    detector: str | None = None
    outcome: str | None = None
    model_sha256: str | None = None
    min_score: Score | None = None
    max_score: Score | None = None
    event_time_from: datetime | None = None
    event_time_to: datetime | None = None

    def text_conditions(self) -> dict[str, str]:
        """The equality conditions that are set, by column name."""
        values = {column: getattr(self, column) for column in _TEXT_FIELDS.values()}
        return {column: value for column, value in values.items() if value is not None}

    def is_empty(self) -> bool:
        return self == EntryFilter()

    def matches(self, decision: Decision) -> bool:
        """Whether `decision` (as its entry's bytes carry it) meets every condition."""
        for column, value in self.text_conditions().items():
            logged = getattr(decision, column)
            if (logged.value if isinstance(logged, Enum) else logged) != value:
                return False
        if self.min_score is not None and decision.score < self.min_score:
            return False
        if self.max_score is not None and decision.score > self.max_score:
            return False
        at = decision.event_time
        if self.event_time_from is not None and at < self.event_time_from:
            return False
        return self.event_time_to is None or at < self.event_time_to


def parse_query(text: str, now: datetime | None = None) -> EntryFilter:
    """The filter a query line states; `since` counts back from `now` (default: the clock).
    UsageError naming the term for anything it cannot read, and for an empty query."""
    try:
        terms = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot read the query {text!r}: {exc}") from None
    if not terms:
        raise UsageError(f"the query is empty; give terms such as entity=C3 ({', '.join(KEYS)})")
    given: dict[str, str] = {}
    for term in terms:
        key, sep, value = term.partition("=")
        if not sep or not value:
            raise UsageError(f"query term {term!r} is not key=value")
        if key not in KEYS:
            raise UsageError(f"query term {term!r}: unknown key {key!r} (known: {', '.join(KEYS)})")
        if key in given:
            raise UsageError(f"query key {key!r} is given twice")
        given[key] = value
    if "since" in given and "from" in given:
        raise UsageError("query keys 'since' and 'from' exclude each other")
    fields: dict[str, Any] = {_TEXT_FIELDS[k]: v for k, v in given.items() if k in _TEXT_FIELDS}
    if "score" in given:
        fields["min_score"], fields["max_score"] = _score_range(given["score"])
    if "since" in given:
        clock = now if now is not None else datetime.now(UTC)
        fields["event_time_from"] = _whole_seconds(clock - _duration(given["since"]))
    for key, field in (("from", "event_time_from"), ("to", "event_time_to")):
        if key in given:
            fields[field] = _time(key, given[key])
    start, end = fields.get("event_time_from"), fields.get("event_time_to")
    if start is not None and end is not None and start >= end:
        raise UsageError(f"the query's time range is empty: from {start} is not before to {end}")
    return EntryFilter(**fields)


def _score_range(value: str) -> tuple[float | None, float | None]:
    low, sep, high = value.partition("..")
    if not sep:
        low = high = value
    bounds = [_score(part, value) if part else None for part in (low, high)]
    if bounds == [None, None]:
        raise UsageError(f"query term score={value}: give LO..HI, LO.. or ..HI")
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise UsageError(f"query term score={value}: {bounds[0]} is above {bounds[1]}")
    return bounds[0], bounds[1]


def _score(part: str, value: str) -> float:
    try:
        score = float(part)
    except ValueError:
        raise UsageError(f"query term score={value}: {part!r} is not a number") from None
    if not 0.0 <= score <= 1.0:
        raise UsageError(f"query term score={value}: scores are between 0 and 1")
    return score


def _duration(value: str) -> timedelta:
    match = _DURATION.match(value)
    if not match:
        raise UsageError(f"query term since={value}: give a duration such as 90s, 30m, 24h, 7d")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def _time(key: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"query term {key}={value}: not a time (RFC 3339, e.g. 2025-03-03T00:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise UsageError(f"query term {key}={value}: give a time zone (Z for UTC)")
    return _whole_seconds(parsed.astimezone(UTC))


def _whole_seconds(at: datetime) -> datetime:
    """Times in the entries table are whole seconds; so are the filter's bounds."""
    return at.astimezone(UTC).replace(microsecond=0)
