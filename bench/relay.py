"""The latency ceiling of the detection stream: the broker's part of a decision and nothing else.

`python -m bench.relay SETTINGS_JSON` (the settings of `bench.stream_worker`) reads the
payments topic as the confluent-kafka engine does (`streams.kafka_worker`: the first record as
soon as it is there, then whatever else is buffered, with the worker's consumer and producer
settings and its fetch wait), and for each payment publishes to the decisions topic a record
holding what the benchmark's decisions watch reads (the payment's event id and event time, and
when it was relayed). Then it flushes and commits synchronously, as the engine does after each
batch.

No parsing beyond those two fields, no state, no model, no reasons: its event-to-read-back
latency, under the same sender, watch and rate as the engine's, is what the broker, the client
settings and the measurement put under any decision (figures r1, r2 in docs/benchmarks.md).
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime

import msgspec
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.stream_worker import WorkerSettings, stream_config
from streams.kafka_worker import FLUSH_TIMEOUT_S, IDLE_POLL_S, consumer_config, producer_config

RELAY_MODE = "relay"


class _Payment(msgspec.Struct):
    """The two fields of a payment the watch needs (the rest is skipped, not parsed)."""

    event_id: str
    event_time: datetime


class _Relayed(msgspec.Struct):
    event_id: str
    event_time: datetime
    decided_at: datetime


def relay(s: WorkerSettings) -> None:
    """Relay until SIGTERM."""
    config = stream_config(s)
    consumer = Consumer(consumer_config(config))
    producer = Producer(producer_config(config))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    decode = msgspec.json.Decoder(_Payment).decode
    encode = msgspec.json.Encoder().encode
    consumer.subscribe([s.topic])
    try:
        while not stopping.is_set():
            first = consumer.poll(IDLE_POLL_S)
            if first is None:
                continue
            messages = [first, *consumer.consume(s.batch_max - 1, 0)]
            now = datetime.now(UTC)
            offsets: dict[int, int] = {}
            for message in messages:
                if message.error() is not None:
                    continue
                payment = decode(message.value() or b"")
                out = _Relayed(payment.event_id, payment.event_time, now)
                producer.produce(s.decisions_topic, encode(out), message.key())
                offsets[message.partition() or 0] = (message.offset() or 0) + 1
            producer.flush(FLUSH_TIMEOUT_S)
            if offsets:
                tps = [TopicPartition(s.topic, p, o) for p, o in offsets.items()]
                consumer.commit(offsets=tps, asynchronous=False)
    finally:
        producer.flush(FLUSH_TIMEOUT_S)
        consumer.close()


def main(argv: list[str]) -> None:
    [raw_settings] = argv
    relay(msgspec.json.decode(raw_settings, type=WorkerSettings))


if __name__ == "__main__":
    main(sys.argv[1:])
