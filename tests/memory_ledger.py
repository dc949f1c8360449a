"""An in-memory ledger shaped like the ClickHouse store, for verification unit tests.

Built by the real `ChainWriter` (entry bytes, columns, tree nodes, signed checkpoints), so a
test tampers with it exactly as SQL would with the store: edit a row, drop one, add one.
Every read is recorded in `reads`, so a test can show what a verification did not read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec
from factories import incoming

from attestcore.records import ENTRY_COLUMNS, StoredAnchor, StoredCheckpoint
from forensics.verify import verify_ledger
from ledger.chain import ChainWriter, Incoming
from ledger.entry import decode_entry
from ledger.entry_filter import EntryFilter
from ledger.keys import signer_from_seed
from ledger.merkle import MerkleTree, NodeId, RootHash
from ledger.node_keys import LEVEL_SHIFT
from ledger.note import Checkpoint, sign_note

SIGNER = signer_from_seed("attestream.test/ledger", b"\x01" * 32)
STRANGER = signer_from_seed("attestream.test/ledger", b"\x02" * 32)
COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}
MASK = (1 << LEVEL_SHIFT) - 1


class MemoryLedger:
    """Rows shaped like the raw ClickHouse client returns them (strings as bytes)."""

    def __init__(self) -> None:
        self.rows: dict[int, list[list[Any]]] = {}
        self.cps: dict[int, list[StoredCheckpoint]] = {}
        self.anchor_list: list[StoredAnchor] = []
        self.node_rows: dict[int, list[tuple[int, bytes]]] = {}
        """Per chain, (level << 56 | index, hash) rows; duplicates allowed, as unmerged."""
        self.reads: list[tuple[Any, ...]] = []
        self.events: dict[str, bytes] = {}
        """Archived event bytes by `event_sha256` (`archived_event`)."""

    def chains(self) -> list[int]:
        return sorted(set(self.rows) | set(self.cps))

    def entry_rows(self, chain: int, start: int = 0, stop: int | None = None) -> list[Any]:
        self.reads.append(("entries", chain, start, stop))
        rows = sorted(self.rows.get(chain, []), key=lambda r: (r[COL["seq"]], r[COL["entry"]]))
        seqs = [r for r in rows if r[COL["seq"]] >= start]
        return [r for r in seqs if stop is None or r[COL["seq"]] < stop]

    def chain_extent(self, chain: int) -> int:
        self.reads.append(("extent", chain, None, None))
        seqs = [r[COL["seq"]] + 1 for r in self.rows.get(chain, [])]
        return max([*seqs, *(cp.size for cp in self.cps.get(chain, []))], default=0)

    def checkpoints(self, chain: int, latest_only: bool = False) -> list[StoredCheckpoint]:
        self.reads.append(("checkpoints", chain, None, None))
        return sorted(self.cps.get(chain, []), key=lambda c: c.size)

    def checkpoints_in(self, chain: int, first_size: int, last_size: int) -> list[StoredCheckpoint]:
        self.reads.append(("checkpoints", chain, first_size, last_size))
        cps = sorted(self.cps.get(chain, []), key=lambda c: c.size)
        return [cp for cp in cps if first_size <= cp.size <= last_size]

    def latest_checkpoint(self, chain: int) -> StoredCheckpoint | None:
        found = self.checkpoints(chain)
        return found[-1] if found else None

    def checkpoint_at(self, chain: int, size: int) -> list[StoredCheckpoint]:
        return self.checkpoints_in(chain, size, size)

    def entry_by_decision_id(self, decision_id: str) -> list[Any] | None:
        self.reads.append(("decision", None, None, None))
        rows = [
            r
            for rows in self.rows.values()
            for r in rows
            if r[COL["decision_id"]] == decision_id.encode()
        ]
        return min(rows, key=lambda r: (r[COL["chain"]], r[COL["seq"]]), default=None)

    def anchors(self) -> list[StoredAnchor]:
        return self.anchor_list

    def entries_matching(self, where: EntryFilter, limit: int) -> list[list[Any]]:
        """What the store's query selects, decided here from each entry's bytes."""
        rows = self._all_rows()
        return [r for r in rows if where.matches(decode_entry(r[COL["entry"]]).decision)][:limit]

    def entries_with_ids(self, ids: Sequence[str], limit: int) -> list[list[Any]]:
        wanted = {i.encode() for i in ids}
        rows = self._all_rows()
        named = [r for r in rows if wanted & {r[COL["decision_id"]], r[COL["event_id"]]}]
        return named[:limit]

    def archived_event(self, event_sha256: str) -> bytes | None:
        return self.events.get(event_sha256)

    def archived_events_by_digest(self, digests: Sequence[str]) -> dict[str, bytes]:
        self.reads.append(("archived_events_by_digest", len(digests)))
        return {d: self.events[d] for d in digests if d in self.events}

    def _all_rows(self) -> list[list[Any]]:
        rows = [r for chain_rows in self.rows.values() for r in chain_rows]
        return sorted(rows, key=lambda r: (r[COL["chain"]], r[COL["seq"]], r[COL["entry"]]))

    def nodes_in(
        self, chain: int, level: int, first: int, stop: int
    ) -> list[tuple[int, tuple[bytes, ...]]]:
        self.reads.append(("nodes", chain, level, first, stop))
        found: dict[int, set[bytes]] = {}
        for key, value in self.node_rows.get(chain, []):
            if key >> LEVEL_SHIFT == level and first <= key & MASK < stop:
                found.setdefault(key & MASK, set()).add(value)
        return [(index, tuple(sorted(found[index]))) for index in sorted(found)]

    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        wanted = set(ids)
        nodes = ((k >> LEVEL_SHIFT, k & MASK, h) for k, h in self.node_rows.get(chain, []))
        return {(lv, i): h for lv, i, h in nodes if (lv, i) in wanted}

    # --- tampering -------------------------------------------------------------------------
    def set_node(self, level: int, index: int, value: bytes, chain: int = 0) -> None:
        key = level << LEVEL_SHIFT | index
        self.node_rows[chain] = [(k, value if k == key else h) for k, h in self.node_rows[chain]]

    def drop_nodes(self, keep: Any, chain: int = 0) -> None:
        """Keep only the nodes (level, index) for which `keep(level, index)` is true."""
        rows = self.node_rows[chain]
        self.node_rows[chain] = [(k, h) for k, h in rows if keep(k >> LEVEL_SHIFT, k & MASK)]

    def row(self, seq: int, chain: int = 0) -> list[Any]:
        return next(r for r in self.rows[chain] if r[COL["seq"]] == seq)


def build(
    sizes: tuple[int, ...] = (4, 9),
    chain: int = 0,
    ledger: MemoryLedger | None = None,
    first_decision: int = 0,
    archive: bool = False,
) -> MemoryLedger:
    """One chain written by the real ChainWriter, one batch and checkpoint per size: entry
    `seq` logs decision `first_decision + seq`. With `ledger`, the chain is added to it; with
    `archive`, each decision logs the digest of its own event bytes (`event_bytes`), which
    the ledger archives."""
    ledger = ledger if ledger is not None else MemoryLedger()
    writer = ChainWriter(chain=chain, tree=MerkleTree(), prev=None)
    done = 0
    for size in sizes:
        batch = [incoming(first_decision + i, i) for i in range(done, size)]
        if archive:
            batch = [archived(ledger, item) for item in batch]
        result = writer.append(batch)
        done = size
        ledger.rows.setdefault(chain, []).extend(rows_of(result.entries))
        nodes = ledger.node_rows.setdefault(chain, [])
        nodes.extend(zip(result.node_keys, result.node_hashes, strict=True))
        ledger.cps.setdefault(chain, []).append(checkpoint(chain, size, result.root))
    return ledger


def event_bytes(event_id: str) -> bytes:
    """The bytes of a test event, as an event archive would keep them."""
    return b'{"event_id":"%s","amount":1.0}' % event_id.encode()


def archived(ledger: MemoryLedger, item: Incoming) -> Incoming:
    """`item` with the digest of its event's bytes, which `ledger` archives."""
    event = event_bytes(item.decision.event_id)
    digest = hashlib.sha256(event).hexdigest()
    ledger.events[digest] = event
    return Incoming(msgspec.structs.replace(item.decision, event_sha256=digest), item.source)


def rows_of(columns: dict[str, list[Any]]) -> list[list[Any]]:
    """ChainWriter's columns as raw-client rows (strings as bytes)."""
    rows = []
    for k in range(len(columns["seq"])):
        row = [columns[name][k] for name in ENTRY_COLUMNS]
        rows.append([v.encode() if isinstance(v, str) else v for v in row])
    return rows


def checkpoint(chain: int, size: int, root: bytes, signer: Any = SIGNER) -> StoredCheckpoint:
    body = Checkpoint(f"attestream.test/ledger/{chain}", size, RootHash(root)).body()
    return StoredCheckpoint(chain, size, root, sign_note(body, signer), "k1", size - 1)


def rehash(row: list[Any]) -> None:
    """Make a row's leaf_hash column agree with its (edited) bytes, as a careful forger would."""
    row[COL["leaf_hash"]] = hashlib.sha256(b"\x00" + row[COL["entry"]]).hexdigest().encode()


def kinds(ledger: Any, **kw: Any) -> set[tuple[str, int | None, int | None]]:
    report = verify_ledger(ledger, [SIGNER.verifier()], **kw)
    return {(f.kind, f.chain, f.seq) for f in report.failures}
