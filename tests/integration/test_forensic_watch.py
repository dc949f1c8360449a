"""`attestream forensic watch` on a ledger the real sequencer writes into the real ClickHouse:
each pass verifies only what was added since the last one (decision chains and the access
chain), and a rewritten entry is counted as a failure of its kind while the watch goes on."""

from __future__ import annotations

import subprocess
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from detect_helpers import CLI, background, child_env
from factories import make_decision
from ledger_helpers import publish_decisions, run_sequencer, tamper
from prometheus_client.parser import text_string_to_metric_families

from anchoring.store import AnchoredStore
from attestcore.ports import unused_port
from attestcore.waiting import wait_until
from attestream.settings import Settings
from attestream.wiring import ledger_signer, open_store, trusted_verifiers
from forensics.watch import LedgerWatch
from ledger.access_entry import ACCESS_CHAIN, AccessRecord
from ledger.access_log import AccessLog
from streams.topics import ensure_topics

FIRST, SECOND = 12, 8
# A pass over this ledger is a few queries; the watch in the background passes every 0.3 s,
# and a minute means it is stuck.
METRICS_TIMEOUT_S = 60.0


def record(i: int) -> AccessRecord:
    return AccessRecord(
        request_id=f"{i:032x}",
        at=datetime(2026, 1, 2, 3, 4, i, tzinfo=UTC),
        principal="ines",
        role="investigator",
        operation="search",
        filters={"query": "entity=C3"},
        status=200,
        results=i,
        outcome="allowed",
    )


def write(settings: Settings, store: AnchoredStore, first: int, count: int) -> None:
    """Decisions first..first+count-1 through the real sequencer (batches of 5), and one
    access record signed by the access log."""
    publish_decisions(settings, [make_decision(i) for i in range(first, first + count)])
    run_sequencer(settings, store, batch_max=5, records=first + count)
    access_log = AccessLog(store, ledger_signer(settings), settings.log_origin)
    access_log.open()
    access_log.append(record(first))


def ledger(settings: Settings) -> AnchoredStore:
    ensure_topics(settings.require_kafka(), [settings.topic_decisions], partitions=1)
    return open_store(settings, create=True)


def test_a_second_pass_verifies_only_the_new_entries_then_finds_a_rewrite(
    isolated: Settings,
) -> None:
    store = ledger(isolated)
    try:
        write(isolated, store, 0, FIRST)
        watch = LedgerWatch(store, trusted_verifiers(isolated), recheck=FIRST + SECOND)
        first = watch.run_pass()
        assert first.ok, first.failures
        assert first.entries == FIRST + 1
        assert watch.verified_sizes() == {0: FIRST, ACCESS_CHAIN: 1}
        write(isolated, store, FIRST, SECOND)
        second = watch.run_pass()
        assert second.ok, second.failures
        assert second.entries == SECOND + 1, "only the new entries are walked"
        assert watch.verified_sizes() == {0: FIRST + SECOND, ACCESS_CHAIN: 2}
        tamper(
            store,
            "ALTER TABLE {db}.entries UPDATE entry = replaceOne(entry, '\"ev-3\"', '\"ev-X\"')"
            " WHERE chain = 0 AND seq = 3",
        )
        third = watch.run_pass()
        assert third.entries == 0
        assert {(f.kind, f.chain, f.seq) for f in third.failures} == {("bad_leaf", 0, 3)}
    finally:
        store.close()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for(port: int, name: str, labels: dict[str, str], value: float) -> None:
    key = (name, tuple(sorted(labels.items())))

    def reached() -> bool:
        try:
            return scrape(port).get(key) == value
        except OSError:
            return False

    wait_until(reached, METRICS_TIMEOUT_S, interval_s=0.2, what=f"{name}{labels} == {value}")


def test_the_watch_process_exports_progress_and_counts_a_tamper(
    isolated: Settings, tmp_path: Path
) -> None:
    store = ledger(isolated)
    try:
        write(isolated, store, 0, FIRST)
        once = subprocess.run(
            [*CLI, "forensic", "watch", "--once", "--offline"],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert once.returncode == 0, once.stderr
        assert once.stdout.startswith(f"VERIFIED: {FIRST + 1} new entries"), once.stdout
        port = unused_port()
        args = ["forensic", "watch", "--offline", "--interval", "0.3", "--metrics-port", str(port)]
        with background(args, child_env(), tmp_path / "watch.log") as watch:
            size = "attestream_watch_verified_tree_size_entries"
            wait_for(port, size, {"chain": "0"}, FIRST)
            wait_for(port, size, {"chain": str(ACCESS_CHAIN)}, 1)
            wait_for(port, "attestream_watch_ready", {}, 1)
            assert scrape(port)[("attestream_watch_last_success_timestamp_seconds", ())] > 0
            write(isolated, store, FIRST, SECOND)
            wait_for(port, size, {"chain": "0"}, FIRST + SECOND)
            tamper(
                store,
                "ALTER TABLE {db}.entries UPDATE entry = replaceOne(entry, '\"ev-3\"',"
                " '\"ev-X\"') WHERE chain = 0 AND seq = 3",
            )
            failures = ("attestream_watch_failures_total", (("kind", "bad_leaf"),))
            wait_until(
                lambda: scrape(port).get(failures, 0) > 0,
                METRICS_TIMEOUT_S,
                interval_s=0.2,
                what="a bad_leaf failure counted",
            )
            assert watch.poll() is None, "the watch stopped at a failure"
        assert watch.returncode == 0, (tmp_path / "watch.log").read_text()[-3000:]
        log = (tmp_path / "watch.log").read_text()
        assert "verification failed: bad_leaf at chain 0 seq 3" in log
        failed = subprocess.run(
            [*CLI, "forensic", "watch", "--once", "--offline"],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert failed.returncode == 1, failed.stderr
        assert failed.stdout.startswith("FAILED"), failed.stdout
    finally:
        store.close()


def test_a_watch_started_before_the_ledger_waits_for_it(isolated: Settings, tmp_path: Path) -> None:
    """Deployed beside `ledger run`, the watch may start first: it waits, not ready, and
    verifies once the ledger is there."""
    port = unused_port()
    args = ["forensic", "watch", "--offline", "--interval", "0.3", "--metrics-port", str(port)]
    log = tmp_path / "watch.log"
    with background(args, child_env(), log) as watch:
        wait_until(
            lambda: "waiting for the ledger" in log.read_text(),
            METRICS_TIMEOUT_S,
            interval_s=0.2,
            what="the watch waiting for the ledger",
        )
        wait_for(port, "attestream_watch_ready", {}, 0)
        assert watch.poll() is None, log.read_text()[-3000:]
        store = ledger(isolated)
        try:
            write(isolated, store, 0, FIRST)
            wait_for(port, "attestream_watch_verified_tree_size_entries", {"chain": "0"}, FIRST)
            wait_for(port, "attestream_watch_ready", {}, 1)
        finally:
            store.close()
    assert watch.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
