"""The stack's Prometheus scraping a running pipeline (docs/operations.md, "Prometheus and
Grafana", "Alerts and runbooks").

detect, `ledger run`, `anchor run`, `serve` and `forensic watch` run on the session stack with
metrics on free ports; they publish their scrape targets themselves. Payments and scans (a few
malformed) go through, investigators' requests (one unauthenticated) reach the server. Then,
through Prometheus's HTTP API:

1. every query of every generated dashboard and every alert rule Prometheus loaded from
   deploy/prometheus/alerts.yml parses;
2. after the rules have been evaluated, no alert fires on this healthy run;
3. every dashboard query returns data, and every metric family an alert reads exists;
4. after an entry is rewritten in ClickHouse, VerificationFailed fires.

The session stack's Prometheus scrapes and evaluates every second (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from detect_helpers import background, child_env, create_topics
from ledger_helpers import entry_row, overwrite_entry

from attestcore.ports import unused_port
from attestcore.waiting import poll_until, wait_until
from attestream.access_tokens import AccessTokens, Role, tokens_path
from attestream.monitoring_queries import Prometheus, Query, dashboard_queries, evaluate_all
from attestream.settings import Settings
from attestream.simulation import publish, publish_payments
from attestream.stack_prometheus import ALERT_RULES
from attestream.wiring import open_store
from detectors.simulate_payments import simulate_payments
from detectors.simulate_supply import simulate_supply
from streams.producer import EventProducer

if TYPE_CHECKING:  # tests/integration/conftest.py shadows the name at run time
    from conftest import StackEndpoints

pytestmark = pytest.mark.integration

# Grafana's $__rate_interval for a 1 s scrape is 4 scrapes; 30 s leaves room on a busy machine.
RATE_WINDOW = "30s"
PAYMENTS = 300
SCANS = 200
MALFORMED = 2
# Scoring, logging and anchoring a few hundred events on a loaded 2-core machine.
PIPELINE_TIMEOUT_S = 120.0
# Several 1 s scrapes and evaluations; a loaded machine delays both.
PROMETHEUS_TIMEOUT_S = 60.0
POLL_S = 0.5
HTTP_TIMEOUT_S = 10.0
# Families whose series exist only once their event happened: a second writer on a chain, a
# refusal to sign. Their panels add `or on() vector(0)`, their alerts are tested by promtool.
EVENT_ONLY_FAMILIES = {
    "attestream_ledger_fenced_writers_total",
    "attestream_ledger_signing_refused",
}


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def alert_queries(prometheus: Prometheus) -> list[Query]:
    """Every alerting rule Prometheus loaded; they must be those of deploy/prometheus/alerts.yml."""
    rules = [rule for rule, _ in prometheus.alert_rules()]
    in_file = re.findall(r"^\s*- alert: (\w+)$", ALERT_RULES.read_text(encoding="utf-8"), re.M)
    assert sorted(rule.name for rule in rules) == sorted(in_file)
    return rules


def families(expr: str) -> set[str]:
    return set(re.findall(r"\b(attestream_[a-z_]+|up)\b", expr))


@dataclass(frozen=True)
class Pipeline:
    settings: Settings
    server: str
    instances: frozenset[str]
    """host:port of every process's metrics: alerts about other tests' processes (the session
    Prometheus keeps their series) are not this run's."""


@pytest.fixture
def pipeline(
    isolated: Settings, stack: StackEndpoints, trained_models: Path, tmp_path: Path
) -> Iterator[Pipeline]:
    """detect, ledger, anchor, serve and watch running on the session stack with metrics
    on free ports."""
    create_topics(isolated)
    # The ledger's tables exist before the processes start, so the watch verifies from its
    # first pass instead of waiting for `ledger run` to create them.
    open_store(isolated).create_schema()
    serve_port = unused_port()
    metrics = {name: unused_port() for name in ("detect", "ledger", "anchor", "serve", "watch")}
    env = child_env(
        ATTESTREAM_MODELS_DIR=str(trained_models),
        **{f"ATTESTREAM_{name.upper()}_METRICS_PORT": str(port) for name, port in metrics.items()},
        ATTESTREAM_WATCH_INTERVAL_S="1",
    )
    commands = {
        "detect": ["detect"],
        "ledger": ["ledger", "run"],
        "anchor": ["anchor", "run", "--interval", "1"],
        "serve": ["serve", "--port", str(serve_port)],
        "watch": ["forensic", "watch"],
    }
    with ExitStack() as running:
        for name, args in commands.items():
            running.enter_context(background(args, env, tmp_path / f"{name}.log"))
        yield Pipeline(
            isolated,
            f"http://127.0.0.1:{serve_port}",
            frozenset(f"{isolated.metrics_host}:{port}" for port in metrics.values()),
        )


def run_events(settings: Settings) -> int:
    """Publish payments and scans (plus malformed records); the number of valid events."""
    with EventProducer(settings.require_kafka()) as producer:
        published = [
            publish_payments(
                producer,
                settings.topic_transactions,
                settings.topic_labels,
                simulate_payments(count=PAYMENTS, seed=3, run_id="monitoring"),
                malformed=MALFORMED,
            ),
            publish(
                producer,
                settings.topic_supply_chain,
                simulate_supply(count=SCANS, seed=3, run_id="monitoring"),
                "epc",
                malformed=MALFORMED,
            ),
        ]
    return sum(p.valid for p in published)


def wait_for(prometheus: str, expr: str, what: str, timeout_s: float) -> None:
    def answered() -> bool:
        return Prometheus(prometheus).evaluate(Query("wait", what, expr)).series > 0

    wait_until(answered, timeout_s, interval_s=POLL_S, what=what)


def investigate(server: str, home: Path) -> None:
    """One refused and one granted request, as investigators make them."""
    status, _ = get_json(f"{server}/v1/search?outcome=decline")
    assert status == 401
    token = AccessTokens(tokens_path(home)).grant("monitoring-test", Role.INVESTIGATOR)
    status, body = get_json(f"{server}/v1/search?outcome=decline", token)
    assert status == 200, body


def test_dashboards_and_alerts_on_a_running_pipeline(
    pipeline: Pipeline, stack: StackEndpoints
) -> None:
    settings, server = pipeline.settings, pipeline.server
    prometheus = stack.prometheus_url
    valid = run_events(settings)
    wait_for(
        prometheus,
        f"sum(attestream_ledger_tree_size_entries) >= {valid}",
        "every event logged",
        PIPELINE_TIMEOUT_S,
    )
    wait_for(
        prometheus,
        "attestream_anchor_last_final_timestamp_seconds > 0",
        "an anchor",
        PIPELINE_TIMEOUT_S,
    )
    investigate(server, stack.home)
    api = Prometheus(prometheus)
    panels = dashboard_queries(rate_window=RATE_WINDOW)
    alerts = alert_queries(api)

    # 1. Every query parses.
    for q in panels + alerts:
        assert api.evaluate(q).ok, q

    # 2. No alert fires on a healthy run, once every rule was evaluated after the data came.
    evaluated_after = time.time()

    def rules_evaluated() -> bool:
        _, body = get_json(f"{prometheus}/api/v1/rules?type=alert")
        stamps = [r["lastEvaluation"] for g in body["data"]["groups"] for r in g["rules"]]
        return all(_epoch(stamp) > evaluated_after for stamp in stamps)

    wait_until(rules_evaluated, PROMETHEUS_TIMEOUT_S, interval_s=POLL_S, what="rule evaluation")
    assert api.firing(pipeline.instances) == []
    # The operator's view of the same: `stack queries` lists every panel and rule, all parsed.
    listed = subprocess.run(
        [sys.executable, "-m", "attestream.cli", "stack", "queries", "--json"],
        env={**os.environ, "ATTESTREAM_HOME": str(stack.home)},
        capture_output=True,
        text=True,
        timeout=PROMETHEUS_TIMEOUT_S,
        check=False,
    )
    rows = json.loads(listed.stdout)["queries"]
    # Exit 1 when an alert fires: on the session's shared Prometheus, one about an earlier
    # test's processes may (this run's own were checked above).
    firing = any(r["state"] == "firing" for r in rows)
    assert listed.returncode == (1 if firing else 0), listed.stderr
    assert [(r["source"], r["name"]) for r in rows if r["ok"]] == [
        *(("panel", q.name) for q in dashboard_queries()),
        *(("alert", q.name) for q in alerts),
    ]

    # 3. Every panel shows data, and every family an alert reads exists (rate windows need a
    #    few scrapes first, hence the wait).
    def empty_panels() -> list[str]:
        return [q.name for q in panels if api.evaluate(q).series == 0]

    empty, _ = poll_until(empty_panels, lambda e: not e, PROMETHEUS_TIMEOUT_S, interval_s=POLL_S)
    assert empty == [], "panels without data: " + ", ".join(empty)
    # What each query returned on this run (shown with `pytest -s`; `attestream stack queries`
    # prints the same table for any Prometheus).
    for e in evaluate_all(api, RATE_WINDOW):
        print(f"{e.query.source}\t{e.query.name}\t{e.summary()}\t{e.query.expr}")
    status, names = get_json(f"{prometheus}/api/v1/label/__name__/values")
    assert status == 200
    read = set().union(*(families(q.expr) for q in panels + alerts))
    missing = sorted(read - set(names["data"]) - EVENT_ONLY_FAMILIES)
    assert missing == [], "families no process exports: " + ", ".join(missing)

    # 4. A rewritten entry: `forensic watch` fails verification and the alert fires.
    store = open_store(settings)
    chain = store.chains()[0]
    row = entry_row(store, chain, 1)
    outcome = str(row["outcome"])
    other = "approve" if outcome != "approve" else "decline"
    entry = row["entry"]
    row["entry"] = entry.replace(outcome.encode() if isinstance(entry, bytes) else outcome, other)
    row["outcome"] = other
    overwrite_entry(store, chain, 1, row)

    def verification_alert() -> bool:
        return "VerificationFailed" in api.firing(pipeline.instances)

    wait_until(verification_alert, PROMETHEUS_TIMEOUT_S, interval_s=POLL_S, what="the alert")


def _epoch(stamp: str) -> float:
    """Prometheus's RFC 3339 timestamps (nanoseconds, Z) as epoch seconds."""
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", stamp).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()
