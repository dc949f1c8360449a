"""Helpers for tests that run `attestream detect` (and `ledger run`) as subprocesses on the
session stack: small models of their own, background commands stopped by pid, payments in,
decisions read back from their topic."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from attestcore import processes
from attestcore.schemas import Decision, PaymentTransaction, encode
from attestcore.waiting import WaitTimeout, wait_until
from attestream.settings import Settings
from detectors.simulate_payments import simulate_payments
from detectors.training import train_detector
from ledger.entry import decode_decision
from streams.producer import EventProducer
from streams.topics import ensure_topics

CLI = [sys.executable, "-m", "attestream.cli"]
# Events small enough to train in about a second each, large enough for both classes.
TRAINING_EVENTS = 6000
# A worker joins its group and decides within seconds; a minute means it is stuck.
DECIDE_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
# A topic read is complete once the broker sent nothing for this long.
QUIET_S = 1.0


def train_models(models: Path) -> None:
    """An active authenticity and fraud model, each trained on TRAINING_EVENTS simulated
    events with seed 1 (the session's `trained_models` fixture)."""
    train_detector("authenticity", models, count=TRAINING_EVENTS, seed=1)
    train_detector("fraud", models, count=TRAINING_EVENTS, seed=1)


def copy_models(models: Path, target: Path) -> Path:
    """A copy of a models directory that a test may change (activate, corrupt)."""
    return Path(shutil.copytree(models, target))


def add_fraud_model(models: Path, seed: int) -> str:
    """Another fraud model version, trained as `train_models` trains, not active; its digest."""
    return train_detector(
        "fraud", models, count=TRAINING_EVENTS, seed=seed, activate=False
    ).model_sha256


def create_topics(settings: Settings) -> None:
    """Every topic, before anything publishes (the broker would create a missing topic with
    its default partitions, which the worker's tables then refuse)."""
    ensure_topics(settings.require_kafka(), settings.all_topics(), settings.topic_partitions)


def payments(count: int, run_id: str) -> list[PaymentTransaction]:
    return [p.event for p in simulate_payments(count, seed=7, run_id=run_id)]


def publish_payments(settings: Settings, events: Sequence[PaymentTransaction]) -> None:
    with EventProducer(settings.require_kafka()) as producer:
        for event in events:
            producer.send(settings.topic_transactions, event.customer_id.encode(), encode(event))


@contextmanager
def background(args: Sequence[str], env: dict[str, str], log: Path) -> Iterator[processes.Child]:
    """`attestream ARGS` in the background, logging to `log`; SIGTERM and a clean exit after."""
    proc = processes.start([*CLI, *args], log=log, env=env)
    try:
        yield proc
    finally:
        processes.stop(proc, STOP_TIMEOUT_S)


def child_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, **extra)


def read_decisions(
    settings: Settings,
    at_least: int,
    timeout_s: float = DECIDE_TIMEOUT_S,
    proc: processes.Child | None = None,
) -> list[Decision]:
    """Every decision on the decisions topic (partition 0, in order), once there are at least
    `at_least` and the topic has been quiet for QUIET_S (so duplicates would show)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.require_kafka(),
            "group.id": f"test-read-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.assign([TopicPartition(settings.topic_decisions, 0, OFFSET_BEGINNING)])
    found: list[Decision] = []

    def quiet_with_enough() -> bool:
        assert proc is None or proc.poll() is None, "the detect worker exited"
        batch = [m for m in consumer.consume(1000, QUIET_S) if not m.error()]
        found.extend(decode_decision(m.value() or b"") for m in batch)
        return not batch and len(found) >= at_least

    try:
        # consume() waits QUIET_S itself: no pause between reads.
        wait_until(quiet_with_enough, timeout_s, interval_s=0.0, what="the decisions")
    except WaitTimeout as exc:
        raise AssertionError(
            f"{len(found)} decisions after {timeout_s} s, expected {at_least}"
        ) from exc
    finally:
        consumer.close()
    return found
