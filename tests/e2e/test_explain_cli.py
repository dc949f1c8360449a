"""`attestream forensic explain | replay` on a ledger written by `detect` and `ledger run`
subprocesses: a logged decision replayed and explained, and each exit code of the command."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from detect_helpers import (
    CLI,
    background,
    child_env,
    copy_models,
    create_topics,
    payments,
    publish_payments,
)

from attestcore.ports import unused_port
from attestcore.waiting import wait_until
from attestream.settings import Settings
from attestream.stack_services import reader_url
from attestream.wiring import open_store
from detectors.registry import active_sha256, artifact_path

EVENTS = 120
# A fresh worker and sequencer join their groups in seconds; two minutes means stuck.
LOGGED_TIMEOUT_S = 120.0


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def log_decisions(settings: Settings, env: dict[str, str], logs: Path) -> str:
    """Payments through `detect` and `ledger run` until all are logged; the riskiest id."""
    create_topics(settings)
    store = open_store(settings, create=True)
    try:
        with (
            background(["detect"], env, logs / "detect.log"),
            background(["ledger", "run"], env, logs / "ledger.log"),
        ):
            publish_payments(settings, payments(EVENTS, run_id=f"explain{time.time_ns()}"))
            wait_until(
                lambda: store.count_entries() >= EVENTS,
                LOGGED_TIMEOUT_S,
                interval_s=0.5,
                what=f"{EVENTS} logged decisions",
                detail=lambda: (logs / "detect.log").read_text()[-2000:],
            )
        rows = store.execute("SELECT decision_id FROM {db}.entries ORDER BY score DESC LIMIT 1")
        return str(rows[0][0])
    finally:
        store.close()


def test_explain_and_replay_a_logged_decision(
    isolated: Settings, trained_models: Path, tmp_path: Path
) -> None:
    models = copy_models(trained_models, tmp_path / "models")  # the test corrupts an artifact
    fraud = active_sha256(models, "fraud")
    assert fraud is not None, "the session's models include an active fraud model"
    env = child_env(ATTESTREAM_MODELS_DIR=str(models))
    decision_id = log_decisions(isolated, env, tmp_path)

    explained = cli("forensic", "explain", decision_id, "--json", env=env)
    assert explained.returncode == 0, explained.stderr
    report: dict[str, Any] = json.loads(explained.stdout)
    assert report["ok"] is True and report["decision_id"] == decision_id
    assert report["model"]["model_sha256"] == fraud and report["model"]["digest_verified"]
    assert report["replayed"]["score"] == report["logged"]["score"]
    assert report["replayed"]["outcome"] == report["logged"]["outcome"]
    contributions = [c["contribution"] for c in report["contributions"]]
    assert len(contributions) == len({c["feature"] for c in report["contributions"]}) > 10
    assert abs(report["sum"] - (report["bias"] + sum(contributions))) < 1e-6
    assert abs(report["sum"] - report["margin"]) < 1e-4
    assert [abs(c) for c in contributions] == sorted((abs(c) for c in contributions), reverse=True)

    text = cli("forensic", "explain", decision_id, env=env)
    assert text.returncode == 0, text.stderr
    assert "VERIFIED" in text.stdout and "sum = margin" in text.stdout
    assert report["contributions"][0]["feature"] in text.stdout

    replayed = cli("forensic", "replay", decision_id, "--json", env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["replayed"] == report["replayed"]

    # Exit codes: 2 an unknown id, 1 a model whose bytes changed, 3 ClickHouse unreachable.
    unknown = cli("forensic", "explain", "0" * 64, env=env)
    assert unknown.returncode == 2 and "no logged decision has the id" in unknown.stderr

    artifact = artifact_path(models, "fraud", fraud)
    artifact.write_bytes(artifact.read_bytes() + b"\x00")
    changed = cli("forensic", "explain", decision_id, env=env)
    assert changed.returncode == 1
    assert "has sha256" in changed.stderr and f"but its card says {fraud}" in changed.stderr

    # Explaining only reads: a ClickHouse user that may only read does it too.
    reader_env = dict(
        env, ATTESTREAM_CLICKHOUSE_URL=reader_url(isolated.require_clickhouse(), isolated.home)
    )
    artifact.write_bytes(artifact.read_bytes()[:-1])  # the model as it was
    as_reader = cli("forensic", "explain", decision_id, "--json", env=reader_env)
    assert as_reader.returncode == 0, as_reader.stderr
    assert json.loads(as_reader.stdout)["contributions"] == report["contributions"]

    unreachable_env = dict(
        env, ATTESTREAM_CLICKHOUSE_URL=f"clickhouse://127.0.0.1:{unused_port()}/x"
    )
    unreachable = cli("forensic", "replay", decision_id, env=unreachable_env)
    assert unreachable.returncode == 3 and "could not be reached" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
