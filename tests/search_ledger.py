"""An in-memory ledger with the entity index and event archive, shaped like
`ledger.archive_store.ArchiveStore`, for the search, timeline and id-resolution unit tests.

Built by the real `ChainWriter` and `archive_batch`, so entries, index rows and archived
events are exactly what the sequencer writes. Index reads follow the ClickHouse query
(whole-second event times, (event_time, chain, seq) order, `limit` and `after`); `calls`
records which reads a search made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from attestcore.records import ENTRY_COLUMNS
from attestcore.schemas import (
    BizStep,
    Channel,
    Decision,
    Detector,
    PaymentContext,
    Reason,
    ScanContext,
    SourceRef,
    decision_id,
)
from ledger.archive import EntityHit, EntityKind, EntityPage, TimelineRow, archive_batch
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource, decode_entry
from ledger.entry_filter import EntryFilter
from ledger.merkle import MerkleTree

START = datetime(2025, 3, 3, tzinfo=UTC)
MODEL = "ab" * 32
OTHER_MODEL = "ef" * 32
COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}
OUTCOMES = {
    Detector.FRAUD: ("approve", "review", "block"),
    Detector.AUTHENTICITY: ("authentic", "suspect", "counterfeit"),
}


def decision_on(
    event_id: str,
    at: datetime,
    context: PaymentContext | ScanContext,
    score: float,
    event: bytes,
    detector: Detector = Detector.FRAUD,
    model: str = MODEL,
    offset: int = 0,
) -> Decision:
    outcomes = OUTCOMES[detector]
    outcome = outcomes[2] if score >= 0.9 else outcomes[1] if score >= 0.6 else outcomes[0]
    return Decision(
        decision_id=decision_id(event_id, detector, model),
        event_id=event_id,
        event_sha256=hashlib.sha256(event).hexdigest(),
        source=SourceRef(topic="attestream.events", partition=0, offset=offset),
        entity_id=context.customer_id if isinstance(context, PaymentContext) else context.epc,
        detector=detector,
        model_id="test-model",
        model_sha256=model,
        features={"x": score},
        score=score,
        outcome=outcome,
        reasons=[Reason(feature="x", contribution=score), Reason(feature="y", contribution=-0.1)],
        event_time=at,
        decided_at=at + timedelta(milliseconds=5),
        context=context,
    )


def payment(
    i: int,
    customer: str,
    terminal: str,
    score: float,
    minutes: float = 0.0,
    lat: float = 48.0,
    lon: float = 11.0,
) -> tuple[Decision, bytes]:
    """Payment number i (at START + i minutes + `minutes`) and its event's bytes."""
    event_id = f"tx-{i}"
    at = START + timedelta(minutes=i + minutes)
    event = json.dumps(
        {
            "event_id": event_id,
            "customer_id": customer,
            "terminal_id": terminal,
            "lat": lat,
            "lon": lon,
        }
    ).encode()
    context = PaymentContext(
        customer_id=customer,
        terminal_id=terminal,
        amount=10.0 + i,
        currency="EUR",
        channel=Channel.CARD_PRESENT,
        mcc="5411",
        country="DE",
    )
    return decision_on(event_id, at, context, score, event, offset=i), event


def scan(
    i: int,
    epc: str,
    at: datetime,
    lat: float,
    lon: float,
    location: str,
    step: BizStep = BizStep.RECEIVING,
    score: float = 0.1,
) -> tuple[Decision, bytes]:
    event_id = f"sc-{i}"
    event = json.dumps({"event_id": event_id, "epc": epc, "lat": lat, "lon": lon}).encode()
    context = ScanContext(
        epc=epc, gtin=None, biz_step=step, biz_location=location, read_point=f"{location}:door"
    )
    return decision_on(event_id, at, context, score, event, Detector.AUTHENTICITY, offset=i), event


class SearchLedger:
    """Entries, index rows and archived events of decisions logged in one chain."""

    def __init__(self, chain: int = 0) -> None:
        self.chain = chain
        self.writer = ChainWriter(chain=chain, tree=MerkleTree(), prev=None)
        self.entries: dict[tuple[int, int], bytes] = {}
        self.index: list[tuple[str, str, int, int, int, str, str, str]] = []
        self.events: dict[str, bytes] = {}
        self.steps: dict[tuple[str, str, int, int], bytes] = {}
        """Each index row's timeline copy, by (entity kind, entity value, chain, seq)."""
        self.calls: list[str] = []

    def log(self, decisions: Sequence[tuple[Decision, bytes | None]]) -> None:
        first = len(self.entries)
        items = [
            Incoming(
                d, EntrySource(cluster="k1", topic="decisions", partition=0, offset=first + i), e
            )
            for i, (d, e) in enumerate(decisions)
        ]
        written = self.writer.append(items).entries
        for seq, entry in zip(written["seq"], written["entry"], strict=True):
            self.entries[(self.chain, int(seq))] = bytes(entry)
        batch = archive_batch(self.chain, first, items)
        rows = zip(
            *(
                batch.index[n]
                for n in (
                    "entity_kind",
                    "entity_value",
                    "event_time",
                    "chain",
                    "seq",
                    "decision_id",
                    "detector",
                    "outcome",
                    "timeline_step",
                )
            ),
            strict=True,
        )
        for kind, value, at, chain, seq, did, detector, outcome, step in rows:
            self.index.append(
                (kind, value, int(at.timestamp()), chain, seq, did, detector, outcome)
            )
            self.steps[(kind, value, chain, seq)] = step
        for digest, event in zip(
            batch.archive["event_sha256"], batch.archive["event"], strict=True
        ):
            self.events[digest] = event

    def decisions(self) -> list[tuple[int, int, Decision]]:
        return [(c, s, decode_entry(e).decision) for (c, s), e in sorted(self.entries.items())]

    # --- the ArchiveStore reads -------------------------------------------------------------
    def search_entity(
        self,
        kind: EntityKind,
        value: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: EntityHit | None = None,
    ) -> EntityPage:
        self.calls.append("search_entity")
        rows = sorted(
            {r for r in self.index if r[0] == kind.value and r[1] == value},
            key=lambda r: (r[2], r[3], r[4]),
        )
        if since is not None:
            rows = [r for r in rows if r[2] >= int(since.timestamp())]
        if until is not None:
            rows = [r for r in rows if r[2] < int(until.timestamp())]
        if after is not None:
            mark = (int(after.event_time.timestamp()), after.chain, after.seq)
            rows = [r for r in rows if (r[2], r[3], r[4]) > mark]
        hits = [EntityHit(datetime.fromtimestamp(r[2], UTC), *r[3:]) for r in rows[: limit + 1]]
        more = len(hits) > limit
        hits = hits[:limit]
        return EntityPage(hits, hits[-1] if more else None)

    def timeline_entity(
        self,
        kind: EntityKind,
        value: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> tuple[list[TimelineRow], bool]:
        self.calls.append("timeline_entity")
        page = self.search_entity(kind, value, since, until, limit)
        self.calls.pop()
        rows = [
            TimelineRow(h, self.steps.get((kind.value, value, h.chain, h.seq), b""))
            for h in page.hits
        ]
        return rows, page.next_after is not None

    def entries_at(self, positions: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        self.calls.append("entries_at")
        return {p: self.entries[p] for p in positions if p in self.entries}

    def entries_after(
        self, where: EntryFilter, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        self.calls.append("entries_after")
        rows = [
            self._row(c, s, d)
            for c, s, d in self.decisions()
            if where.matches(d) and (after is None or (c, s) > after)
        ]
        return rows[:limit]

    def entries_with_ids(self, ids: Sequence[str], limit: int) -> list[tuple[Any, ...]]:
        self.calls.append("entries_with_ids")
        rows = [
            self._row(c, s, d)
            for c, s, d in self.decisions()
            if d.decision_id in ids or d.event_id in ids
        ]
        return rows[:limit]

    def archived_events_by_digest(self, digests: Sequence[str]) -> dict[str, bytes]:
        self.calls.append("archived_events_by_digest")
        return {h: self.events[h] for h in digests if h in self.events}

    def _row(self, chain: int, seq: int, decision: Decision) -> tuple[Any, ...]:
        row: list[Any] = [b""] * len(ENTRY_COLUMNS)
        row[COL["chain"]], row[COL["seq"]] = chain, seq
        row[COL["entry"]] = self.entries[(chain, seq)]
        for name in ("decision_id", "event_id", "detector", "outcome"):
            value = getattr(decision, name)
            row[COL[name]] = str(getattr(value, "value", value)).encode()
        return tuple(row)


def without_timeline_copies(ledger: SearchLedger) -> None:
    """Empty every index row's timeline copy, as in a ledger written before the copies."""
    ledger.steps = dict.fromkeys(ledger.steps, b"")


def without_index(ledger: SearchLedger, event_id: str) -> None:
    """Drop the index rows of an event, as for a decision logged before the index existed."""
    ledger.index = [r for r in ledger.index if not (r[0] == "event_id" and r[1] == event_id)]


def replaced(decision: Decision, **changes: Any) -> Decision:
    return msgspec.structs.replace(decision, **changes)
