"""Rolling out a model on the real stack: `attestream detect` runs, a second model version is
activated while payments keep coming, and every payment gets exactly one decision, the later
ones by the new model."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from detect_helpers import (
    CLI,
    add_fraud_model,
    background,
    child_env,
    copy_models,
    create_topics,
    payments,
    publish_payments,
    read_decisions,
)

from attestcore.ports import unused_port
from attestcore.schemas import PaymentTransaction, decision_id
from attestcore.waiting import wait_until
from attestream.settings import Settings
from detectors.registry import active_sha256

# The worker re-reads the registry this often: short, so the test waits little for the swap.
POLL_S = "0.5"
# A swap is a file read and a model load: a second or two; a minute means it never happens.
SWAP_TIMEOUT_S = 60.0


def publish_paced(settings: Settings, events: Sequence[PaymentTransaction]) -> None:
    """Payments in small bursts over about two seconds (while the new model is activated)."""
    for start in range(0, len(events), 25):
        publish_payments(settings, events[start : start + 25])
        time.sleep(0.15)


def wait_for_swap(port: int, swaps: int) -> None:
    line = f'attestream_detect_model_swaps_total{{detector="fraud"}} {float(swaps)}'

    def swapped() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
                return line in reply.read().decode()
        except OSError:
            return False

    wait_until(swapped, SWAP_TIMEOUT_S, interval_s=0.2, what=repr(line))


def test_a_new_active_model_takes_over_without_losing_or_doubling_an_event(
    isolated: Settings, trained_models: Path, tmp_path: Path
) -> None:
    models = copy_models(trained_models, tmp_path / "models")  # the test activates a model
    first = active_sha256(models, "fraud")
    second = add_fraud_model(models, seed=2)
    port = unused_port()
    env = child_env(
        ATTESTREAM_MODELS_DIR=str(models),
        ATTESTREAM_DETECT_MODEL_POLL_S=POLL_S,
        ATTESTREAM_DETECT_METRICS_PORT=str(port),
    )
    events = payments(900, run_id=f"rollout{time.time_ns()}")
    before, during, after = events[:300], events[300:600], events[600:]
    create_topics(isolated)

    with background(["detect"], env, tmp_path / "detect.log") as detect:
        publish_payments(isolated, before)
        assert {d.model_sha256 for d in read_decisions(isolated, 300, proc=detect)} == {first}
        publisher = threading.Thread(target=publish_paced, args=(isolated, during))
        publisher.start()
        activated = subprocess.run(
            [*CLI, "models", "activate", "fraud", second[:12]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        publisher.join()
        assert activated.returncode == 0, activated.stderr
        assert f"active model is now fraud-{second[:12]}" in activated.stdout
        wait_for_swap(port, 1)
        publish_payments(isolated, after)
        decisions = read_decisions(isolated, len(events), proc=detect)
    assert detect.returncode == 0, (tmp_path / "detect.log").read_text()[-3000:]

    per_event = Counter(d.event_id for d in decisions)
    assert set(per_event) == {e.event_id for e in events}
    assert set(per_event.values()) == {1}, "an event was decided twice"
    model_of = {d.event_id: d.model_sha256 for d in decisions}
    assert {model_of[e.event_id] for e in before} == {first}
    assert {model_of[e.event_id] for e in after} == {second}
    # One swap, between two batches: in topic order, the first model's decisions, then the
    # second's; each decision's id commits to the model that made it.
    order = [d.model_sha256 for d in decisions]
    swap = order.index(second)
    assert set(order[:swap]) == {first} and set(order[swap:]) == {second}
    assert all(
        d.decision_id == decision_id(d.event_id, d.detector, d.model_sha256)
        and d.model_id == f"fraud-{d.model_sha256[:12]}"
        for d in decisions
    )
