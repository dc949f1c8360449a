"""One chain: its checkpoints' signatures, and a walk over its entries in seq order.

The walk recomputes every entry's leaf hash from its stored bytes, checks the `prev` link,
the sequence number and the searchable columns, extends the tree, compares the tree nodes it
completes with the stored ones, and compares the root at every signed checkpoint size. It
starts from the empty tree (a whole chain) or from a trusted compact range (a range).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from attestcore.errors import MalformedError, SignatureError
from attestcore.records import ENTRY_COLUMNS, StoredCheckpoint
from forensics.report import FaultKind, Report
from forensics.verify_archive import RowCheck
from forensics.verify_nodes import StoredNodes
from ledger.access_entry import (
    ACCESS_CHAIN,
    AccessEntry,
    access_record_columns,
    decode_access_entry,
)
from ledger.entry import Entry, decode_entry
from ledger.keys import NoteVerifier
from ledger.merkle import MerkleTree
from ledger.note import Checkpoint, open_note

COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}
K = FaultKind


def check_checkpoints(
    chain: int,
    checkpoints: Sequence[StoredCheckpoint],
    verifiers: Sequence[NoteVerifier],
    report: Report,
) -> dict[int, bytes]:
    """Signature and body of every checkpoint; returns size -> root the entries must give."""
    roots: dict[int, bytes] = {}
    for cp in checkpoints:
        try:
            body, _ = open_note(cp.note, verifiers)
            parsed = Checkpoint.parse(body)
        except SignatureError as exc:
            report.fail(K.BAD_SIGNATURE, chain, cp.size, str(exc))
            continue
        except MalformedError as exc:
            report.fail(K.BAD_CHECKPOINT, chain, cp.size, str(exc))
            continue
        if parsed.size != cp.size or parsed.root != cp.root:
            report.fail(
                K.BAD_CHECKPOINT,
                chain,
                cp.size,
                f"stored columns (size {cp.size}, root {cp.root.hex()}) differ from the signed"
                f" note (size {parsed.size}, root {parsed.root.hex()})",
            )
        if parsed.size in roots and roots[parsed.size] != parsed.root:
            report.fail(
                K.FORK, chain, parsed.size, "two signed checkpoints of one size, different roots"
            )
        roots[parsed.size] = parsed.root
    return roots


class ChainWalk:
    """Walks one chain's entries in seq order from `tree` (whose last leaf hash is `prev`)."""

    def __init__(
        self,
        chain: int,
        report: Report,
        roots: dict[int, bytes],
        tree: MerkleTree | None = None,
        prev: bytes = bytes(32),
        nodes: StoredNodes | None = None,
        contexts: RowCheck | None = None,
    ) -> None:
        self.chain = chain
        self.report = report
        self.roots = roots
        self.tree = tree if tree is not None else MerkleTree()
        self.prev = prev
        self.nodes = nodes
        self.contexts = contexts
        self.seen_ids: set[str] = set()
        self.count = 0
        self.gap = False
        """True when the walk stopped at a missing entry (nothing after it was checked)."""

    @property
    def size(self) -> int:
        return self.tree.size

    def run(self, rows: Iterable[Any]) -> None:
        for row in rows:
            self.count += 1
            seq = row[COL["seq"]]
            if seq < self.size:
                self.report.fail(K.FORK, self.chain, seq, "two entries claim this seq")
                continue
            if seq > self.size:
                self.report.fail(
                    K.GAP, self.chain, self.size, f"entries {self.size}..{seq - 1} are missing"
                )
                self.gap = True
                return
            self._append(seq, row)

    def _append(self, seq: int, row: Sequence[Any]) -> None:
        data: bytes = row[COL["entry"]]
        leaf = hashlib.sha256(b"\x00" + data).digest()
        column_leaf = _text(row[COL["leaf_hash"]])
        entry = check_entry(self.chain, seq, row, data, leaf, self.prev, self.seen_ids, self.report)
        if self.contexts is not None:
            self.contexts.check(seq, entry)
        completed = self.tree.append_leaf_hash(leaf)
        if self.nodes is not None:
            self.nodes.check(completed, column_leaf)
        self.prev = leaf
        root = self.roots.get(self.size)
        if root is not None and self.tree.root() != root:
            self.report.fail(
                K.ROOT_MISMATCH,
                self.chain,
                seq,
                f"tree of size {self.size} has root {self.tree.root().hex()}, its signed"
                f" checkpoint says {root.hex()}",
            )


def check_entry(
    chain: int,
    seq: int,
    row: Sequence[Any],
    data: bytes,
    leaf: bytes,
    prev: bytes,
    seen_ids: set[str],
    report: Report,
) -> Entry | None:
    """Check one entry row; its decoded entry, or None when its bytes do not parse."""

    def fail(kind: FaultKind, detail: str) -> None:
        report.fail(kind, chain, seq, detail)

    column_leaf = _text(row[COL["leaf_hash"]])
    if column_leaf != leaf.hex():
        fail(K.BAD_LEAF, f"stored leaf hash {column_leaf} != {leaf.hex()}")
    if chain == ACCESS_CHAIN:
        _check_access_entry(chain, seq, row, data, prev, seen_ids, fail)
        return None
    try:
        entry = decode_entry(data)
    except MalformedError as exc:
        fail(K.BAD_ENTRY, str(exc))
        return None
    if entry.chain != chain or entry.seq != seq:
        fail(K.BAD_ENTRY, f"entry bytes claim chain {entry.chain} seq {entry.seq}")
    if entry.prev != prev.hex():
        fail(K.BROKEN_LINK, f"prev {entry.prev} != hash of entry {seq - 1} {prev.hex()}")
    mismatched = _column_mismatches(row, entry)
    if mismatched:
        fail(K.COLUMN_MISMATCH, "columns differ from the entry bytes: " + ", ".join(mismatched))
    if entry.decision.decision_id in seen_ids:
        fail(K.DUPLICATE_DECISION, f"decision {entry.decision.decision_id} logged twice")
    seen_ids.add(entry.decision.decision_id)
    return entry


def _check_access_entry(
    chain: int,
    seq: int,
    row: Sequence[Any],
    data: bytes,
    prev: bytes,
    seen_ids: set[str],
    fail: Callable[[FaultKind, str], None],
) -> None:
    """`check_entry` for the access chain, whose entries are access records
    (ledger/access_entry.py): the same position, link and column checks."""
    try:
        entry = decode_access_entry(data)
    except MalformedError as exc:
        fail(K.BAD_ENTRY, str(exc))
        return
    if entry.chain != chain or entry.seq != seq:
        fail(K.BAD_ENTRY, f"entry bytes claim chain {entry.chain} seq {entry.seq}")
    if entry.prev != prev.hex():
        fail(K.BROKEN_LINK, f"prev {entry.prev} != hash of entry {seq - 1} {prev.hex()}")
    mismatched = _access_column_mismatches(row, entry)
    if mismatched:
        fail(K.COLUMN_MISMATCH, "columns differ from the entry bytes: " + ", ".join(mismatched))
    request_id = entry.access.request_id
    if request_id in seen_ids:
        fail(K.DUPLICATE_DECISION, f"access record {request_id} logged twice")
    seen_ids.add(request_id)


def _access_column_mismatches(row: Sequence[Any], entry: AccessEntry) -> list[str]:
    expected = {**access_record_columns(entry.access), "prev": entry.prev}
    wrong = []
    for name, value in expected.items():
        stored = row[COL[name]]
        if name in ("event_time", "decided_at"):
            same = _epoch(stored) == int(value.timestamp())
        elif isinstance(value, str):
            same = _text(stored) == value
        else:
            same = stored == value
        if not same:
            wrong.append(name)
    return wrong


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _epoch(value: Any) -> int:
    return value if isinstance(value, int) else int(value.timestamp())


def _column_mismatches(row: Sequence[Any], entry: Entry) -> list[str]:
    d = entry.decision
    expected = {
        "decision_id": d.decision_id,
        "event_id": d.event_id,
        "entity_id": d.entity_id,
        "detector": d.detector.value,
        "outcome": d.outcome,
        "model_sha256": d.model_sha256,
        "prev": entry.prev,
        "source_cluster": entry.source.cluster,
        "source_topic": entry.source.topic,
    }
    wrong = [name for name, value in expected.items() if _text(row[COL[name]]) != value]
    if abs(row[COL["score"]] - d.score) > 1e-12:
        wrong.append("score")
    if (row[COL["source_partition"]], row[COL["source_offset"]]) != (
        entry.source.partition,
        entry.source.offset,
    ):
        wrong.append("source_offset")
    for name, moment in (("event_time", d.event_time), ("decided_at", d.decided_at)):
        if _epoch(row[COL[name]]) != int(moment.timestamp()):
            wrong.append(name)
    return wrong
