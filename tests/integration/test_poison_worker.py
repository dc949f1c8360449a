"""Poison events through the real detection worker on the real broker: every input record
ends as exactly one decision or one dead letter, read back from both topics, also when the
worker dies halfway through a batch."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer
from detect_helpers import (
    DECIDE_TIMEOUT_S,
    background,
    child_env,
    create_topics,
    payments,
    publish_payments,
)

from attestcore.ports import unused_port
from attestcore.schemas import Channel, PaymentLabel, PaymentTransaction, encode
from attestcore.waiting import poll_until, wait_until
from attestream.accounting import Accounting, account, read_topic, record_headers
from attestream.settings import Settings
from detectors.simulate_supply import simulate_supply
from streams.intake import (
    HEADER_ERROR_CLASS,
    HEADER_OFFSET,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_SHA256,
    HEADER_REASON,
    HEADER_TOPIC,
    MAX_DEAD_LETTER_VALUE_BYTES,
)
from streams.outcomes import FAULT_AT_ENV, FAULTS

Record = tuple[str, bytes | None, bytes]
"""(topic, key, value) as a producer sends it."""

# Larger than the producer's default limit (1,000,000 bytes), as the record that once made
# its own dead-letter send fail and crash the agent.
HUGE_RECORD_BYTES = 1_500_000
RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def pay(event_id: str, customer: str, at: datetime, **changes: object) -> PaymentTransaction:
    event = PaymentTransaction(
        event_id=event_id,
        event_time=at,
        source="pos",
        customer_id=customer,
        terminal_id="T1",
        amount=25.0,
        currency="EUR",
        channel=Channel.CARD_PRESENT,
        mcc="5411",
        country="DE",
        lat=48.1,
        lon=11.6,
    )
    return msgspec.structs.replace(event, **changes)


def hostile_payments(settings: Settings) -> tuple[list[Record], list[str]]:
    """Each hostile input of the worker's history, mixed with ordinary payments; and the
    outcome each must get ("decision" or the dead letter's reason), in order."""
    topic = settings.topic_transactions
    events = [
        pay("tx-2099", "P-future", datetime(2099, 1, 1, tzinfo=UTC)),
        *(pay(f"tx-after-2099-{i}", "P-future", RECENT + timedelta(minutes=i)) for i in range(5)),
        pay("tx-newest", "P-old", RECENT),
        pay("tx-40-days-older", "P-old", RECENT - timedelta(days=40)),
        pay("tx-year-1", "P-old", datetime(1, 1, 1, tzinfo=UTC)),
        pay("tx-denormal-1", "P-tiny", RECENT, amount=5e-324),
        pay("tx-denormal-2", "P-tiny", RECENT + timedelta(seconds=1), amount=5e-324),
        pay("tx-huge", "P-tiny", RECENT + timedelta(seconds=2), amount=1e9),
        pay("tx-north-east", "P-pole", RECENT, lat=90.0, lon=180.0),
        pay("tx-south-west", "P-pole", RECENT + timedelta(seconds=1), lat=-90.0, lon=-180.0),
        pay("tx-zero", "P-pole", RECENT + timedelta(seconds=2), amount=0.0),
    ]
    duplicate = pay("tx-twice", "P-dup", RECENT)
    records: list[Record] = [(topic, e.customer_id.encode(), encode(e)) for e in events]
    records += [(topic, b"P-dup", encode(duplicate))] * 2
    records += [
        (topic, b"P-huge", b'{"event_id": "' + b"h" * HUGE_RECORD_BYTES + b'"}'),
        (topic, None, bytes(range(256))),
        (topic, b"P-garbage", b"{"),
        (
            topic,
            b"P-unicode",
            json.dumps(
                {**json.loads(encode(duplicate)), "event_id": "tx-\u00e9\U0001f600"}
            ).encode(),
        ),
        (topic, b"someone-else", encode(pay("tx-wrong-key", "P-key", RECENT))),
    ]
    ordinary = payments(150, "poison")
    records += [(topic, p.customer_id.encode(), encode(p)) for p in ordinary]
    expected = ["event_time_in_future"] + ["decision"] * (len(events) - 1 + 2)
    expected += ["oversized", "not_json", "not_json", "schema_violation", "key_mismatch"]
    return records, expected + ["decision"] * len(ordinary)


def hostile_scans_and_labels(settings: Settings) -> list[Record]:
    scans = [s.event for s in simulate_supply(40, seed=3, run_id="poison")]
    future = msgspec.structs.replace(
        scans[0], event_id="sc-2099", event_time=datetime(2099, 1, 1, tzinfo=UTC)
    )
    label = PaymentLabel(
        label_id="lb-2099",
        label_time=datetime(2099, 1, 1, tzinfo=UTC),
        transaction_id="tx-newest",
        transaction_time=RECENT,
        customer_id="P-old",
        terminal_id="T1",
        fraud=True,
    )
    sc, labels = settings.topic_supply_chain, settings.topic_labels
    return [
        *((sc, s.epc.encode(), encode(s)) for s in [future, *scans]),
        (sc, b"urn:epc:id:sgtin:1.2.3", b"\x00\x01garbage"),
        (labels, b"T1", encode(label)),
        (labels, b"T1", b"not a label"),
    ]


def send(settings: Settings, records: Sequence[Record]) -> None:
    """Raw records, the huge one included (the stack's own producer refuses records over
    its 1 MB default, as a careful producer would)."""
    producer = Producer(
        {
            "bootstrap.servers": settings.require_kafka(),
            "partitioner": "murmur2_random",
            "message.max.bytes": 4_000_000,
        }
    )
    for topic, key, value in records:
        producer.produce(topic, value=value, key=key)
        producer.poll(0)
    assert producer.flush(60) == 0


def wait_accounted(
    settings: Settings, inputs: Sequence[str], expected: int, proc: subprocess.Popen[bytes]
) -> Accounting:
    """The topics read back once every input record has an outcome (or the wait ran out)."""

    def found() -> Accounting:
        assert proc.poll() is None, "the detect worker exited"
        return account(
            settings.require_kafka(),
            {t: {} for t in inputs},
            settings.topic_decisions,
            settings.topic_dead_letter,
        )

    def complete(found: Accounting) -> bool:
        return len(found.consumed) >= expected and not found.without_outcome()

    accounting, _ = poll_until(found, complete, DECIDE_TIMEOUT_S, interval_s=1.0)
    return accounting


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    raise AssertionError(f"no {name} in the metrics")


@pytest.fixture
def poisoned(isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The isolated settings with a labels topic of this test's own."""
    monkeypatch.setenv("ATTESTREAM_TOPIC_LABELS", isolated.topic_transactions + "-labels")
    settings = Settings()
    create_topics(settings)
    return settings


def test_every_hostile_record_gets_exactly_one_outcome(
    poisoned: Settings, trained_models: Path, tmp_path: Path
) -> None:
    (payments_in, expected_outcomes), others = (
        hostile_payments(poisoned),
        hostile_scans_and_labels(poisoned),
    )
    send(poisoned, [*payments_in, *others])
    port = unused_port()
    env = child_env(
        ATTESTREAM_MODELS_DIR=str(trained_models), ATTESTREAM_DETECT_METRICS_PORT=str(port)
    )
    inputs = [poisoned.topic_transactions, poisoned.topic_supply_chain]
    expected = len(payments_in) + sum(1 for t, _, _ in others if t in inputs)
    with background(["detect"], env, tmp_path / "detect.log") as detect:
        found = wait_accounted(poisoned, inputs, expected, detect)
        consumed = metric(port, 'attestream_detect_events_total{detector="fraud"}')
        decided = metric(port, 'attestream_detect_decided_total{detector="fraud"}')
        dead = metric(port, 'attestream_detect_dead_lettered_total{detector="fraud"}')
        unaccounted = metric(port, 'attestream_detect_unaccounted_events{detector="fraud"}')
    log = (tmp_path / "detect.log").read_text(errors="replace")
    assert len(found.consumed) == expected, log[-3000:]
    # faust's local files live under the home, not in the working directory (the kafka
    # engine keeps none).
    app_data = f"{poisoned.detect_app_id}-data"
    assert not (Path.cwd() / app_data).exists()
    if poisoned.detect_engine == "faust":
        assert (poisoned.home / "detect" / app_data).is_dir()
    assert found.without_outcome() == [] and found.more_than_one() == [], found.summary()
    assert (consumed, decided + dead, unaccounted) == (len(payments_in), consumed, 0.0)

    tx = poisoned.topic_transactions
    got = [
        found.dead_letters[(tx, 0, offset)][0]
        if found.dead_letters.get((tx, 0, offset))
        else "decision"
        for offset in range(len(payments_in))
    ]
    assert got == expected_outcomes
    letters = {(t, int(o)): dict(h) for t, o, h in dead_letters(poisoned)}
    huge = next(h for h in letters.values() if h.get(HEADER_ORIGINAL_BYTES))
    assert huge[HEADER_REASON] == b"oversized" and len(huge[HEADER_ORIGINAL_SHA256]) == 64
    assert int(huge[HEADER_ORIGINAL_BYTES]) > HUGE_RECORD_BYTES
    labels = [h for (t, _), h in letters.items() if t == poisoned.topic_labels]
    assert sorted(h[HEADER_REASON] for h in labels) == [b"event_time_in_future", b"not_json"]
    # Every hostile value above is now handled by a reason of its own, not by an exception.
    assert "Traceback" not in log and all(HEADER_ERROR_CLASS not in h for h in letters.values())


def dead_letters(settings: Settings) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
    found = []
    for m in read_topic(settings.require_kafka(), settings.topic_dead_letter):
        headers = list(record_headers(m.headers()))
        named = dict(headers)
        found.append((named[HEADER_TOPIC].decode(), named[HEADER_OFFSET], headers))
        assert len(m.value() or b"") <= MAX_DEAD_LETTER_VALUE_BYTES
    return found


@pytest.mark.parametrize("fault", FAULTS)
def test_a_worker_dying_halfway_through_a_batch_loses_no_record(
    poisoned: Settings, trained_models: Path, tmp_path: Path, fault: str
) -> None:
    """The decide agent raises (`raise`: faust restarts it, the kafka engine's worker exits
    and is restarted; either is stopped with SIGTERM, committing what it acked) or the
    process is killed (`kill`) after handing half of a batch's decisions to the producer;
    after a restart every record has an outcome. Decisions may be sent twice, always with
    the same decision id."""
    events = payments(400, f"fault-{fault}")
    publish_payments(poisoned, events)
    env = child_env(ATTESTREAM_MODELS_DIR=str(trained_models))
    inputs = [poisoned.topic_transactions]
    first_log = tmp_path / "first.log"
    # `raise`: faust logs the agent's crash and restarts it; the kafka engine's worker stops
    # and its supervisor restarts it.
    crashed = (
        "Crashed reason=InjectedFault" if poisoned.detect_engine == "faust" else "InjectedFault"
    )
    struck = crashed if fault == "raise" else "fault injection"
    with background(["detect"], {**env, FAULT_AT_ENV: fault}, first_log) as first:
        wait_until(
            lambda: struck in first_log.read_text(errors="replace"),
            DECIDE_TIMEOUT_S,
            interval_s=0.2,
            what=repr(struck),
            detail=lambda: first_log.read_text(errors="replace")[-3000:],
        )
        # `kill`: the supervising `attestream detect` restarts its killed worker (which the
        # fault strikes again); SIGTERM on leaving the block stops both.
    assert first.returncode == 0, first_log.read_text()[-3000:]
    partial = account(
        poisoned.require_kafka(),
        {t: {} for t in inputs},
        poisoned.topic_decisions,
        poisoned.topic_dead_letter,
    )
    assert partial.without_outcome(), "the fault struck before any batch was done"
    with background(["detect"], env, tmp_path / "second.log") as second:
        found = wait_accounted(poisoned, inputs, len(events), second)
    assert len(found.consumed) == len(events)
    assert found.without_outcome() == [], found.summary()
    assert found.more_than_one() == [] and found.decided == len(events)
