"""(a) The ledger's throughput end to end, and (b) the raw pipeline it is compared with.

Both read the same pre-filled one-partition decisions topic with the same consumer settings
and batch size, and are timed from the moment their first batch is consumed until the last
batch's offsets are committed: a consumer group's first join (seconds on Tansu) and the
first fetch are the same fixed cost for both, and not the sustained rate.

(a) runs the real `ledger.sequencer.Sequencer` in-process: validation, entries, hash links,
    tree nodes, a signed checkpoint per batch, the fence query, offsets committed.
(b) does the least a durable consumer could: consume, pull the searchable columns out of the
    decision without validating it, insert them with the decision's bytes into a plain
    MergeTree table, commit the offsets. No hashing, no tree, no signature.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from anchoring.store import AnchoredStore
from attestcore.errors import ServiceUnavailableError
from bench.raw_table import RawTable
from ledger.keys import signer_from_seed
from ledger.sequencer import Sequencer, SequencerConfig

# A run that has not logged every decision after this long is broken, not slow.
RUN_TIMEOUT_S = 300.0
# How long one raw consume call waits for the first record (as the sequencer's poll).
POLL_TIMEOUT_S = 0.5
SIGNING_SEED = b"attestream benchmark key".ljust(32, b".")
ORIGIN = "bench.attestream.local/ledger"


@dataclass(frozen=True)
class PipelineRun:
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds


class _TimedConsumer:
    """The sequencer's Kafka consumer, watched: it notes when the first batch arrives and,
    when the offsets of the last record are committed (step 3, after everything is durable),
    stops the sequencer. The sequencer itself runs unchanged."""

    def __init__(self, inner: Consumer, records: int, stop: Callable[[], None]) -> None:
        self._inner = inner
        self._last_offset = records - 1
        self._stop = stop
        self.started: float | None = None
        self.finished: float | None = None

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        messages = self._inner.consume(num_messages, timeout)
        if messages and self.started is None:
            self.started = time.perf_counter()
        return messages

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        result = self._inner.commit(*args, **kwargs)
        offsets = kwargs.get("offsets") or []
        if self.finished is None and any(tp.offset > self._last_offset for tp in offsets):
            self.finished = time.perf_counter()
            self._stop()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def scratch_database_url(clickhouse_url: str, prefix: str) -> str:
    return clickhouse_url.rsplit("/", 1)[0] + f"/{prefix}_{uuid.uuid4().hex[:10]}"


def run_ledger(
    bootstrap: str, clickhouse_url: str, topic: str, records: int, batch_max: int
) -> tuple[PipelineRun, AnchoredStore]:
    """One sequencer over the whole topic into a fresh database; returns the open store."""
    store = AnchoredStore(scratch_database_url(clickhouse_url, "bench_ledger"))
    config = SequencerConfig(bootstrap, topic, f"bench-{uuid.uuid4().hex[:10]}", ORIGIN,
                             batch_max)  # fmt: skip
    sequencer = Sequencer(config, store, signer_from_seed(ORIGIN, SIGNING_SEED))
    timed = _TimedConsumer(sequencer.consumer, records, sequencer.stop)
    sequencer.consumer = timed  # type: ignore[assignment]
    watchdog = threading.Timer(RUN_TIMEOUT_S, sequencer.stop)  # even if never assigned
    watchdog.start()
    try:
        sequencer.run(max_idle_s=RUN_TIMEOUT_S)
    finally:
        watchdog.cancel()
    if timed.started is None or timed.finished is None:
        raise ServiceUnavailableError("ledger", topic, f"did not log all {records} decisions")
    _check_ledger(store, records)
    return PipelineRun(records, timed.finished - timed.started), store


def _check_ledger(store: AnchoredStore, records: int) -> None:
    """A run counts only if everything it timed is really there."""
    checkpoint = store.latest_checkpoint(0)
    entries = store.count_entries()
    if entries != records or checkpoint is None or checkpoint.size != records:
        size = checkpoint.size if checkpoint else None
        raise AssertionError(f"ledger holds {entries} entries, checkpoint {size}, not {records}")


class _Columns(msgspec.Struct):
    """The searchable columns of a decision, read without validating anything else."""

    decision_id: str
    event_id: str
    entity_id: str
    detector: str
    outcome: str
    score: float
    model_sha256: str
    event_time: datetime
    decided_at: datetime


def run_raw(
    bootstrap: str, clickhouse_url: str, topic: str, records: int, batch_max: int
) -> PipelineRun:
    """Consume, insert the columns and the bytes into a plain table, commit; timed."""
    store = RawTable(scratch_database_url(clickhouse_url, "bench_raw"))
    store.create()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:10]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    decode = msgspec.json.Decoder(_Columns).decode
    done = 0
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        started: float | None = None
        deadline = time.perf_counter() + RUN_TIMEOUT_S
        while done < records and time.perf_counter() < deadline:
            messages = consumer.consume(batch_max, POLL_TIMEOUT_S)
            if not messages:
                continue
            if started is None:
                started = time.perf_counter()
            values = [m.value() or b"" for m in messages]
            offsets = [m.offset() or 0 for m in messages]
            decisions = [decode(v) for v in values]
            columns = _raw_columns(topic, decisions, values, offsets)
            store.insert(columns)
            consumer.commit(offsets=[TopicPartition(topic, 0, offsets[-1] + 1)],
                            asynchronous=False)  # fmt: skip
            done += len(messages)
        finished = time.perf_counter()
    finally:
        consumer.close()
        store.drop_database()
        store.close()
    if done != records or started is None:
        raise ServiceUnavailableError("Kafka", bootstrap, f"raw run read {done} of {records}")
    return PipelineRun(records, finished - started)


def _raw_columns(
    topic: str, decisions: list[_Columns], values: list[bytes], offsets: list[int]
) -> list[list[Any]]:
    n = len(decisions)
    return [
        [d.decision_id for d in decisions],
        [d.event_id for d in decisions],
        [d.entity_id for d in decisions],
        [d.detector for d in decisions],
        [d.outcome for d in decisions],
        [d.score for d in decisions],
        [d.model_sha256 for d in decisions],
        [int(d.event_time.timestamp()) for d in decisions],
        [int(d.decided_at.timestamp()) for d in decisions],
        [topic] * n,
        [0] * n,
        offsets,
        values,
    ]
