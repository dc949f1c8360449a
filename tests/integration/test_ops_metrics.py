"""The operators' families on the metrics endpoints of `attestream detect` and `attestream
ledger run`, after a small run on the real stack: consumer lag, latencies, scores, drift, the
active model and checkpoint age, each with a value that fits what was run."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from detect_helpers import (
    background,
    child_env,
    create_topics,
    payments,
    publish_payments,
    read_decisions,
)
from prometheus_client.parser import text_string_to_metric_families

from attestcore.ports import unused_port
from attestcore.waiting import wait_until
from attestream.settings import Settings
from attestream.wiring import open_store
from detectors.registry import active_sha256

EVENTS = 300
# The lag is read every 5 s and faust commits every few seconds; a minute means it is stuck.
SETTLE_TIMEOUT_S = 60.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def number(samples: Samples, name: str, **labels: str) -> float:
    found = value(samples, name, **labels)
    assert found is not None, f"no {name}{labels}"
    return found


def settled(port: int, name: str, **labels: str) -> Samples:
    """The endpoint's samples once `name{labels}` reads 0 (a lag caught up)."""
    found: list[Samples] = []

    def caught_up() -> bool:
        try:
            found.append(scrape(port))
        except OSError:
            return False
        return value(found[-1], name, **labels) == 0

    wait_until(caught_up, SETTLE_TIMEOUT_S, interval_s=0.5, what=f"{name}{labels} == 0")
    return found[-1]


def test_detect_and_ledger_expose_the_operational_families(
    isolated: Settings, trained_models: Path, tmp_path: Path
) -> None:
    detect_port, ledger_port = unused_port(), unused_port()
    env = child_env(
        ATTESTREAM_MODELS_DIR=str(trained_models),
        ATTESTREAM_DETECT_METRICS_PORT=str(detect_port),
        ATTESTREAM_LEDGER_METRICS_PORT=str(ledger_port),
    )
    create_topics(isolated)
    with (
        background(["detect"], env, tmp_path / "detect.log") as detect,
        background(["ledger", "run"], env, tmp_path / "ledger.log"),
    ):
        publish_payments(isolated, payments(EVENTS, run_id=f"ops{unused_port()}"))
        decisions = read_decisions(isolated, EVENTS, proc=detect)
        store = open_store(isolated)
        try:
            wait_until(lambda: store.count_entries() == EVENTS, SETTLE_TIMEOUT_S, what="entries")
        finally:
            store.close()
        tx = isolated.topic_transactions
        lag = "attestream_detect_consumer_lag_messages"
        detected = settled(detect_port, lag, topic=tx, partition="0")
        ledger_lag = "attestream_ledger_consumer_lag_messages"
        logged = settled(ledger_port, ledger_lag, topic=isolated.topic_decisions, partition="0")

    fraud = {"detector": "fraud"}
    latency = "attestream_detect_event_to_decision_seconds"
    assert number(detected, f"{latency}_count", **fraud) == EVENTS
    # Each latency runs to after its decision was made: at least decided_at - event_time.
    oldest = max(d.decided_at.timestamp() - d.event_time.timestamp() for d in decisions)
    assert number(detected, f"{latency}_sum", **fraud) >= oldest > 0
    assert number(detected, "attestream_detect_score_count", **fraud) == EVENTS
    scores = sum(d.score for d in decisions)
    assert abs(number(detected, "attestream_detect_score_sum", **fraud) - scores) < 1e-6
    digest = active_sha256(trained_models, "fraud")
    assert digest is not None
    assert value(detected, "attestream_detect_model_info", model_digest=digest, **fraud) == 1
    drift = value(detected, "attestream_detect_score_drift_psi", **fraud)
    assert drift is not None and drift >= 0
    assert value(detected, lag, topic=isolated.topic_supply_chain, partition="0") == 0

    durable = "attestream_ledger_decision_to_entry_seconds"
    assert number(logged, f"{durable}_count") == EVENTS
    assert number(logged, f"{durable}_sum") > 0
    age = number(logged, "attestream_ledger_checkpoint_age_seconds", chain="0")
    assert 0 <= age < SETTLE_TIMEOUT_S * 3
