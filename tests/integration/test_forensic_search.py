"""The investigator's search and timeline through the real CLI, on a ledger of payments and
scans run through `detect` and `ledger run` (Kafka, ClickHouse): search by terminal, JSON and
CSV, paging with the cursor, explain by event id, and an EPC's timeline with distance and
speed."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from detect_helpers import CLI, background, child_env, create_topics, payments

from attestcore.schemas import PaymentContext, ScanContext, encode
from attestcore.waiting import wait_until
from attestream.settings import Settings
from attestream.wiring import open_store
from detectors.simulate_supply import simulate_supply
from forensics.timeline import Position, haversine_km
from ledger.entry import Entry, decode_entry
from ledger.store import ClickHouseStore
from streams.producer import EventProducer

PAYMENTS = 120
SCANS = 60
LOGGED_TIMEOUT_S = 180.0
"""A fresh worker and sequencer join their groups in seconds; three minutes means stuck."""


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def ok_json(*args: str, env: dict[str, str]) -> Any:
    done = cli(*args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def logged_entries(store: ClickHouseStore) -> list[Entry]:
    rows = store.execute_raw("SELECT entry FROM {db}.entries ORDER BY chain, seq")
    return [decode_entry(row[0]) for row in rows]


def detect_and_log(settings: Settings, env: dict[str, str], logs: Path) -> dict[str, Any]:
    """Payments and scans through `detect` and `ledger run` until all are logged; the
    published events by event id."""
    create_topics(settings)
    run = f"search{time.time_ns()}"
    paid = payments(PAYMENTS, run_id=run)
    scanned = [s.event for s in simulate_supply(SCANS, seed=5, run_id=run)]
    store = open_store(settings, create=True)
    try:
        with (
            background(["detect"], env, logs / "detect.log"),
            background(["ledger", "run"], env, logs / "ledger.log"),
        ):
            with EventProducer(settings.require_kafka()) as producer:
                for p in paid:
                    producer.send(settings.topic_transactions, p.customer_id.encode(), encode(p))
                for s in scanned:
                    producer.send(settings.topic_supply_chain, s.epc.encode(), encode(s))
            total = PAYMENTS + SCANS
            wait_until(
                lambda: store.count_entries() >= total,
                LOGGED_TIMEOUT_S,
                interval_s=0.5,
                what=f"{total} logged decisions",
                detail=lambda: (logs / "detect.log").read_text()[-2000:],
            )
    finally:
        store.close()
    return {p.event_id: p for p in paid} | {s.event_id: s for s in scanned}


def test_search_timeline_and_explain_by_event_id(
    isolated: Settings, trained_models: Path, tmp_path: Path
) -> None:
    env = child_env(ATTESTREAM_MODELS_DIR=str(trained_models))
    events = detect_and_log(isolated, env, tmp_path)
    store = open_store(isolated)
    try:
        entries = logged_entries(store)
    finally:
        store.close()
    pays = [e for e in entries if isinstance(e.decision.context, PaymentContext)]
    outcomes = Counter(e.decision.outcome for e in pays)
    flagged = "block" if outcomes["block"] else "review"
    assert outcomes[flagged], f"some payment is flagged: {outcomes}"

    # Search by terminal and outcome: exactly the ledger's flagged payments at that terminal.
    suspect = next(e for e in pays if e.decision.outcome == flagged)
    terminal = suspect.decision.context.terminal_id  # type: ignore[union-attr]
    want = {
        e.decision.decision_id
        for e in pays
        if e.decision.outcome == flagged and e.decision.context.terminal_id == terminal  # type: ignore[union-attr]
    }
    page = ok_json("forensic", "search", "--terminal", terminal, "--outcome", flagged, env=env)
    assert {r["decision_id"] for r in page["results"]} == want
    assert page["by_index"] and page["next_cursor"] is None
    assert {r["outcome"] for r in page["results"]} == {flagged}

    # CSV: the same rows, parsed back.
    done = cli("forensic", "search", "--terminal", terminal, "--outcome", flagged, "--csv", env=env)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["decision_id"] for r in rows} == want and rows[0]["event_time"]

    # Paging by cursor, one at a time: every payment of a customer exactly once.
    customer = Counter(e.decision.context.customer_id for e in pays).most_common(1)[0][0]  # type: ignore[union-attr]
    theirs = {e.decision.decision_id for e in pays if e.decision.context.customer_id == customer}  # type: ignore[union-attr]
    assert len(theirs) > 1
    seen: list[str] = []
    cursor: list[str] = []
    for _ in range(len(theirs) + 1):
        page = ok_json(
            "forensic", "search", "--customer", customer, "--limit", "1", *cursor, env=env
        )
        seen += [r["decision_id"] for r in page["results"]]
        if page["next_cursor"] is None:
            break
        cursor = ["--cursor", page["next_cursor"]]
    assert sorted(seen) == sorted(theirs) and len(seen) == len(set(seen))
    human = cli("forensic", "search", "--customer", customer, "--limit", "1", env=env)
    assert human.returncode == 0 and "next cursor: " in human.stdout

    # explain by event id: the one decision on that event.
    explained = ok_json("forensic", "explain", suspect.decision.event_id, env=env)
    assert explained["decision_id"] == suspect.decision.decision_id
    unknown = cli("forensic", "explain", "tx-no-such-event", env=env)
    assert unknown.returncode == 2 and "no logged decision or event" in unknown.stderr

    # An EPC's timeline: its scans in time order, with distance and speed from the one before.
    scans = [e for e in entries if isinstance(e.decision.context, ScanContext)]
    epc = Counter(e.decision.context.epc for e in scans).most_common(1)[0][0]  # type: ignore[union-attr]
    line = ok_json("forensic", "timeline", "--epc", epc, env=env)["events"]
    ids = [e.decision.event_id for e in scans if e.decision.context.epc == epc]  # type: ignore[union-attr]
    assert sorted(s["event_id"] for s in line) == sorted(ids) and len(line) > 1
    at = [events[s["event_id"]] for s in line]
    assert [a.event_time for a in at] == sorted(a.event_time for a in at)
    for before, step, this in zip(at, line[1:], at[1:], strict=False):
        km = haversine_km(Position(before.lat, before.lon), Position(this.lat, this.lon))
        assert step["distance_km"] == km and step["lat"] == this.lat
        hours = (this.event_time - before.event_time).total_seconds() / 3600
        assert step["speed_kmh"] == (km / hours if hours > 0 else None)
        assert step["biz_step"] == this.biz_step.value
    table = cli("forensic", "timeline", "--epc", epc, env=env)
    assert table.returncode == 0 and "km/h" in table.stdout

    # A case bundle of that payment carries its archived event's exact bytes, and verifies
    # with the public key alone, the event hashing to the digest its decision logged.
    id_file = tmp_path / "ids.txt"
    id_file.write_text(suspect.decision.event_id + "\n", encoding="utf-8")
    case = tmp_path / "case.bundle"
    made = cli(
        "forensic", "bundle", "--ids", str(id_file), "-o", str(case), "--note", "test", env=env
    )
    assert made.returncode == 0, made.stderr
    carried = json.loads(case.read_text(encoding="utf-8"))["events"]
    assert [e["event_sha256"] for e in carried] == [suspect.decision.event_sha256]
    key = json.loads(cli("ledger", "keys", "--json", env=env).stdout)["verifier_key"]
    verified = ok_json("forensic", "verify-bundle", str(case), "--key", key, env=env)
    assert verified["ok"] and verified["events"] == 1
