"""Reading the topics back: did every consumed input record end as exactly one decision or
exactly one dead letter?

A decision names its input record (`Decision.source`), a dead letter carries the record's
topic, partition and offset in its headers (`streams.intake.dead_letter_headers`), so both
topics together say what became of each record. A decision sent twice (a worker re-decided
a batch after a crash: the ledger drops the copy by decision id) still counts once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from attestcore.errors import ServiceUnavailableError
from attestcore.schemas import SourceRef
from streams.intake import HEADER_OFFSET, HEADER_PARTITION, HEADER_REASON, HEADER_TOPIC

# A topic read is complete once the local broker sent nothing for this long.
READ_QUIET_S = 1.0
# Metadata from a live broker arrives in milliseconds; 10 s means it is not there.
METADATA_TIMEOUT_S = 10.0

Position = tuple[str, int, int]
"""(topic, partition, offset) of an input record."""


class _Source(msgspec.Struct):
    source: SourceRef
    decision_id: str


_decode_source = msgspec.json.Decoder(_Source).decode


@dataclass
class Accounting:
    """What became of each input record: its decision ids and dead-letter reasons."""

    consumed: list[Position] = field(default_factory=list)
    decisions: dict[Position, set[str]] = field(default_factory=lambda: defaultdict(set))
    dead_letters: dict[Position, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def decided(self) -> int:
        return sum(1 for p in self.consumed if self.decisions.get(p))

    @property
    def dead_lettered(self) -> int:
        return sum(1 for p in self.consumed if self.dead_letters.get(p))

    def without_outcome(self) -> list[Position]:
        return [
            p for p in self.consumed if not self.decisions.get(p) and not self.dead_letters.get(p)
        ]

    def more_than_one(self) -> list[Position]:
        """Records with two outcomes: two decisions (different models), two dead letters, or
        a decision and a dead letter."""
        return [p for p in self.consumed if self._outcomes(p) > 1]

    def _outcomes(self, position: Position) -> int:
        return len(self.decisions.get(position, ())) + len(self.dead_letters.get(position, ()))

    @property
    def holds(self) -> bool:
        """consumed = decided + dead-lettered, each record with exactly one outcome."""
        return not self.without_outcome() and not self.more_than_one()

    def summary(self) -> str:
        return (
            f"consumed {len(self.consumed)} = decided {self.decided}"
            f" + dead-lettered {self.dead_lettered}"
        )


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's next offset, found by reading the topic (Tansu's watermarks lag
    behind offsets)."""
    ends: dict[int, int] = {}
    for message in read_topic(bootstrap, topic):
        partition, offset = int(message.partition() or 0), int(message.offset() or 0)
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


def read_topic(
    bootstrap: str, topic: str, since: Mapping[int, int] | None = None
) -> Iterator[Message]:
    """Every record of `topic` from offsets `since` (default: the beginning) until the broker
    has been quiet for `READ_QUIET_S`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "attestream-accounting",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
            "fetch.message.max.bytes": 4 * 1024 * 1024,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
        if meta is None or meta.error is not None:
            return
        start = since or {}
        consumer.assign(
            [TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in meta.partitions]
        )
        while batch := consumer.consume(10_000, timeout=READ_QUIET_S):
            yield from (m for m in batch if not m.error())
    except KafkaException as exc:
        raise ServiceUnavailableError("Kafka", bootstrap, str(exc)) from exc
    finally:
        consumer.close()


def account(
    bootstrap: str,
    inputs: Mapping[str, Mapping[int, int]],
    decisions_topic: str,
    dead_letter_topic: str,
) -> Accounting:
    """The outcome of every record of the input topics from the given offsets (topic ->
    partition -> first offset), read back from the decisions and dead-letter topics."""
    result = Accounting()
    for topic, since in inputs.items():
        result.consumed += [
            (topic, int(m.partition() or 0), int(m.offset() or 0))
            for m in read_topic(bootstrap, topic, since)
        ]
    wanted = set(result.consumed)
    for message in read_topic(bootstrap, decisions_topic):
        try:
            decided = _decode_source(message.value() or b"")
        except msgspec.DecodeError:
            continue  # the ledger dead-letters it; not an outcome of an input record
        position = (decided.source.topic, decided.source.partition, decided.source.offset)
        if position in wanted:
            result.decisions[position].add(decided.decision_id)
    for message in read_topic(bootstrap, dead_letter_topic):
        headers = dict(record_headers(message.headers()))
        try:
            position = (
                headers[HEADER_TOPIC].decode(),
                int(headers[HEADER_PARTITION]),
                int(headers[HEADER_OFFSET]),
            )
        except (KeyError, ValueError):
            continue  # not a dead letter of ours
        if position in wanted:
            result.dead_letters[position].append(headers.get(HEADER_REASON, b"").decode())
    return result


def record_headers(
    raw: Mapping[str, str | bytes | None] | Iterable[tuple[str, str | bytes | None]] | None,
) -> Iterator[tuple[str, bytes]]:
    """A consumed record's headers (`Message.headers()`) as (name, bytes) pairs; a header
    without a value is empty bytes."""
    pairs = raw.items() if isinstance(raw, Mapping) else raw or ()
    for key, value in pairs:
        yield key, value.encode() if isinstance(value, str) else value or b""
