"""Adaptive batches for the sequencer: a batch is made durable as soon as the consumer has
nothing more buffered for it, or when it reaches its size cap.

`Consumer.consume(n, timeout)` returns only once it holds `n` records or its timeout has
passed. Asking for a whole batch with the poll timeout therefore made every decision, at any
rate below the sequencer's capacity, wait out that timeout (0.5 s) before its batch was
logged. A batch is taken in steps instead (`next_take`):

1. wait up to the poll timeout for the first record (a stop request or a rebalance is still
   noticed that often, as before);
2. take up to the rest of the cap, waiting at most `DRAIN_WAIT_S` for records the Kafka
   client is still handing over from a fetch it has received;
3. a take that returns fewer records than it asked for found nothing more buffered: the batch
   is ready. So is a batch at its cap.

Under load the client keeps fetching while a batch is logged, so the next batch is there at
once, up to the cap, and the per-batch costs (fence query, checkpoint, commit) stay shared
by many entries; at a low rate a batch is the few decisions that arrived, logged at once.
How long the broker may hold a fetch of a caught-up partition is the consumer's
`fetch.wait.max.ms` (`ATTESTREAM_LEDGER_FETCH_MAX_WAIT_MS`, docs/operations.md).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

# Step 2's wait: librdkafka hands a fetch response's records to the consumer's queue in well
# under a millisecond per thousand; a few milliseconds cover a response being handed over,
# and are all a decision at a low rate waits beyond the fetch itself.
DRAIN_WAIT_S = 0.005

Record = TypeVar("Record")


@dataclass(frozen=True)
class Take:
    """One consume call: at most `count` records, waiting at most `timeout_s` for them."""

    count: int
    timeout_s: float


def next_take(cap: int, taken: int, previous: Take | None, got: int, poll_s: float) -> Take | None:
    """The next consume call of a batch of at most `cap` records that holds `taken` after
    `previous` returned `got` records (None: no call yet); None when the batch is ready."""
    if previous is None:
        return Take(1, poll_s)  # step 1
    if got < previous.count or taken >= cap:
        return None  # step 3: nothing more buffered, or the batch is full
    return Take(cap - taken, DRAIN_WAIT_S)  # step 2


def take_batch(
    consume: Callable[[int, float], list[Record]], cap: int, poll_s: float
) -> list[Record]:
    """One batch from `consume` (`Consumer.consume`), taken as `next_take` says; empty when
    nothing arrived within `poll_s`."""
    batch: list[Record] = []
    take = next_take(cap, 0, None, 0, poll_s)
    while take is not None:
        got = consume(take.count, take.timeout_s)
        batch.extend(got)
        take = next_take(cap, len(batch), take, len(got), poll_s)
    return batch


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a batch is logged, and back on after.

    A batch of 10,000 decisions allocates a few hundred thousand containers (decisions, their
    features and reasons, entry columns), all freed by reference counting when the batch is
    done; at the default threshold the collector ran every 700 of them, each run finding
    nothing, and now and then a full run over the duplicate window's 200,000 entries: 2-3 µs
    of an entry's 13 µs of pure work (docs/benchmarks.md). Cycles made meanwhile (an
    exception's traceback) are collected by the runs after the batch."""
    if not gc.isenabled():  # paused by the caller: leave it so
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
