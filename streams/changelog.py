"""Entity state in memory, backed by the changelog topics faust's Tables write.

The format is faust's (`streams.app.create_app`): a table `NAME` of app `APP` writes the
topic `APP-NAME-changelog`, keys as UTF-8 text and values as the raw bytes the table holds
(msgspec's JSON of the state, `streams.app.JSONStates`), a deleted key as a record without a
value (a tombstone). A partitioned table's changelog partition is its source partition
(co-partitioned); a global table's records go where the producer's partitioner puts them.
Either engine of `attestream detect` restores what the other wrote.

- `ChangelogStates`: the states of the partitions a worker owns. Every write is produced to
  the changelog partition of the record being decided (`partition`, set per entity by
  `decide_batch`'s `before_state_write`); `restore` reads a changelog partition from its
  start to its end (the last record of a key wins, a tombstone deletes it) before the worker
  decides any record of it, `drop` forgets a partition handed to another worker.
- `GlobalStates`: a table every worker holds whole (the fraud detector's terminal risk),
  restored at start and then followed: the records other workers write are applied as they
  arrive; the worker's own, marked with `WRITER_HEADER`, are in memory already.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer
from confluent_kafka import TopicPartition as TP

from attestcore.backoff import kafka_client_logger
from attestcore.errors import ServiceUnavailableError
from streams.pipeline import State

log = logging.getLogger("attestream.detect")

# A header naming the worker that wrote a global table's record (faust ignores headers).
WRITER_HEADER = "attestream-writer"
# The key of the tombstone that marks a changelog partition's end for a restore (a key no
# entity has: faust deletes it, which it does not hold, and restores go past it).
END_MARKER = b"\x00attestream-changelog-end"
# One fetch of a live broker answers in milliseconds; a restore waiting this long for the
# next record of a partition it knows is not at its end has lost the broker.
RESTORE_POLL_S = 1.0
RESTORE_STALL_S = 30.0
# Watermarks come back from a live broker in milliseconds.
WATERMARK_TIMEOUT_S = 10.0

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog topic of the table `table` of the faust app `app_id`."""
    return f"{app_id}-{table}-changelog"


def entity_table(detector: str) -> str:
    """The name of a detector's per-entity state table."""
    return f"{detector}-entity-state"


def restore_consumer(bootstrap: str, app_id: str) -> Consumer:
    """A consumer that only reads assigned changelog partitions: it never joins a group nor
    commits (the group id is librdkafka's requirement, not a group it takes part in)."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{app_id}-changelog-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "logger": kafka_client_logger("changelog"),
        }
    )


def mark_ends(producer: Producer, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """Write `END_MARKER` to each partition; the offset each got. Every record acknowledged
    before is at a lower offset. A high watermark would say the same on most brokers, but the
    local one (Tansu) reported offsets a dozen records short of a changelog's end."""
    ends: dict[int, int] = {}
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            ends[message.partition() or 0] = message.offset() or 0

    for partition in partitions:
        producer.produce(topic, None, END_MARKER, partition=partition, on_delivery=delivered)
    left = producer.flush(WATERMARK_TIMEOUT_S)
    if left or failures:
        cause = failures[0] if failures else f"{left} end markers not delivered"
        raise ServiceUnavailableError("Kafka", topic, cause)
    return ends


def read_to_end(consumer: Consumer, topic: str, ends: dict[int, int]) -> Iterator[Message]:
    """Every record of `topic`'s partitions from their start to their end (`ends`: partition
    -> the offset of its `mark_ends` marker), end markers left out."""
    ends = dict(ends)
    consumer.assign([TP(topic, p, OFFSET_BEGINNING) for p in ends])
    try:
        stalled = 0.0
        while ends:
            message = consumer.poll(RESTORE_POLL_S)
            if message is None:
                stalled += RESTORE_POLL_S
                if stalled >= RESTORE_STALL_S:
                    raise ServiceUnavailableError(
                        "Kafka", topic, f"restoring partitions {sorted(ends)} stalled"
                    )
                continue
            stalled = 0.0
            error = message.error()
            if error is not None:
                raise ServiceUnavailableError("Kafka", topic, str(error))
            partition = message.partition() or 0
            if partition not in ends:
                continue  # read to its end already
            if (message.offset() or 0) >= ends[partition]:
                ends.pop(partition)
            if message.key() != END_MARKER:
                yield message
    finally:
        consumer.unassign()


class _States(MutableMapping[str, State]):
    """States as JSON bytes in memory; `_write` produces each write to the changelog."""

    topic: str

    def __init__(self) -> None:
        self.states: dict[str, bytes] = {}

    def __getitem__(self, key: str) -> State:
        return _decode(self.states[key])  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: State) -> None:
        encoded = _encode(value)
        self.states[key] = encoded
        self._write(key, encoded)

    def __delitem__(self, key: str) -> None:
        del self.states[key]
        self._write(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.states)

    def __len__(self) -> int:
        return len(self.states)

    def _write(self, key: str, value: bytes | None) -> None:
        raise NotImplementedError

    def _apply(self, message: Message) -> str | None:
        """A changelog record read back: the last record of a key wins, a tombstone deletes
        it. Returns the key (None: an end marker, not a state)."""
        if message.key() == END_MARKER:
            return None
        key = (message.key() or b"").decode()
        value = message.value()
        if value is None:
            self.states.pop(key, None)
        else:
            self.states[key] = value
        return key


class ChangelogStates(_States):
    """Entity states of the owned partitions, every write produced to the changelog partition
    `partition`."""

    def __init__(self, producer: Producer, topic: str) -> None:
        super().__init__()
        self.producer = producer
        self.topic = topic
        self.partition = 0
        """The partition of the record whose entity is written next (`before_state_write`)."""
        self.partition_keys: dict[int, set[str]] = {}
        """The keys each partition wrote or restored (`drop` forgets them)."""

    def _write(self, key: str, value: bytes | None) -> None:
        if value is not None:
            self.partition_keys.setdefault(self.partition, set()).add(key)
        self.producer.produce(self.topic, value, key.encode(), partition=self.partition)

    def restore(self, consumer: Consumer, partitions: Iterable[int]) -> int:
        """Read `partitions` of the changelog to their end into memory; returns how many
        records were read."""
        read = 0
        partitions = list(partitions)
        self.drop(partitions)
        ends = mark_ends(self.producer, self.topic, partitions)
        for message in read_to_end(consumer, self.topic, ends):
            key = self._apply(message)
            if key is not None:
                self.partition_keys.setdefault(message.partition() or 0, set()).add(key)
            read += 1
        return read

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the states of `partitions` (another worker owns them now)."""
        for partition in partitions:
            for key in self.partition_keys.pop(partition, ()):
                self.states.pop(key, None)


class GlobalStates(_States):
    """A table every worker holds whole: restored from every partition of its changelog,
    then kept up to date with what other workers write (`follow`)."""

    def __init__(self, producer: Producer, consumer: Consumer, topic: str) -> None:
        super().__init__()
        self.producer = producer
        self.consumer = consumer
        self.topic = topic
        self.writer = uuid.uuid4().hex.encode()
        self._headers: list[tuple[str, str | bytes | None]] = [(WRITER_HEADER, self.writer)]

    def _write(self, key: str, value: bytes | None) -> None:
        self.producer.produce(self.topic, value, key.encode(), headers=self._headers)

    def restore(self) -> int:
        """Read the whole changelog, then keep reading it from its end (`follow`)."""
        metadata = self.consumer.list_topics(self.topic, timeout=WATERMARK_TIMEOUT_S)
        partitions = sorted(metadata.topics[self.topic].partitions)
        read = 0
        ends = mark_ends(self.producer, self.topic, partitions)
        for message in read_to_end(self.consumer, self.topic, ends):
            self._apply(message)
            read += 1
        self.consumer.assign([TP(self.topic, p, end + 1) for p, end in ends.items()])
        return read

    def follow(self) -> None:
        """Apply what other workers wrote since the last call, without waiting."""
        for message in self.consumer.consume(10_000, 0):
            if message.error() is None and _writer(message) != self.writer:
                self._apply(message)


def _writer(message: Message) -> bytes | None:
    headers: Any = message.headers() or []
    return next((bytes(v) for k, v in headers if k == WRITER_HEADER and v is not None), None)
