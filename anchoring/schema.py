"""The `anchors` table, owned by the anchoring package: its DDL and its migration.

Each state change of an anchor transaction is a new row (anchoring/lifecycle.py): the rows of
one tx_hash are its history, the row with the largest event_ns its current state. The other
tables of a ledger are the ledger package's (ledger/schema.py lists every table and owner).
DDL here runs on ClickHouse 18.16 and current releases.
"""

from __future__ import annotations

from ledger.schema import SchemaConnection

ANCHOR_LIFECYCLE_COLUMNS: dict[str, str] = {
    "state": "String DEFAULT if(status = 'success', 'final', 'reverted')",
    "event_ns": "UInt64 DEFAULT toUInt64(anchored_at) * 1000000000",
    "attempt": "String DEFAULT tx_hash",
    "nonce": "UInt64",
    "max_fee": "UInt64",
    "priority_fee": "UInt64",
    "raw_tx": "String",
    "detail": "String",
}
"""The columns the anchor lifecycle added. Their DEFAULTs give rows written before these
columns existed (`AnchorsSchema.migrate` adds them with ALTER TABLE) the meaning they had:
success was final."""

ANCHOR_COLUMNS = (
    "anchored_at", "root", "network_chain_id", "tx_hash", "block_number", "block_hash",
    "sender", "status", "gas_used", "cp_chains", "cp_sizes", *ANCHOR_LIFECYCLE_COLUMNS,
)  # fmt: skip

ANCHORS_DDL = (
    """
        CREATE TABLE IF NOT EXISTS {db}.anchors (
            anchored_at DateTime, root String, network_chain_id UInt64, tx_hash String,
            block_number UInt64, block_hash String, sender String, status String,
            gas_used UInt64, cp_chains Array(UInt32), cp_sizes Array(UInt64), """
    + ", ".join(f"{name} {ddl}" for name, ddl in ANCHOR_LIFECYCLE_COLUMNS.items())
    + """
        ) ENGINE = MergeTree() ORDER BY (anchored_at, tx_hash)"""
)


class AnchorsSchema:
    """The anchoring package's one table."""

    tables: tuple[str, ...] = ("anchors",)

    def create(self, db: SchemaConnection) -> None:
        db.execute(ANCHORS_DDL)

    def migrate(self, db: SchemaConnection) -> None:
        """Add the lifecycle columns to an anchors table created before them. Their DEFAULT
        expressions give the old rows their meaning (a successful anchor was final)."""
        present = {
            name
            for (name,) in db.execute(
                "SELECT name FROM system.columns WHERE database = %(d)s AND table = 'anchors'",
                {"d": db.database},
            )
        }
        for name, ddl in ANCHOR_LIFECYCLE_COLUMNS.items():
            if present and name not in present:
                db.execute(f"ALTER TABLE {{db}}.anchors ADD COLUMN {name} {ddl}")


ANCHORS_SCHEMA = AnchorsSchema()
