"""`ledger run` waits out a ClickHouse outage under load and exits promptly on SIGTERM, also
while ClickHouse is down: every decision logged exactly once, the log verifies."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from factories import make_decision
from outage_drills import DrillStack, family_prefixes, try_scrape
from sequencer_procs import (
    START_TIMEOUT_S,
    BurstProducer,
    SequencerProcess,
    all_logged,
    assert_ledger_complete,
    decision_stream,
    has_resumed,
    logged_ids,
    wait_until,
)

from attestcore.schemas import encode
from attestream.settings import Settings
from attestream.wiring import open_store
from streams.producer import EventProducer
from streams.topics import ensure_topics

SEED = 20261204
DECISIONS = 3000
DUPLICATES = 200
BURSTS = 15
BURST_PAUSE_S = 1.0
# Long enough for several backoff steps (0.5, 1, 2 s...) and for bursts to pile up in Kafka.
OUTAGE_S = 6.0
# The outage, a ClickHouse restart (a few seconds) and the catch-up fit well within this.
FINISH_TIMEOUT_S = 90.0
# SIGTERM to exit, whatever is down (docs/operations.md, "Long-running processes").
SHUTDOWN_BOUND_S = 10.0
# One line per backoff step: over a 6 s outage at most a handful, never one per poll.
MAX_OUTAGE_LINES = 10


@pytest.fixture
def env(drill: DrillStack, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return drill.settings(monkeypatch)


def test_ledger_waits_out_a_clickhouse_outage_and_loses_nothing(
    drill: DrillStack, env: Settings, tmp_path: Path
) -> None:
    ensure_topics(env.require_kafka(), [env.topic_decisions], partitions=3)
    store = open_store(env, create=True)
    producer = BurstProducer(
        env, decision_stream(DECISIONS, DUPLICATES, SEED), BURSTS, BURST_PAUSE_S
    )
    run = SequencerProcess("ledger", tmp_path / "ledger.log").start()
    port = env.ledger_metrics_port
    try:
        wait_until("chains assigned", has_resumed(run), START_TIMEOUT_S, [run])
        producer.start()
        wait_until("a first batch logged", lambda: logged_ids(store)[0] > 0, START_TIMEOUT_S, [run])
        assert family_prefixes(port) == {"attestream_ledger"}
        drill.manager.stop_service("clickhouse")
        wait_until(
            "the ledger to report ClickHouse down",
            lambda: (
                try_scrape(port).get(
                    ("attestream_ledger_dependency_up", (("dependency", "clickhouse"),))
                )
                == 0
            ),
            START_TIMEOUT_S,
            [run],
        )
        assert try_scrape(port)[("attestream_ledger_ready", ())] == 0
        time.sleep(OUTAGE_S)
        assert run.alive(), run.output()[-2000:]
        outage_lines = [line for line in run.output().splitlines() if "unreachable" in line]
        assert 1 <= len(outage_lines) <= MAX_OUTAGE_LINES, outage_lines
        drill.restart()
        producer.finish(FINISH_TIMEOUT_S)
        wait_until(
            "every decision logged", lambda: all_logged(store, DECISIONS), FINISH_TIMEOUT_S, [run]
        )
        assert "reachable again" in run.output()
        assert try_scrape(port)[("attestream_ledger_ready", ())] == 1
        assert_ledger_complete(store, env, DECISIONS)
        # SIGTERM while ClickHouse is down: the process exits within the bound.
        drill.manager.stop_service("clickhouse")
        wait_until(
            "the ledger to notice",
            lambda: run.output().count("unreachable") > len(outage_lines),
            START_TIMEOUT_S,
            [run],
        )
        started = time.monotonic()
        run.signal(signal.SIGTERM)
        assert run.wait(SHUTDOWN_BOUND_S) == 0
        assert time.monotonic() - started < SHUTDOWN_BOUND_S
    finally:
        run.close()
        drill.restart()
        store.close()


def test_ledger_exits_on_sigterm_within_the_bound_under_load(
    drill: DrillStack, env: Settings, tmp_path: Path
) -> None:
    """Mid-stream, with batches in flight: the batch in hand goes through steps 0-3, then the
    process leaves the group and exits; a second process finds the log complete."""
    ensure_topics(env.require_kafka(), [env.topic_decisions], partitions=3)
    store = open_store(env, create=True)
    producer = BurstProducer(env, decision_stream(DECISIONS, 0, SEED), BURSTS, 0.2)
    run = SequencerProcess("ledger", tmp_path / "ledger.log").start()
    try:
        wait_until("chains assigned", has_resumed(run), START_TIMEOUT_S, [run])
        producer.start()
        wait_until("a first batch logged", lambda: logged_ids(store)[0] > 0, START_TIMEOUT_S, [run])
        started = time.monotonic()
        run.signal(signal.SIGTERM)
        assert run.wait(SHUTDOWN_BOUND_S) == 0
        assert time.monotonic() - started < SHUTDOWN_BOUND_S
        producer.finish(FINISH_TIMEOUT_S)
        second = SequencerProcess("ledger-2", tmp_path / "ledger-2.log").start()
        try:
            wait_until(
                "every decision logged",
                lambda: all_logged(store, DECISIONS),
                FINISH_TIMEOUT_S,
                [second],
            )
        finally:
            second.close()
        assert_ledger_complete(store, env, DECISIONS)
    finally:
        run.close()
        store.close()


def test_ledger_waits_out_a_broker_reset_quietly(
    drill: DrillStack, env: Settings, tmp_path: Path
) -> None:
    """The memory-only broker stopped and started again (empty, a new cluster id): the ledger
    logs a line per backoff step, not one per refused connection, and continues each chain
    from the new broker's decisions."""
    bootstrap = env.require_kafka()
    ensure_topics(bootstrap, [env.topic_decisions], partitions=3)
    store = open_store(env, create=True)
    run = SequencerProcess("ledger", tmp_path / "ledger.log").start()
    half = DECISIONS // 6
    try:
        wait_until("chains assigned", has_resumed(run), START_TIMEOUT_S, [run])
        publish(env, range(half))
        wait_until(
            "the first half logged", lambda: all_logged(store, half), FINISH_TIMEOUT_S, [run]
        )
        before = len(run.output().splitlines())
        drill.manager.stop_service("broker")
        time.sleep(OUTAGE_S)
        during = run.output().splitlines()[before:]
        assert run.alive() and any("Kafka unreachable" in line for line in during), during
        assert len(during) <= MAX_OUTAGE_LINES, during
        drill.restart()
        ensure_topics(bootstrap, [env.topic_decisions], partitions=3)
        publish(env, range(half, 2 * half))
        wait_until(
            "the second half logged", lambda: all_logged(store, 2 * half), FINISH_TIMEOUT_S, [run]
        )
        assert_ledger_complete(store, env, 2 * half)
    finally:
        run.close()
        store.close()


def publish(settings: Settings, numbers: range) -> None:
    with EventProducer(settings.require_kafka()) as producer:
        for i in numbers:
            producer.send(settings.topic_decisions, f"k{i % 12}".encode(), encode(make_decision(i)))
