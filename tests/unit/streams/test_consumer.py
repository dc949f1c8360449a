"""The worker's consumer (streams.consumer): its fetch wait, and the faust and aiokafka code it
relies on, recorded for the pinned versions so that an upgrade fails here, not in a worker
whose decisions quietly wait 1.5 s again."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from importlib import metadata

import aiokafka  # type: ignore[import-untyped]
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.app import StreamConfig, new_app
from streams.consumer import LowLatencyConsumer, LowLatencyTransport, fetch_signals

# sha256 of `inspect.getsource(AIOKafkaConsumerThread._create_worker_consumer)` in
# faust-streaming 0.15.3, which hard-codes fetch_max_wait_ms=1500.
CREATE_WORKER_CONSUMER_SHA256 = "c2701bfc3e6f6cad95c2be36d6a255a86e2c57d18d36cc1082b5fb5c482d99d7"
RECHECK = (
    "re-check streams/consumer.py against the new faust/aiokafka: LowLatencyConsumerThread"
    " must still set the fetch wait of the consumer faust creates (does faust now take it"
    " from a setting? is `_fetch_max_wait_ms` still what the fetcher is built with?), and"
    " LowLatencyConsumer's `_getmany` and `callback` must still be the fetch and the hand-over"
    " of each record; then record the new digest here"
)


def config(fetch_max_wait_ms: int) -> StreamConfig:
    return StreamConfig(
        app_id="test-consumer",
        bootstrap="localhost:1",
        decisions_topic="decisions",
        dead_letter_topic="dead",
        partitions=1,
        batch_max=8,
        batch_within_s=0.05,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


def test_the_overridden_faust_code_is_the_recorded_one() -> None:
    assert metadata.version("faust-streaming") == "0.15.3", RECHECK
    source = inspect.getsource(AIOKafkaConsumerThread._create_worker_consumer)
    assert hashlib.sha256(source.encode()).hexdigest() == CREATE_WORKER_CONSUMER_SHA256, RECHECK
    assert "fetch_max_wait_ms=1500" in source, RECHECK


def test_aiokafka_builds_its_fetcher_with_the_wait_the_worker_sets() -> None:
    assert metadata.version("aiokafka") == aiokafka.__version__ == "0.14.0", RECHECK
    init = inspect.getsource(aiokafka.AIOKafkaConsumer.__init__)
    start = inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in init, RECHECK
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start, RECHECK
    # LowLatencyConsumer.buffered: the client's fetcher and its buffer of prefetched records.
    assert "self._fetcher = Fetcher(" in start, RECHECK
    fetcher = inspect.getsource(aiokafka.consumer.fetcher.Fetcher.__init__)
    assert "self._records = collections.OrderedDict()" in fetcher, RECHECK
    assert "_consumer" in AIOKafkaConsumerThread.__annotations__, RECHECK


def test_faust_hands_each_fetched_record_to_the_consumers_callback() -> None:
    drain = inspect.getsource(Consumer._drain_messages)
    assert "callback = self.callback" in drain, RECHECK
    assert "getmany(timeout=" in drain, RECHECK
    assert "await self._getmany(" in inspect.getsource(Consumer._wait_next_records), RECHECK
    assert "_getmany" in ThreadDelegateConsumer.__dict__, RECHECK


def test_the_worker_consumer_waits_at_most_the_configured_fetch_wait() -> None:
    app = new_app(config(fetch_max_wait_ms=25))
    transport = app.transport
    assert isinstance(transport, LowLatencyTransport)
    consumer = fetch_signals(app)
    assert isinstance(consumer, LowLatencyConsumer)

    async def created_wait() -> int:
        kafka = consumer._thread._create_worker_consumer(transport)
        try:
            return int(kafka._fetch_max_wait_ms)
        finally:
            await kafka.stop()

    assert asyncio.run(created_wait()) == 25
