"""Helpers for the sequencer crash and rebalance tests: `attestream ledger run` processes,
a producer that streams decisions in bursts, and the end-of-test ledger checks."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from factories import make_decision

from anchoring.store import AnchoredStore
from attestcore import processes, waiting
from attestcore.schemas import EVENT_HEADER, Decision, encode
from attestream.settings import Settings
from attestream.wiring import trusted_verifiers
from forensics.verify import verify_ledger
from streams.producer import EventProducer

# Group timeouts for the tests: a killed sequencer's chains move after 3 s, and Tansu's
# rebalance waits at most 6 s for members to rejoin (production: 10 s and 60 s).
FAST_GROUP_ENV = {
    "ATTESTREAM_LEDGER_SESSION_TIMEOUT_MS": "3000",
    "ATTESTREAM_LEDGER_MAX_POLL_INTERVAL_MS": "6000",
    # Small batches: many batches, so many crash windows, in a few thousand decisions.
    "ATTESTREAM_LEDGER_BATCH_MAX": "150",
}
# A sequencer that was asked to stop exits within one poll plus a group leave; a killed one
# at once. Beyond this something hangs.
EXIT_TIMEOUT_S = 20.0
# From start to its first logged batch: interpreter start, topic check, group join (about
# two seconds on Tansu with the fast timeouts, plus a dead member's session timeout).
START_TIMEOUT_S = 30.0
# Polling period of the waits below: ClickHouse answers these counts in milliseconds.
POLL_S = 0.2
RESUMED = "resumed at size"


@dataclass
class SequencerProcess:
    """One `python -m attestream.cli ledger run`, its output in a file."""

    name: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: processes.Child | None = None

    def start(self) -> SequencerProcess:
        env = {**os.environ, **FAST_GROUP_ENV, **self.extra_env}
        with self.log_path.open("ab") as out:
            out.write(f"--- start {self.name} {self.extra_env}\n".encode())
        self.proc = processes.start(
            [sys.executable, "-m", "attestream.cli", "ledger", "run"], log=self.log_path, env=env
        )
        return self

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        """Kill the process if a failed test left it running (by its own pid only)."""
        if self.alive():
            self.signal(signal.SIGKILL)
            self.wait()


def decision_stream(total: int, duplicates: int, seed: int) -> list[int]:
    """Decision numbers in publishing order: 0..total-1, with `duplicates` re-sends of
    earlier ones mixed in (a detector replaying after a crash of its own)."""
    rng = random.Random(seed)
    order = list(range(total))
    for _ in range(duplicates):
        at = rng.randrange(1, len(order))
        order.insert(at, order[rng.randrange(at)])
    return order


def event_bytes(i: int) -> bytes:
    """The bytes of the event decision i is made on, when the stream carries events."""
    return b'{"event_id":"ev-%d"}' % i


def decision_on_event(i: int) -> Decision:
    """Decision i made on `event_bytes(i)`: its digest is theirs."""
    digest = hashlib.sha256(event_bytes(i)).hexdigest()
    return msgspec.structs.replace(make_decision(i), event_sha256=digest)


class BurstProducer(threading.Thread):
    """Publishes decisions in bursts with pauses, in the background, while a test kills and
    restarts sequencers. The key is fixed per decision, so a re-send lands in the partition
    (the chain) of the original."""

    def __init__(
        self,
        settings: Settings,
        order: list[int],
        bursts: int,
        pause_s: float,
        events: bool = False,
    ):
        """With `events`, each decision is made on `event_bytes(i)` and carries them in its
        `EVENT_HEADER`, as a detector sends them."""
        super().__init__(daemon=True)
        self.events = events
        self.settings = settings
        self.order = order
        self.bursts = bursts
        self.pause_s = pause_s
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            size = -(-len(self.order) // self.bursts)
            with EventProducer(self.settings.require_kafka()) as producer:
                for start in range(0, len(self.order), size):
                    for i in self.order[start : start + size]:
                        key = f"k{i % 12}".encode()
                        if self.events:
                            producer.send(
                                self.settings.topic_decisions,
                                key,
                                encode(decision_on_event(i)),
                                [(EVENT_HEADER, event_bytes(i))],
                            )
                        else:
                            producer.send(
                                self.settings.topic_decisions, key, encode(make_decision(i))
                            )
                    producer.flush()
                    time.sleep(self.pause_s)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout_s: float) -> None:
        self.join(timeout_s)
        assert not self.is_alive(), "the producer did not finish"
        assert self.error is None, f"the producer failed: {self.error!r}"


def wait_until(
    what: str, check: Callable[[], bool], timeout_s: float, procs: Sequence[SequencerProcess] = ()
) -> None:
    """Poll `check`; fail naming `what` (and any sequencer that died) when time runs out."""
    try:
        waiting.wait_until(check, timeout_s, interval_s=POLL_S, what=what)
    except waiting.WaitTimeout as exc:
        dead = [p.name for p in procs if not p.alive()]
        raise AssertionError(f"{exc} (dead sequencers: {dead})") from exc


@dataclass(frozen=True)
class ChainState:
    entries: int
    distinct_seqs: int
    top_seq: int
    checkpointed: int


def chain_states(store: AnchoredStore) -> dict[int, ChainState]:
    rows = store.execute(
        "SELECT chain, count(), uniqExact(seq), max(seq) FROM {db}.entries GROUP BY chain"
    )
    tops = dict(store.execute("SELECT chain, max(size) FROM {db}.checkpoints GROUP BY chain"))
    return {c: ChainState(n, d, top, tops.get(c, 0)) for c, n, d, top in rows}


def has_resumed(run: SequencerProcess) -> Callable[[], bool]:
    """A check that `run` has been assigned chains (and rebuilt them)."""
    return lambda: RESUMED in run.output()


def logged_ids(store: AnchoredStore) -> tuple[int, int]:
    """(entries, distinct decision ids) over all chains."""
    count, distinct = store.execute("SELECT count(), uniqExact(decision_id) FROM {db}.entries")[0]
    return int(count), int(distinct)


def all_logged(store: AnchoredStore, expected: int) -> bool:
    """Every decision logged and every chain's latest checkpoint over its whole chain."""
    states = chain_states(store)
    return sum(s.entries for s in states.values()) >= expected and all(
        s.checkpointed == s.entries for s in states.values()
    )


def assert_ledger_complete(store: AnchoredStore, settings: Settings, expected: int) -> None:
    """One entry per distinct decision, no gap, no duplicate, each chain's latest checkpoint
    covering the chain, and full verification ok."""
    assert logged_ids(store) == (expected, expected)
    for chain, state in chain_states(store).items():
        assert state.entries == state.distinct_seqs == state.top_seq + 1, (chain, state)
        assert state.checkpointed == state.entries, (chain, state)
    report = verify_ledger(store, trusted_verifiers(settings))
    assert report.ok, report.failures
    assert report.entries == expected
