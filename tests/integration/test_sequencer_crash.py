"""The sequencer is exactly-once across crashes: SIGKILL at random moments and, through the
fault-injection hook, exactly inside each window of the order of durability (after the
entries, after their tree nodes, after the checkpoint but before the offset commit)."""

from __future__ import annotations

import random
import re
import signal
import time
from pathlib import Path

from sequencer_procs import (
    RESUMED,
    START_TIMEOUT_S,
    BurstProducer,
    SequencerProcess,
    all_logged,
    assert_ledger_complete,
    chain_states,
    decision_on_event,
    decision_stream,
    has_resumed,
    wait_until,
)

from anchoring.store import AnchoredStore
from attestream.settings import Settings
from attestream.wiring import open_store
from ledger.node_keys import node_key
from ledger.sequencer import CRASH_AT_ENV
from streams.topics import ensure_topics

SEED = 20250303
DECISIONS = 4000
DUPLICATES = 300
RANDOM_KILLS = 4
# A random kill lands this long at most after the restarted sequencer got its chains.
KILL_WITHIN_S = 1.5
# The stream takes about 30 s to publish, as long as the kills and restarts take, so that
# each restarted sequencer finds a backlog and then keeps getting new bursts.
BURSTS = 20
BURST_PAUSE_S = 1.5
# Publishing, seven kills with restarts and the catch-up all fit well within this.
FINISH_TIMEOUT_S = 60.0
UNSIGNED = re.compile(RESUMED + r" \d+ \((\d+) entries had no checkpoint yet\)")


def test_sigkill_at_any_moment_loses_and_duplicates_nothing(
    isolated: Settings, tmp_path: Path
) -> None:
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=3)
    store = open_store(isolated, create=True)
    rng = random.Random(SEED)
    producer = BurstProducer(
        isolated, decision_stream(DECISIONS, DUPLICATES, SEED), BURSTS, BURST_PAUSE_S, events=True
    )
    producer.start()
    runs: list[SequencerProcess] = []
    try:
        for point in ("entries", "nodes", "checkpoint"):
            runs.append(crash_at(point, tmp_path, len(runs)))
            assert_window(store, point)
        for _ in range(RANDOM_KILLS):
            run = SequencerProcess(f"run{len(runs)}", tmp_path / f"run{len(runs)}.log").start()
            runs.append(run)
            # Killed while it catches up with what was published during the last restart:
            # inside recovery, a batch's inserts, or between batches.
            wait_until("an assignment", has_resumed(run), START_TIMEOUT_S, [run])
            time.sleep(rng.uniform(0.0, KILL_WITHIN_S))
            run.signal(signal.SIGKILL)
            assert run.wait() == -signal.SIGKILL
        final = SequencerProcess("final", tmp_path / "final.log").start()
        runs.append(final)
        # The killed runs may have logged everything already (a batch is logged as soon as
        # nothing more is buffered): SIGTERM below must find the final run started, its
        # handler installed, or it ends the process before it can finish cleanly.
        wait_until("an assignment", has_resumed(final), START_TIMEOUT_S, [final])
        producer.finish(FINISH_TIMEOUT_S)
        wait_until(
            "every decision logged and checkpointed",
            lambda: all_logged(store, DECISIONS),
            FINISH_TIMEOUT_S,
            [final],
        )
        final.signal(signal.SIGTERM)
        assert final.wait() == 0
    finally:
        for run in runs:
            run.close()
    assert_ledger_complete(store, isolated, DECISIONS)
    assert sorted(chain_states(store)) == [0, 1, 2]
    assert unarchived_entries(store) == 0
    archived = {r[0] for r in store.execute("SELECT DISTINCT event_sha256 FROM {db}.event_archive")}
    assert archived == {decision_on_event(i).event_sha256 for i in range(DECISIONS)}
    # The restarts after the kills inside step 1 found, and checkpointed, the unsigned tail.
    for run in runs[1:3]:
        unsigned = [int(n) for n in UNSIGNED.findall(run.output())]
        assert any(unsigned), (run.name, unsigned)


def crash_at(point: str, tmp_path: Path, number: int) -> SequencerProcess:
    """A sequencer that kills itself at `point` of its first batch with new entries."""
    run = SequencerProcess(
        f"run{number}-{point}", tmp_path / f"run{number}.log", {CRASH_AT_ENV: point}
    ).start()
    assert run.wait(START_TIMEOUT_S) == -signal.SIGKILL, run.output()
    assert f"killing the sequencer after {point}" in run.output()
    return run


def unarchived_entries(store: AnchoredStore) -> int:
    """Entries whose event has no archive row (the entry's first `event_sha256` member is
    its decision's: `AnchoredStore.recent_decisions` says why)."""
    rows = store.execute(
        "SELECT count() FROM {db}.entries WHERE visitParamExtractString(entry, 'event_sha256')"
        " NOT IN (SELECT event_sha256 FROM {db}.event_archive)"
    )
    return int(rows[0][0])


def assert_window(store: AnchoredStore, point: str) -> None:
    """The store shows the crash where the hook put it, every logged entry's event archived
    (step 1 writes the archive before the entries)."""
    assert unarchived_entries(store) == 0, point
    states = chain_states(store)
    unsigned = {c: s for c, s in states.items() if s.entries > s.checkpointed}
    if point == "checkpoint":
        # Step 2 done before the kill: every chain ends in a checkpoint (step 3 never ran).
        assert not unsigned, states
        return
    # Killed inside step 1: exactly one chain holds entries without a checkpoint ...
    assert len(unsigned) == 1, states
    chain, state = next(iter(unsigned.items()))
    last_leaf = node_key(0, state.entries - 1)
    stored = store.execute(
        "SELECT count() FROM {db}.nodes WHERE chain = %(c)s AND node = %(n)s",
        {"c": chain, "n": last_leaf},
    )[0][0]
    # ... whose tree nodes are missing after the entries insert, stored after the nodes one.
    assert (stored > 0) == (point == "nodes"), (point, chain, state)
