"""The benchmark's own SQL: the raw pipeline's one table (benchmark (b), bench/pipeline.py):
the searchable columns of a decision and its bytes in a plain MergeTree table, in a scratch
database of its own; and the raw reads the investigators' figures (i-l, bench/forensic.py)
are compared with: the queries the forensic tools issue, with the same SQL and parameters,
sent straight through clickhouse-driver with nothing done to their answers. The benchmark
owns the raw table; the ledger's tables are ledger/schema.py's and anchoring's, and each
query here must stay the copy of its original in ledger/archive_store.py or ledger/store.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attestcore.records import ENTRY_COLUMNS
from ledger.access_entry import ACCESS_CHAIN
from ledger.clickhouse import ClickHouseConnection

RAW_TABLE = """
    CREATE TABLE {db}.raw (
        decision_id String, event_id String, entity_id String, detector String,
        outcome String, score Float64, model_sha256 String, event_time DateTime,
        decided_at DateTime, source_topic String, source_partition UInt32,
        source_offset UInt64, decision String
    ) ENGINE = MergeTree() ORDER BY (source_partition, source_offset)"""


class RawTable(ClickHouseConnection):
    """A scratch database holding the raw table."""

    def create(self) -> None:
        self.execute("CREATE DATABASE {db}")
        self.execute(RAW_TABLE)

    def insert(self, columns: Sequence[Sequence[Any]]) -> None:
        """One columnar INSERT of the RAW_TABLE columns, in order."""
        self.execute("INSERT INTO {db}.raw VALUES", columns, columnar=True)


# Copies of the forensic tools' queries (ledger/archive_store.py, ledger/store.py).
INDEX_RANGE = (
    "SELECT DISTINCT event_time, chain, seq, decision_id, detector, outcome"
    " FROM {db}.entity_index WHERE entity_kind = %(k)s AND entity_value = %(v)s"
    " ORDER BY event_time, chain, seq LIMIT %(n)s"
)
ENTRIES_AT = "SELECT seq, entry FROM {db}.entries WHERE chain = %(c)s AND seq IN %(s)s"
EVENTS_BY_DIGEST = (
    "SELECT event_sha256, any(event) FROM {db}.event_archive"
    " WHERE event_sha256 IN %(h)s GROUP BY event_sha256"
)
ENTRIES_WITH_IDS = (
    f"SELECT {', '.join(ENTRY_COLUMNS)} FROM {{db}}.entries"
    " WHERE (decision_id IN %(ids)s OR event_id IN %(ids)s)"
    f" AND chain != {ACCESS_CHAIN} ORDER BY chain, seq, entry LIMIT %(n)s"
)
NODES_BY_KEY = "SELECT node, hash FROM {db}.nodes WHERE chain = %(c)s AND node IN %(k)s"
LATEST_CHECKPOINT = (
    "SELECT chain, size, root, note, source_cluster, source_offset FROM {db}.checkpoints"
    " WHERE chain = %(c)s ORDER BY size DESC LIMIT 1"
)


class RawReads(ClickHouseConnection):
    """The forensic tools' queries on a ledger's database, answers returned as the driver
    gives them (strings as bytes)."""

    def index_range(self, kind: str, value: str, limit: int) -> list[tuple[Any, ...]]:
        """(event_time, chain, seq, ...) of the entity's first `limit` index rows."""
        return list(self.execute_raw(INDEX_RANGE, {"k": kind, "v": value, "n": limit}))

    def entries_at(self, chain: int, seqs: Sequence[int]) -> list[tuple[Any, ...]]:
        return list(self.execute_raw(ENTRIES_AT, {"c": chain, "s": tuple(seqs)}))

    def events_by_digest(self, digests: Sequence[str]) -> list[tuple[Any, ...]]:
        return list(self.execute_raw(EVENTS_BY_DIGEST, {"h": tuple(digests)}))

    def entries_with_ids(self, ids: Sequence[str], limit: int) -> list[tuple[Any, ...]]:
        return list(self.execute_raw(ENTRIES_WITH_IDS, {"ids": tuple(ids), "n": limit}))

    def nodes_by_key(self, chain: int, keys: Sequence[int]) -> list[tuple[Any, ...]]:
        return list(self.execute_raw(NODES_BY_KEY, {"c": chain, "k": tuple(keys)}))

    def latest_checkpoint(self, chain: int) -> list[tuple[Any, ...]]:
        return list(self.execute_raw(LATEST_CHECKPOINT, {"c": chain}))
