"""The investigators' benchmark ledger: millions of real entries, written by the sequencer.

The decisions are generated (payments scored by the fraud detector, EPCIS scans by the
authenticity detector, each with its investigation fields and the exact bytes of its event)
and handed to `ledger.sequencer.Sequencer.log_messages`, the code `attestream ledger run`
runs for every batch it consumes: entries, tree nodes, a signed checkpoint per batch, the
event archive, the entity index and the investigation columns. Only Kafka is left out: the
records are built in memory with the offsets a one-partition topic would give them, so the
ledger is exactly what a sequencer would have written from such a topic.

A few chosen entities (`CHOSEN`) have exactly `CHOSEN_EVENTS` events each, spread evenly over
the whole ledger, so a timeline of one of them reads 500 entries from all over the table.
The ledger lives in a database of its own (`database_name`), kept between benchmark runs: a
ledger of the right size and layout is reused, one cut short is resumed where its chain
ends (the sequencer's own recovery, R1-R4), anything else is dropped and built again.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from confluent_kafka import Message

from anchoring.store import AnchoredStore
from attestcore.errors import ConfigError
from attestcore.schemas import (
    EVENT_HEADER,
    OUTCOMES,
    Action,
    BizStep,
    Channel,
    Decision,
    Detector,
    PaymentContext,
    PaymentTransaction,
    Reason,
    ScanContext,
    SourceRef,
    SupplyChainEvent,
    TagAuth,
    decision_id,
    encode,
)
from bench.pipeline import ORIGIN, SIGNING_SEED
from detectors.features import PAYMENT_FEATURES
from ledger.archive import EntityKind
from ledger.archive_store import ArchiveStore
from ledger.keys import NoteVerifier, signer_from_seed
from ledger.sequencer import Sequencer, SequencerConfig

log = logging.getLogger("attestream.bench")

LAYOUT = 2
"""The version of what is built, part of the database name: a change to what is generated
(`record`) or to the ledger's tables (ledger/schema.py) must change it, so that an old
ledger is never reused for new figures. (2: entries and events in 64-row granules.)"""
TOPIC = "attestream.decisions"
TRANSACTIONS = "attestream.transactions"
SCANS = "attestream.epcis"
BATCH = 10_000
"""Decisions per `log_messages` call: twice the sequencer's default batch, which fewer
checkpoints and fence queries make ~10% faster (docs/benchmarks.md)."""
START = datetime(2025, 3, 3, tzinfo=UTC)
STEP_MS = 37
CUSTOMERS = 50_000
TERMINALS = 10_000
EPCS = 100_000
LOCATIONS = 200
SCAN_SHARE = 5
"""One decision in SCAN_SHARE is a scan, the others payments."""
MODEL_SHA256 = {Detector.FRAUD: "5e" * 32, Detector.AUTHENTICITY: "a7" * 32}
CHOSEN_EVENTS = 500
CHOSEN: tuple[tuple[EntityKind, str], ...] = (
    (EntityKind.CUSTOMER, "CX000001"),
    (EntityKind.CUSTOMER, "CX000002"),
    (EntityKind.TERMINAL, "TX000001"),
    (EntityKind.EPC, "urn:epc:id:sgtin:0614141.107346.X000001"),
)
"""Entities with exactly CHOSEN_EVENTS events each (no generated entity has these names)."""
MIN_STRIDE = 2 * len(CHOSEN)
MIN_ENTRIES = MIN_STRIDE * CHOSEN_EVENTS


@dataclass(frozen=True)
class ForensicLedger:
    """A built ledger: where it is, its size, and the key its checkpoints verify with."""

    url: str
    entries: int
    seed: int
    verifier: NoteVerifier
    built_s: float | None
    """Seconds this run spent building it; None when it was reused as it was."""


def database_name(entries: int, seed: int) -> str:
    return f"bench_forensic_{entries}_{seed}_v{LAYOUT}"


def chosen_slot(i: int, entries: int) -> int | None:
    """Which chosen entity decision i is on (an index into CHOSEN), None for most."""
    stride = entries // CHOSEN_EVENTS
    slot, rest = divmod(i % stride, 2)
    if rest or slot >= len(CHOSEN) or i // stride >= CHOSEN_EVENTS:
        return None
    return slot


def record(i: int, entries: int, rng: random.Random) -> tuple[bytes, bytes]:
    """Decision number i and the exact bytes of its event (deterministic for one rng)."""
    at = START + timedelta(milliseconds=STEP_MS * i)
    slot = chosen_slot(i, entries)
    chosen = CHOSEN[slot] if slot is not None else None
    lat, lon = round(rng.uniform(35.0, 60.0), 5), round(rng.uniform(-10.0, 30.0), 5)
    is_scan = chosen[0] is EntityKind.EPC if chosen is not None else i % SCAN_SHARE == 0
    if is_scan:
        epc = chosen[1] if chosen else f"urn:epc:id:sgtin:0614141.107346.{rng.randrange(EPCS)}"
        place = f"urn:epc:id:sgln:0614141.{rng.randrange(LOCATIONS):05d}.0"
        scan = SupplyChainEvent(
            event_id=f"scan-{i:012d}",
            event_time=at,
            event_time_zone_offset="+01:00",
            epc=epc,
            action=Action.OBSERVE,
            biz_step=BizStep.RECEIVING,
            disposition="in_progress",
            read_point=place,
            biz_location=place,
            lat=lat,
            lon=lon,
            reader_id=f"reader-{rng.randrange(LOCATIONS)}",
            tag_auth=TagAuth.VERIFIED,
        )
        context: PaymentContext | ScanContext = ScanContext(
            epc=epc, gtin=None, biz_step=BizStep.RECEIVING, biz_location=place, read_point=place
        )
        return _decision(i, at, rng, Detector.AUTHENTICITY, SCANS, scan, epc, context)
    customer = f"C{rng.randrange(CUSTOMERS):06d}"
    terminal = f"T{rng.randrange(TERMINALS):05d}"
    if chosen is not None and chosen[0] is EntityKind.CUSTOMER:
        customer = chosen[1]
    elif chosen is not None:
        terminal = chosen[1]
    payment = PaymentTransaction(
        event_id=f"tx-{i:012d}",
        event_time=at,
        source="bench",
        customer_id=customer,
        terminal_id=terminal,
        amount=round(rng.uniform(1.0, 900.0), 2),
        currency="EUR",
        channel=Channel.CARD_PRESENT,
        mcc="5411",
        country="DE",
        lat=lat,
        lon=lon,
    )
    context = PaymentContext(
        customer_id=customer,
        terminal_id=terminal,
        amount=payment.amount,
        currency="EUR",
        channel=Channel.CARD_PRESENT,
        mcc="5411",
        country="DE",
    )
    return _decision(i, at, rng, Detector.FRAUD, TRANSACTIONS, payment, customer, context)


def _decision(
    i: int,
    at: datetime,
    rng: random.Random,
    detector: Detector,
    topic: str,
    event: PaymentTransaction | SupplyChainEvent,
    entity: str,
    context: PaymentContext | ScanContext,
) -> tuple[bytes, bytes]:
    event_bytes = encode(event)
    model = MODEL_SHA256[detector]
    features = {name: round(rng.uniform(0.0, 500.0), 6) for name in PAYMENT_FEATURES}
    top = sorted(features, key=features.__getitem__, reverse=True)[:3]
    score = round(rng.random(), 6)
    outcomes = OUTCOMES[detector]
    decision = Decision(
        decision_id=decision_id(event.event_id, detector, model),
        event_id=event.event_id,
        event_sha256=hashlib.sha256(event_bytes).hexdigest(),
        source=SourceRef(topic=topic, partition=0, offset=i),
        entity_id=entity,
        detector=detector,
        model_id=f"{detector.value}-2025-03",
        model_sha256=model,
        features=features,
        score=score,
        outcome=outcomes[0] if score < 0.9 else outcomes[1] if score < 0.98 else outcomes[2],
        reasons=[Reason(feature=f, contribution=round(rng.uniform(0.1, 2.0), 6)) for f in top],
        event_time=at,
        decided_at=at + timedelta(milliseconds=4),
        context=context,
    )
    return encode(decision), event_bytes


class _Record:
    """A decision record as the consumer hands it to the sequencer (the `Message` methods
    `log_messages` calls), at offset i of partition 0 of the decisions topic."""

    __slots__ = ("_headers", "_offset", "_value")

    def __init__(self, offset: int, value: bytes, event: bytes) -> None:
        self._offset = offset
        self._value = value
        self._headers = [(EVENT_HEADER, event)]

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def topic(self) -> str:
        return TOPIC

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def batch_records(first: int, stop: int, entries: int, seed: int) -> list[_Record]:
    """Records first..stop-1; each batch has its own random stream, so a build cut short
    resumes with exactly the decisions it would have written."""
    rng = random.Random(f"{seed}:{first}")
    return [_Record(i, *record(i, entries, rng)) for i in range(first, stop)]


def signer_verifier() -> NoteVerifier:
    return signer_from_seed(ORIGIN, SIGNING_SEED).verifier()


def is_complete(store: AnchoredStore, entries: int) -> bool:
    """Whether the database holds the whole ledger of this size: every entry, a checkpoint
    over all of them, and the chosen entities' index rows."""
    archive = ArchiveStore(store)
    if not archive.exists() or store.chain_extent(0) == 0:
        return False
    checkpoint = store.latest_checkpoint(0)
    if checkpoint is None or checkpoint.size != entries or store.count_entries() != entries:
        return False
    kind, value = CHOSEN[0]
    page = archive.search_entity(kind, value, limit=CHOSEN_EVENTS)
    return len(page.hits) == CHOSEN_EVENTS and page.next_after is None


def build(bootstrap: str, clickhouse_url: str, entries: int, seed: int) -> ForensicLedger:
    """The ledger of `entries` decisions in its own database, built or resumed as needed."""
    if entries < MIN_ENTRIES:
        raise ConfigError(
            f"the forensic ledger needs at least {MIN_ENTRIES:,} entries, not {entries:,}"
        )
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + database_name(entries, seed)
    store = AnchoredStore(url)
    try:
        if is_complete(store, entries):
            return ForensicLedger(url, entries, seed, signer_verifier(), None)
        started = time.perf_counter()
        _write(store, bootstrap, entries, seed)
        if not is_complete(store, entries):
            raise AssertionError(
                f"the forensic ledger in {database_name(entries, seed)} is incomplete"
            )
        return ForensicLedger(url, entries, seed, signer_verifier(), time.perf_counter() - started)
    finally:
        store.close()


def _write(store: AnchoredStore, bootstrap: str, entries: int, seed: int) -> None:
    store.create_schema()
    if store.chain_extent(0) > entries:  # not a ledger this builder wrote: start afresh
        store.drop_database()
        store.create_schema()
    config = SequencerConfig(bootstrap, TOPIC, "bench-forensic", ORIGIN, BATCH)
    signer = signer_from_seed(ORIGIN, SIGNING_SEED)
    sequencer = Sequencer(config, store, signer, archive=ArchiveStore(store))
    try:
        sequencer.resume_chain(0)  # R1-R4 (no guard): an empty chain, or one cut short
        first = sequencer.owned[0].writer.size
        log.info("forensic ledger: writing entries %d-%d", first, entries - 1)
        for start in range(first, entries, BATCH):
            records = batch_records(start, min(start + BATCH, entries), entries, seed)
            outcomes, _ = sequencer.log_messages(cast(Sequence[Message], records))
            logged = sum(o.appended for o in outcomes)
            if logged != len(records):
                raise AssertionError(f"logged {logged} of {len(records)} decisions at {start}")
    finally:
        sequencer.consumer.close()
