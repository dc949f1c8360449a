"""Re-deriving logged entries from their recorded source: the decisions topic.

Every entry records where the sequencer read its decision (cluster, topic, partition,
offset). Reading those records again and comparing the decisions they carry with the ones the
entries hold tells whether the entries are what the topic said, without trusting the database
that stores them. The sequencer does this before it signs entries that no checkpoint of its
own covers, and `forensic verify --kafka` does it for a chain's unsigned tail
(docs/ledger-format.md, "Verification").

Decisions are compared in their canonical encoding (`ledger.entry.encode_decision`), so a
record whose decision is equal but encoded differently still matches, and any changed member
(an outcome, a score, a reason) does not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from attestream.errors import MalformedError, ServiceUnavailableError
from ledger.entry import Entry, decode_decision, encode_decision

# Reading one partition range from a reachable broker takes milliseconds per thousand
# records; a range that has not arrived after this long never will (deleted by retention,
# or another broker).
READ_TIMEOUT_S = 30.0
CONSUME_BATCH = 1000


@dataclass(frozen=True)
class Mismatch:
    """An entry the topic does not back: its seq and why."""

    seq: int
    reason: str
    unreadable: bool = False
    """No record to compare with (another cluster, or no record at the offset), as opposed
    to a record that carries another decision."""


def rederive(
    bootstrap: str, cluster_id: str, entries: Sequence[Entry], timeout_s: float = READ_TIMEOUT_S
) -> list[Mismatch]:
    """Compare each entry's decision with the record at its source offset.

    `cluster_id` is the id of the cluster at `bootstrap`: an entry read from another cluster
    (a broker reset since) cannot be re-derived and is reported. Entries must all come from
    one topic partition (one chain). Raises ServiceUnavailableError when the broker does not
    answer at all."""
    if not entries:
        return []
    mismatches = [
        Mismatch(
            e.seq,
            f"read from Kafka cluster {e.source.cluster!r}, not {cluster_id!r}",
            unreadable=True,
        )
        for e in entries
        if e.source.cluster != cluster_id
    ]
    wanted = {e.source.offset: e for e in entries if e.source.cluster == cluster_id}
    if not wanted:
        return mismatches
    first = entries[0].source
    records = _read_offsets(bootstrap, first.topic, first.partition, sorted(wanted), timeout_s)
    for offset, entry in sorted(wanted.items()):
        value = records.get(offset)
        if value is None:
            mismatches.append(
                Mismatch(
                    entry.seq,
                    f"no record at {first.topic}/{first.partition}@{offset}",
                    unreadable=True,
                )
            )
            continue
        logged = encode_decision(entry.decision)
        try:
            read = encode_decision(decode_decision(value))
        except MalformedError:
            read = b""
        if read != logged:
            mismatches.append(
                Mismatch(
                    entry.seq,
                    f"the record at {first.topic}/{first.partition}@{offset} carries another"
                    " decision",
                )
            )
    return sorted(mismatches, key=lambda m: m.seq)


def _read_offsets(
    bootstrap: str, topic: str, partition: int, offsets: list[int], timeout_s: float
) -> dict[int, bytes]:
    """The values of the records at `offsets` (sorted) of one partition; missing ones are
    absent from the result (retention, or never written)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "attestream-rederive",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    wanted = set(offsets)
    found: dict[int, bytes] = {}
    answered = False
    try:
        consumer.assign([TopicPartition(topic, partition, offsets[0])])
        deadline = time.monotonic() + timeout_s
        while wanted and time.monotonic() < deadline:
            for msg in consumer.consume(CONSUME_BATCH, 0.5):
                answered = True
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return found  # everything there is has been read
                    continue
                offset = msg.offset()
                if offset in wanted:
                    wanted.discard(offset)
                    found[offset] = msg.value() or b""
                if offset is not None and offset >= offsets[-1]:
                    return found
    except KafkaException as exc:
        raise ServiceUnavailableError("kafka", bootstrap, str(exc)) from exc
    finally:
        consumer.close()
    if not answered:
        raise ServiceUnavailableError(
            "kafka", bootstrap, f"no answer for {topic}/{partition} in {timeout_s:.0f} s"
        )
    return found
