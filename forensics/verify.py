"""Verify a whole ledger by recomputing everything from the stored bytes.

For each chain: every entry's leaf hash, its link to the previous entry, its sequence
number, the agreement of its searchable columns with its bytes, the Merkle root at every
checkpoint size, and every checkpoint's signature. For each anchor: its root recomputed from
the checkpoint notes it names and, when a chain reader is given, the transaction's calldata,
status and sender on the EVM chain. The first fault in each chain is named with its
(chain, seq) and kind; the walk then continues so one report lists every kind found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from anchoring.calldata import anchor_root, decode_calldata
from attestream.errors import MalformedError, SignatureError
from ledger.entry import Entry, decode_entry
from ledger.keys import NoteVerifier
from ledger.merkle import MerkleTree
from ledger.note import Checkpoint, open_note
from ledger.store import ENTRY_COLUMNS, StoredAnchor, StoredCheckpoint

COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}


@dataclass(frozen=True)
class Failure:
    kind: str
    chain: int | None
    seq: int | None
    detail: str


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    anchors: int = 0
    chains: list[int] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "anchors": self.anchors,
            "chains": self.chains,
            "failures": [asdict(f) for f in self.failures],
        }


class LedgerSource(Protocol):
    """What verification reads: the ClickHouse store, or a fixture in tests."""

    def chains(self) -> list[int]: ...
    def entry_rows(self, chain: int, start: int = 0, stop: int | None = None) -> Iterable[Any]: ...
    def checkpoints(self, chain: int, latest_only: bool = False) -> list[StoredCheckpoint]: ...
    def anchors(self) -> list[StoredAnchor]: ...


@dataclass(frozen=True)
class OnChainTx:
    input: bytes
    sender: str
    status: int
    block_number: int
    block_hash: str


class ChainReader(Protocol):
    """Looks up an anchor transaction on the EVM chain (None when it is not there)."""

    def transaction(self, tx_hash: str) -> OnChainTx | None: ...


def verify_ledger(
    source: LedgerSource,
    verifiers: Sequence[NoteVerifier],
    chain_reader: ChainReader | None = None,
) -> Report:
    report = Report(chains=source.chains())
    notes: dict[tuple[int, int], bytes] = {}
    for chain in report.chains:
        checkpoints = source.checkpoints(chain)
        report.checkpoints += len(checkpoints)
        expected_roots = _check_checkpoints(chain, checkpoints, verifiers, report)
        notes.update({(cp.chain, cp.size): cp.note for cp in checkpoints})
        report.entries += _walk_chain(chain, source.entry_rows(chain), expected_roots, report)
    anchors = source.anchors()
    report.anchors = len(anchors)
    for anchor in anchors:
        _check_anchor(anchor, notes, chain_reader, report)
    return report


def _check_checkpoints(
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
            report.failures.append(Failure("bad_signature", chain, cp.size, str(exc)))
            continue
        except MalformedError as exc:
            report.failures.append(Failure("bad_checkpoint", chain, cp.size, str(exc)))
            continue
        if parsed.size != cp.size or parsed.root != cp.root:
            report.failures.append(Failure(
                "bad_checkpoint", chain, cp.size,
                f"stored columns (size {cp.size}, root {cp.root.hex()}) differ from the signed"
                f" note (size {parsed.size}, root {parsed.root.hex()})",
            ))  # fmt: skip
        if parsed.size in roots and roots[parsed.size] != parsed.root:
            report.failures.append(Failure(
                "fork", chain, parsed.size, "two signed checkpoints of one size, different roots"
            ))  # fmt: skip
        roots[parsed.size] = parsed.root
    return roots


def _walk_chain(
    chain: int, rows: Iterable[Any], expected_roots: dict[int, bytes], report: Report
) -> int:
    tree = MerkleTree()
    prev = bytes(32)
    seen_ids: set[str] = set()
    count = 0
    for row in rows:
        count += 1
        seq = row[COL["seq"]]
        if seq < tree.size:
            report.failures.append(Failure("fork", chain, seq, "two entries claim this seq"))
            continue
        if seq > tree.size:
            report.failures.append(
                Failure("gap", chain, tree.size, f"entries {tree.size}..{seq - 1} are missing")
            )
            return count
        data: bytes = row[COL["entry"]]
        leaf = hashlib.sha256(b"\x00" + data).digest()
        _check_entry(chain, seq, row, data, leaf, prev, seen_ids, report)
        tree.extend_leaf_hashes([leaf])
        prev = leaf
        root = expected_roots.get(tree.size)
        if root is not None and tree.root() != root:
            report.failures.append(Failure(
                "root_mismatch", chain, seq,
                f"tree of size {tree.size} has root {tree.root().hex()}, its signed checkpoint"
                f" says {root.hex()}",
            ))  # fmt: skip
    beyond = [size for size in expected_roots if size > tree.size]
    if beyond:
        report.failures.append(Failure(
            "truncated", chain, tree.size,
            f"a signed checkpoint covers {max(beyond)} entries, only {tree.size} remain",
        ))  # fmt: skip
    return count


def _check_entry(
    chain: int, seq: int, row: Sequence[Any], data: bytes, leaf: bytes, prev: bytes,
    seen_ids: set[str], report: Report,
) -> None:  # fmt: skip
    def fail(kind: str, detail: str) -> None:
        report.failures.append(Failure(kind, chain, seq, detail))

    if row[COL["leaf_hash"]].decode() != leaf.hex():
        fail("bad_leaf", f"stored leaf hash {row[COL['leaf_hash']].decode()} != {leaf.hex()}")
    try:
        entry = decode_entry(data)
    except MalformedError as exc:
        fail("bad_entry", str(exc))
        return
    if entry.chain != chain or entry.seq != seq:
        fail("bad_entry", f"entry bytes claim chain {entry.chain} seq {entry.seq}")
    if entry.prev != prev.hex():
        fail("broken_link", f"prev {entry.prev} != hash of entry {seq - 1} {prev.hex()}")
    mismatched = _column_mismatches(row, entry)
    if mismatched:
        fail("column_mismatch", "columns differ from the entry bytes: " + ", ".join(mismatched))
    if entry.decision.decision_id in seen_ids:
        fail("duplicate_decision", f"decision {entry.decision.decision_id} logged twice")
    seen_ids.add(entry.decision.decision_id)


def _column_mismatches(row: Sequence[Any], entry: Entry) -> list[str]:
    d = entry.decision

    def text(name: str) -> str:
        value = row[COL[name]]
        return value.decode() if isinstance(value, bytes) else str(value)

    expected = {
        "decision_id": d.decision_id, "event_id": d.event_id, "entity_id": d.entity_id,
        "detector": d.detector.value, "outcome": d.outcome, "model_sha256": d.model_sha256,
        "prev": entry.prev, "source_cluster": entry.source.cluster,
        "source_topic": entry.source.topic,
    }  # fmt: skip
    wrong = [name for name, value in expected.items() if text(name) != value]
    if abs(row[COL["score"]] - d.score) > 1e-12:
        wrong.append("score")
    if (row[COL["source_partition"]], row[COL["source_offset"]]) != (
        entry.source.partition, entry.source.offset
    ):
        wrong.append("source_offset")
    if int(row[COL["event_time"]].timestamp()) != int(d.event_time.timestamp()):
        wrong.append("event_time")
    return wrong


def _check_anchor(
    anchor: StoredAnchor,
    notes: dict[tuple[int, int], bytes],
    chain_reader: ChainReader | None,
    report: Report,
) -> None:
    def fail(kind: str, detail: str, chain: int | None = None, seq: int | None = None) -> None:
        report.failures.append(Failure(kind, chain, seq, f"anchor {anchor.tx_hash}: {detail}"))

    missing = [key for key in anchor.checkpoints if key not in notes]
    if missing:
        chain, size = missing[0]
        fail("anchor_mismatch", f"names checkpoint size {size} that the store lacks", chain, size)
        return
    root = anchor_root([notes[key] for key in anchor.checkpoints])
    if root != anchor.root:
        fail("anchor_mismatch", f"root {anchor.root.hex()} != recomputed {root.hex()}")
    if chain_reader is None:
        return
    tx = chain_reader.transaction(anchor.tx_hash)
    if tx is None:
        fail("unanchored", "transaction not found on the chain")
        return
    try:
        on_chain = decode_calldata(tx.input)
    except MalformedError as exc:
        fail("anchor_mismatch", str(exc))
        return
    if on_chain != root:
        fail("anchor_mismatch", f"calldata root {on_chain.hex()} != recomputed {root.hex()}")
    if tx.status != 1:
        fail("anchor_mismatch", "transaction reverted")
    if tx.sender.lower() != anchor.sender.lower():
        fail("anchor_mismatch", f"sent by {tx.sender}, recorded sender {anchor.sender}")
    if tx.block_hash.lower() != anchor.block_hash.lower():
        fail("anchor_mismatch", f"now in block {tx.block_hash}, recorded {anchor.block_hash}")
