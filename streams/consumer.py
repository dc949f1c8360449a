"""The worker's Kafka consumer: faust's aiokafka driver with a configurable fetch wait, and
the two things the micro-batches need to know of it.

Faust's aiokafka driver creates its consumer with `fetch_max_wait_ms=1500` written into
`AIOKafkaConsumerThread._create_worker_consumer`; no faust setting changes it. A broker may
hold a fetch of a caught-up partition for up to that wait before answering (the local broker,
Tansu, answers after a good part of it), so every decision waited for it. `LowLatencyTransport`
is the driver's transport with a consumer whose thread overrides that one method: it calls
faust's own and only sets the fetch wait on the consumer it returns (before it starts, so the
fetcher is built with it). tests/unit/streams/test_consumer.py fails if the pinned faust or
aiokafka changes the code this relies on.

The consumer also tells the micro-batches (`streams.batching`):

- `fetching`: the consumer has handed every fetched record to the streams and asks for more;
  `on_fetch` callbacks run each time it starts; `buffered(topics)`: the Kafka client still
  holds prefetched records of those topics (the next fetch returns them at once). Fetching
  with nothing buffered means nothing more is on its way to the streams until the broker
  answers;
- `received_at(message)`: the wall-clock time the fetch that brought a record returned, the
  record's receipt (`streams.stages`).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import aiokafka  # type: ignore[import-untyped]
import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, AppT, Message

RecordMap = Mapping[TP, list[Any]]


class LowLatencyConsumerThread(driver.AIOKafkaConsumerThread):
    """faust's consumer thread, its worker consumer created with the transport's fetch wait."""

    def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(transport, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # Read by `AIOKafkaConsumer.start` when it builds its fetcher.
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer


class LowLatencyConsumer(driver.Consumer):
    """faust's aiokafka consumer with `LowLatencyConsumerThread`, telling the micro-batches
    when it waits for the broker and when each record was received."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetching = False
        self.fetched_at = time.time()
        self._on_fetch: list[Callable[[], None]] = []
        self._received: weakref.WeakKeyDictionary[Message, float] = weakref.WeakKeyDictionary()
        deliver = self.callback

        async def received(message: Message) -> None:
            self._received[message] = self.fetched_at
            await deliver(message)

        # `_drain_messages` hands every fetched record to this callback, in fetch order.
        self.callback = received

    def _new_consumer_thread(self) -> LowLatencyConsumerThread:
        return LowLatencyConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def on_fetch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` each time the consumer has delivered every fetched record and
        starts waiting for the broker; returns what stops it."""
        self._on_fetch.append(callback)
        return lambda: self._on_fetch.remove(callback)

    def buffered(self, topics: Collection[str]) -> bool:
        """Whether the Kafka client holds fetched records of `topics` that faust has not
        taken yet. Its fetcher prefetches in the consumer's thread; the keys of its buffer are
        copied in one step under the interpreter lock. Other topics are left out: the
        client also buffers the tables' changelog partitions, which faust never asks for
        once the tables are recovered."""
        kafka = self._thread._consumer
        fetcher = None if kafka is None else kafka._fetcher
        if fetcher is None or not topics:
            return False
        return any(tp.topic in topics for tp in list(fetcher._records))

    def received_at(self, message: Message) -> float | None:
        """When the fetch that brought `message` returned (time.time()), if it came through
        this consumer."""
        return self._received.get(message)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        self.fetching = True
        try:
            for callback in self._on_fetch:
                callback()
            records: RecordMap = await super()._getmany(active_partitions, timeout)
        finally:
            self.fetching = False
            self.fetched_at = time.time()
        return records


class LowLatencyTransport(driver.Transport):
    """faust's aiokafka transport whose consumer waits at most `fetch_max_wait_ms` for a
    fetch; the producer side is faust's own."""

    Consumer = LowLatencyConsumer

    def __init__(self, url: Iterable[Any], app: faust.App, fetch_max_wait_ms: int) -> None:
        super().__init__(url, app)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def fetch_signals(app: AppT) -> LowLatencyConsumer:
    """The app's consumer, which `use_low_latency_transport` made a `LowLatencyConsumer`."""
    consumer = app.consumer
    if not isinstance(consumer, LowLatencyConsumer):
        raise TypeError(
            f"the app's consumer is a {type(consumer).__name__}: build the app with"
            " streams.app.new_app"
        )
    return consumer


def use_low_latency_transport(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make `LowLatencyTransport` the app's consumer transport (before anything uses it)."""
    app.transport = LowLatencyTransport(app.conf.broker_consumer, app, fetch_max_wait_ms)
