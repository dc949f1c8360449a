"""One chain's writer state: sequence, hash link, Merkle tree and duplicate window. Pure.

`ChainWriter.append` turns decisions into entries and returns everything the store must make
durable (entry rows, newly completed tree nodes, the new root); it performs no I/O, so the
order of durability lives in one place, the sequencer.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.entry import ENTRY_VERSION, GENESIS_PREV, Entry, EntrySource, encode_entry
from ledger.merkle import MerkleTree
from ledger.store import ENTRY_COLUMNS, node_rows
from streams.schemas import Decision

DEDUP_WINDOW = 200_000
"""Decision ids remembered per chain. A detector replays at most what it processed since its
last offset commit (seconds of traffic), so this window covers every realistic replay; an
older duplicate would still be reported by verification."""


@dataclass(frozen=True)
class Incoming:
    """A decision read from the decisions topic, with where it was read."""

    decision: Decision
    source: EntrySource


@dataclass
class AppendResult:
    """What one batch adds to a chain, ready for the store."""

    entries: dict[str, list[Any]]
    node_keys: list[int]
    node_hashes: list[bytes]
    size: int
    root: bytes
    appended: int
    duplicates: int
    last_source: EntrySource | None


@dataclass
class ChainWriter:
    chain: int
    tree: MerkleTree
    prev: bytes | None
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    @property
    def size(self) -> int:
        return self.tree.size

    def remember(self, decision_ids: Sequence[str]) -> None:
        for decision_id in decision_ids:
            self.seen[decision_id] = None
        while len(self.seen) > DEDUP_WINDOW:
            self.seen.popitem(last=False)

    def append(self, batch: Sequence[Incoming]) -> AppendResult:
        """Sequence a batch: assign seq, link to prev, hash, extend the tree."""
        columns: dict[str, list[Any]] = {name: [] for name in ENTRY_COLUMNS}
        leaves: list[bytes] = []
        duplicates = 0
        logged_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        prev = self.prev
        seq = self.tree.size
        last_source = None
        for item in batch:
            last_source = item.source
            decision = item.decision
            if decision.decision_id in self.seen:
                duplicates += 1
                continue
            self.seen[decision.decision_id] = None
            entry = Entry(
                v=ENTRY_VERSION,
                chain=self.chain,
                seq=seq,
                prev=prev.hex() if prev is not None else GENESIS_PREV,
                source=item.source,
                decision=decision,
            )
            data = encode_entry(entry)
            leaf = hashlib.sha256(b"\x00" + data).digest()
            _add_row(columns, entry, data, leaf, logged_at)
            leaves.append(leaf)
            prev = leaf
            seq += 1
        node_keys, node_hashes = node_rows(self.tree.extend_leaf_hashes(leaves))
        self.prev = prev
        self.remember(())
        return AppendResult(
            entries=columns,
            node_keys=node_keys,
            node_hashes=node_hashes,
            size=self.tree.size,
            root=self.tree.root(),
            appended=len(leaves),
            duplicates=duplicates,
            last_source=last_source,
        )


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def _add_row(
    columns: dict[str, list[Any]], entry: Entry, data: bytes, leaf: bytes, logged_at: datetime
) -> None:
    d = entry.decision
    values = (
        entry.chain, entry.seq, leaf.hex(), entry.prev, data, d.decision_id, d.event_id,
        d.entity_id, d.detector.value, d.outcome, d.score, d.model_sha256,
        _naive_utc(d.event_time), _naive_utc(d.decided_at), logged_at,
        entry.source.cluster, entry.source.topic, entry.source.partition, entry.source.offset,
    )  # fmt: skip
    for name, value in zip(ENTRY_COLUMNS, values, strict=True):
        columns[name].append(value)
