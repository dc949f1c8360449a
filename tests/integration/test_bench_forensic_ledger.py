"""The investigators' benchmark ledger (bench/forensic_ledger.py) on the session's stack, at
5,000 entries: a real ledger that search, timeline, case bundles and the full verifier all
accept, with the chosen entities' 500 events each; a second build reuses it. Nothing here is
timed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from anchoring.store import AnchoredStore
from attestcore.errors import ConfigError
from attestream.settings import Settings
from bench.forensic import BUNDLE_DECISIONS, bundle_ids, measure_forensics, sample_entities
from bench.forensic_ledger import BATCH, CHOSEN, CHOSEN_EVENTS, batch_records, build, database_name
from forensics.case_bundle import Exporter, Selection
from forensics.search import SearchCriteria, search
from forensics.timeline import timeline
from forensics.verify import verify_ledger
from forensics.verify_bundle import export_case_bundle, verify_case_bundle
from ledger.archive import EntityKind, decision_entities
from ledger.archive_store import ArchiveStore
from ledger.entry import decode_decision

ENTRIES = 5000
SEED = 11


def _all_pages(archive: ArchiveStore, kind: EntityKind, value: str) -> list[str]:
    criteria = SearchCriteria(((kind, value),))
    ids: list[str] = []
    cursor = None
    while True:
        page = search(archive, criteria, 50, cursor)
        ids += [found.decision.decision_id for found in page.results]
        for found in page.results:
            assert (kind, value) in decision_entities(found.decision)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def _expected_counts() -> Counter[tuple[EntityKind, str]]:
    counts: Counter[tuple[EntityKind, str]] = Counter()
    for start in range(0, ENTRIES, BATCH):
        for item in batch_records(start, min(start + BATCH, ENTRIES), ENTRIES, SEED):
            counts.update(decision_entities(decode_decision(item.value())))
    return counts


def test_the_built_ledger_answers_search_timeline_bundle_and_verification(
    settings_env: Settings,
) -> None:
    ledger = build(settings_env.require_kafka(), settings_env.require_clickhouse(), ENTRIES, SEED)
    assert ledger.built_s is not None and database_name(ENTRIES, SEED) in ledger.url
    store = AnchoredStore(ledger.url)
    archive = ArchiveStore(store)
    try:
        assert store.count_entries() == ENTRIES
        checkpoint = store.latest_checkpoint(0)
        assert checkpoint is not None and checkpoint.size == ENTRIES
        report = verify_ledger(store, [ledger.verifier])
        assert report.ok, report.failures

        expected = _expected_counts()
        for kind, value in CHOSEN:
            assert expected[(kind, value)] == CHOSEN_EVENTS
            assert len(set(_all_pages(archive, kind, value))) == CHOSEN_EVENTS
            line = timeline(archive, kind, value)
            assert len(line.steps) == CHOSEN_EVENTS and not line.truncated
            times = [step.decision.event_time for step in line.steps]
            assert times == sorted(times)
            assert all(step.position is not None for step in line.steps)
            assert line.steps[1].distance_km is not None
        for kind, value in sample_entities(ledger, SEED, 12):
            assert len(_all_pages(archive, kind, value)) == expected[(kind, value)] > 0

        ids = bundle_ids(archive)
        assert len(ids) == BUNDLE_DECISIONS
        exporter = Exporter("test", datetime.now(UTC).replace(microsecond=0), "test")
        case = export_case_bundle(store, Selection(ids=ids), exporter, [ledger.verifier])
        assert case.manifest.counts.entries == BUNDLE_DECISIONS
        assert case.manifest.counts.events == BUNDLE_DECISIONS
        verdict = verify_case_bundle(case, [ledger.verifier])
        assert verdict.ok and verdict.entries == BUNDLE_DECISIONS

        run = measure_forensics(ledger, sample_entities(ledger, SEED + 1, 9), 1)
        assert len(run.search_ms) == len(run.search_raw_ms) == 9 and min(run.search_hits) > 0
        assert len(run.timeline_ms) == len(CHOSEN) and len(run.bundle_ms) == 1
        assert run.bundle_nodes == case.manifest.counts.nodes
    finally:
        store.close()

    again = build(settings_env.require_kafka(), settings_env.require_clickhouse(), ENTRIES, SEED)
    assert again.built_s is None and again.url == ledger.url


def test_a_ledger_too_small_for_the_chosen_entities_is_refused(settings_env: Settings) -> None:
    with pytest.raises(ConfigError, match="at least 4,000 entries"):
        build(settings_env.require_kafka(), settings_env.require_clickhouse(), 1000, SEED)
