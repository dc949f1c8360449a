"""The detection worker on confluent-kafka (`streams.kafka_worker`, ATTESTREAM_DETECT_ENGINE=
kafka) on the real broker: it decides as the faust worker does, restores its entity states
from the changelog after a kill -9, and hands states over in a rebalance without losing any.

Each process is a `bench.stream_worker` over a payments topic of the test's own, in a consumer
group of its own (`bench.peer.settings_for`); a reference worker deciding the whole topic
alone, uninterrupted, says what every decision must be."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from attestcore.schemas import EVENT_HEADER, Decision, Detector, PaymentTransaction, encode
from attestcore.waiting import wait_until
from bench.peer import settings_for, start
from bench.stream import RUN_TIMEOUT_S, WORKER_START_TIMEOUT_S, StreamSetup, Worker
from bench.stream_worker import WorkerSettings
from detectors.model import active_sha256
from detectors.simulate_payments import simulate_payments
from streams.intake import HEADER_REASON
from streams.outcomes import FAULT_AT_ENV
from streams.producer import EventProducer
from streams.topics import ensure_topics

PAYMENTS = 300
BATCH_MAX = 64
NOT_JSON = b"{not json"
# A topic read is complete once the broker sent nothing for this long.
QUIET_S = 1.0

Read = tuple[bytes | None, bytes, dict[str, bytes]]


def _publish(bootstrap: str, topic: str, events: Sequence[PaymentTransaction]) -> None:
    with EventProducer(bootstrap) as producer:
        for event in events:
            producer.send(topic, event.customer_id.encode(), encode(event))


def _read_all(bootstrap: str, topic: str, partitions: int = 1) -> list[Read]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    found: list[Read] = []
    try:
        while batch := consumer.consume(1000, QUIET_S):
            for m in batch:
                assert m.error() is None, m.error()
                pairs: Any = m.headers() or []
                found.append((m.key(), m.value() or b"", {k: bytes(v or b"") for k, v in pairs}))
    finally:
        consumer.close()
    return found


def _decisions(bootstrap: str, settings: WorkerSettings) -> list[Decision]:
    return [
        msgspec.json.decode(value, type=Decision)
        for _, value, _ in _read_all(bootstrap, settings.decisions_topic)
    ]


def _fields(decision: Decision) -> dict[str, Any]:
    fields = msgspec.structs.asdict(decision)
    del fields["decided_at"]
    return fields


def _setup(stack: Any, models: Path, tmp_path: Path, events: int) -> StreamSetup:
    sha = active_sha256(models, Detector.FRAUD)
    assert sha is not None
    return StreamSetup(
        stack.kafka_bootstrap, models, sha, events, BATCH_MAX, 0.2, 20, 0.0, 7, tmp_path
    )


def _reference(setup: StreamSetup, topic: str, events: int) -> dict[str, dict[str, Any]]:
    """Every decision of one uninterrupted kafka-engine worker over the whole topic, by
    event id."""
    settings = settings_for(setup, topic, "kafka")
    settings.records = events
    worker = start("kafka", settings, setup.work_dir / "reference.log")
    try:
        worker.wait_stamp("done", RUN_TIMEOUT_S)
    finally:
        worker.stop()
    decided = _decisions(setup.bootstrap, settings)
    assert len(decided) == events
    return {d.event_id: _fields(d) for d in decided}


def test_the_kafka_engine_decides_as_the_faust_worker(
    stack: Any, trained_models: Path, tmp_path: Path
) -> None:
    topic = f"kafka-engine-payments-{uuid.uuid4().hex[:10]}"
    ensure_topics(stack.kafka_bootstrap, [topic], partitions=1)
    payments = [p.event for p in simulate_payments(PAYMENTS, seed=7, run_id=topic)]
    _publish(stack.kafka_bootstrap, topic, payments[: PAYMENTS // 2])
    with EventProducer(stack.kafka_bootstrap) as producer:
        producer.send(topic, b"nobody", NOT_JSON)
    _publish(stack.kafka_bootstrap, topic, payments[PAYMENTS // 2 :])
    setup = _setup(stack, trained_models, tmp_path, PAYMENTS)

    outputs = {}
    for mode in ("worker", "kafka"):
        settings = settings_for(setup, topic, mode)
        process = start(mode, settings, tmp_path / f"{mode}.log")
        try:
            process.wait_stamp("done", RUN_TIMEOUT_S)
        finally:
            process.stop()
        outputs[mode] = (
            _read_all(setup.bootstrap, settings.decisions_topic),
            _read_all(setup.bootstrap, settings.dead_letter_topic),
        )

    (faust_decisions, faust_dead), (kafka_decisions, kafka_dead) = (
        outputs["worker"],
        outputs["kafka"],
    )
    assert len(faust_decisions) == len(kafka_decisions) == PAYMENTS
    for (f_key, f_value, f_headers), (k_key, k_value, k_headers) in zip(
        faust_decisions, kafka_decisions, strict=True
    ):
        assert k_key == f_key
        assert k_headers[EVENT_HEADER] == f_headers[EVENT_HEADER]
        assert _fields(msgspec.json.decode(k_value, type=Decision)) == _fields(
            msgspec.json.decode(f_value, type=Decision)
        )
    late = _fields(msgspec.json.decode(kafka_decisions[-1][1], type=Decision))
    assert any(value != 0 for value in late["features"].values())
    assert [(k, v, h) for k, v, h in kafka_dead] == [(k, v, h) for k, v, h in faust_dead]
    assert kafka_dead[0][2][HEADER_REASON] == b"not_json"


def _with(settings: WorkerSettings, tmp_path: Path, name: str, records: int) -> WorkerSettings:
    """`settings` (same group, topics and changelog) with stamps of its own."""
    stamps = str(tmp_path / f"stamps-{name}.jsonl")
    return msgspec.structs.replace(settings, stamps=stamps, records=records)


def _wait_decided(bootstrap: str, settings: WorkerSettings, ids: set[str]) -> list[Decision]:
    """The decisions topic once every event of `ids` has a decision on it."""
    found: list[Decision] = []

    def every_one() -> bool:
        found[:] = _decisions(bootstrap, settings)
        return ids <= {d.event_id for d in found}

    wait_until(every_one, RUN_TIMEOUT_S, interval_s=0.5, what="a decision for every event")
    return found


def _split_customers(
    events: Sequence[PaymentTransaction],
) -> tuple[list[PaymentTransaction], list[PaymentTransaction]]:
    """Two sets of events whose customers are disjoint, each in its original order."""
    customers = sorted({e.customer_id for e in events})
    second = set(customers[1::2])
    return [e for e in events if e.customer_id not in second], [
        e for e in events if e.customer_id in second
    ]


def test_a_worker_killed_mid_batch_restores_its_states_from_the_changelog(
    stack: Any, trained_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run 1 decides A and stops; run 2 is killed (SIGKILL, `FAULT_AT_ENV=kill`) halfway
    through the decisions of its first batch, of B; run 3, a new process, decides B again and
    then C. A and C are payments of the same customers, B of others: C's decisions can only
    equal those of one uninterrupted worker if run 3 restored A's states from the changelog.
    B's events may be decided twice (at-least-once redelivery after the kill), with the same
    decision id."""
    topic = f"kafka-engine-kill-{uuid.uuid4().hex[:10]}"
    ensure_topics(stack.kafka_bootstrap, [topic], partitions=1)
    events = [p.event for p in simulate_payments(600, seed=11, run_id=topic)]
    regulars, others = _split_customers(events)
    half = len(regulars) // 2
    a, b, c = regulars[:half], others[:BATCH_MAX], regulars[half:]
    setup = _setup(stack, trained_models, tmp_path, len(a))
    settings = settings_for(setup, topic, "kafka")
    bootstrap = stack.kafka_bootstrap

    _publish(bootstrap, topic, a)
    first = start("kafka", _with(settings, tmp_path, "first", len(a)), tmp_path / "first.log")
    try:
        first.wait_stamp("done", RUN_TIMEOUT_S)
    finally:
        first.stop()
    _publish(bootstrap, topic, b)
    monkeypatch.setenv(FAULT_AT_ENV, "kill")
    killed = start("kafka", _with(settings, tmp_path, "killed", len(b)), tmp_path / "killed.log")
    assert killed.proc.wait(RUN_TIMEOUT_S) == -signal.SIGKILL
    monkeypatch.delenv(FAULT_AT_ENV)
    before_restart = _decisions(bootstrap, settings)
    assert len(a) <= len(before_restart) < len(a) + len(b)
    _publish(bootstrap, topic, c)
    third = start("kafka", _with(settings, tmp_path, "third", 1), tmp_path / "third.log")
    try:
        decided = _wait_decided(bootstrap, settings, {e.event_id for e in [*a, *b, *c]})
    finally:
        third.stop()
    assert "changelog records restored" in (tmp_path / "third.log").read_text()

    reference = _reference(setup, topic, len(a) + len(b) + len(c))
    times = Counter(d.event_id for d in decided)
    twice = {event_id for event_id, n in times.items() if n > 1}
    assert twice <= {e.event_id for e in b}, "only the killed batch is decided again"
    for d in decided:
        if d.event_id in {e.event_id for e in b}:
            assert d.decision_id == reference[d.event_id]["decision_id"]
        else:
            assert _fields(d) == reference[d.event_id]
    assert not _read_all(bootstrap, settings.dead_letter_topic)


def test_a_rebalance_hands_entity_states_over_without_losing_any(
    stack: Any, trained_models: Path, tmp_path: Path
) -> None:
    """Two workers on a two-partition topic: the first decides P1 alone; the second joins
    (each then owns one partition, the second restoring its partition from the changelog the
    first wrote) and they decide P2; the first stops, the second takes its partition over and
    decides P3. Every decision equals that of one worker deciding the whole topic alone."""
    topic = f"kafka-engine-rebalance-{uuid.uuid4().hex[:10]}"
    bootstrap = stack.kafka_bootstrap
    ensure_topics(bootstrap, [topic], partitions=2)
    events = [p.event for p in simulate_payments(900, seed=13, run_id=topic)]
    p1, p2, p3 = events[:300], events[300:600], events[600:]
    setup = _setup(stack, trained_models, tmp_path, len(p1))
    settings = settings_for(setup, topic, "kafka")

    _publish(bootstrap, topic, p1)
    one = start("kafka", _with(settings, tmp_path, "one", len(p1)), tmp_path / "one.log")
    two: Worker | None = None
    try:
        one.wait_stamp("done", RUN_TIMEOUT_S)
        two = start("kafka", _with(settings, tmp_path, "two", 1), tmp_path / "two.log")
        two_log = tmp_path / "two.log"
        wait_until(
            lambda: "assigned" in two_log.read_text(errors="replace"),
            WORKER_START_TIMEOUT_S,
            interval_s=0.2,
            what="the second worker's partitions",
        )
        _publish(bootstrap, topic, p2)
        two.wait_stamp("first_batch", RUN_TIMEOUT_S)
        _wait_decided(bootstrap, settings, {e.event_id for e in p1 + p2})
        one.stop()
        _publish(bootstrap, topic, p3)
        decided = _wait_decided(bootstrap, settings, {e.event_id for e in events})
    finally:
        one.stop()
        if two is not None:
            two.stop()
    restored = [
        line for line in two_log.read_text().splitlines() if "changelog records restored" in line
    ]
    assert len(restored) >= 2, "the second worker restored its partition, then the other"

    reference = _reference(setup, topic, len(events))
    assert sorted(d.event_id for d in decided) == sorted(reference)
    for d in decided:
        assert _fields(d) == reference[d.event_id]
