"""The event archive and entity index in ClickHouse: writes and typed reads.

Tables beside the ledger's own (ledger/store.py; their DDL in ledger/schema.py), written by
the sequencer in step 1 of its durability order and read by the forensic search and timeline:

- `event_archive`: every consumed event's exact bytes, keyed by their SHA-256 (a decision's
  `event_sha256`), with the topic, partition and offset they were read at;
- `entity_index`: one row per (entity, decision), sorted by
  `(entity_kind, entity_value, event_time, chain, seq)`, so "every decision on terminal Y
  in March" is one range of the primary key however large the ledger is.

Both are ReplacingMergeTree tables: a batch that a crash cut short is written again, row for
row, when its decisions are read again, and identical copies collapse. The SQL runs on
ClickHouse 18.16 (no projections there, no tuple comparison in a key condition) and on
current ClickHouse; every value is a query parameter. See docs/ledger-format.md, "Event
archive and entity index".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ledger.archive import (
    ARCHIVE_COLUMNS,
    CONTEXT_COLUMNS,
    INDEX_COLUMNS,
    ArchiveBatch,
    ArchivedEvent,
    CopyPosition,
    EntityHit,
    EntityKind,
    EntityPage,
    StoredCopy,
    TimelineRow,
)
from ledger.entry_filter import EntryFilter
from ledger.schema import ARCHIVE_SCHEMA

if TYPE_CHECKING:  # the store reads the archive through this module
    from ledger.store import ClickHouseStore

COPY_PAGE = 50_000
"""Seqs of timeline copies per query of a verification walk: ~3 index rows each of ~500
bytes, about 75 MB of answer; each page scans the index's chain and seq columns."""

CONTEXT_PAGE = 50_000
"""Seqs of `entry_context` per query of a verification walk: about 10 MB of rows."""

_DIGESTS_PER_QUERY = 1000
"""Digests per `archived_events_by_digest` query: 1,000 of 64 characters are ~70 KiB of SQL,
under ClickHouse's max_query_size of 256 KiB."""

_INSERT = "INSERT INTO {{db}}.{table} ({columns}) VALUES"


class ArchiveStore:
    """The event archive and entity index of the ledger's database."""

    def __init__(self, store: ClickHouseStore) -> None:
        self.store = store
        self._has_copies = False

    # --- writes (the sequencer, step 1) ----------------------------------------------------
    def insert(self, batch: ArchiveBatch) -> None:
        """The batch's archive, index and context rows: one INSERT block each."""
        tables = (
            ("event_archive", ARCHIVE_COLUMNS, batch.archive),
            ("entity_index", INDEX_COLUMNS, batch.index),
            ("entry_context", CONTEXT_COLUMNS, batch.contexts),
        )
        for table, names, columns in tables:
            if not columns[names[0]]:
                continue
            data = [_seconds(columns[n]) if n in _TIMES else columns[n] for n in names]
            self.store.execute(
                _INSERT.format(table=table, columns=", ".join(names)), data, columnar=True
            )

    # --- reads -----------------------------------------------------------------------------
    def archived_events(self, event_sha256: str) -> list[ArchivedEvent]:
        """Every distinct archived copy of the event with this digest (one, unless the same
        bytes were consumed at two positions), by position. Bytes exactly as stored."""
        rows = self.store.execute_raw(
            "SELECT DISTINCT event_sha256, topic, partition, offset, event"
            " FROM {db}.event_archive WHERE event_sha256 = %(h)s ORDER BY topic, partition, offset",
            {"h": event_sha256},
        )
        return [
            ArchivedEvent(
                r[0].decode("utf-8", "replace"), r[1].decode("utf-8", "replace"), r[2], r[3], r[4]
            )
            for r in rows
        ]

    def archived_events_by_digest(self, digests: Sequence[str]) -> dict[str, bytes]:
        """The exact bytes of the events with these digests (one copy each; a digest with no
        archived event is absent), in batches that keep each query short."""
        found: dict[str, bytes] = {}
        unique = sorted(set(digests))
        for start in range(0, len(unique), _DIGESTS_PER_QUERY):
            rows = self.store.execute_raw(
                "SELECT event_sha256, any(event) FROM {db}.event_archive"
                " WHERE event_sha256 IN %(h)s GROUP BY event_sha256",
                {"h": tuple(unique[start : start + _DIGESTS_PER_QUERY])},
            )
            found.update((r[0].decode("utf-8", "replace"), r[1]) for r in rows)
        return found

    def entries_after(
        self, where: EntryFilter, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """The ledger store's `entries_after` (a search with no entity: a scan of entries)."""
        return self.store.entries_after(where, after, limit)

    def entries_with_ids(self, ids: Sequence[str], limit: int) -> list[tuple[Any, ...]]:
        """The ledger store's `entries_with_ids` (decisions on events the index predates)."""
        return self.store.entries_with_ids(ids, limit)

    def exists(self) -> bool:
        """Whether the archive's tables exist (a database from before them has none until
        `attestream ledger migrate` or a writer creates them)."""
        rows = self.store.execute(
            "SELECT count() FROM system.tables WHERE database = %(d)s AND name IN %(t)s",
            {"d": self.store.database, "t": ARCHIVE_SCHEMA.tables},
        )
        return bool(rows[0][0] == len(ARCHIVE_SCHEMA.tables))

    def archive_faults(self) -> list[ArchivedEvent] | None:
        """Archive rows whose bytes do not hash to their key, found by the server
        (`lower(hex(SHA256(event)))`), so the bytes never travel: a verifier reads only
        the faulty rows. None when there is no archive (a database from before it)."""
        if not self.exists():
            return None
        rows = self.store.execute_raw(
            "SELECT event_sha256, topic, partition, offset, event FROM {db}.event_archive"
            " WHERE lower(hex(SHA256(event))) != event_sha256"
            " ORDER BY event_sha256, topic, partition, offset"
        )
        return [
            ArchivedEvent(
                r[0].decode("utf-8", "replace"), r[1].decode("utf-8", "replace"), r[2], r[3], r[4]
            )
            for r in rows
        ]

    def context_rows(
        self, chain: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[Any, ...]] | None:
        """The chain's `entry_context` rows (CONTEXT_COLUMNS order) with start <= seq < stop,
        by seq; None when there is no such table (a database from before it). Read a page
        of CONTEXT_PAGE seqs per query (one key range each), so memory holds one page."""
        if not self.exists():
            return None
        top = self.store.execute(
            "SELECT max(seq), count() FROM {db}.entry_context WHERE chain = %(c)s", {"c": chain}
        )[0]
        end = min(int(top[0]) + 1 if top[1] else 0, stop if stop is not None else 1 << 63)
        return self._context_pages(chain, start, end)

    def _context_pages(self, chain: int, start: int, end: int) -> Iterator[tuple[Any, ...]]:
        names = ", ".join(CONTEXT_COLUMNS)
        for first in range(start, end, CONTEXT_PAGE):
            yield from self.store.execute(
                f"SELECT {names} FROM {{db}}.entry_context WHERE chain = %(c)s"
                " AND seq >= %(a)s AND seq < %(b)s ORDER BY seq",
                {"c": chain, "a": first, "b": min(first + CONTEXT_PAGE, end)},
            )

    def search_entity(
        self,
        kind: EntityKind,
        value: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: EntityHit | None = None,
    ) -> EntityPage:
        """Decisions on one entity with `since <= event_time < until`, oldest first, at most
        `limit`; page on with `after` (the previous page's `next_after`). One range of the
        index's primary key: the cost follows the hits, not the ledger."""
        where, params = _entity_range(kind, value, since, until, limit, after)
        rows = self.store.execute(
            "SELECT DISTINCT event_time, chain, seq, decision_id, detector, outcome"
            " FROM {db}.entity_index WHERE " + where + _BY_TIME,
            params,
        )
        hits = [EntityHit(*row) for row in rows]
        more = len(hits) > limit
        hits = hits[:limit]
        return EntityPage(hits, hits[-1] if more else None)

    def timeline_entity(
        self,
        kind: EntityKind,
        value: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> tuple[list[TimelineRow], bool]:
        """`search_entity`'s rows with their timeline copies (empty on rows from before the
        copy), and whether more than `limit` match. One range of the index's primary key:
        a timeline whose rows all have copies reads nothing else."""
        where, params = _entity_range(kind, value, since, until, limit, None)
        # A database not yet migrated has no copies: every row reads as one from before them.
        step = "max(timeline_step)" if self.has_timeline_copies() else "''"
        # One row per decision: a row from before the copies and one written again since
        # (a batch re-written after a crash) both stand until a merge; max() keeps the copy.
        rows = self.store.execute_raw(
            f"SELECT event_time, chain, seq, decision_id, detector, outcome, {step}"
            " FROM {db}.entity_index WHERE " + where + " GROUP BY event_time, chain, seq,"
            " decision_id, detector, outcome" + _BY_TIME,
            params,
        )
        found = [
            TimelineRow(EntityHit(t, c, s, _text(d), _text(det), _text(o)), step)
            for t, c, s, d, det, o, step in rows
        ]
        return found[:limit], len(found) > limit

    def has_timeline_copies(self) -> bool:
        """Whether the entity index has its `timeline_step` column (a database from before
        it has none until `attestream ledger migrate` or a writer adds it). Once found, it
        is not asked for again: a migration adds the column, nothing removes it."""
        if self._has_copies:
            return True
        rows = self.store.execute(
            "SELECT count() FROM system.columns WHERE database = %(d)s"
            " AND table = 'entity_index' AND name = 'timeline_step'",
            {"d": self.store.database},
        )
        self._has_copies = bool(rows[0][0])
        return self._has_copies

    def timeline_copy_rows(self, chain: int) -> Iterator[StoredCopy] | None:
        """The chain's index rows that carry a timeline copy, by seq; None when the index
        has no such column. A page of COPY_PAGE seqs per query: `seq` is not a prefix of
        the index's key, so each page reads the chain and seq columns of the whole index."""
        if not self.exists() or not self.has_timeline_copies():
            return None
        top = self.store.execute(
            "SELECT max(seq), count() FROM {db}.entity_index WHERE chain = %(c)s", {"c": chain}
        )[0]
        return self._copy_pages(chain, int(top[0]) + 1 if top[1] else 0)

    def _copy_pages(self, chain: int, end: int) -> Iterator[StoredCopy]:
        for first in range(0, end, COPY_PAGE):
            rows = self.store.execute_raw(
                "SELECT DISTINCT seq, entity_kind, entity_value, event_time, decision_id,"
                " detector, outcome, timeline_step FROM {db}.entity_index WHERE chain = %(c)s"
                " AND seq >= %(a)s AND seq < %(b)s AND timeline_step != ''"
                " ORDER BY seq, entity_kind, entity_value, timeline_step",
                {"c": chain, "a": first, "b": min(first + COPY_PAGE, end)},
            )
            for s, k, v, t, d, det, o, step in rows:
                yield StoredCopy(s, _text(k), _text(v), t, _text(d), _text(det), _text(o), step)

    def copy_position_faults(self) -> list[CopyPosition] | None:
        """Index rows whose copied position differs from their archived event's, compared by
        the server (the first `lat`/`lon` members of each, see `TimelineCopy`) so only
        candidates travel; a verifier decodes them again. None without copies."""
        if not self.exists() or not self.has_timeline_copies():
            return None
        rows = self.store.execute_raw(_POSITION_FAULTS)
        events = self.archived_events_by_digest([_text(r[5]) for r in rows])
        return [
            CopyPosition(c, s, _text(k), _text(v), step, events.get(_text(digest)))
            for c, s, k, v, step, digest in rows
        ]

    def entries_at(self, positions: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored bytes of the entries at these (chain, seq), read by primary key (one
        query per chain). Positions without an entry are absent from the answer."""
        by_chain: Mapping[int, list[int]] = _group(positions)
        found: dict[tuple[int, int], bytes] = {}
        for chain, seqs in by_chain.items():
            rows = self.store.execute_raw(
                "SELECT seq, entry FROM {db}.entries WHERE chain = %(c)s AND seq IN %(s)s",
                {"c": chain, "s": tuple(seqs)},
            )
            found.update(((chain, seq), entry) for seq, entry in rows)
        return found


_TIMES = frozenset({"event_time", "archived_at"})
_BY_TIME = " ORDER BY event_time, chain, seq LIMIT %(n)s"

# Each copy's position against its archived event's: `has` says whether a position is
# stated, then both coordinates must be equal. Events are joined by the copy's digest (the
# walk checks that digest against the entry); a copy whose event is not archived must state
# no position. Runs on 18.16 (ANY LEFT JOIN ... USING) and current ClickHouse.
_POSITION_FAULTS = """
    SELECT chain, seq, entity_kind, entity_value, timeline_step, event_sha256
    FROM (
        SELECT chain, seq, entity_kind, entity_value, timeline_step,
            visitParamExtractString(timeline_step, 'event_sha256') AS event_sha256,
            visitParamExtractRaw(timeline_step, 'lat') != 'null' AS has,
            visitParamExtractFloat(timeline_step, 'lat') AS lat,
            visitParamExtractFloat(timeline_step, 'lon') AS lon
        FROM {db}.entity_index WHERE timeline_step != ''
    ) ANY LEFT JOIN (
        SELECT event_sha256,
            any(visitParamExtractRaw(event, 'lat') NOT IN ('', 'null')
                AND visitParamExtractRaw(event, 'lon') NOT IN ('', 'null')) AS event_has,
            any(visitParamExtractFloat(event, 'lat')) AS event_lat,
            any(visitParamExtractFloat(event, 'lon')) AS event_lon
        FROM {db}.event_archive GROUP BY event_sha256
    ) USING event_sha256
    WHERE has != event_has OR (has AND (lat != event_lat OR lon != event_lon))
    ORDER BY chain, seq, entity_kind, entity_value"""


def _entity_range(
    kind: EntityKind,
    value: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    after: EntityHit | None,
) -> tuple[str, dict[str, Any]]:
    """The conditions (joined by AND) and parameters of one entity's index range."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    where = ["entity_kind = %(k)s", "entity_value = %(v)s"]
    params: dict[str, Any] = {"k": kind.value, "v": value, "n": limit + 1}
    if since is not None:
        where.append("event_time >= %(since)s")
        params["since"] = int(since.timestamp())
    if until is not None:
        where.append("event_time < %(until)s")
        params["until"] = int(until.timestamp())
    if after is not None:
        # (event_time, chain, seq) > after, spelled out: 18.16 has no tuple comparison in
        # a key condition, and `event_time >= t` keeps the read a key range.
        where.append(
            "event_time >= %(t)s AND (event_time > %(t)s OR chain > %(c)s"
            " OR (chain = %(c)s AND seq > %(s)s))"
        )
        params.update(t=int(after.event_time.timestamp()), c=after.chain, s=after.seq)
    return " AND ".join(where), params


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _seconds(values: Sequence[Any]) -> list[int]:
    """DateTime values as whole seconds since the epoch, as the entries table gets them."""
    return [v if isinstance(v, int) else int(v.timestamp()) for v in values]


def _group(positions: Sequence[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = defaultdict(list)
    for chain, seq in positions:
        grouped[chain].append(seq)
    return grouped
