"""Reading records back from the decisions topic by offset, for re-derivation
(`ledger.rederive`): the sequencer before it signs entries no checkpoint of its own covers,
and `forensic verify` for a chain's unsigned tail."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from attestcore.errors import ServiceUnavailableError
from ledger.entry import Entry
from ledger.rederive import Mismatch, compare, foreign

# Reading one partition range from a reachable broker takes milliseconds per thousand
# records; a range that has not arrived after this long never will (deleted by retention,
# or another broker).
READ_TIMEOUT_S = 30.0
CONSUME_BATCH = 1000
# Metadata from a live broker arrives in milliseconds; 10 s means it is not there.
METADATA_TIMEOUT_S = 10.0


def rederive(
    bootstrap: str,
    cluster_id: str | None,
    entries: Sequence[Entry],
    timeout_s: float = READ_TIMEOUT_S,
) -> list[Mismatch]:
    """Compare each entry's decision with the record at its source offset.

    `cluster_id` is the id of the cluster the caller knows to be at `bootstrap` (None: ask
    the broker). An entry read from another cluster (a broker reset since) cannot be
    re-derived and is reported. Entries must all come from one topic partition (one chain).
    Raises ServiceUnavailableError when the broker does not answer at all."""
    if not entries:
        return []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "attestream-rederive",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        if cluster_id is None:
            cluster_id = consumer.list_topics(timeout=METADATA_TIMEOUT_S).cluster_id or ""
        mismatches = foreign(entries, cluster_id)
        here = [e for e in entries if e.source.cluster == cluster_id]
        if here:
            first = here[0].source
            offsets = sorted(e.source.offset for e in here)
            records = _read_offsets(consumer, first.topic, first.partition, offsets, timeout_s)
            mismatches += compare(here, records)
    except KafkaException as exc:
        raise ServiceUnavailableError("kafka", bootstrap, str(exc)) from exc
    finally:
        consumer.close()
    return sorted(mismatches, key=lambda m: m.seq)


@dataclass
class KafkaRederiver:
    """The decisions topic at `bootstrap`, as `ledger.rederive.Rederiver`. The broker is
    first contacted when a tail needs re-deriving; an unreachable one raises
    ServiceUnavailableError (exit 3)."""

    bootstrap: str

    def rederive(self, entries: Sequence[Entry]) -> list[Mismatch]:
        return rederive(self.bootstrap, None, entries)


def _read_offsets(
    consumer: Consumer, topic: str, partition: int, offsets: list[int], timeout_s: float
) -> dict[int, bytes]:
    """The values of the records at `offsets` (sorted) of one partition; missing ones are
    absent from the result (retention, or never written)."""
    wanted = set(offsets)
    found: dict[int, bytes] = {}
    answered = False
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
    if not answered:
        raise KafkaException(f"no answer for {topic}/{partition} in {timeout_s:.0f} s")
    return found
