"""Adaptive micro-batches: a batch is decided as soon as the worker has nothing more
buffered for it, or when it reaches its size cap.

faust's `Stream.take_events(max_, within)` closes a batch only when it is full or when its
window (`within`) has passed, so at any rate below the worker's capacity every event waited
out the window. `adaptive_batches` takes events the same way (a processor on the stream adds
each event to the batch while the stream is drained in the background, and every event is
acked when the agent leaves its batch), but the batch is ready as soon as

- it holds `max_` events (the size cap), or
- the consumer has handed every fetched record to the streams and asks for more
  (`streams.consumer.LowLatencyConsumer.fetching`), its Kafka client holds no prefetched
  records of the stream's topics (`buffered`) and the stream's own queue is empty: nothing
  more is buffered for this batch, so waiting would only delay it.

`within_s` stays as an upper bound on how long a batch waits while the consumer keeps
delivering other topics' records (or is paused in a rebalance); it is not waited out while
events are waiting. Events that arrive while the agent decides a batch wait in the stream's
queue (the background drain is paused, as in `take_events`) and form the next batch, so under
load batches grow up to the cap and the per-batch costs are shared by more events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Protocol, cast

from faust.streams import Stream
from faust.types import ChannelT, EventT, Message


class FetchSignals(Protocol):
    """What the batches need of the consumer (`streams.consumer.LowLatencyConsumer`)."""

    fetching: bool

    def buffered(self, topics: Collection[str]) -> bool: ...
    def on_fetch(self, callback: Callable[[], None]) -> Callable[[], None]: ...
    def received_at(self, message: Message) -> float | None: ...


async def adaptive_batches(
    stream: Stream[bytes], consumer: FetchSignals, max_: int, within_s: float
) -> AsyncIterator[list[EventT[bytes]]]:
    """Batches of at most `max_` events of `stream`, each ready as soon as nothing more is
    buffered for it (see the module's docstring)."""
    events: list[EventT[bytes]] = []
    ready = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    queue_empty = cast("ChannelT[bytes]", stream.channel).queue.empty
    topics = frozenset(getattr(stream.channel, "topics", ()))  # an in-memory channel: none

    def nothing_buffered() -> None:
        if events and queue_empty() and not consumer.buffered(topics):
            ready.set()

    async def add(value: bytes) -> bytes:
        nonlocal consuming
        if consuming is not None:  # the agent is deciding the previous batch
            try:
                await consuming
            finally:
                consuming = None
        event = stream.current_event
        if event is None:
            raise RuntimeError("a stream processor ran without a current event")
        events.append(cast("EventT[bytes]", event))
        if len(events) >= max_:
            ready.set()
            # No more than `max_` events in a batch: wait until this one is taken.
            consumed.clear()
            await stream.wait(consumed)  # type: ignore[arg-type]
        elif consumer.fetching:
            nothing_buffered()
        return value

    stream.enable_acks = False  # every event is acked below, once its batch is done
    stream.add_processor(add)
    stream._enable_passive(cast("ChannelT[Any]", aiter(stream.channel)))
    forget = consumer.on_fetch(nothing_buffered)
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(ready, timeout=within_s)  # type: ignore[arg-type]
            if not events:
                ready.clear()
                continue
            consuming = asyncio.get_running_loop().create_future()
            batch = list(events)
            try:
                yield batch
            finally:
                events.clear()
                ready.clear()
                for event in batch:
                    await stream.ack(event)
                if not consuming.done():
                    consuming.set_result(None)  # the stream may add events again
                consumed.set()
    finally:
        forget()
