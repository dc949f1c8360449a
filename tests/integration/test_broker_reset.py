"""A broker reset said out loud: `stack up` reports the new cluster id and the events the old
broker took with it (or "unknown" when it died without `stack down`); producers never create
a topic by writing to it; `stack status` reports a crash-looping detection worker."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from outage_drills import DrillStack, drill_stack
from sequencer_procs import wait_until
from typer.testing import CliRunner

from attestcore import processes
from attestcore.errors import MissingTopicError
from attestream.commands.stack import app as stack_cli
from streams.producer import EventProducer
from streams.topics import ensure_topics

RECORDS = 10
CONSUMED = 4
# A metadata request answers in milliseconds; 10 s bounds a hung broker.
KAFKA_TIMEOUT_S = 10.0
# The supervisor restarts a crashing worker after 0.5, 1, 2... s: two restarts within this.
CRASH_LOOP_TIMEOUT_S = 60.0


@pytest.fixture
def drill(tmp_path: Path) -> Iterator[DrillStack]:
    yield from drill_stack(tmp_path / "home")


def topics(bootstrap: str) -> set[str]:
    return set(
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=KAFKA_TIMEOUT_S).topics
    )


def publish_and_consume_some(bootstrap: str, topic: str) -> None:
    """RECORDS events in one batch, of which the group `readers` commits CONSUMED."""
    ensure_topics(bootstrap, [topic], partitions=1)
    with EventProducer(bootstrap) as producer:
        for i in range(RECORDS):
            producer.send(topic, b"k", f"event {i}".encode())
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "readers", "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, CONSUMED)], asynchronous=False)
    finally:
        consumer.close()


def test_stack_up_reports_a_reset_broker_and_what_it_cost(drill: DrillStack) -> None:
    runner = CliRunner()
    home = str(drill.manager.home)
    bootstrap = drill.state.endpoints.kafka_bootstrap
    publish_and_consume_some(bootstrap, "payments")
    assert runner.invoke(stack_cli, ["down", "--home", home]).exit_code == 0
    up = runner.invoke(stack_cli, ["up", "--home", home])
    assert up.exit_code == 0, up.output
    text = " ".join(up.output.split())
    assert "the broker was reset" in text
    assert f"Events lost unconsumed: {RECORDS - CONSUMED} (readers/payments:" in text

    # A broker that dies without `down` leaves no record: the cost is unknown.
    state = drill.manager.load_state()
    assert state is not None and state.services["broker"].pid is not None
    os.kill(state.services["broker"].pid, signal.SIGKILL)
    time.sleep(0.5)
    up = runner.invoke(stack_cli, ["up", "--home", home, "--json"])
    assert up.exit_code == 0, up.output
    assert '"unconsumed": null' in up.output


def test_producers_never_create_a_topic(drill: DrillStack) -> None:
    bootstrap = drill.state.endpoints.kafka_bootstrap
    with pytest.raises(MissingTopicError, match="'attestream.transactions' does not exist"):
        EventProducer(bootstrap).send("attestream.transactions", b"k", b"{}")
    assert "attestream.transactions" not in topics(bootstrap)


def test_stack_status_reports_a_crash_looping_worker(drill: DrillStack, tmp_path: Path) -> None:
    env = {**os.environ, **drill.env(), "ATTESTREAM_MODELS_DIR": str(tmp_path / "no-models")}
    # An input topic created by a producer that wrote to it: the broker's partition count,
    # not the configured one. The worker could not use it; the supervisor says so.
    bootstrap = drill.state.endpoints.kafka_bootstrap
    ensure_topics(bootstrap, [env["ATTESTREAM_TOPIC_TRANSACTIONS"]], partitions=4)
    log = tmp_path / "detect.log"
    detect = processes.start([sys.executable, "-m", "attestream.cli", "detect"], log=log, env=env)
    runner = CliRunner()
    try:
        wait_until(
            "two worker restarts",
            lambda: log.read_text().count("exited on its own") >= 2,
            CRASH_LOOP_TIMEOUT_S,
        )
        status = runner.invoke(stack_cli, ["status", "--home", str(drill.manager.home), "--json"])
        assert status.exit_code == 3, status.output
        topic = env["ATTESTREAM_TOPIC_TRANSACTIONS"]
        assert f"topic {topic!r} has 4 partition(s), the worker expects 1" in log.read_text()
        (worker,) = json.loads(status.output)["workers"]
        assert worker["process"] == "detect" and worker["alive"] and not worker["healthy"]
        assert "not ready" in worker["detail"] and "worker restart(s)" in worker["detail"]
    finally:
        detect.send_signal(signal.SIGTERM)
        detect.wait(10)
    healthy = runner.invoke(stack_cli, ["status", "--home", str(drill.manager.home)])
    assert healthy.exit_code == 0, healthy.output  # the stopped worker removed its record
