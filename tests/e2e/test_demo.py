"""The demo path through the real CLI: events in, decisions logged, anchored, verified."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from typing import Any

from attestcore.ports import unused_port
from attestcore.waiting import wait_until
from attestream.settings import Settings

# The demo runs three services, a faust group join and training: minutes on a slow machine.
DEMO_TIMEOUT_S = 600
CLI = [sys.executable, "-m", "attestream.cli"]


def cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_demo_logs_anchors_and_verifies_every_valid_event(isolated: Settings) -> None:
    result = cli(
        "demo",
        "--transactions",
        "400",
        "--scans",
        "300",
        "--malformed",
        "3",
        "--json",
        timeout=DEMO_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert summary["valid_events"] == summary["logged_decisions"] == 700
    assert summary["dead_letters"] == 6
    # Read back from both topics: every consumed input record has exactly one outcome.
    assert summary["input_records"] == {
        "consumed": 706,
        "decided": 700,
        "dead_lettered": 6,
        "without_outcome": 0,
        "more_than_one_outcome": 0,
    }
    assert {how.split()[0] for how in summary["models"].values()} <= {"trained", "reused"}
    assert set(summary["models"]) == {"fraud", "authenticity"}
    assert summary["verification"]["ok"] is True
    assert summary["verification"]["entries"] == 700
    assert summary["anchors"] and summary["anchors"][-1]["tx_hash"].startswith("0x")
    assert set(summary["outcomes"]) == {"fraud", "authenticity"}

    verified = cli("forensic", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["anchors"] >= 1


def test_verify_exit_codes_name_the_problem(isolated: Settings) -> None:
    isolated.ledger_key_path.unlink()  # no key at all: nothing to trust
    no_key = cli("forensic", "verify", "--offline")
    assert no_key.returncode == 2
    assert "no trusted checkpoint key" in no_key.stderr
    reading = cli("ledger", "keys")  # only reads: it never creates a key
    assert reading.returncode == 2 and "`attestream ledger keys --create`" in reading.stderr
    assert not isolated.ledger_key_path.exists()
    assert cli("ledger", "keys", "--create").returncode == 0
    assert cli("ledger", "keys").returncode == 0

    env = dict(os.environ)
    env["ATTESTREAM_CLICKHOUSE_URL"] = f"clickhouse://default:@127.0.0.1:{unused_port()}/x"
    unreachable = cli("forensic", "verify", "--offline", env=env)
    assert unreachable.returncode == 3
    assert "ClickHouse" in unreachable.stderr and "could not be reached" in unreachable.stderr

    env = dict(os.environ)
    env["ATTESTREAM_CLICKHOUSE_URL"] = "postgres://nope"
    misconfigured = cli("forensic", "verify", "--offline", env=env)
    assert misconfigured.returncode == 2
    assert "clickhouse://" in misconfigured.stderr


def test_ledger_serves_prometheus_metrics(isolated: Settings) -> None:
    port = unused_port()
    env = dict(os.environ, ATTESTREAM_LEDGER_METRICS_PORT=str(port))
    proc = subprocess.Popen(
        [*CLI, "ledger", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        body = scrape(f"http://127.0.0.1:{port}/metrics", proc)
        assert "attestream_ledger_entries_total" in body
        assert "attestream_ledger_rejected_total" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def scrape(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> str:
    def body() -> str | None:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            return None

    return wait_until(body, timeout_s, interval_s=0.2, what=f"metrics at {url}")
