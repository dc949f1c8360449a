"""Searching the ledger's decisions: by entity through the entity index, by anything else
through the entries' searchable columns, one page at a time behind an opaque cursor.

A search names any of the entities a decision is indexed under (its event id, a customer, a
terminal, an EPC, a GTIN, a business location, a read point) and any conditions of an
`EntryFilter` (detector, outcome, score range, model digest, event-time range). With an
entity, the search reads one range of the entity index's primary key (`EntityKind` order of
`INDEX_ORDER` picks which entity when several are given; the others, and the filter, are
checked on each decision as its entry's bytes carry it), so its cost follows the entity's
decisions, not the ledger. Without one it pages through the entries' searchable columns by
(chain, seq): a scan, for questions no entity narrows.

Results come oldest first (by event time) with an entity, by (chain, seq) without. A cursor
is the position of the last decision a page examined, with a fingerprint of the search; the
next page starts just past it, so paging returns every matching decision exactly once while
the ledger grows at its end. The CLI (`attestream forensic search`) and any other front end
call `search` with a store that has the `SearchStore` methods (`ledger.archive_store
.ArchiveStore` has them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from attestcore.errors import UsageError
from attestcore.records import ENTRY_COLUMNS
from attestcore.schemas import Decision
from ledger.archive import EntityHit, EntityKind, EntityPage, decision_entities
from ledger.entry import decode_entry
from ledger.entry_filter import EntryFilter

INDEX_ORDER = (
    EntityKind.EVENT_ID,
    EntityKind.EPC,
    EntityKind.CUSTOMER,
    EntityKind.TERMINAL,
    EntityKind.GTIN,
    EntityKind.READ_POINT,
    EntityKind.BIZ_LOCATION,
)
"""Which given entity a search reads the index by: the one with the fewest decisions each,
as a rule (an event has one or two; a location thousands)."""

MAX_LIMIT = 10_000
READ_AHEAD = 200
"""Index rows or entries read per query after the first, which reads `limit` (a page whose
every row matches is then one read): a page reads on until it holds `limit` matches."""

_COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}


class SearchStore(Protocol):
    """What a search reads (`ledger.archive_store.ArchiveStore` has it)."""

    def search_entity(
        self,
        kind: EntityKind,
        value: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: EntityHit | None = None,
    ) -> EntityPage: ...

    def entries_at(
        self, positions: Sequence[tuple[int, int]]
    ) -> Mapping[tuple[int, int], bytes]: ...

    def entries_after(
        self, where: EntryFilter, after: tuple[int, int] | None, limit: int
    ) -> Sequence[Sequence[Any]]: ...


@dataclass(frozen=True)
class SearchCriteria:
    """What a search asks: entities (each must be one the decision is indexed under) and the
    conditions of `where`."""

    entities: tuple[tuple[EntityKind, str], ...] = ()
    where: EntryFilter = field(default_factory=EntryFilter)

    def index_entity(self) -> tuple[EntityKind, str] | None:
        """The entity the index is read by (`INDEX_ORDER`), None without one."""
        given = dict(self.entities)
        return next(((k, given[k]) for k in INDEX_ORDER if k in given), None)

    def matches(self, decision: Decision) -> bool:
        indexed = set(decision_entities(decision))
        return all(pair in indexed for pair in self.entities) and self.where.matches(decision)

    def fingerprint(self) -> str:
        """A digest of the search, carried by its cursors: a cursor pages only its search."""
        text = json.dumps(
            [sorted((k.value, v) for k, v in self.entities), _filter_json(self.where)],
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Found:
    """One matching decision and where its entry is."""

    chain: int
    seq: int
    decision: Decision


@dataclass(frozen=True)
class SearchPage:
    results: list[Found]
    next_cursor: str | None
    """Pass as `cursor` for the next page; None when no decision is left to examine."""
    by_index: bool
    """Whether the entity index was read (else the entries were scanned)."""


def search(
    store: SearchStore, criteria: SearchCriteria, limit: int = 50, cursor: str | None = None
) -> SearchPage:
    """One page of at most `limit` matching decisions, starting past `cursor`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"the limit must be between 1 and {MAX_LIMIT}, got {limit}")
    position = decode_cursor(cursor, criteria) if cursor is not None else None
    entity = criteria.index_entity()
    if entity is None:
        return _scan_entries(store, criteria, limit, position)
    return _read_index(store, criteria, entity, limit, position)


def _read_index(
    store: SearchStore,
    criteria: SearchCriteria,
    entity: tuple[EntityKind, str],
    limit: int,
    position: tuple[int, int, int] | None,
) -> SearchPage:
    where = criteria.where
    after = (
        None
        if position is None
        else EntityHit(
            datetime.fromtimestamp(position[0], UTC), position[1], position[2], "", "", ""
        )
    )
    found: list[Found] = []
    last: tuple[int, int, int] | None = None
    # Each entry read costs ClickHouse a granule of its table: read no more than the page
    # needs when every decision matches, then more at a time when some do not.
    read = min(limit, READ_AHEAD)
    while True:
        page = store.search_entity(
            entity[0], entity[1], where.event_time_from, where.event_time_to, read, after
        )
        read = READ_AHEAD
        entries = store.entries_at([(h.chain, h.seq) for h in page.hits])
        for i, hit in enumerate(page.hits):
            raw = entries.get((hit.chain, hit.seq))
            if raw is None:
                continue  # an index row of an entry a crash cut short: written again later
            decision = decode_entry(bytes(raw)).decision
            last = (_epoch(decision.event_time), hit.chain, hit.seq)
            if criteria.matches(decision):
                found.append(Found(hit.chain, hit.seq, decision))
            if len(found) == limit:
                more = i + 1 < len(page.hits) or page.next_after is not None
                return SearchPage(found, encode_cursor(last, criteria) if more else None, True)
        if page.next_after is None:
            return SearchPage(found, None, True)
        after = page.next_after


def _scan_entries(
    store: SearchStore,
    criteria: SearchCriteria,
    limit: int,
    position: tuple[int, int, int] | None,
) -> SearchPage:
    after = None if position is None else (position[1], position[2])
    found: list[Found] = []
    while True:
        rows = store.entries_after(criteria.where, after, READ_AHEAD)
        for i, row in enumerate(rows):
            chain, seq = int(row[_COL["chain"]]), int(row[_COL["seq"]])
            after = (chain, seq)
            decision = decode_entry(bytes(row[_COL["entry"]])).decision
            if criteria.matches(decision):
                found.append(Found(chain, seq, decision))
            if len(found) == limit:
                more = i + 1 < len(rows) or len(rows) == READ_AHEAD
                cursor = encode_cursor((0, chain, seq), criteria) if more else None
                return SearchPage(found, cursor, False)
        if len(rows) < READ_AHEAD:
            return SearchPage(found, None, False)


def encode_cursor(position: tuple[int, int, int], criteria: SearchCriteria) -> str:
    """An opaque cursor: (event time in epoch seconds, chain, seq) and the search's digest."""
    text = json.dumps({"p": list(position), "q": criteria.fingerprint()}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, criteria: SearchCriteria) -> tuple[int, int, int]:
    """The position a cursor of this search holds; UsageError for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(text)
        position = tuple(int(v) for v in data["p"])
        digest = data["q"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise UsageError(f"--cursor {cursor!r} is not a cursor a search printed") from None
    if len(position) != 3 or min(position) < 0:
        raise UsageError(f"--cursor {cursor!r} is not a cursor a search printed")
    if digest != criteria.fingerprint():
        raise UsageError(
            "--cursor belongs to another search: give the same filters as the search that"
            " printed it"
        )
    return position[0], position[1], position[2]


def _epoch(at: datetime) -> int:
    """Whole seconds, as the index's DateTime column holds an event time."""
    return int(at.timestamp())


def _filter_json(where: EntryFilter) -> dict[str, Any]:
    values = {name: getattr(where, name) for name in where.__struct_fields__}
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in values.items()
        if v is not None
    }
