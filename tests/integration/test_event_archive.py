"""The event archive and entity index on the real stack: payments and scans through `detect`
and `ledger run`, their exact bytes archived with their source, their decisions found by
terminal and by EPC, a forged archive row named by `forensic verify`; decision records from
before the archive still logged as format 1, bytes that do not hash to their digest refused,
and a database from before the archive migrated."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import msgspec
from detect_helpers import CLI, background, child_env, create_topics, payments
from factories import make_decision
from ledger_helpers import run_sequencer, tamper

from anchoring.schema import ANCHORS_SCHEMA
from attestcore.schemas import (
    EVENT_HEADER,
    PaymentContext,
    PaymentTransaction,
    ScanContext,
    SupplyChainEvent,
    encode,
)
from attestcore.waiting import wait_until
from attestream.settings import Settings
from attestream.wiring import open_store, trusted_verifiers
from detectors.simulate_supply import simulate_supply
from forensics.verify import verify_ledger
from ledger.archive import EntityKind
from ledger.archive_store import ArchiveStore
from ledger.entry import Entry, decode_entry
from ledger.schema import LEDGER_SCHEMA, create_database
from ledger.store import ClickHouseStore
from streams.producer import EventProducer
from streams.topics import ensure_topics

EVENTS = 40
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


def logged_entries(store: ClickHouseStore) -> list[Entry]:
    rows = store.execute_raw("SELECT entry FROM {db}.entries ORDER BY chain, seq")
    return [decode_entry(row[0]) for row in rows]


def terminal_of(entry: Entry) -> str | None:
    context = entry.decision.context
    return context.terminal_id if isinstance(context, PaymentContext) else None


def detect_and_log(
    settings: Settings, env: dict[str, str], logs: Path
) -> tuple[list[PaymentTransaction], list[SupplyChainEvent]]:
    """Payments and scans through `detect` and `ledger run` until all are logged."""
    create_topics(settings)
    run = f"archive{time.time_ns()}"
    paid = payments(EVENTS, run_id=run)
    scanned = [s.event for s in simulate_supply(EVENTS, seed=5, run_id=run)]
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
            wait_until(
                lambda: store.count_entries() >= 2 * EVENTS,
                LOGGED_TIMEOUT_S,
                interval_s=0.5,
                what=f"{2 * EVENTS} logged decisions",
                detail=lambda: (logs / "detect.log").read_text()[-2000:],
            )
    finally:
        store.close()
    return paid, scanned


def test_payments_and_scans_are_archived_indexed_and_verified(
    isolated: Settings, trained_models: Path, tmp_path: Path
) -> None:
    env = child_env(ATTESTREAM_MODELS_DIR=str(trained_models))
    paid, scanned = detect_and_log(isolated, env, tmp_path)
    published = {p.event_id: encode(p) for p in paid} | {s.event_id: encode(s) for s in scanned}
    store = open_store(isolated)
    archive = ArchiveStore(store)
    entries = logged_entries(store)
    assert len(entries) == 2 * EVENTS and {e.v for e in entries} == {2}
    at = {e.decision.event_id: e for e in entries}

    # The archive holds each event's exact bytes, with where the detector read them.
    for entry in entries:
        decision = entry.decision
        (archived,) = archive.archived_events(decision.event_sha256)
        assert archived.event == published[decision.event_id]
        assert (archived.topic, archived.partition, archived.offset) == (
            decision.source.topic,
            decision.source.partition,
            decision.source.offset,
        )

    # The index finds a payment's decision by its terminal, and a scan's by its EPC.
    payment = at[paid[3].event_id]
    assert isinstance(payment.decision.context, PaymentContext)
    assert payment.decision.context.terminal_id == paid[3].terminal_id
    on_terminal = archive.search_entity(EntityKind.TERMINAL, paid[3].terminal_id)
    assert (payment.chain, payment.seq, payment.decision.decision_id) in {
        (h.chain, h.seq, h.decision_id) for h in on_terminal.hits
    }
    by_position = {(e.chain, e.seq): e for e in entries}
    terminals = {terminal_of(by_position[h.chain, h.seq]) for h in on_terminal.hits}
    assert terminals == {paid[3].terminal_id}
    scan = scanned[0]
    on_epc = archive.search_entity(EntityKind.EPC, scan.epc)
    expected = sorted(
        e.seq
        for e in entries
        if isinstance(e.decision.context, ScanContext) and e.decision.context.epc == scan.epc
    )
    assert sorted(h.seq for h in on_epc.hits) == expected and expected
    found = archive.entries_at([(h.chain, h.seq) for h in on_epc.hits])
    assert {decode_entry(b).decision.decision_id for b in found.values()} == {
        h.decision_id for h in on_epc.hits
    }

    # Pages of one hit each give the same hits, in (event_time, chain, seq) order.
    paged, after = [], None
    while True:
        page = archive.search_entity(EntityKind.EPC, scan.epc, limit=1, after=after)
        paged.extend(page.hits)
        if page.next_after is None:
            break
        after = page.next_after
    assert paged == on_epc.hits

    verified = cli("forensic", "verify", "--offline", "--no-state", "--json", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["archive_checked"] is True

    # The typed investigation columns hold the payment's fields.
    typed = store.execute(
        "SELECT kind, terminal_id, amount, mcc FROM {db}.entry_context"
        " WHERE chain = %(c)s AND seq = %(s)s",
        {"c": payment.chain, "s": payment.seq},
    )
    assert typed == [("payment", paid[3].terminal_id, paid[3].amount, paid[3].mcc)]

    # A database administrator edits a typed column, and replaces an archived event with
    # other bytes under its key.
    at_payment = {"c": payment.chain, "s": payment.seq}
    tamper(
        store,
        "ALTER TABLE {db}.entry_context UPDATE amount = amount + 1"
        " WHERE chain = %(c)s AND seq = %(s)s",
        at_payment,
    )
    forged = paid[3].event_id
    store.execute(
        "INSERT INTO {db}.event_archive (event_sha256, topic, partition, offset, event,"
        " archived_at) VALUES",
        [
            (
                payment.decision.event_sha256,
                payment.decision.source.topic,
                payment.decision.source.partition,
                payment.decision.source.offset + 1_000_000,
                published[forged].replace(b'"amount":', b'"amount":1'),
                int(time.time()),
            )
        ],
    )
    store.close()
    caught = cli("forensic", "verify", "--offline", "--no-state", "--json", env=env)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    failures = json.loads(caught.stdout)["failures"]
    kinds = {(f["kind"], f["chain"], f["seq"]) for f in failures}
    assert kinds == {("bad_archive", None, None), ("column_mismatch", payment.chain, payment.seq)}
    detail = {f["kind"]: f["detail"] for f in failures}
    assert payment.decision.event_sha256 in detail["bad_archive"]
    assert detail["column_mismatch"].endswith("differ from the entry bytes: amount")


def test_records_without_event_bytes_or_with_forged_ones_are_still_logged(
    isolated: Settings,
) -> None:
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=1)
    store = open_store(isolated, create=True)
    genuine, forged = b'{"event_id":"ev-1"}', b'{"event_id":"ev-2","amount":1e9}'
    with_bytes = msgspec.structs.replace(
        make_decision(1), event_sha256=hashlib.sha256(genuine).hexdigest()
    )
    claims_other = msgspec.structs.replace(
        make_decision(2), event_sha256=hashlib.sha256(b'{"event_id":"ev-2"}').hexdigest()
    )
    with EventProducer(isolated.require_kafka()) as producer:
        send = producer.send
        topic = isolated.topic_decisions
        send(topic, b"C0", encode(make_decision(0)))  # a detector from before the archive
        send(topic, b"C1", encode(with_bytes), [(EVENT_HEADER, genuine)])
        send(topic, b"C2", encode(claims_other), [(EVENT_HEADER, forged)])
    run_sequencer(isolated, store, records=3)

    entries = logged_entries(store)
    assert [e.decision.event_id for e in entries] == ["ev-0", "ev-1", "ev-2"]
    assert {e.v for e in entries} == {1}, "decisions without investigation fields: format 1"
    archive = ArchiveStore(store)
    assert [a.event for a in archive.archived_events(with_bytes.event_sha256)] == [genuine]
    assert archive.archived_events(claims_other.event_sha256) == []
    assert archive.archived_events(make_decision(0).event_sha256) == []
    assert [h.seq for h in archive.search_entity(EntityKind.EVENT_ID, "ev-2").hits] == [2]

    report = verify_ledger(store, trusted_verifiers(isolated), archive=archive)
    assert report.ok, report.failures
    assert report.archive_checked and report.entries == 3


def test_a_database_from_before_the_archive_verifies_and_is_migrated(
    isolated: Settings,
) -> None:
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=1)
    store = open_store(isolated)
    create_database(store)  # the tables of a version before the archive, and nothing else
    for schema in (LEDGER_SCHEMA, ANCHORS_SCHEMA):
        schema.create(store)
    archive = ArchiveStore(store)
    assert not archive.exists()
    report = verify_ledger(store, trusted_verifiers(isolated), archive=archive)
    assert report.ok and not report.archive_checked

    migrated = subprocess.run(
        [*CLI, "ledger", "migrate"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert archive.exists()
    again = subprocess.run(
        [*CLI, "ledger", "migrate"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert again.returncode == 0, again.stderr
    store.close()
