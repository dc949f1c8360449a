"""The raw pipeline's one table (benchmark (b), bench/pipeline.py): the searchable columns of
a decision and its bytes in a plain MergeTree table, in a scratch database of its own. The
benchmark owns this table; the ledger's tables are ledger/schema.py's and anchoring's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
