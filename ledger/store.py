"""The ledger's reads and writes in ClickHouse: entries, tree nodes and checkpoints.

Typed methods only: callers never pass SQL. The tables are defined in ledger/schema.py, their
rows converted in ledger/rows.py; the anchors table is the anchoring package's
(anchoring/store.py). SQL here runs on ClickHouse 18.16 and current releases.

Entries keep their exact bytes (`entry`) beside searchable columns; verification checks that
the columns agree with the bytes, so editing a column alone is detected.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from attestcore.records import (
    ENTRY_COLUMNS,
    ChainHead,
    ChainTail,
    EntryOutcome,
    OwnershipMarks,
    RecentDecision,
    StoredCheckpoint,
)
from ledger.access_entry import ACCESS_CHAIN
from ledger.archive_store import ArchiveStore
from ledger.clickhouse import ClickHouseConnection
from ledger.entry_filter import EntryFilter
from ledger.merkle import NodeId
from ledger.node_keys import LEVEL_SHIFT, node_key
from ledger.rows import (
    CHECKPOINT_COLUMNS,
    CHECKPOINT_READ_COLUMNS,
    checkpoint_from_row,
    checkpoint_row,
    entry_columns,
    node_columns,
    node_id,
    node_index,
    now_seconds,
    stored_node_hash,
)
from ledger.schema import ARCHIVE_SCHEMA, LEDGER_SCHEMA, Schema, create_database

_ENTRY_NAMES = ", ".join(ENTRY_COLUMNS)
_INSERT_ENTRIES = f"INSERT INTO {{db}}.entries ({_ENTRY_NAMES}) VALUES"
_INSERT_CHECKPOINT = f"INSERT INTO {{db}}.checkpoints ({', '.join(CHECKPOINT_COLUMNS)}) VALUES"
_SELECT_CHECKPOINTS = f"SELECT {', '.join(CHECKPOINT_READ_COLUMNS)} FROM {{db}}.checkpoints "
# Entries whose event_id starts with one of two prefixes (a demo run's payments and scans).
# substring() counts bytes, as length() does, and treats no character as a wildcard.
_EVENT_PREFIXES = (
    "substring(event_id, 1, length(%(a)s)) = %(a)s OR substring(event_id, 1, length(%(b)s)) = %(b)s"
)
_DECISION_CHAINS = f"chain != {ACCESS_CHAIN}"
"""Decision lookups never select the access chain's records (ledger/access_entry.py)."""
_IDS_PER_QUERY = 1000
"""Ids per `entries_with_ids` query: 1,000 ids of 64 characters, twice, are ~130 KiB of SQL."""


class ClickHouseStore(ClickHouseConnection):
    """The ledger's tables over clickhouse-driver. `schemas` are the tables it creates and
    migrates: the ledger's own here; the composition root opens a store with the anchors
    table too (`anchoring.store.AnchoredStore`)."""

    schemas: ClassVar[tuple[Schema, ...]] = (LEDGER_SCHEMA, ARCHIVE_SCHEMA)

    def create_schema(self) -> None:
        """Create the database and every owner's missing tables (existing ones untouched)."""
        create_database(self)
        for schema in self.schemas:
            schema.create(self)

    def migrate_schema(self) -> None:
        """`create_schema`, then bring older tables to the columns this version reads."""
        self.create_schema()
        for schema in self.schemas:
            schema.migrate(self)

    # --- writes (the sequencer) --------------------------------------------------------------
    def insert_entries(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """One columnar INSERT: one block, so the batch lands whole or not at all. Times may
        be aware datetimes or epoch seconds (`ledger.rows.entry_columns`)."""
        # One block: clickhouse-driver splits a columnar INSERT only beyond its client
        # setting insert_block_size (1,048,576 rows), far above any ledger batch.
        self.execute(_INSERT_ENTRIES, entry_columns(columns), columnar=True)

    def insert_nodes(self, chain: int, keys: Sequence[int], hashes: Sequence[bytes]) -> None:
        if not keys:
            return
        data = node_columns(chain, keys, hashes)
        self.execute("INSERT INTO {db}.nodes (chain, node, hash) VALUES", data, columnar=True)

    def insert_checkpoint(self, cp: StoredCheckpoint) -> None:
        self.execute(_INSERT_CHECKPOINT, [checkpoint_row(cp, now_seconds())])

    # --- checkpoints -----------------------------------------------------------------------
    def chains(self) -> list[int]:
        rows = self.execute(
            "SELECT DISTINCT chain FROM {db}.entries UNION ALL"
            " SELECT DISTINCT chain FROM {db}.checkpoints"
        )
        return sorted({r[0] for r in rows})

    def latest_checkpoint(self, chain: int) -> StoredCheckpoint | None:
        rows = self.checkpoints(chain, latest_only=True)
        return rows[-1] if rows else None

    def checkpoints(self, chain: int, latest_only: bool = False) -> list[StoredCheckpoint]:
        tail = " DESC LIMIT 1" if latest_only else ""
        return self._checkpoints(f"WHERE chain = %(c)s ORDER BY size{tail}", {"c": chain})

    def checkpoints_in(self, chain: int, first_size: int, last_size: int) -> list[StoredCheckpoint]:
        """Checkpoints with first_size <= size <= last_size, by size (range verification)."""
        return self._checkpoints(
            "WHERE chain = %(c)s AND size >= %(a)s AND size <= %(b)s ORDER BY size",
            {"c": chain, "a": first_size, "b": last_size},
        )

    def _checkpoints(self, where: str, params: dict[str, Any]) -> list[StoredCheckpoint]:
        rows = self.execute_raw(_SELECT_CHECKPOINTS + where, params)
        return [checkpoint_from_row(r) for r in sorted(rows, key=lambda r: r[1])]

    def checkpoint_at(self, chain: int, size: int) -> list[StoredCheckpoint]:
        """Every stored checkpoint of that size (more than one means a fork)."""
        return self.checkpoints_in(chain, size, size)

    def checkpoint_created_at(self, chain: int, size: int) -> datetime | None:
        """When the first checkpoint of that size was stored (None: there is none)."""
        rows = self.execute(
            "SELECT min(created_at), count() FROM {db}.checkpoints"
            " WHERE chain = %(c)s AND size = %(s)s",
            {"c": chain, "s": size},
        )
        return rows[0][0] if rows and rows[0][1] else None

    # --- a chain's head and tail ------------------------------------------------------------
    def head(self, chain: int) -> ChainHead:
        rows = self.execute(
            "SELECT seq, leaf_hash, source_cluster, source_offset FROM {db}.entries"
            " WHERE chain = %(c)s ORDER BY seq DESC LIMIT 1",
            {"c": chain},
        )
        if not rows:
            return ChainHead(0, None, "", -1)
        seq, leaf, cluster, offset = rows[0]
        return ChainHead(seq + 1, bytes.fromhex(leaf), cluster, offset)

    def chain_extent(self, chain: int) -> int:
        """How many entries `chain` claims: the larger of its last seq + 1 and its largest
        signed checkpoint (0: no such chain). Reads only the chain's tail of each table."""
        rows = self.execute(
            "SELECT max(seq) + 1, count() FROM {db}.entries WHERE chain = %(c)s"
            " UNION ALL SELECT max(size), count() FROM {db}.checkpoints WHERE chain = %(c)s",
            {"c": chain},
        )
        return max((int(top) for top, count in rows if count), default=0)

    def ownership_marks(self, chain: int, size: int) -> OwnershipMarks:
        """Checkpoints and entries of `chain` at or beyond `size`. Both tables are sorted by
        (chain, size/seq), so this reads only the chain's tail, however long the chain."""
        rows = self.execute(
            "SELECT toUInt8(0), count(), max(size) FROM {db}.checkpoints"
            " WHERE chain = %(c)s AND size >= %(s)s"
            " UNION ALL SELECT toUInt8(1), count(), toUInt64(0) FROM {db}.entries"
            " WHERE chain = %(c)s AND seq >= %(s)s",
            {"c": chain, "s": size},
        )
        found = {tag: (count, top) for tag, count, top in rows}
        return OwnershipMarks(found[0][0], found[0][1] if found[0][0] else 0, found[1][0])

    def tail_beyond(self, chain: int, size: int) -> ChainTail:
        """Checkpoints past `size` and entries from `size` on. Both tables are sorted by
        (chain, size/seq), so each query reads only a tail."""
        params = {"c": chain, "s": size}
        ((count, latest),) = self.execute(
            "SELECT count(), max(size) FROM {db}.checkpoints WHERE chain = %(c)s AND size > %(s)s",
            params,
        )
        ((entries, oldest),) = self.execute(
            "SELECT count(), min(logged_at) FROM {db}.entries WHERE chain = %(c)s AND seq >= %(s)s",
            params,
        )
        return ChainTail(
            int(count), int(latest) if count else 0, int(entries), oldest if entries else None
        )

    # --- entries ---------------------------------------------------------------------------
    def entry_rows(
        self, chain: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Rows (ENTRY_COLUMNS order, strings as bytes) with start <= seq < stop, by seq."""
        where = "chain = %(c)s AND seq >= %(a)s" + (" AND seq < %(b)s" if stop is not None else "")
        # Rows stream in the server's blocks, which bounds memory. max_block_size is not set
        # per query: a read-only user (readonly = 1) may not change settings, and
        # verification must work with one.
        yield from self.iter_raw(
            f"SELECT {_ENTRY_NAMES} FROM {{db}}.entries WHERE {where} ORDER BY seq, entry",
            {"c": chain, "a": start, "b": stop},
        )

    def entry_by_decision_id(self, decision_id: str) -> tuple[Any, ...] | None:
        """The first entry (by chain, seq) logging `decision_id`, as a row in ENTRY_COLUMNS
        order with strings as bytes; None when no entry does."""
        rows = self.execute_raw(
            f"SELECT {_ENTRY_NAMES} FROM {{db}}.entries WHERE decision_id = %(d)s"
            f" AND {_DECISION_CHAINS} ORDER BY chain, seq LIMIT 1",
            {"d": decision_id},
        )
        return tuple(rows[0]) if rows else None

    def entries_matching(self, where: EntryFilter, limit: int) -> list[tuple[Any, ...]]:
        """The entries whose searchable columns meet every condition of `where`, by (chain,
        seq), at most `limit` rows (ENTRY_COLUMNS order, strings as bytes). A full scan of
        the table unless `where` is narrow: investigators' queries, not the write path."""
        conditions, params = _filter_conditions(where)
        params["n"] = limit
        rows = self.execute_raw(
            f"SELECT {_ENTRY_NAMES} FROM {{db}}.entries WHERE ({conditions})"
            f" AND {_DECISION_CHAINS} ORDER BY chain, seq, entry LIMIT %(n)s",
            params,
        )
        return [tuple(row) for row in rows]

    def entries_after(
        self, where: EntryFilter, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """`entries_matching` one page at a time: the first `limit` entries past the position
        `after` (chain, seq; None: from the start), by (chain, seq). A scan of the table:
        searches by entity go through the entity index (ledger/archive_store.py) instead."""
        conditions, params = _filter_conditions(where)
        if after is not None:
            conditions += " AND (chain > %(ac)s OR (chain = %(ac)s AND seq > %(as)s))"
            params.update(ac=after[0], **{"as": after[1]})
        params["n"] = limit
        rows = self.execute_raw(
            f"SELECT {_ENTRY_NAMES} FROM {{db}}.entries WHERE {conditions}"
            f" AND {_DECISION_CHAINS} ORDER BY chain, seq, entry LIMIT %(n)s",
            params,
        )
        return [tuple(row) for row in rows]

    def entries_with_ids(self, ids: Sequence[str], limit: int) -> list[tuple[Any, ...]]:
        """The entries whose `decision_id` or `event_id` is one of `ids` (an event's id
        selects every decision on it), by (chain, seq), at most `limit` rows (which ones,
        when more match, is not defined: callers ask for one more than they accept)."""
        found: list[tuple[Any, ...]] = []
        # In batches: the driver writes the ids into the query text, and ClickHouse refuses a
        # query longer than max_query_size (256 KiB by default; a read-only user cannot raise
        # it), which 10,000 ids would exceed.
        for start in range(0, len(ids), _IDS_PER_QUERY):
            if len(found) >= limit:
                break
            batch = tuple(ids[start : start + _IDS_PER_QUERY])
            rows = self.execute_raw(
                f"SELECT {_ENTRY_NAMES} FROM {{db}}.entries"
                " WHERE (decision_id IN %(ids)s OR event_id IN %(ids)s)"
                f" AND {_DECISION_CHAINS} ORDER BY chain, seq, entry LIMIT %(n)s",
                {"ids": batch, "n": limit - len(found)},
            )
            found.extend(tuple(row) for row in rows)
        found.sort(key=lambda row: (row[0], row[1], row[4]))
        return found

    def archived_event(self, event_sha256: str) -> bytes | None:
        """The exact bytes of the event with this digest from the event archive (a case
        bundle carries them), None when it was never archived."""
        return ArchiveStore(self).archived_events_by_digest([event_sha256]).get(event_sha256)

    def archived_events_by_digest(self, digests: Sequence[str]) -> dict[str, bytes]:
        """The exact bytes of the archived events with these digests, a few queries for any
        number of them (`ArchiveStore.archived_events_by_digest`); absent: not archived."""
        return ArchiveStore(self).archived_events_by_digest(digests)

    def recent_decisions(self, chain: int, limit: int) -> list[RecentDecision]:
        """The chain's last `limit` decisions, newest first. The event digest is read from the
        entry bytes by the server: the entry's first member is `chain`, its second the
        decision, whose first three are `decision_id`, `event_id` (an identifier: no quote in
        it) and `event_sha256`, so the first `"event_sha256":` of an entry is the decision's
        (visitParamExtractString takes the first occurrence; a feature of that name comes
        later)."""
        rows = self.execute(
            "SELECT decision_id, visitParamExtractString(entry, 'event_sha256'), seq"
            " FROM {db}.entries WHERE chain = %(c)s ORDER BY seq DESC LIMIT %(n)s",
            {"c": chain, "n": limit},
        )
        return [RecentDecision(d, sha, seq) for d, sha, seq in rows]

    def count_entries(self) -> int:
        return int(self.execute("SELECT count() FROM {db}.entries")[0][0])

    def count_entries_by_event_prefix(self, first: str, second: str) -> int:
        """Entries whose event_id starts with `first` or with `second`."""
        rows = self.execute(
            f"SELECT count() FROM {{db}}.entries WHERE {_EVENT_PREFIXES}",
            {"a": first, "b": second},
        )
        return int(rows[0][0])

    def outcomes_by_event_prefix(self, first: str, second: str) -> list[EntryOutcome]:
        """(detector, event_id, outcome) of the entries whose event_id starts with `first`
        or with `second`."""
        rows = self.execute(
            f"SELECT detector, event_id, outcome FROM {{db}}.entries WHERE {_EVENT_PREFIXES}",
            {"a": first, "b": second},
        )
        return [EntryOutcome(*row) for row in rows]

    # --- tree nodes ------------------------------------------------------------------------
    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        if not ids:
            return {}
        keys = tuple(node_key(level, index) for level, index in ids)
        rows = self.execute(
            "SELECT node, hash FROM {db}.nodes WHERE chain = %(c)s AND node IN %(k)s",
            {"c": chain, "k": keys},
        )
        return {node_id(key): bytes.fromhex(h) for key, h in rows}

    def nodes_in(
        self, chain: int, level: int, first: int, stop: int
    ) -> list[tuple[int, tuple[bytes, ...]]]:
        """Stored nodes (level, index) with first <= index < stop, ordered by key, each as
        (index, its distinct hashes). One key range of the primary key: a verifier pages
        through a level with it, a few thousand nodes per query.

        `nodes` is a ReplacingMergeTree: until a background merge runs, a node written twice (a
        resumed writer re-writes the nodes of its unsigned tail) has two rows. Identical copies
        come back as one hash; different ones all come back, for the verifier to report. A
        stored value that is not 64 hex digits comes back as its raw bytes, so it equals no
        hash.
        """
        base = level << LEVEL_SHIFT
        # On the other connection than `entry_rows`: a verifier reads pages of nodes while it
        # streams the entries. hex() passes any stored bytes through that connection's UTF-8.
        rows = self.execute(
            "SELECT node, groupUniqArray(hex(hash)) FROM {db}.nodes WHERE chain = %(c)s"
            " AND node >= %(a)s AND node < %(b)s GROUP BY node ORDER BY node",
            {"c": chain, "a": base + first, "b": base + min(stop, 1 << LEVEL_SHIFT)},
        )
        return [
            (node_index(key), tuple(sorted(stored_node_hash(h) for h in hashes)))
            for key, hashes in rows
        ]


def _filter_conditions(where: EntryFilter) -> tuple[str, dict[str, Any]]:
    """The SQL conditions (joined by AND) and parameters of an entry filter. Times go as epoch
    seconds: DateTime columns hold whole seconds, and so do the filter's bounds."""
    conditions = [f"{column} = %({column})s" for column in where.text_conditions()]
    params: dict[str, Any] = dict(where.text_conditions())
    bounds = (
        ("score >= %(min_score)s", "min_score", where.min_score),
        ("score <= %(max_score)s", "max_score", where.max_score),
        ("event_time >= toDateTime(%(t_from)s)", "t_from", where.event_time_from),
        ("event_time < toDateTime(%(t_to)s)", "t_to", where.event_time_to),
    )
    for condition, name, value in bounds:
        if value is not None:
            conditions.append(condition)
            params[name] = int(value.timestamp()) if isinstance(value, datetime) else value
    return " AND ".join(conditions) or "1 = 1", params
