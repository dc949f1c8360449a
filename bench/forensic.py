"""(i-l) The investigators' tools on a ledger of millions of entries, against raw reads.

Each tool is the function `attestream forensic ...` and `attestream serve` call, on the
benchmark's forensic ledger (bench/forensic_ledger.py); each raw ceiling issues the same
queries (bench/raw_table.py: same SQL, same parameters) straight through clickhouse-driver
and does nothing with the answers, so the ratio is what the tool adds to ClickHouse's work.

(i) `forensics.search.search` of one page (50) by customer, terminal or EPC, over many
    different entities (a few hundred a run); raw: the index range and the entries it names.
(j) `forensics.timeline.timeline` of an entity with 500 events spread over the whole ledger;
    raw: its index range, its 500 entries, its 500 archived events.
(k) a case bundle of 100 of those decisions, selected by id, written as `forensic bundle`
    writes it (`export_case_bundle`: built, then verified before it is handed out; encoded;
    the file written); raw: the same entries by id, the nodes of their proofs, their events
    and the latest checkpoint, one query each.
(l) `forensic verify-bundle` of that file (read, parsed, `verify_case_bundle`); raw: the
    file read and parsed as plain JSON, and the SHA-256 of every hash the verifier computes
    (each entry's leaf, each event, one node hash per proof step).
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from anchoring.store import AnchoredStore
from bench.forensic_ledger import (
    BATCH,
    CHOSEN,
    CHOSEN_EVENTS,
    ForensicLedger,
    batch_records,
)
from bench.raw_table import RawReads
from forensics.case_bundle import (
    Exporter,
    Selection,
    dump_case_bundle,
    load_case_bundle,
)
from forensics.search import SearchCriteria, search
from forensics.timeline import timeline
from forensics.verify_bundle import export_case_bundle, verify_case_bundle
from ledger.archive import EntityKind, decision_entities
from ledger.archive_store import ArchiveStore
from ledger.entry import decode_decision
from ledger.merkle import inclusion_proof_ids
from ledger.node_keys import node_key

SEARCH_LIMIT = 50
"""One page, as the API and the investigators' page ask for by default."""
SEARCH_KINDS = (EntityKind.CUSTOMER, EntityKind.TERMINAL, EntityKind.EPC)
BUNDLE_DECISIONS = 100
SAMPLE_BATCHES = 3
"""Batches of the ledger re-generated to draw the searched entities from (all exist)."""


@dataclass
class ForensicRun:
    """One run's timings, in milliseconds (tool and raw alternate, entity by entity)."""

    search_ms: list[float] = field(default_factory=list)
    search_raw_ms: list[float] = field(default_factory=list)
    search_hits: list[int] = field(default_factory=list)
    timeline_ms: list[float] = field(default_factory=list)
    timeline_raw_ms: list[float] = field(default_factory=list)
    bundle_ms: list[float] = field(default_factory=list)
    bundle_raw_ms: list[float] = field(default_factory=list)
    verify_ms: list[float] = field(default_factory=list)
    verify_raw_ms: list[float] = field(default_factory=list)
    bundle_bytes: int = 0
    bundle_nodes: int = 0


def sample_entities(ledger: ForensicLedger, seed: int, count: int) -> list[tuple[EntityKind, str]]:
    """`count` distinct entities of the ledger (customers, terminals, EPCs in equal parts),
    read from decisions regenerated exactly as the builder wrote them."""
    rng = random.Random(seed)
    starts = sorted(rng.randrange(0, ledger.entries, BATCH) for _ in range(SAMPLE_BATCHES))
    pools: dict[EntityKind, list[str]] = {kind: [] for kind in SEARCH_KINDS}
    for start in starts:
        stop = min(start + BATCH, ledger.entries)
        for item in batch_records(start, stop, ledger.entries, ledger.seed):
            decision = decode_decision(item.value())
            for kind, value in decision_entities(decision):
                if kind in pools:
                    pools[kind].append(value)
    chosen: list[tuple[EntityKind, str]] = []
    for kind in SEARCH_KINDS:
        values = sorted(set(pools[kind]))
        rng.shuffle(values)
        chosen += [(kind, v) for v in values[: count // len(SEARCH_KINDS)]]
    rng.shuffle(chosen)
    return chosen


def measure_forensics(
    ledger: ForensicLedger, entities: list[tuple[EntityKind, str]], repeats: int
) -> ForensicRun:
    """One run: every entity searched once; each chosen entity's timeline `repeats` times;
    the bundle written and verified `repeats` times; each against its raw reads."""
    run = ForensicRun()
    store = AnchoredStore(ledger.url)
    raw = RawReads(ledger.url)
    archive = ArchiveStore(store)
    try:
        for n, (kind, value) in enumerate(entities):
            criteria = SearchCriteria(((kind, value),))
            tool = partial(search, archive, criteria, SEARCH_LIMIT)
            (ms, page), (raw_ms, _) = _pair(tool, partial(_raw_search, raw, kind, value), n)
            run.search_ms.append(ms)
            run.search_raw_ms.append(raw_ms)
            run.search_hits.append(len(page.results))
        for n in range(repeats * len(CHOSEN)):
            kind, value = CHOSEN[n % len(CHOSEN)]
            line_of = partial(timeline, archive, kind, value)
            (ms, line), (raw_ms, _) = _pair(line_of, partial(_raw_timeline, raw, kind, value), n)
            if len(line.steps) != CHOSEN_EVENTS:
                raise AssertionError(f"timeline of {value}: {len(line.steps)} events")
            run.timeline_ms.append(ms)
            run.timeline_raw_ms.append(raw_ms)
        ids = bundle_ids(archive)
        with tempfile.TemporaryDirectory(prefix="attestream-bench-bundle-") as tmp:
            path = Path(tmp) / "case.json"
            for _ in range(repeats):
                _measure_bundle(run, ledger, store, raw, ids, path)
    finally:
        store.close()
        raw.close()
    return run


def bundle_ids(archive: ArchiveStore) -> list[str]:
    """The decision ids of the first BUNDLE_DECISIONS decisions on a chosen customer: spread
    over the whole ledger, so their proofs share few nodes."""
    kind, value = CHOSEN[1]
    page = archive.search_entity(kind, value, limit=BUNDLE_DECISIONS)
    return [hit.decision_id for hit in page.hits]


def _measure_bundle(
    run: ForensicRun,
    ledger: ForensicLedger,
    store: AnchoredStore,
    raw: RawReads,
    ids: list[str],
    path: Path,
) -> None:
    verifiers = [ledger.verifier]

    def write() -> None:
        exporter = Exporter("bench", datetime.now(UTC).replace(microsecond=0), "bench")
        case = export_case_bundle(store, Selection(ids=ids), exporter, verifiers)
        path.write_bytes(dump_case_bundle(case))

    def verify() -> bool:
        report = verify_case_bundle(load_case_bundle(path.read_bytes()), verifiers)
        return report.ok and report.entries == len(ids)

    gc.collect()
    run.bundle_ms.append(_timed(write)[0])
    content = path.read_bytes()
    case = load_case_bundle(content)
    run.bundle_bytes = len(content)
    run.bundle_nodes = case.manifest.counts.nodes
    size = case.chains[0].tree_size
    seqs = [e.seq for e in case.entries]
    digests = [e.event_sha256 for e in case.events]
    run.bundle_raw_ms.append(_timed(lambda: _raw_bundle(raw, ids, seqs, size, digests))[0])
    gc.collect()
    ms, ok = _timed(verify)
    if not ok:
        raise AssertionError("the benchmark's case bundle does not verify")
    run.verify_ms.append(ms)
    run.verify_raw_ms.append(_timed(lambda: _raw_verify(path))[0])


# --- the raw ceilings ------------------------------------------------------------------------


def _raw_search(raw: RawReads, kind: EntityKind, value: str) -> int:
    """The search's first read: the index range of one page (and the row telling whether
    there are more), and the entries it names."""
    rows = raw.index_range(kind.value, value, SEARCH_LIMIT + 1)
    seqs = [row[2] for row in rows[:SEARCH_LIMIT]]
    return len(raw.entries_at(0, seqs)) if seqs else 0


def _raw_timeline(raw: RawReads, kind: EntityKind, value: str) -> int:
    """The timeline's index range, its entries, and the archived events they name (each
    digest cut out of the entry's bytes, not decoded)."""
    rows = raw.index_range(kind.value, value, 1001)
    entries = raw.entries_at(0, [row[2] for row in rows])
    digests = [_event_digest(entry) for _, entry in entries]
    return len(raw.events_by_digest(sorted(set(digests))))


def _event_digest(entry: bytes) -> str:
    """A decision's `event_sha256` read from the entry bytes by position, without parsing."""
    at = entry.index(b'"event_sha256":"') + 16
    return entry[at : at + 64].decode()


def _raw_bundle(
    raw: RawReads, ids: list[str], seqs: list[int], size: int, digests: list[str]
) -> int:
    """The bundle's rows and nodes read bare: its entries by id, the latest checkpoint, the
    nodes of every proof (each once), its archived events."""
    rows = raw.entries_with_ids(ids, len(ids) + 1)
    raw.latest_checkpoint(0)
    keys = sorted({node_key(*n) for seq in seqs for n in inclusion_proof_ids(seq, size)})
    nodes = raw.nodes_by_key(0, keys)
    events = raw.events_by_digest(digests)
    return len(rows) + len(nodes) + len(events)


def _raw_verify(path: Path) -> int:
    """The file read and parsed as plain JSON; every entry and event hashed, and one node
    hash per proof step (a 65-byte input, as `ledger.merkle` hashes a node)."""
    data: dict[str, Any] = json.loads(path.read_bytes())
    sha256 = hashlib.sha256
    hashed = 0
    steps = 0
    size = data["chains"][0]["tree_size"]
    for item in data["entries"]:
        sha256(b"\x00" + base64.b64decode(item["entry"])).digest()
        steps += len(inclusion_proof_ids(item["seq"], size))
        hashed += 1
    for item in data["events"]:
        sha256(base64.b64decode(item["event"])).digest()
    node = b"\x01" + bytes(64)
    for _ in range(steps):
        sha256(node).digest()
    return hashed


def _pair(
    tool: Callable[[], Any], raw: Callable[[], Any], n: int
) -> tuple[tuple[float, Any], tuple[float, Any]]:
    """The tool and its raw reads timed one after the other, the raw reads first every
    other time, so that neither always finds the other's data in the caches."""
    if n % 2:
        raw_timed = _timed(raw)
        return _timed(tool), raw_timed
    tool_timed = _timed(tool)
    return tool_timed, _timed(raw)


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result
