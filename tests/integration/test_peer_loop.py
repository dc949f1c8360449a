"""The benchmark's peer (`bench.peer_loop`) decides a topic on the real broker exactly as the
faust detection worker does: the same decisions, field for field apart from `decided_at`,
with the same keys and event bytes, and the same dead letters. Otherwise comparing their
speed would compare different work."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from attestcore.schemas import EVENT_HEADER, Decision, Detector, encode
from bench.peer import settings_for, start
from bench.stream import RUN_TIMEOUT_S, WORKER_START_TIMEOUT_S, StreamSetup
from detectors.model import active_sha256
from detectors.simulate_payments import simulate_payments
from streams.intake import HEADER_REASON
from streams.producer import EventProducer
from streams.topics import ensure_topics

PAYMENTS = 300
BATCH_MAX = 64
NOT_JSON = b"{not json"
# Reading a topic to its end: the records are there before the read starts.
READ_TIMEOUT_S = 1.0


def _fill(bootstrap: str, topic: str) -> None:
    """PAYMENTS payments keyed by customer, and one record that is not JSON among them."""
    ensure_topics(bootstrap, [topic], partitions=1)
    payments = simulate_payments(PAYMENTS, seed=7, run_id=topic)
    with EventProducer(bootstrap) as producer:
        for i, p in enumerate(payments):
            producer.send(topic, p.event.customer_id.encode(), encode(p.event))
            if i == PAYMENTS // 2:
                producer.send(topic, b"nobody", NOT_JSON)


def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    found: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
    try:
        while batch := consumer.consume(1000, READ_TIMEOUT_S):
            for m in batch:
                assert m.error() is None, m.error()
                pairs = cast("list[tuple[str, bytes | None]]", m.headers() or [])
                headers = {k: bytes(v or b"") for k, v in pairs}
                found.append((m.key(), m.value() or b"", headers))
    finally:
        consumer.close()
    return found


def _decide(setup: StreamSetup, topic: str, mode: str) -> tuple[list[Any], list[Any]]:
    """Run `mode` over the topic until it has decided every payment; its decisions and dead
    letters."""
    settings = settings_for(setup, topic, mode)
    process = start(mode, settings, setup.work_dir / f"{mode}.log")
    try:
        process.wait_stamp("first_batch", WORKER_START_TIMEOUT_S)
        process.wait_stamp("done", RUN_TIMEOUT_S)
    finally:
        process.stop()
    decisions = _read_all(setup.bootstrap, settings.decisions_topic)
    dead = _read_all(setup.bootstrap, settings.dead_letter_topic)
    return decisions, dead


def _without_decided_at(value: bytes) -> dict[str, Any]:
    decision = msgspec.json.decode(value, type=Decision)
    fields = msgspec.structs.asdict(decision)
    del fields["decided_at"]
    return fields


def test_peer_decides_as_the_worker(stack: Any, trained_models: Path, tmp_path: Path) -> None:
    topic = f"peer-payments-{uuid.uuid4().hex[:10]}"
    _fill(stack.kafka_bootstrap, topic)
    sha = active_sha256(trained_models, Detector.FRAUD)
    assert sha is not None
    setup = StreamSetup(
        stack.kafka_bootstrap, trained_models, sha, PAYMENTS, BATCH_MAX, 0.2, 20, 0.0, 7, tmp_path
    )

    worker_decisions, worker_dead = _decide(setup, topic, "worker")
    peer_decisions, peer_dead = _decide(setup, topic, "peer")

    assert len(worker_decisions) == len(peer_decisions) == PAYMENTS
    for (w_key, w_value, w_headers), (p_key, p_value, p_headers) in zip(
        worker_decisions, peer_decisions, strict=True
    ):
        assert p_key == w_key
        assert p_headers[EVENT_HEADER] == w_headers[EVENT_HEADER]
        assert _without_decided_at(p_value) == _without_decided_at(w_value)
    # The customer state carried across batches is what the later decisions' features show.
    late = _without_decided_at(peer_decisions[-1][1])
    assert any(value != 0 for value in late["features"].values())

    assert [(k, v) for k, v, _ in peer_dead] == [(k, v) for k, v, _ in worker_dead]
    assert [(k, v) for k, v, _ in peer_dead] == [(b"nobody", NOT_JSON)]
    assert peer_dead[0][2] == worker_dead[0][2]
    assert peer_dead[0][2][HEADER_REASON] == b"not_json"
