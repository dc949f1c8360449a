"""The ledger's storage tables, their DDL and their migrations.

These ClickHouse tables hold a ledger, each owned by the package that writes it, which alone
defines and migrates it: `entries` (the logged decisions, exact bytes beside searchable
columns), `nodes` (the Merkle tree nodes of every chain) and `checkpoints` (the signed tree
heads) belong to `ledger` (this module; written by the sequencer), and so do
`event_archive`, `entity_index` and `entry_context` (written through ledger/archive_store.py);
`anchors` (one row per state change of an anchor transaction) belongs to `anchoring`
(anchoring/schema.py; written by the anchor service). `ClickHouseStore.create_schema` and
`migrate_schema` (so `ledger migrate` and the writers) run every owner's `Schema` the store
was opened with.

DDL here runs on Debian's ClickHouse 18.16 (the local and test server) and on current
ClickHouse: plain MergeTree family engines, DateTime (seconds), Arrays; no DateTime64, Map,
LowCardinality, window functions or TTL. Tuple `IN` over mixed integer widths fails on 18.16,
so a tree node is addressed by one UInt64 key (`ledger.node_keys`).
"""

from __future__ import annotations

from typing import Any, Protocol


class SchemaConnection(Protocol):
    """What a schema runs its DDL on (`ledger.clickhouse.ClickHouseConnection`)."""

    database: str

    def execute(self, query: str, params: Any = None, **kwargs: Any) -> Any: ...


class Schema(Protocol):
    """The tables one package owns. Both steps are idempotent."""

    tables: tuple[str, ...]

    def create(self, db: SchemaConnection) -> None:
        """Create the tables that are missing (an existing one is left as it is)."""
        ...

    def migrate(self, db: SchemaConnection) -> None:
        """Bring tables created by an older version to the columns this version reads."""
        ...


NODES_INDEX_GRANULARITY = 256
"""Rows per primary-index mark of `nodes`. A proof reads ~2 log2(n) nodes scattered over the
whole key range (every level), so each costs a granule: at ClickHouse's default of 8,192 rows
a proof over a 200,000-entry chain read most of the table (median 5 ms, p99 9 ms here); at 256
it reads a few thousand rows (3 ms, p99 4 ms). The index costs 12 bytes a mark, ~90 MB of
server memory per billion entries."""

ENTRIES_INDEX_GRANULARITY = 64
"""Rows per primary-index mark of `entries`. Investigators read entries by (chain, seq) one
by one (a search page, a timeline, a bundle), scattered over the whole chain, and each costs
a granule of ~1.5 kB entries: at ClickHouse's default of 8,192 rows that is ~12 MB per entry,
and a search page over a 2,000,000-entry ledger took 0.4 s (median; 2.4 s for a 500-event
timeline). At 64 rows a granule is ~100 kB, about one compressed block (ClickHouse compresses
at least 64 kB at a time, so fewer rows would not read less). The index costs 12 bytes a mark
in server memory, ~190 MB per billion entries, and the marks 16 bytes a column on disk."""

LEDGER_TABLES: dict[str, str] = {
    "entries": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.entries (
            chain UInt32, seq UInt64, leaf_hash String, prev String, entry String,
            decision_id String, event_id String, entity_id String, detector String,
            outcome String, score Float64, model_sha256 String,
            event_time DateTime, decided_at DateTime, logged_at DateTime,
            source_cluster String, source_topic String, source_partition UInt32,
            source_offset UInt64
        ) ENGINE = MergeTree() ORDER BY (chain, seq)
        SETTINGS index_granularity = {ENTRIES_INDEX_GRANULARITY}""",
    "nodes": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.nodes (
            chain UInt32, node UInt64, hash String
        ) ENGINE = ReplacingMergeTree() ORDER BY (chain, node)
        SETTINGS index_granularity = {NODES_INDEX_GRANULARITY}""",
    "checkpoints": """
        CREATE TABLE IF NOT EXISTS {db}.checkpoints (
            chain UInt32, size UInt64, root String, origin String, note String,
            created_at DateTime, source_cluster String, source_offset Int64
        ) ENGINE = MergeTree() ORDER BY (chain, size)""",
}
"""The tables `ledger` owns: entries, tree nodes and checkpoints (docs/ledger-format.md).
Tables created by an older version keep the index granularity they were created with (a
MergeTree table's cannot change); copy a ledger into new tables to get the new one."""


class LedgerSchema:
    """The `ledger` package's tables. No migration yet: their columns are as first shipped."""

    tables: tuple[str, ...] = tuple(LEDGER_TABLES)

    def create(self, db: SchemaConnection) -> None:
        for ddl in LEDGER_TABLES.values():
            db.execute(ddl)

    def migrate(self, db: SchemaConnection) -> None:
        return None


LEDGER_SCHEMA = LedgerSchema()


ARCHIVE_INDEX_GRANULARITY = 64
"""Rows per primary-index mark of `event_archive`. A lookup by digest reads one granule; at
ClickHouse's default of 8,192 rows of events up to 16 KiB that is megabytes per lookup, at
64 rows of typical 300-byte events about one compressed block (a timeline reads 500 of them;
256 rows took about twice as long there). The index holds the ~90-byte key a mark: ~1.4 GB
of server memory per billion archived events."""

ARCHIVE_TABLES: dict[str, str] = {
    "event_archive": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.event_archive (
            event_sha256 String, topic String, partition UInt32, offset UInt64, event String,
            archived_at DateTime
        ) ENGINE = ReplacingMergeTree() ORDER BY (event_sha256, topic, partition, offset)
        SETTINGS index_granularity = {ARCHIVE_INDEX_GRANULARITY}""",
    "entity_index": """
        CREATE TABLE IF NOT EXISTS {db}.entity_index (
            entity_kind String, entity_value String, event_time DateTime, chain UInt32,
            seq UInt64, decision_id String, detector String, outcome String
        ) ENGINE = ReplacingMergeTree()
        ORDER BY (entity_kind, entity_value, event_time, chain, seq, decision_id)""",
    "entry_context": """
        CREATE TABLE IF NOT EXISTS {db}.entry_context (
            chain UInt32, seq UInt64, decision_id String, kind String, customer_id String,
            terminal_id String, amount Float64, currency String, channel String, mcc String,
            country String, epc String, gtin String, biz_step String, biz_location String,
            read_point String
        ) ENGINE = ReplacingMergeTree() ORDER BY (chain, seq)""",
}
"""The event archive, entity index and investigation columns, also the `ledger`'s (written in
the sequencer's step 1 through ledger/archive_store.py; docs/ledger-format.md, "Event archive
and entity index"). Both are ReplacingMergeTree tables: a batch a crash cut short is written
again, row for row, and identical copies collapse."""


class ArchiveSchema:
    """The archive's tables. A database from before them gets them on migration: creating
    them is the whole migration (entries logged before have no archive rows)."""

    tables: tuple[str, ...] = tuple(ARCHIVE_TABLES)

    def create(self, db: SchemaConnection) -> None:
        for ddl in ARCHIVE_TABLES.values():
            db.execute(ddl)

    def migrate(self, db: SchemaConnection) -> None:
        return None


ARCHIVE_SCHEMA = ArchiveSchema()


def create_database(db: SchemaConnection) -> None:
    db.execute("CREATE DATABASE IF NOT EXISTS {db}")
