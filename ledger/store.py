"""The ClickHouse store of the ledger: entries, tree nodes, checkpoints and anchors.

SQL here runs on Debian's ClickHouse 18.16 (the local and test server) and on current
ClickHouse: plain MergeTree family engines, DateTime (seconds), Arrays; no DateTime64, Map,
LowCardinality, window functions or TTL. Tuple `IN` over mixed integer widths fails on 18.16,
so a tree node is addressed by one UInt64 key (`node_key`).

Entries keep their exact bytes (`entry`) beside searchable columns; verification checks that
the columns agree with the bytes, so editing a column alone is detected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver.errors import NetworkError, ServerException, SocketTimeoutError

from attestcore.errors import AttestreamError, ServiceUnavailableError
from attestcore.records import (
    ENTRY_COLUMNS,
    TIME_COLUMNS,
    ChainHead,
    OwnershipMarks,
    RecentDecision,
    StoredAnchor,
    StoredCheckpoint,
)
from ledger.clickhouse import SERVICE, parse_url, server_error
from ledger.node_keys import LEVEL_SHIFT, node_key

# The driver logs every failed connection attempt as a warning with its traceback; the
# failure reaches the caller as ServiceUnavailableError, which is the one report it needs.
logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)

# ClickHouse answers a local query in milliseconds; 10 s covers a cold start without hanging
# a verifier forever on a dead socket.
CONNECT_TIMEOUT_S = 10.0

# The anchor lifecycle (anchoring/lifecycle.py) records every state change of an anchor
# transaction as a new row: the rows of one tx_hash are its history, the row with the largest
# event_ns its current state. The DEFAULTs give rows written before these columns existed
# (anchoring/store.py adds them with ALTER TABLE) the meaning they had: success was final.
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
ANCHOR_COLUMNS = (
    "anchored_at", "root", "network_chain_id", "tx_hash", "block_number", "block_hash",
    "sender", "status", "gas_used", "cp_chains", "cp_sizes", *ANCHOR_LIFECYCLE_COLUMNS,
)  # fmt: skip

NODES_INDEX_GRANULARITY = 256
"""Rows per primary-index mark of `nodes`. A proof reads ~2 log2(n) nodes scattered over the
whole key range (every level), so each costs a granule: at ClickHouse's default of 8,192 rows
a proof over a 200,000-entry chain read most of the table (median 5 ms, p99 9 ms here); at 256
it reads a few thousand rows (3 ms, p99 4 ms). The index costs 12 bytes a mark, ~90 MB of
server memory per billion entries."""

TABLES: dict[str, str] = {
    "entries": """
        CREATE TABLE IF NOT EXISTS {db}.entries (
            chain UInt32, seq UInt64, leaf_hash String, prev String, entry String,
            decision_id String, event_id String, entity_id String, detector String,
            outcome String, score Float64, model_sha256 String,
            event_time DateTime, decided_at DateTime, logged_at DateTime,
            source_cluster String, source_topic String, source_partition UInt32,
            source_offset UInt64
        ) ENGINE = MergeTree() ORDER BY (chain, seq)""",
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
    "anchors": """
        CREATE TABLE IF NOT EXISTS {db}.anchors (
            anchored_at DateTime, root String, network_chain_id UInt64, tx_hash String,
            block_number UInt64, block_hash String, sender String, status String,
            gas_used UInt64, cp_chains Array(UInt32), cp_sizes Array(UInt64), """
    + ", ".join(f"{name} {ddl}" for name, ddl in ANCHOR_LIFECYCLE_COLUMNS.items())
    + """
        ) ENGINE = MergeTree() ORDER BY (anchored_at, tx_hash)""",
}

_INSERT_ENTRIES = f"INSERT INTO {{db}}.entries ({', '.join(ENTRY_COLUMNS)}) VALUES"


def _epoch_seconds(values: Sequence[Any]) -> list[int]:
    """DateTime values as whole seconds since the epoch (aware datetimes or ints)."""
    return [v if isinstance(v, int) else int(v.timestamp()) for v in values]


class ClickHouseStore:
    """Ledger persistence over clickhouse-driver (synchronous, one connection per client)."""

    def __init__(self, url: str) -> None:
        params = parse_url(url)
        self.database: str = params.pop("database")
        common = dict(params, connect_timeout=CONNECT_TIMEOUT_S)
        self._endpoint = f"{params['host']}:{params['port']}"
        self._client = Client(database="default", **common)
        # A second connection returns String columns as bytes: entry and note bytes are read
        # back exactly as stored, even when someone wrote invalid UTF-8 into them.
        self._raw = Client(database="default", settings={"strings_as_bytes": True}, **common)

    # --- plumbing ------------------------------------------------------------------------
    def execute(self, query: str, params: Any = None, **kwargs: Any) -> Any:
        return self._run(self._client, query, params, **kwargs)

    def execute_raw(self, query: str, params: Any = None, **kwargs: Any) -> Any:
        return self._run(self._raw, query, params, **kwargs)

    def _run(self, client: Client, query: str, params: Any, **kwargs: Any) -> Any:
        try:
            return client.execute(query.format(db=self.database), params, **kwargs)
        except (NetworkError, SocketTimeoutError, OSError, EOFError, ServerException) as exc:
            mapped = self._mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def _mapped(self, exc: Exception) -> AttestreamError | None:
        """What the driver raised, as the attestream error an operator can act on (see
        ledger/clickhouse.py); None for an unexpected server error: a bug."""
        if isinstance(exc, ServerException):
            return server_error(exc, self._endpoint, self.database)
        cause = "connection closed" if isinstance(exc, EOFError) else str(exc)
        return ServiceUnavailableError(SERVICE, self._endpoint, cause)

    def ping(self) -> None:
        """Raise `ServiceUnavailableError` unless ClickHouse answers."""
        self.execute("SELECT 1")

    def create_schema(self) -> None:
        self.execute("CREATE DATABASE IF NOT EXISTS {db}")
        for ddl in TABLES.values():
            self.execute(ddl)

    def close(self) -> None:
        self._client.disconnect()
        self._raw.disconnect()

    # --- writes (the sequencer) --------------------------------------------------------------
    def insert_entries(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """One columnar INSERT: one block, so the batch lands whole or not at all.

        Time columns may hold time-zone-aware datetimes or epoch seconds; they are sent as
        epoch seconds, which is what DateTime stores and what clickhouse-driver passes through
        without converting each value between time zones.
        """
        data = [
            _epoch_seconds(columns[name]) if name in TIME_COLUMNS else columns[name]
            for name in ENTRY_COLUMNS
        ]
        # One block: clickhouse-driver splits a columnar INSERT only beyond its client
        # setting insert_block_size (1,048,576 rows), far above any ledger batch.
        self.execute(_INSERT_ENTRIES, data, columnar=True)

    def insert_nodes(self, chain: int, keys: Sequence[int], hashes: Sequence[bytes]) -> None:
        if not keys:
            return
        data = [[chain] * len(keys), list(keys), [h.hex() for h in hashes]]
        self.execute("INSERT INTO {db}.nodes (chain, node, hash) VALUES", data, columnar=True)

    def insert_checkpoint(self, cp: StoredCheckpoint) -> None:
        origin = cp.note.split(b"\n", 1)[0].decode("utf-8", "replace")
        row = (cp.chain, cp.size, cp.root.hex(), origin, cp.note, _now(), cp.source_cluster,
               cp.source_offset)  # fmt: skip
        self.execute(
            "INSERT INTO {db}.checkpoints (chain, size, root, origin, note, created_at,"
            " source_cluster, source_offset) VALUES",
            [row],
        )

    def insert_anchor(self, anchor: StoredAnchor) -> None:
        """Append one row of an anchor transaction's history (a state change)."""
        chains = [c for c, _ in anchor.checkpoints]
        sizes = [s for _, s in anchor.checkpoints]
        self.execute(
            f"INSERT INTO {{db}}.anchors ({', '.join(ANCHOR_COLUMNS)}) VALUES",
            [(anchor.anchored_at, anchor.root.hex(), anchor.network_chain_id, anchor.tx_hash,
              anchor.block_number, anchor.block_hash, anchor.sender, anchor.status,
              anchor.gas_used, chains, sizes, anchor.state, anchor.event_ns, anchor.attempt,
              anchor.nonce, anchor.max_fee, anchor.priority_fee, anchor.raw_tx.hex(),
              anchor.detail)],
        )  # fmt: skip

    # --- reads ---------------------------------------------------------------------------
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
        rows = self.execute_raw(
            "SELECT chain, size, root, note, source_cluster, source_offset FROM {db}.checkpoints "
            + where,
            params,
        )
        return [
            StoredCheckpoint(r[0], r[1], bytes.fromhex(r[2].decode()), r[3], r[4].decode(), r[5])
            for r in sorted(rows, key=lambda r: r[1])
        ]

    def checkpoint_at(self, chain: int, size: int) -> list[StoredCheckpoint]:
        """Every stored checkpoint of that size (more than one means a fork)."""
        return self.checkpoints_in(chain, size, size)

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

    def entry_rows(
        self, chain: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Rows (ENTRY_COLUMNS order, strings as bytes) with start <= seq < stop, by seq."""
        names = ", ".join(ENTRY_COLUMNS)
        where = "chain = %(c)s AND seq >= %(a)s" + (" AND seq < %(b)s" if stop is not None else "")
        params = {"c": chain, "a": start, "b": stop}
        # Rows stream in the server's blocks (max_block_size, 65,536 rows by default), which
        # bounds memory. It is not set per query: a read-only user (readonly = 1) may not
        # change settings, and verification must work with one.
        try:
            yield from self._raw.execute_iter(
                f"SELECT {names} FROM {self.database}.entries WHERE {where} ORDER BY seq, entry",
                params,
            )
        except (NetworkError, SocketTimeoutError, OSError, EOFError, ServerException) as exc:
            mapped = self._mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc

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

    def find_entries(self, where: str, params: Mapping[str, Any], limit: int) -> list[Any]:
        names = ", ".join(ENTRY_COLUMNS)
        return list(
            self.execute_raw(
                f"SELECT {names} FROM {{db}}.entries WHERE {where} ORDER BY chain, seq"
                f" LIMIT {int(limit)}",
                dict(params),
            )
        )

    def read_nodes(
        self, chain: int, ids: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        if not ids:
            return {}
        keys = tuple(node_key(level, index) for level, index in ids)
        rows = self.execute(
            "SELECT node, hash FROM {db}.nodes WHERE chain = %(c)s AND node IN %(k)s",
            {"c": chain, "k": keys},
        )
        mask = (1 << LEVEL_SHIFT) - 1
        return {(key >> LEVEL_SHIFT, key & mask): bytes.fromhex(h) for key, h in rows}

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
        mask = (1 << LEVEL_SHIFT) - 1
        return [(key & mask, tuple(sorted(_hash_bytes(h) for h in hashes))) for key, hashes in rows]

    def anchors(self) -> list[StoredAnchor]:
        """The anchors that count: transactions whose current state is final."""
        return self.anchor_states("cur_state = 'final'")

    def anchor_states(
        self, having: str = "", params: Mapping[str, Any] | None = None
    ) -> list[StoredAnchor]:
        """Each anchor transaction's current row (its largest event_ns), oldest first.

        `having` filters on the current values, named `cur_<column>` (argMax per column: it
        runs on ClickHouse 18.16, where tuple IN over a subquery of mixed types does not).
        """
        others = [c for c in ANCHOR_COLUMNS if c != "tx_hash"]
        current = ", ".join(f"argMax({c}, event_ns) AS cur_{c}" for c in others)
        rows = self.execute(
            f"SELECT tx_hash, {current} FROM {{db}}.anchors GROUP BY tx_hash"
            + (f" HAVING {having}" if having else "")
            + " ORDER BY cur_event_ns, tx_hash",
            dict(params or {}),
        )
        return [anchor_from_row(dict(zip(("tx_hash", *others), r, strict=True))) for r in rows]

    def count_entries(self) -> int:
        return int(self.execute("SELECT count() FROM {db}.entries")[0][0])


def _hash_bytes(stored_hex: str) -> bytes:
    """A stored node hash from hex(hash): its 32 bytes, or the stored bytes themselves when
    they are not 64 hex digits (so they equal no hash)."""
    stored = bytes.fromhex(stored_hex)
    try:
        return bytes.fromhex(stored.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return stored


def anchor_from_row(row: Mapping[str, Any]) -> StoredAnchor:
    return StoredAnchor(
        anchored_at=row["anchored_at"], root=bytes.fromhex(row["root"]),
        network_chain_id=row["network_chain_id"], tx_hash=row["tx_hash"],
        block_number=row["block_number"], block_hash=row["block_hash"], sender=row["sender"],
        status=row["status"], gas_used=row["gas_used"],
        checkpoints=tuple(zip(row["cp_chains"], row["cp_sizes"], strict=True)),
        state=row["state"], event_ns=row["event_ns"], attempt=row["attempt"],
        nonce=row["nonce"], max_fee=row["max_fee"], priority_fee=row["priority_fee"],
        raw_tx=bytes.fromhex(row["raw_tx"]), detail=row["detail"],
    )  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
