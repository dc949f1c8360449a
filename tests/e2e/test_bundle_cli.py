"""Case bundles through the real CLI on a ledger built by the real sequencer, verified with
the log's public key alone: no database, no settings, no stack endpoints."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from factories import make_decision
from ledger_helpers import publish_decisions, run_sequencer
from test_demo import cli

import ledger.store
from attestream.settings import Settings
from attestream.wiring import open_store
from streams.topics import ensure_topics

ENTRIES = 60
BATCH = 25


def log_decisions(settings: Settings, entries: int) -> None:
    """Decisions 0..entries-1 logged by the real sequencer in batches of BATCH (so several
    signed checkpoints), with the test's own signing key (`isolated` created it)."""
    ensure_topics(settings.require_kafka(), [settings.topic_decisions], partitions=1)
    store = open_store(settings, create=True)
    try:
        publish_decisions(settings, [make_decision(i) for i in range(entries)])
        run_sequencer(settings, store, batch_max=BATCH, records=entries)
        assert store.count_entries() == entries
    finally:
        store.close()


def offline_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "ATTESTREAM_HOME": str(tmp_path / "nowhere")}


def verify_offline(path: Path, key: str, tmp_path: Path, *extra: str) -> Any:
    return cli(
        "forensic",
        "verify-bundle",
        str(path),
        "--key",
        key,
        "--json",
        *extra,
        env=offline_env(tmp_path),
    )


def seqs_of(path: Path) -> list[int]:
    return [e["seq"] for e in json.loads(path.read_text())["entries"]]


def test_bundles_by_ids_and_by_query_verify_with_the_public_key_alone(
    isolated: Settings, tmp_path: Path
) -> None:
    log_decisions(isolated, ENTRIES)
    key = json.loads(cli("ledger", "keys", "--json").stdout)["verifier_key"]

    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(
        f"{make_decision(3).decision_id}\n\nev-41\n{make_decision(55).decision_id}\n"
    )
    by_ids = tmp_path / "ids.bundle"
    made = cli(
        "forensic",
        "bundle",
        "--ids",
        str(ids_file),
        "-o",
        str(by_ids),
        "--note",
        "case 17",
        "--by",
        "auditor",
    )
    assert made.returncode == 0, made.stderr
    checked = verify_offline(by_ids, key, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] and report["entries"] == 3 and report["events"] == 0
    assert [(c["chain"], c["tree_size"], c["anchor_tx"]) for c in report["chains"]] == [
        (0, ENTRIES, None)
    ]
    manifest = report["manifest"]
    assert (manifest["exported_by"], manifest["note"]) == ("auditor", "case 17")
    assert manifest["selection"]["ids"][1] == "ev-41" and manifest["counts"]["entries"] == 3
    assert seqs_of(by_ids) == [3, 41, 55]

    query = "score=0.5.. from=2025-03-03T00:00:10Z to=2025-03-03T00:00:30Z"
    by_query = tmp_path / "query.bundle"
    made = cli("forensic", "bundle", "--query", query, "-o", str(by_query))
    assert made.returncode == 0, made.stderr
    expected = [
        i for i in range(ENTRIES) if make_decision(i).score >= 0.5 and 10 <= i < 30
    ]  # decision i's event time is 2025-03-03 00:00:i
    assert seqs_of(by_query) == expected
    checked = verify_offline(by_query, key, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["manifest"]["selection"]["query"] == query

    data = json.loads(by_query.read_text())
    entry = base64.b64decode(data["entries"][1]["entry"])
    data["entries"][1]["entry"] = base64.b64encode(entry.replace(b'"C', b'"D', 1)).decode()
    by_query.write_text(json.dumps(data))
    forged = verify_offline(by_query, key, tmp_path)
    assert forged.returncode == 1, forged.stdout + forged.stderr
    failures = json.loads(forged.stdout)["failures"]
    assert [(f["kind"], f["chain"], f["seq"]) for f in failures] == [
        ("root_mismatch", 0, expected[1])
    ]

    too_many = cli(
        "forensic",
        "bundle",
        "--query",
        "detector=fraud",
        "--max",
        "10",
        "-o",
        str(tmp_path / "big.bundle"),
    )
    assert too_many.returncode == 2 and "more than 10 entries" in too_many.stderr
    ids_file.write_text("ev-unknown\n")
    unknown = cli("forensic", "bundle", "--ids", str(ids_file), "-o", str(tmp_path / "x.bundle"))
    assert unknown.returncode == 2 and "match no logged decision: ev-unknown" in unknown.stderr
    both = cli("forensic", "bundle", "--ids", str(ids_file), "--query", "entity=C1", "-o", "x")
    assert both.returncode == 2 and "exactly one of" in both.stderr
    assert not (tmp_path / "big.bundle").exists() and not (tmp_path / "x.bundle").exists()


def test_an_anchored_bundle_is_checked_on_the_chain(isolated: Settings, tmp_path: Path) -> None:
    log_decisions(isolated, 30)
    anchored = cli("anchor", "run", "--once", timeout=180)
    assert anchored.returncode == 0, anchored.stderr[-2000:]
    key = json.loads(cli("ledger", "keys", "--json").stdout)["verifier_key"]
    path = tmp_path / "case.bundle"
    made = cli("forensic", "bundle", "--query", "entity=C2", "-o", str(path))
    assert made.returncode == 0, made.stderr
    chains = json.loads(path.read_text())["chains"]
    assert chains[0]["anchor"]["anchored_size"] == 30

    rpc_url = isolated.require_rpc()[0]
    online = verify_offline(path, key, tmp_path, "--rpc-url", rpc_url)
    assert online.returncode == 0, online.stdout + online.stderr
    (chain,) = json.loads(online.stdout)["chains"]
    assert chain["anchor_checked_on_chain"] is True and chain["anchor_tx"].startswith("0x")

    unreachable = verify_offline(path, key, tmp_path, "--rpc-url", "http://127.0.0.1:9")
    assert unreachable.returncode == 3, unreachable.stdout + unreachable.stderr

    data = json.loads(path.read_text())
    data["chains"][0]["anchor"]["anchor_root"] = "00" * 32
    path.write_text(json.dumps(data))
    forged = verify_offline(path, key, tmp_path)
    assert forged.returncode == 1
    assert [f["kind"] for f in json.loads(forged.stdout)["failures"]] == ["anchor_mismatch"]


def test_a_long_id_list_is_read_in_batches(
    isolated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ClickHouse refuses queries beyond max_query_size, so ids go in batches; an entry named
    twice (by its decision id and its event id, in two batches) comes back once per name."""
    log_decisions(isolated, 30)
    monkeypatch.setattr(ledger.store, "_IDS_PER_QUERY", 4)
    ids = [make_decision(i).decision_id for i in range(0, 30, 3)] + ["ev-1", "ev-3"]
    store = open_store(isolated)
    try:
        rows = store.entries_with_ids(ids, 100)
        capped = store.entries_with_ids(ids, 5)
        assert store.archived_event(make_decision(1).event_sha256) is None
    finally:
        store.close()
    seqs = [row[1] for row in rows]
    assert seqs == sorted([*range(0, 30, 3), 1, 3])
    assert len(capped) == 5
