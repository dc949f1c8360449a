"""The ledger sequencer: decisions topic -> hash-linked entries, tree nodes, checkpoints.

One chain per partition of the decisions topic, one writer per chain: the consumer group
assigns partitions, and a writer appends only to chains whose partition it holds.

Order of durability for every batch of a chain (never reordered):
  0. fence: the store still ends where this writer last wrote (no checkpoint or entry has
     appeared at or beyond its size since), else the writer is dropped and writes nothing;
  0b. the batch's dead letters (records that are not decisions, decisions conflicting with a
     logged event) handed to the dead-letter callback, then `flush_rejects` (the dead-letter
     producer's flush): once step 1 moves the chain's head past a rejected record, a restart
     no longer reads it again, so its dead letter must already be on the broker;
  1. the batch's event archive and entity index rows (ledger/archive.py), then its entries,
     then their tree nodes, are inserted into ClickHouse (one INSERT block each). The archive
     and index go first: their rows are idempotent (a batch cut short by a crash is read and
     written again, identical), whereas entries written before them would be resumed after,
     and their events never archived;
  2. the signed checkpoint over the new tree size is inserted;
  3. only then are the Kafka offsets committed.
On assignment of a partition (start, rebalance), before anything is read from it:
  R1, R2. the writer is rebuilt from ClickHouse: chain head, tree (compact range of the latest
     checkpoint plus a re-hash of any uncheckpointed tail) and recent decision ids with their
     event digests (`ledger.recovery`);
  R3. the stored chain must be one this signer can re-derive (`ledger.trust`): the latest
     checkpoint signed by its own key, every checkpoint it is known from outside the
     database to have signed (its signer state file, the newest anchor) still in the tree,
     and the entries no such checkpoint covers re-derived from the decisions topic; else
     `SigningRefusedError`, and nothing is signed;
  R4. a checkpoint over the head is signed: it completes the step 2 a crash interrupted or,
     when the head is checkpointed already, re-signs it as a claim of ownership that the
     fence (step 0) of a writer which lost the chain will see;
  R5. the partition is read from right after the head entry's source offset.
Every checkpoint stored (step 2, R4) is also recorded in the signer state file.
An unreachable ClickHouse at any of these steps is handled like a crash that does not end
the process: the session ends, and after a backoff a new one begins with R1-R5 (`run`).
So a crash at any instant loses and duplicates nothing: the position to resume from is read
back from the log itself, never from Kafka's committed offsets (which only show lag), and
`decision_id` with `event_sha256` makes replayed decisions idempotent. See
docs/operations.md, "Ledger sequencer: crashes, restarts and rebalances".

Fault injection (tests only): when `ATTESTREAM_LEDGER_CRASH_AT` names a point (`entries`,
`nodes`, `checkpoint`: after that insert of the first batch to get there) the process kills
itself with SIGKILL there, so a test covers each crash window deterministically.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from attestcore.backoff import Outage, kafka_client_logger
from attestcore.errors import (
    ConfigError,
    MalformedError,
    ServiceUnavailableError,
    SigningRefusedError,
)
from attestcore.records import ChainHead, OwnershipMarks, StoredCheckpoint
from attestcore.schemas import EVENT_HEADER
from ledger.archive import ArchiveBatch, archive_batch
from ledger.batches import collector_paused, take_batch
from ledger.broker_watch import BrokerWatch
from ledger.chain import ChainWriter, EventConflict, Incoming
from ledger.decision_batch import decode_decisions
from ledger.entry import EntrySource
from ledger.events import BatchOutcome, OnReject, RejectReason, SequencerEvents
from ledger.keys import NoteSigner
from ledger.merkle import RootHash
from ledger.note import Checkpoint, sign_note
from ledger.recovery import RecoveryStore, recover_chain
from ledger.trust import SigningGuard, Source

log = logging.getLogger("attestream.ledger")

CRASH_AT_ENV = "ATTESTREAM_LEDGER_CRASH_AT"
CRASH_POINTS = ("entries", "nodes", "checkpoint")

# How long a batch waits for its first message: short enough that a stop request or a
# rebalance is noticed promptly, long enough not to spin. Once one has arrived, the batch
# takes only what is buffered (ledger/batches.py).
POLL_TIMEOUT_S = 0.5
# How long the broker may hold a fetch of a caught-up partition: librdkafka's default is
# 500 ms, much of which the local broker, Tansu, waits out, and a decision that arrives
# meanwhile waits for the fetch's answer. 20 ms, as the detection worker's, costs little.
FETCH_MAX_WAIT_MS = 20
# An idle sequencer (no decisions) asks ClickHouse whether it answers this often, so its
# readiness gauge shows an outage before the next batch runs into it.
IDLE_STORE_PROBE_S = 5.0
# Fetching the cluster id on assignment: the broker just answered the group join, so this
# only bounds a broker that died in between (the callback must not hang the rebalance).
METADATA_TIMEOUT_S = 10.0
# A crashed writer's chains move to another writer after this long without heartbeats: long
# enough to ride out a GC pause or a slow insert, short enough for a prompt failover.
SESSION_TIMEOUT_MS = 10_000
# A batch (5,000 entries: two inserts and a signature) takes well under a second; a minute
# also covers rebuilding several chains on assignment. Tansu waits this long in a rebalance.
MAX_POLL_INTERVAL_MS = 60_000
# Heartbeats at most a third of the session timeout (Kafka's guidance), so one late
# heartbeat never ends a healthy session.
HEARTBEATS_PER_SESSION = 3


@dataclass(frozen=True)
class SequencerConfig:
    bootstrap: str
    topic: str
    group: str
    origin_prefix: str
    batch_max: int
    session_timeout_ms: int = SESSION_TIMEOUT_MS
    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS
    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS
    crash_at: str = ""
    """Fault injection (see the module doc); empty in production."""

    def __post_init__(self) -> None:
        if self.max_poll_interval_ms < self.session_timeout_ms:
            raise ConfigError(
                f"the ledger max poll interval ({self.max_poll_interval_ms} ms) must be at"
                f" least the session timeout ({self.session_timeout_ms} ms)"
            )
        if self.crash_at and self.crash_at not in CRASH_POINTS:
            raise ConfigError(f"{CRASH_AT_ENV} must be one of {', '.join(CRASH_POINTS)}")


class ArchiveWriter(Protocol):
    """Where step 1 writes the event archive and entity index (ledger/archive_store.py; the
    store's `create_schema` creates their tables)."""

    def insert(self, batch: ArchiveBatch) -> None: ...


class SequencerStore(RecoveryStore, Protocol):
    """The store as the sequencer uses it (ClickHouseStore)."""

    def create_schema(self) -> None: ...
    def ping(self) -> None: ...
    def insert_entries(self, columns: Mapping[str, Sequence[Any]]) -> None: ...
    def insert_checkpoint(self, cp: StoredCheckpoint) -> None: ...
    def ownership_marks(self, chain: int, size: int) -> OwnershipMarks: ...


@dataclass
class OwnedChain:
    """A chain this process writes, and how the store ended after its last write there."""

    writer: ChainWriter
    marks: OwnershipMarks
    """What step 0 expects to read back: checkpoint rows at or beyond the writer's size,
    the largest checkpoint size (the writer's size), and no entries at or beyond it."""


class Sequencer:
    """Consumes decisions and makes them durable, in the order written in the module doc."""

    def __init__(
        self,
        config: SequencerConfig,
        store: SequencerStore,
        signer: NoteSigner,
        events: SequencerEvents | None = None,
        on_reject: OnReject | None = None,
        guard: SigningGuard | None = None,
        archive: ArchiveWriter | None = None,
        flush_rejects: Callable[[], None] | None = None,
    ) -> None:
        """Without a `guard` R3 is skipped and nothing is recorded; without an `archive` no
        event is archived or indexed: benchmarks of the ledger core only. `flush_rejects`
        returns once every record handed to `on_reject` is durable (step 0b), or raises
        `ServiceUnavailableError`."""
        self.config = config
        self.store = store
        self.archive = archive
        self.signer = signer
        self.guard = guard
        self.owned: dict[int, OwnedChain] = {}
        self.cluster_id = ""
        self.events = events or SequencerEvents()
        self._on_reject = on_reject or (lambda msg, reason, detail: None)
        self._flush_rejects = flush_rejects or (lambda: None)
        self._unflushed = 0  # records handed to `on_reject` since the last flush
        self._stopping = False
        self.outage = Outage(log, self.events.dependency)
        self.broker = BrokerWatch(Outage(log, self.events.dependency))
        self.consumer = self._new_consumer()
        self._consumer_closed = False

    def _new_consumer(self) -> Consumer:
        config = self.config
        return Consumer(
            {
                "bootstrap.servers": config.bootstrap,
                "group.id": config.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": config.session_timeout_ms // HEARTBEATS_PER_SESSION,
                "max.poll.interval.ms": config.max_poll_interval_ms,
                "fetch.wait.max.ms": config.fetch_max_wait_ms,
                "isolation.level": "read_committed",
                # Connection failures reach the broker watch (one line per backoff step)
                # and the client's own log lines are throttled.
                "error_cb": self.broker.client_error,
                "logger": kafka_client_logger("ledger"),
            }
        )

    def origin(self, chain: int) -> str:
        return f"{self.config.origin_prefix}/{chain}"

    # --- assignment ------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.cluster_id = consumer.list_topics(timeout=METADATA_TIMEOUT_S).cluster_id or ""
        for tp in partitions:
            tp.offset = self.resume_chain(tp.partition)
        consumer.assign(partitions)
        # A partition fenced (and paused) earlier starts afresh with its new owner's state.
        consumer.resume(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A writer that lost its partition must not append any more.
        for tp in partitions:
            self.owned.pop(tp.partition, None)
            self.events.chain_released(tp.partition)
        consumer.unassign()

    def resume_chain(self, chain: int) -> int:
        """Steps R1-R5: take over `chain` from the store; return the offset to read from."""
        recovered = recover_chain(self.store, chain)  # R1, R2
        head = recovered.head
        if self.guard is not None:  # R3
            try:
                source = Source(self.cluster_id, self.config.topic)
                self.guard.check(self.store, self.origin(chain), recovered, source)
            except SigningRefusedError as exc:
                log.error("%s", exc)
                self.events.signing_refused(chain, exc.kind)
                raise
        if head.size:
            # R4: complete an interrupted step 2, or claim the chain at its current size.
            last = EntrySource(
                cluster=head.source_cluster,
                topic=self.config.topic,
                partition=chain,
                offset=head.source_offset,
            )
            self._write_checkpoint(chain, head.size, recovered.writer.tree.root(), last)
        # What step 0 will expect: only the checkpoint rows seen now, and nothing beyond the
        # head (a writer still writing beyond it is caught by the next step 0).
        marks = self.store.ownership_marks(chain, head.size)
        expected = OwnershipMarks(checkpoints=marks.checkpoints, max_size=head.size, entries=0)
        self.owned[chain] = OwnedChain(recovered.writer, expected)
        self.events.chain_resumed(chain, head.size, recovered.unsigned)
        log.info(
            "chain %d: resumed at size %d (%d entries had no checkpoint yet)",
            chain,
            head.size,
            recovered.unsigned,
        )
        return self._resume_offset(chain, head)  # R5

    def _resume_offset(self, chain: int, head: ChainHead) -> int:
        if head.source_offset < 0:
            return OFFSET_BEGINNING
        if head.source_cluster != self.cluster_id:
            log.warning(
                "chain %d: the decisions source changed from Kafka cluster %r to %r (a reset"
                " broker?); continuing the chain from the new source's first record",
                chain,
                head.source_cluster,
                self.cluster_id,
            )
            return OFFSET_BEGINNING
        # Same cluster: the next record is right after the last logged one. (No comparison
        # with the high watermark here: Tansu's watermarks lag behind its offsets.)
        return head.source_offset + 1

    # --- the loop ------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping = True

    def run(self, max_idle_s: float | None = None) -> None:
        """Sessions of consuming, until `stop` (or `max_idle_s` without decisions).

        An unreachable ClickHouse ends the session wherever it happens (the schema, R1-R4,
        or any of steps 0-2 of a batch): the consumer leaves the group without committing
        anything beyond the last complete batch, the writers are thrown away, and after a
        backoff a new session starts exactly like a restart after a crash: R1-R5 re-check
        the stored tree and complete an interrupted batch. The outage is waited out
        whatever its length (docs/operations.md, "Outages")."""
        while not self._stopping:
            try:
                self._session(max_idle_s)
                return
            except ServiceUnavailableError as exc:
                self.owned.clear()
                self.outage.wait_after(exc.service, exc.diagnostics(), lambda: self._stopping)

    def _session(self, max_idle_s: float | None) -> None:
        self.store.create_schema()
        self.outage.recovered()
        if self._consumer_closed:  # by the session an outage ended
            self.consumer = self._new_consumer()
            self._consumer_closed = False
        self.consumer.subscribe(
            [self.config.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        self.events.session_started()
        idle_since = probed = time.monotonic()
        try:
            while not self._stopping:
                messages = take_batch(self.consumer.consume, self.config.batch_max, POLL_TIMEOUT_S)
                now = time.monotonic()
                if messages or not self.owned:
                    # Idle time counts only once chains are assigned: a group join can take
                    # longer than the idle limit.
                    idle_since = now
                self.broker.observe(messages, self.consumer)
                if messages:
                    self.process(messages)
                    probed = now
                elif max_idle_s is not None and now - idle_since > max_idle_s:
                    return
                elif now - probed > IDLE_STORE_PROBE_S:
                    self.store.ping()
                    probed = now
        finally:
            self.consumer.close()
            self._consumer_closed = True

    def process(self, messages: Sequence[Message]) -> list[BatchOutcome]:
        started = time.monotonic()
        outcomes, last_offset = self.log_messages(messages)
        fenced = {outcome.chain for outcome in outcomes if outcome.fenced}
        self._commit({chain: o for chain, o in last_offset.items() if chain not in fenced})
        self.events.batch_done(time.monotonic() - started)
        return outcomes

    def log_messages(
        self, messages: Sequence[Message]
    ) -> tuple[list[BatchOutcome], dict[int, int]]:
        """Steps 0-2 for every chain in the batch; returns the outcomes and, per chain, the
        last offset read (rejected records included) for step 3."""
        with collector_paused():
            return self._log_messages(messages)

    def _log_messages(
        self, messages: Sequence[Message]
    ) -> tuple[list[BatchOutcome], dict[int, int]]:
        by_chain: dict[int, list[Incoming]] = defaultdict(list)
        last_offset: dict[int, int] = {}
        ours: list[tuple[Message, EntrySource]] = []
        for msg in messages:
            source = self._source(msg)
            if source is not None:
                last_offset[source.partition] = source.offset
                ours.append((msg, source))
        decisions = decode_decisions([msg.value() or b"" for msg, _ in ours])
        for (msg, source), decision in zip(ours, decisions, strict=True):
            if isinstance(decision, MalformedError):
                self._reject(msg, RejectReason.NOT_A_DECISION, str(decision))
                continue
            by_chain[source.partition].append(Incoming(decision, source, _event_bytes(msg)))
        outcomes = [self._log_batch(chain, items, messages) for chain, items in by_chain.items()]
        for outcome in outcomes:
            self.events.batch_logged(outcome)
        self._flush()  # dead letters of chains with no decision to log in this batch
        return outcomes, last_offset

    def _reject(self, msg: Message, reason: RejectReason, detail: str) -> None:
        self._on_reject(msg, reason, detail)
        self._unflushed += 1

    def _flush(self) -> None:
        """Step 0b's flush: every dead letter handed over so far is on the broker."""
        if self._unflushed:
            self._flush_rejects()
            self._unflushed = 0

    def _reject_conflicts(
        self, conflicts: Sequence[EventConflict], messages: Sequence[Message]
    ) -> None:
        """Step 0b: dead-letter each decision whose id is logged for another event, with the
        record it was read from (looked up only when there is a conflict: rare)."""
        if not conflicts:
            return
        read_at = {(msg.partition(), msg.offset()): msg for msg in messages}
        for conflict in conflicts:
            source, detail = conflict.incoming.source, conflict.detail()
            log.warning("chain %d: not logged, a conflicting event: %s", conflict.chain, detail)
            msg = read_at[source.partition, source.offset]
            self._reject(msg, RejectReason.CONFLICTING_EVENT_ID, detail)

    def _source(self, msg: Message) -> EntrySource | None:
        """Where a consumed record was read, or None when it is not ours to log."""
        error, chain, offset = msg.error(), msg.partition(), msg.offset()
        if error is not None:
            return None  # logged (once per backoff step) by the broker watch
        if chain is None or offset is None or chain not in self.owned:
            return None  # revoked or fenced while the batch was in flight: not ours
        return EntrySource(
            cluster=self.cluster_id,
            topic=msg.topic() or self.config.topic,
            partition=chain,
            offset=offset,
        )

    def _log_batch(
        self, chain: int, items: list[Incoming], messages: Sequence[Message]
    ) -> BatchOutcome:
        owned = self.owned[chain]
        result = owned.writer.append(items)
        conflicts = tuple(result.conflicts)
        if not result.appended:
            self._reject_conflicts(conflicts, messages)
            return BatchOutcome(chain, 0, result.duplicates, result.size, conflicts=conflicts)
        # Step 0: still the chain's only writer? (A fenced writer's state is thrown away, and
        # its conflicts are not dead-lettered: the chain's new writer reads those records.)
        if self.store.ownership_marks(chain, owned.marks.max_size) != owned.marks:
            self._fence(chain)
            return BatchOutcome(chain, 0, 0, owned.marks.max_size, fenced=True)
        # Step 0b: the batch's dead letters on the broker before its head moves past them.
        self._reject_conflicts(conflicts, messages)
        self._flush()
        # Step 1: archive and index rows, entries and tree nodes durable.
        self._archive(chain, result.size - result.appended, result.logged)
        self.store.insert_entries(result.entries)
        self.events.entries_durable([item.decision.decided_at for item in result.logged])
        self._reached("entries")
        self.store.insert_nodes(chain, result.node_keys, result.node_hashes)
        self._reached("nodes")
        # Step 2: the checkpoint over the new size durable.
        self._write_checkpoint(chain, result.size, result.root, result.last_source)
        owned.marks = OwnershipMarks(checkpoints=1, max_size=result.size, entries=0)
        self._reached("checkpoint")
        return BatchOutcome(
            chain, result.appended, result.duplicates, result.size, conflicts=conflicts
        )

    def _archive(self, chain: int, first_seq: int, logged: list[Incoming]) -> None:
        """Step 1's first inserts; event bytes that do not hash to their decision's digest
        are refused (ledger/archive.py says why the entry is logged all the same)."""
        if self.archive is None:
            return
        batch = archive_batch(chain, first_seq, logged)
        self.archive.insert(batch)
        for refused in batch.refused:
            log.warning("event not archived: %s", refused.detail())
        self.events.events_archived(chain, batch.archived, len(batch.refused))

    def _fence(self, chain: int) -> None:
        """Stop writing `chain`: it was assigned elsewhere while this process was stalled.

        The partition is paused until the group reassigns it; the rebalance that follows a
        zombie's return (its next heartbeat is refused) rebuilds whoever then owns it."""
        del self.owned[chain]
        self.events.chain_released(chain)
        log.error(
            "chain %d: another writer has written this chain since this one last did; it is"
            " no longer written from this process until the group assigns it again",
            chain,
        )
        self.events.writer_fenced(chain)
        try:
            self.consumer.pause([TopicPartition(self.config.topic, chain)])
        except KafkaException as exc:  # not assigned any more: nothing to pause
            log.debug("chain %d: pause: %s", chain, exc)

    def _write_checkpoint(
        self, chain: int, size: int, root: bytes, source: EntrySource | None
    ) -> None:
        origin = self.origin(chain)
        body = Checkpoint(origin, size, RootHash(root)).body()
        self.store.insert_checkpoint(
            StoredCheckpoint(
                chain=chain,
                size=size,
                root=root,
                note=sign_note(body, self.signer),
                source_cluster=source.cluster if source else "",
                source_offset=source.offset if source else -1,
            )
        )
        if self.guard is not None:
            self.guard.remember(origin, chain, size, root)
        self.events.checkpoint_signed(chain, size)

    def _commit(self, last_offset: dict[int, int]) -> None:
        # Step 3: offsets committed, after the log and its checkpoint are durable.
        if not last_offset:
            return
        offsets = [TopicPartition(self.config.topic, p, o + 1) for p, o in last_offset.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Committed offsets only show lag: a restart resumes from the log (R5). A commit
            # refused during a rebalance therefore loses nothing.
            log.warning("offset commit failed (harmless, the log is durable): %s", exc)
            self.events.commit_failed()

    def _reached(self, point: str) -> None:
        """Fault injection for the crash tests: die here, exactly as a SIGKILL would."""
        if point == self.config.crash_at:
            log.warning("fault injection (%s): killing the sequencer after %s", CRASH_AT_ENV, point)
            os.kill(os.getpid(), signal.SIGKILL)


def _event_bytes(msg: Message) -> bytes | None:
    """The event bytes a decision record carries (`EVENT_HEADER`), or None (a record from
    before the archive)."""
    headers: list[tuple[str, bytes | None]] = msg.headers() or []  # type: ignore[assignment]
    for name, value in headers:
        if name == EVENT_HEADER:
            return value
    return None
