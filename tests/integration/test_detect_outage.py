"""`attestream detect` under broker trouble: an outage and a reset (the memory-only broker
stopped and started on the same port comes back empty, with a new cluster id) are waited
out and survived, with one log line per backoff step; every payment published after the
reset is decided exactly once; SIGTERM ends the process within 10 s, also while the broker
is down; `stack status` sees the worker waiting."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from detect_helpers import background, payments, publish_payments, read_decisions
from outage_drills import DrillStack, family_prefixes, try_scrape
from sequencer_procs import wait_until

from attestcore import processes
from attestream.settings import Settings
from attestream.workers import worker_statuses
from streams.topics import ensure_topics

# A worker joins its group and decides within seconds; a minute means it is stuck.
READY_TIMEOUT_S = 90.0
OUTAGE_S = 5.0
# While the broker is down the process logs one line per backoff step (0.5, 1, 2 s...) and a
# few about stopping its worker: a 5 s outage stays far below a flood (59 lines a second).
MAX_OUTAGE_LINES = 25
SHUTDOWN_BOUND_S = 10.0
KAFKA_UP = ("attestream_detect_dependency_up", (("dependency", "kafka"),))
READY = ("attestream_detect_ready", ())


def setup_env(drill: DrillStack, trained_models: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return drill.settings(monkeypatch, ATTESTREAM_MODELS_DIR=str(trained_models))


def lines(log: Path) -> list[str]:
    return log.read_text(errors="replace").splitlines()


def test_detect_survives_a_broker_reset_and_stops_promptly_while_it_is_down(
    drill: DrillStack, trained_models: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = setup_env(drill, trained_models, monkeypatch)
    port = settings.detect_metrics_port
    ensure_topics(settings.require_kafka(), settings.all_topics(), settings.topic_partitions)
    log = tmp_path / "detect.log"
    with background(["detect"], dict(os.environ), log) as detect:
        publish_payments(settings, payments(200, run_id=f"before{time.time_ns()}"))
        assert len(read_decisions(settings, 200, proc=detect)) == 200
        assert family_prefixes(port) == {"attestream_detect"}
        assert try_scrape(port)[READY] == 1

        drill.manager.stop_service("broker")
        wait_until(
            "kafka reported down", lambda: try_scrape(port).get(KAFKA_UP) == 0, READY_TIMEOUT_S
        )
        assert try_scrape(port)[READY] == 0
        (status,) = [s for s in worker_statuses(drill.manager.home) if s.process == "detect"]
        assert status.alive and not status.healthy and "waiting for kafka" in status.detail
        before = len(lines(log))
        time.sleep(OUTAGE_S)
        during = lines(log)[before:]
        assert len(during) <= MAX_OUTAGE_LINES, during
        assert any("Kafka unreachable" in line for line in during), during
        assert detect.poll() is None

        drill.restart()  # a new, empty broker on the same port
        wait_until(
            "the worker restarted on the new broker",
            lambda: try_scrape(port).get(READY) == 1,
            READY_TIMEOUT_S,
        )
        assert "the broker was reset" in log.read_text()
        after = payments(300, run_id=f"after{time.time_ns()}")
        publish_payments(settings, after)
        decided = read_decisions(settings, 300, proc=detect)
        assert sorted(d.event_id for d in decided) == sorted(p.event_id for p in after)

        drill.manager.stop_service("broker")
        wait_until(
            "kafka reported down", lambda: try_scrape(port).get(KAFKA_UP) == 0, READY_TIMEOUT_S
        )
        started = time.monotonic()
        detect.send_signal(signal.SIGTERM)
        assert detect.wait(SHUTDOWN_BOUND_S) == 0
        assert time.monotonic() - started < SHUTDOWN_BOUND_S


def test_detect_stops_within_the_bound_under_load(
    drill: DrillStack, trained_models: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SIGTERM while payments stream in: decisions sent, offsets committed, then exit; a
    second worker decides the rest, and no payment is left without its decision."""
    settings = setup_env(drill, trained_models, monkeypatch)
    ensure_topics(settings.require_kafka(), settings.all_topics(), settings.topic_partitions)
    events = payments(600, run_id=f"load{time.time_ns()}")
    with background(["detect"], dict(os.environ), tmp_path / "detect.log") as detect:
        publish_payments(settings, events[:100])
        read_decisions(settings, 100, proc=detect)
        publisher = threading.Thread(target=publish_payments, args=(settings, events[100:]))
        publisher.start()
        started = time.monotonic()
        detect.send_signal(signal.SIGTERM)
        assert detect.wait(SHUTDOWN_BOUND_S) == 0
        assert time.monotonic() - started < SHUTDOWN_BOUND_S
        publisher.join()
    with background(["detect"], dict(os.environ), tmp_path / "detect-2.log") as second:
        decided = read_decisions(settings, len(events), proc=second)
    assert {d.event_id for d in decided} == {p.event_id for p in events}


def test_a_killed_supervisor_takes_its_worker_along(
    drill: DrillStack, trained_models: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SIGKILL leaves the supervisor no time to stop its worker: the kernel's parent-death
    signal does, so no worker keeps deciding unsupervised."""
    settings = setup_env(drill, trained_models, monkeypatch)
    ensure_topics(settings.require_kafka(), settings.all_topics(), settings.topic_partitions)
    log = tmp_path / "detect.log"
    started = re.compile(r"detection worker started \(pid (\d+)")
    with background(["detect"], dict(os.environ), log) as detect:
        wait_until(
            "the worker started",
            lambda: started.search(log.read_text()) is not None,
            READY_TIMEOUT_S,
            [],
        )
        match = started.search(log.read_text())
        assert match is not None
        worker = int(match.group(1))
        detect.kill()
        detect.wait()
        wait_until(
            "the orphaned worker to stop",
            lambda: not processes.is_running(worker),
            SHUTDOWN_BOUND_S,
            [],
        )
