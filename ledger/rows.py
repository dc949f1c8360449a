"""The ledger's records as ClickHouse rows and back: entry columns, tree nodes, checkpoints.

Pure conversions (no client): `ledger.store` runs the queries, this module says what their
rows mean. Hashes are stored as hex text; DateTime columns hold whole seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from attestcore.records import ENTRY_COLUMNS, TIME_COLUMNS, StoredCheckpoint
from ledger.merkle import NodeId
from ledger.node_keys import LEVEL_SHIFT

CHECKPOINT_COLUMNS = (
    "chain",
    "size",
    "root",
    "origin",
    "note",
    "created_at",
    "source_cluster",
    "source_offset",
)
"""The columns a checkpoint is written with (`checkpoint_row`)."""

CHECKPOINT_READ_COLUMNS = ("chain", "size", "root", "note", "source_cluster", "source_offset")
"""The columns a checkpoint is read back from (`checkpoint_from_row`), strings as bytes."""

_INDEX_MASK = (1 << LEVEL_SHIFT) - 1


def epoch_seconds(values: Sequence[Any]) -> list[int]:
    """DateTime values as whole seconds since the epoch (aware datetimes or ints). A column
    of one repeated value (a batch's `logged_at`) is converted once."""
    if values and values[0] is values[-1] and values.count(values[0]) == len(values):
        first = values[0]
        return [first if isinstance(first, int) else int(first.timestamp())] * len(values)
    return [v if isinstance(v, int) else int(v.timestamp()) for v in values]


def entry_columns(columns: Mapping[str, Sequence[Any]]) -> list[Sequence[Any]]:
    """A batch's columns in ENTRY_COLUMNS order for one columnar INSERT. Time columns may
    hold time-zone-aware datetimes or epoch seconds; they are sent as epoch seconds, which is
    what DateTime stores and what clickhouse-driver passes through without converting each
    value between time zones."""
    return [
        epoch_seconds(columns[name]) if name in TIME_COLUMNS else columns[name]
        for name in ENTRY_COLUMNS
    ]


def node_columns(chain: int, keys: Sequence[int], hashes: Sequence[bytes]) -> list[list[Any]]:
    """(chain, node, hash) columns of tree nodes for one columnar INSERT."""
    return [[chain] * len(keys), list(keys), [h.hex() for h in hashes]]


def node_id(key: int) -> NodeId:
    """The (level, index) a stored node key names (`ledger.node_keys.node_key`)."""
    return key >> LEVEL_SHIFT, key & _INDEX_MASK


def node_index(key: int) -> int:
    return key & _INDEX_MASK


def stored_node_hash(stored_hex: str) -> bytes:
    """A stored node hash read as hex(hash): its 32 bytes, or the stored bytes themselves
    when they are not 64 hex digits (so they equal no hash)."""
    stored = bytes.fromhex(stored_hex)
    try:
        return bytes.fromhex(stored.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return stored


def checkpoint_row(cp: StoredCheckpoint, created_at: datetime) -> tuple[Any, ...]:
    """A checkpoint in CHECKPOINT_COLUMNS order; its origin is the note's first line."""
    origin = cp.note.split(b"\n", 1)[0].decode("utf-8", "replace")
    return (
        cp.chain,
        cp.size,
        cp.root.hex(),
        origin,
        cp.note,
        created_at,
        cp.source_cluster,
        cp.source_offset,
    )


def checkpoint_from_row(row: Sequence[Any]) -> StoredCheckpoint:
    """A checkpoint from CHECKPOINT_READ_COLUMNS read with strings as bytes."""
    chain, size, root, note, cluster, offset = row
    return StoredCheckpoint(
        chain, size, bytes.fromhex(root.decode()), note, cluster.decode(), offset
    )


def now_seconds() -> datetime:
    """Now, as a naive UTC DateTime value (whole seconds)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
