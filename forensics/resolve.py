"""A decision id or an event id, as an investigator types it, to the one decision it names.

Decision ids are SHA-256 digests nobody remembers; an investigator has the event id from the
payment or scan in question. Every command that takes a decision id also takes an event id
when exactly one decision is on that event; with more than one, it names them all and
exits 2 (`AmbiguousIdError`), so the investigator picks one.

An event id is looked up in the entity index (one key range); an event logged before the
index existed is looked up in the entries' `event_id` column instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from attestcore.errors import UsageError
from attestcore.records import ENTRY_COLUMNS
from ledger.archive import EntityHit, EntityKind, EntityPage

MAX_LISTED = 20
"""Decisions an ambiguous id's message names at most."""

_DECISION_ID = re.compile(r"^[0-9a-f]{64}$")
_COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}


class ResolveStore(Protocol):
    """What resolving an id reads (`ledger.archive_store.ArchiveStore` has it)."""

    def search_entity(
        self,
        kind: EntityKind,
        value: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: EntityHit | None = None,
    ) -> EntityPage: ...

    def entries_with_ids(self, ids: Sequence[str], limit: int) -> Sequence[Sequence[Any]]: ...


@dataclass(frozen=True)
class Candidate:
    """A decision on the event an id names."""

    decision_id: str
    detector: str
    outcome: str
    chain: int
    seq: int


class AmbiguousIdError(UsageError):
    """The event id names more than one decision (exit 2)."""

    kind = "ambiguous_id"

    def __init__(self, event_id: str, candidates: Sequence[Candidate], more: bool) -> None:
        listed = "; ".join(
            f"{c.decision_id} ({c.detector}, {c.outcome}, entry {c.chain}/{c.seq})"
            for c in candidates
        )
        super().__init__(
            f"event {event_id} has {'more than ' if more else ''}{len(candidates)} decisions:"
            f" {listed}{' …' if more else ''}; give one of their decision ids"
        )
        self.candidates = list(candidates)


def decisions_on_event(
    store: ResolveStore, event_id: str, unindexed: bool = True
) -> tuple[list[Candidate], bool]:
    """The decisions on the event `event_id` (at most MAX_LISTED, by chain and seq) and
    whether there are more. With `unindexed`, an event the index does not hold is looked for
    in the entries (a scan)."""
    page = store.search_entity(EntityKind.EVENT_ID, event_id, limit=MAX_LISTED + 1)
    found = {
        h.decision_id: Candidate(h.decision_id, h.detector, h.outcome, h.chain, h.seq)
        for h in page.hits
    }
    if not found and unindexed:
        # Logged before the entity index: the entries' event_id column holds it.
        for row in store.entries_with_ids([event_id], MAX_LISTED + 1):
            if _text(row[_COL["event_id"]]) != event_id:
                continue  # its decision id is the event id: not a decision on that event
            decision_id = _text(row[_COL["decision_id"]])
            found[decision_id] = Candidate(
                decision_id,
                _text(row[_COL["detector"]]),
                _text(row[_COL["outcome"]]),
                int(row[_COL["chain"]]),
                int(row[_COL["seq"]]),
            )
    ordered = sorted(found.values(), key=lambda c: (c.chain, c.seq))
    return ordered[:MAX_LISTED], len(ordered) > MAX_LISTED


def resolve_decision_id(store: ResolveStore, ident: str) -> str:
    """The decision id `ident` names: itself when it is one, else the one decision on the
    event it names. AmbiguousIdError for an event with several decisions, UsageError for an
    id that names neither a logged event nor, by its shape, a decision."""
    ident = ident.strip()
    # A decision id's shape: no scan of the entries for an event of that id (the command
    # reads the entry by decision id next, and says if there is none).
    candidates, more = decisions_on_event(store, ident, not _DECISION_ID.match(ident))
    if len(candidates) == 1 and not more:
        return candidates[0].decision_id
    if candidates:
        raise AmbiguousIdError(ident, candidates, more)
    if _DECISION_ID.match(ident):
        return ident
    raise UsageError(f"no logged decision or event has the id {ident}")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
