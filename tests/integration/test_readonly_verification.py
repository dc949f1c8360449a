"""Verification with a ClickHouse user that may only read: the local stack's
`attestream_reader` (profile readonly = 1), against a ledger the real sequencer wrote. The
writers own the schema; `forensic verify`, `prove`, `consistency` and `anchor status` only
read (`forensic explain` as the reader: tests/e2e/test_explain_cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from factories import make_decision
from ledger_helpers import fresh_database_url, publish_decisions, run_sequencer

from attestcore.errors import ConfigError, NoLedgerError
from attestream.settings import Settings
from attestream.stack_services import reader_url
from attestream.wiring import open_store
from ledger.store import ClickHouseStore
from streams.topics import ensure_topics

ENTRIES = 30


def reader_cli(settings: Settings, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ATTESTREAM_CLICKHOUSE_URL"}
    env["ATTESTREAM_CLICKHOUSE_URL"] = reader_url(url, settings.home)
    return subprocess.run(
        [sys.executable, "-m", "attestream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_verify_prove_and_status_work_as_a_read_only_user(
    isolated: Settings, tmp_path: Path
) -> None:
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=1)
    writer = open_store(isolated, create=True)
    publish_decisions(isolated, [make_decision(i) for i in range(ENTRIES)])
    run_sequencer(isolated, writer, batch_max=7, records=ENTRIES)
    writer.close()
    url = isolated.require_clickhouse()

    verified = reader_cli(isolated, url, "forensic", "verify", "--offline", "--json")
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr
    assert json.loads(verified.stdout)["entries"] == ENTRIES
    ranged = reader_cli(
        isolated, url, "forensic", "verify", "--chain", "0", "--from", "8", "--to", "20"
    )
    assert ranged.returncode == 0, ranged.stdout + ranged.stderr

    proof = tmp_path / "proof.json"
    proved = reader_cli(
        isolated, url, "forensic", "prove", make_decision(17).decision_id, "-o", str(proof)
    )
    assert proved.returncode == 0 and proof.exists(), proved.stderr
    consistent = reader_cli(isolated, url, "forensic", "consistency", "7", str(ENTRIES))
    assert consistent.returncode == 0, consistent.stderr
    status = reader_cli(isolated, url, "anchor", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["chains"][0]["latest_size"] == ENTRIES

    # The user really may only read: the schema step of the writers is refused, clearly.
    migrate = reader_cli(isolated, url, "ledger", "migrate")
    assert migrate.returncode == 2 and "may only read" in migrate.stderr, migrate.stderr
    reader = ClickHouseStore(reader_url(url, isolated.home))
    try:
        with pytest.raises(ConfigError, match="may only read"):
            reader.execute("INSERT INTO {db}.nodes (chain, node, hash) VALUES", [(9, 0, "00")])
    finally:
        reader.close()


def test_a_database_without_a_ledger_says_so(isolated: Settings) -> None:
    empty = fresh_database_url(isolated.require_clickhouse())
    done = reader_cli(isolated, empty, "forensic", "verify", "--offline", "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    database = empty.rsplit("/", 1)[1]
    assert f"no ledger in database '{database}'" in done.stderr
    assert "`attestream ledger migrate`" in done.stderr and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["error"]["kind"] == "no_ledger"

    store = ClickHouseStore(reader_url(empty, isolated.home))
    try:
        with pytest.raises(NoLedgerError, match="no ledger in database"):
            store.count_entries()
    finally:
        store.close()

    # The explicit step a user that may write runs; then the reader finds an (empty) ledger.
    env = dict(os.environ, ATTESTREAM_CLICKHOUSE_URL=empty)
    migrated = subprocess.run(
        [sys.executable, "-m", "attestream.cli", "ledger", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert f"the ledger schema in database '{database}' is up to date" in migrated.stdout
    after = reader_cli(isolated, empty, "forensic", "verify", "--offline", "--json")
    assert after.returncode == 0 and json.loads(after.stdout)["entries"] == 0, after.stderr
