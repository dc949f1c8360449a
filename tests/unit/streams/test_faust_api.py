"""The parts of faust-streaming the detection worker uses beyond its `StreamT`/`AgentT`
interfaces still exist, with the shapes the worker calls them with (checked against
faust-streaming 0.15.3, pinned in requirements.txt). A faust upgrade that moves one fails
here, not in a worker that silently stops committing or writes state to the wrong partition.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import metadata

from faust.streams import Stream
from faust.transport.consumer import Consumer
from faust.types.tuples import Message


def parameters(function: Callable[..., object]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_pinned_faust_is_the_checked_one() -> None:
    assert metadata.version("faust-streaming") == "0.15.3", (
        "faust-streaming changed: re-check streams/app.py `concrete_stream`, streams/batching.py"
        " and streams/outcomes.py against the new release, then update this test"
    )


def test_stream_takes_batches_and_follows_the_current_event() -> None:
    # streams.app: `take_events(max_, within=...)` yields lists of events; the table writes
    # its changelog to the partition of the event `_set_current_event` names (private API).
    assert parameters(Stream.take_events)[:3] == ["self", "max_", "within"]
    assert parameters(Stream._set_current_event) == ["self", "event"]


def test_stream_feeds_processors_in_the_background_and_acks_what_it_is_told() -> None:
    # streams.batching: a processor adds each event to the batch while `_enable_passive`
    # drains the stream (private API); `ack` is awaited for every event of a finished batch.
    assert parameters(Stream.add_processor) == ["self", "processor"]
    assert parameters(Stream._enable_passive)[:2] == ["self", "channel"]
    assert inspect.iscoroutinefunction(Stream.ack)
    assert parameters(Stream.ack) == ["self", "event"]
    assert "self._enable_passive(" in inspect.getsource(Stream.take_events)
    assert "event = self.current_event" in inspect.getsource(Stream.take_events)


def test_messages_count_references_before_they_are_acked() -> None:
    # streams.outcomes: `incref` holds a record; the event's `ack` drops one reference.
    message = Message("t", 0, 5, 0.0, 0, headers=None, key=b"k", value=b"v", checksum=None)
    message.incref()  # the stream's own reference
    message.incref()  # the worker's hold
    assert message.decref() == 1  # faust's ack at the end of the batch: still held
    assert message.decref() == 0
    assert isinstance(inspect.getattr_static(Consumer, "unacked"), property)
