"""Adaptive micro-batches (streams.batching) on a faust agent fed through its in-memory test
channel: a batch is decided as soon as the consumer has nothing more buffered, or at its size
cap, never after waiting out its window while events wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faust.types import StreamT

from streams.app import StreamConfig, concrete_stream, new_app
from streams.batching import adaptive_batches
from streams.consumer import LowLatencyConsumer, fetch_signals

# Far longer than the test may take: a batch that waits out its window never arrives.
WINDOW_S = 3600.0
# A bound on how long the event loop may take to run the agent, not a measured time.
LIVENESS_S = 60.0
CAP = 3


@dataclass
class Harness:
    """An agent over adaptive_batches (cap 3), its batches, and the app's real consumer."""

    batches: list[list[bytes]] = field(default_factory=list)
    test: Any = None
    consumer: LowLatencyConsumer | None = None

    async def put(self, *values: bytes) -> None:
        for value in values:
            await self.test.put(value, wait=False)

    async def until_batches(self, count: int) -> None:
        async def poll() -> None:
            while len(self.batches) < count:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), LIVENESS_S)

    def fetching(self, waiting: bool) -> None:
        """The consumer has delivered every fetched record and waits for the broker (True),
        or is delivering records (False)."""
        assert self.consumer is not None
        self.consumer.fetching = waiting

    async def consumer_starts_waiting(self) -> None:
        """What the consumer does when it has delivered every record: start a fetch."""
        assert self.consumer is not None
        self.fetching(True)
        for callback in self.consumer._on_fetch:
            callback()


def run(scenario: Callable[[Harness], Awaitable[None]]) -> list[list[bytes]]:
    cfg = StreamConfig(
        app_id="test-batching",
        bootstrap="localhost:1",
        decisions_topic="decisions",
        dead_letter_topic="dead",
        partitions=1,
        batch_max=CAP,
        batch_within_s=WINDOW_S,
    )
    app = new_app(cfg)
    harness = Harness(consumer=fetch_signals(app))

    async def collect(stream: StreamT[bytes]) -> None:
        source = concrete_stream(stream)
        consumer = fetch_signals(stream.app)
        async for events in adaptive_batches(source, consumer, CAP, WINDOW_S):
            harness.batches.append([bytes(event.value) for event in events])

    agent: Any = app.agent(name="collect")(collect)

    async def main() -> None:
        async with agent.test_context() as test:
            harness.test = test
            await scenario(harness)

    asyncio.run(main())
    return harness.batches


def test_a_batch_is_decided_once_nothing_more_is_buffered() -> None:
    async def scenario(h: Harness) -> None:
        h.fetching(True)
        await h.put(b"a")
        await h.until_batches(1)
        await h.put(b"b", b"c")
        await h.until_batches(2)

    batches = run(scenario)
    # One event alone is decided at once; two put together form one batch.
    assert batches[0] == [b"a"]
    assert [b for batch in batches for b in batch] == [b"a", b"b", b"c"]


def test_a_batch_waits_while_the_consumer_is_delivering_then_goes_when_it_fetches() -> None:
    async def scenario(h: Harness) -> None:
        h.fetching(False)
        await h.put(b"a", b"b")
        await h.consumer_starts_waiting()
        await h.until_batches(1)

    assert run(scenario) == [[b"a", b"b"]]


def test_a_full_batch_is_decided_at_its_cap_and_the_rest_follows() -> None:
    async def scenario(h: Harness) -> None:
        h.fetching(False)
        await h.put(b"a", b"b", b"c", b"d", b"e")
        await h.until_batches(1)
        await h.consumer_starts_waiting()
        await h.until_batches(2)

    assert run(scenario) == [[b"a", b"b", b"c"], [b"d", b"e"]]
