"""The sequencer's adaptive batches: ready as soon as nothing more is buffered, or at the cap;
the poll timeout is waited only while no record has arrived."""

from __future__ import annotations

import gc
from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from ledger.batches import DRAIN_WAIT_S, Take, collector_paused, next_take, take_batch

POLL_S = 0.5


class Buffered:
    """What a Kafka client has fetched and not handed over yet, in arrival order: `consume`
    hands over at most `count` of them and notes each call."""

    def __init__(self, records: int) -> None:
        self.records = deque(range(records))
        self.calls: list[Take] = []

    def consume(self, count: int, timeout_s: float) -> list[int]:
        self.calls.append(Take(count, timeout_s))
        return [self.records.popleft() for _ in range(min(count, len(self.records)))]


def test_a_batch_first_waits_the_poll_timeout_for_one_record() -> None:
    assert next_take(10_000, 0, None, 0, POLL_S) == Take(1, POLL_S)


def test_after_the_first_record_the_rest_is_taken_without_the_poll_timeout() -> None:
    assert next_take(10_000, 1, Take(1, POLL_S), 1, POLL_S) == Take(9_999, DRAIN_WAIT_S)
    assert DRAIN_WAIT_S < POLL_S / 10


def test_a_batch_is_ready_when_a_take_finds_less_than_it_asked_for() -> None:
    assert next_take(10_000, 0, Take(1, POLL_S), 0, POLL_S) is None  # nothing arrived
    assert next_take(10_000, 4, Take(9_999, DRAIN_WAIT_S), 3, POLL_S) is None


def test_a_batch_is_ready_at_its_cap() -> None:
    assert next_take(1, 1, Take(1, POLL_S), 1, POLL_S) is None
    assert next_take(10, 10, Take(9, DRAIN_WAIT_S), 9, POLL_S) is None


def test_a_few_buffered_decisions_are_one_batch_at_once() -> None:
    client = Buffered(3)
    assert take_batch(client.consume, 10_000, POLL_S) == [0, 1, 2]
    # The old single call, consume(10_000, 0.5), waited out the whole 0.5 s here.
    assert client.calls == [Take(1, POLL_S), Take(9_999, DRAIN_WAIT_S)]


def test_under_load_batches_are_full_and_in_order() -> None:
    client = Buffered(25)
    batches = [take_batch(client.consume, 10, POLL_S) for _ in range(4)]
    assert batches == [list(range(10)), list(range(10, 20)), list(range(20, 25)), []]


@given(buffered=st.integers(0, 300), cap=st.integers(1, 100))
def test_a_batch_takes_what_is_buffered_up_to_the_cap_waiting_the_poll_once(
    buffered: int, cap: int
) -> None:
    client = Buffered(buffered)
    batch = take_batch(client.consume, cap, POLL_S)
    assert batch == list(range(min(buffered, cap)))
    assert [take.timeout_s for take in client.calls].count(POLL_S) == 1
    assert sum(take.timeout_s for take in client.calls) <= POLL_S + DRAIN_WAIT_S


def test_the_collector_is_paused_while_a_batch_is_logged_and_restored_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # paused by the caller: left so
    finally:
        gc.enable()
