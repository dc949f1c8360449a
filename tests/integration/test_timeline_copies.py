"""The timeline copies in the entity index on the real stack: a timeline is read from them
alone; an edited copy (a score, an outcome, a place) is named by `forensic verify`; an index
from before the copies (the column dropped) gives the same timeline from the entries, and
`ledger migrate` adds the column back with rows that keep reading the entries."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from typing import Any

from detect_helpers import CLI, child_env
from ledger_helpers import run_sequencer, tamper
from search_ledger import START, scan

from anchoring.store import AnchoredStore
from attestcore.schemas import EVENT_HEADER, BizStep, encode
from attestream.settings import Settings
from attestream.wiring import open_store, trusted_verifiers
from forensics.report import FaultKind
from forensics.timeline import timeline, timeline_json
from forensics.verify import verify_ledger
from ledger.archive import EntityKind
from ledger.archive_store import ArchiveStore
from streams.producer import EventProducer
from streams.topics import ensure_topics

EPC = "urn:epc:id:sgtin:0614141.812345.6789"


def log_scans(settings: Settings) -> AnchoredStore:
    """Four scans of one EPC (the last 90 degrees of longitude in an hour) through the real
    sequencer, each with its event's bytes."""
    ensure_topics(settings.require_kafka(), [settings.topic_decisions], partitions=1)
    store = open_store(settings, create=True)
    scans = [
        scan(1, EPC, START, 0.0, 0.0, "urn:loc:factory", BizStep.COMMISSIONING),
        scan(2, EPC, START + timedelta(hours=2), 0.0, 1.0, "urn:loc:truck"),
        scan(3, EPC, START + timedelta(hours=3), 0.0, 3.0, "urn:loc:dc", BizStep.SHIPPING),
        scan(4, EPC, START + timedelta(hours=4), 0.0, 93.0, "urn:loc:store", score=0.97),
    ]
    with EventProducer(settings.require_kafka()) as producer:
        for decision, event in scans:
            producer.send(
                settings.topic_decisions, EPC.encode(), encode(decision), [(EVENT_HEADER, event)]
            )
    run_sequencer(settings, store, records=len(scans))
    return store


def timeline_of(store: AnchoredStore) -> dict[str, Any]:
    return timeline_json(timeline(ArchiveStore(store), EntityKind.EPC, EPC))


def faults(settings: Settings, store: AnchoredStore) -> set[tuple[str, int | None, int | None]]:
    report = verify_ledger(store, trusted_verifiers(settings), archive=ArchiveStore(store))
    return {(f.kind.value, f.chain, f.seq) for f in report.failures}


def test_an_edited_timeline_copy_is_named_by_verify(isolated: Settings) -> None:
    store = log_scans(isolated)
    line = timeline_of(store)
    assert line["read_from"] == {"index": 4, "entries": 0}
    assert [e["event_id"] for e in line["events"]] == ["sc-1", "sc-2", "sc-3", "sc-4"]
    assert line["events"][3]["outcome"] == "counterfeit"
    assert faults(isolated, store) == set()

    # A database administrator makes the counterfeit scan look authentic on the EPC's
    # timeline, and moves the truck's scan on the read point's.
    tamper(
        store,
        "ALTER TABLE {db}.entity_index UPDATE timeline_step = replaceOne(timeline_step,"
        ' \'"outcome":"counterfeit"\', \'"outcome":"authentic"\')'
        " WHERE entity_kind = 'epc' AND seq = 3",
    )
    tamper(
        store,
        "ALTER TABLE {db}.entity_index UPDATE timeline_step = replaceOne(timeline_step,"
        " '\"lon\":1.0', '\"lon\":1.5') WHERE entity_kind = 'read_point' AND seq = 1",
    )
    assert timeline_of(store)["events"][3]["outcome"] == "authentic"
    store.close()
    caught = subprocess.run(
        [*CLI, "forensic", "verify", "--offline", "--no-state", "--json"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert caught.returncode == 1, caught.stdout + caught.stderr
    failures = json.loads(caught.stdout)["failures"]
    assert {(f["kind"], f["chain"], f["seq"]) for f in failures} == {
        (FaultKind.TIMELINE_COPY_MISMATCH.value, 0, 3),
        (FaultKind.TIMELINE_COPY_MISMATCH.value, 0, 1),
    }
    detail = {f["seq"]: f["detail"] for f in failures}
    assert detail[3] == f"the epc {EPC} row: differs from the entry bytes: timeline_step.outcome"
    assert detail[1] == (
        "the read_point urn:loc:truck:door row: its timeline copy places the event at 0.0,"
        " 1.5, the archived event at 0.0, 1.0"
    )


def test_an_index_from_before_the_copies_gives_the_same_timeline(isolated: Settings) -> None:
    store = log_scans(isolated)
    copied = timeline_of(store)
    assert copied.pop("read_from") == {"index": 4, "entries": 0}

    # The index of a version before the copies: no timeline_step column.
    tamper(store, "ALTER TABLE {db}.entity_index DROP COLUMN timeline_step")
    old = timeline_of(store)
    assert old.pop("read_from") == {"index": 0, "entries": 4}
    assert old == copied
    assert old["events"][3]["speed_kmh"] > 9000, "the impossible hop is still measured"
    assert faults(isolated, store) == set()

    migrated = subprocess.run(
        [*CLI, "ledger", "migrate"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert migrated.returncode == 0, migrated.stderr
    again = timeline_of(store)
    assert again.pop("read_from") == {"index": 0, "entries": 4}, "old rows keep the default"
    assert again == copied
    assert faults(isolated, store) == set()
    store.close()
