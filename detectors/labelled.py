"""The labelled-dataset and ground-truth file formats shared by both simulators.

Labelled dataset (JSONL, UTF-8, one object a line, in event-time order)::

    {"event": {...the wire event...}, "label": 0, "scenario": ""}

Ground truth (JSONL, one object a line, same order)::

    {"event_id": "tx-run1-00000042", "label": 1, "scenario": "compromised_customer"}

The ground truth is what an evaluator joins to the decisions topic by `event_id`; it carries no
event data, so it can be handed to someone who must not see the transactions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec

from attestcore.errors import MalformedError, UsageError

T = TypeVar("T")

# Simulated time starts on a fixed Monday, so a seed always gives the same events and the
# weekend falls on simulated days 5 and 6. Callers that feed a live stream pass their own start.
DEFAULT_START = datetime(2025, 3, 3, tzinfo=UTC)

_RUN_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def check_run_id(run_id: str) -> str:
    """A run id goes into every event id, so it must fit the wire schema's identifier rules."""
    if not _RUN_ID.match(run_id):
        raise UsageError(f"run id {run_id!r} must be 1-64 of [A-Za-z0-9._-]")
    return run_id


class GroundTruth(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One event's true label: 1 fraud or counterfeit, 0 legitimate; `scenario` says how."""

    event_id: str
    label: int
    scenario: str = ""


class _HasEventId(Protocol):
    @property
    def event_id(self) -> str: ...


class _Labelled(Protocol):
    @property
    def event(self) -> _HasEventId: ...

    @property
    def label(self) -> int: ...

    @property
    def scenario(self) -> str: ...


_ENCODER = msgspec.json.Encoder()


def write_jsonl(path: Path, records: Iterable[msgspec.Struct]) -> int:
    """Write structs one JSON object a line; returns the number of lines written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as out:
        for record in records:
            out.write(_ENCODER.encode(record))
            out.write(b"\n")
            n += 1
    return n


def read_jsonl(path: Path, record_type: type[T]) -> list[T]:
    """Read and validate every line; a bad line is a `MalformedError` naming its line number."""
    decoder = msgspec.json.Decoder(record_type)
    records = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise MalformedError(
                    f"{path}:{number}: not a {record_type.__name__}: {exc}"
                ) from exc
    return records


def ground_truth(records: Iterable[_Labelled]) -> list[GroundTruth]:
    return [GroundTruth(r.event.event_id, r.label, r.scenario) for r in records]


def write_ground_truth(path: Path, records: Iterable[_Labelled]) -> int:
    """Write the `{event_id, label, scenario}` file for labelled payments or scans."""
    return write_jsonl(path, ground_truth(records))


def read_ground_truth(path: Path) -> list[GroundTruth]:
    return read_jsonl(path, GroundTruth)
