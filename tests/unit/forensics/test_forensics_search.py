"""Searching decisions (forensics/search.py): entity searches through the index, filters,
cursor paging complete and stable; and an event id resolved to its decision
(forensics/resolve.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from search_ledger import (
    OTHER_MODEL,
    START,
    SearchLedger,
    decision_on,
    payment,
    replaced,
    without_index,
)

import forensics.search
from attestcore.errors import ExitCode, UsageError
from attestcore.schemas import Detector
from forensics.resolve import AmbiguousIdError, resolve_decision_id
from forensics.search import Found, SearchCriteria, search
from ledger.archive import EntityKind
from ledger.entry_filter import EntryFilter, parse_query

TERMINALS = ("T1", "T2", "T9")


def ledger_of_payments(count: int = 60) -> SearchLedger:
    """`count` payments over three terminals and five customers, scores spread 0..0.98,
    logged in batches; some share a second (the same event time)."""
    ledger = SearchLedger()
    batch = []
    for i in range(count):
        d, event = payment(
            i, f"C{i % 5}", TERMINALS[i % 3], (i * 7 % 50) / 50, minutes=-(i % 4) / 60
        )
        if i % 6 == 0:  # a model update: some decisions name another model
            d = replaced(d, model_sha256=OTHER_MODEL)
        batch.append((d, event))
        if len(batch) == 7:
            ledger.log(batch)
            batch = []
    ledger.log(batch)
    return ledger


def every_page(ledger: SearchLedger, criteria: SearchCriteria, limit: int) -> list[Found]:
    found: list[Found] = []
    cursor = None
    for _ in range(1000):
        page = search(ledger, criteria, limit, cursor)
        assert len(page.results) <= limit
        found += page.results
        cursor = page.next_cursor
        if cursor is None:
            return found
    raise AssertionError("paging did not end")


def expected(ledger: SearchLedger, criteria: SearchCriteria, by_time: bool) -> list[int]:
    """The seqs a search must return, found by reading every decision."""
    hits = [
        (d.event_time.replace(microsecond=0), c, s)
        for c, s, d in ledger.decisions()
        if criteria.matches(d)
    ]
    return [s for _, _, s in (sorted(hits) if by_time else hits)]


@pytest.fixture(params=[2, 200], ids=["read-2-rows-a-query", "read-200-rows-a-query"])
def read_ahead(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Rows a search reads per query: 2 makes every page take several reads."""
    monkeypatch.setattr(forensics.search, "READ_AHEAD", request.param)
    return int(request.param)


@pytest.mark.parametrize("limit", [1, 3, 7, 200])
def test_paging_by_terminal_returns_every_match_once_in_time_order(
    limit: int, read_ahead: int
) -> None:
    ledger = ledger_of_payments()
    criteria = SearchCriteria(((EntityKind.TERMINAL, "T9"),))
    found = every_page(ledger, criteria, limit)
    seqs = [f.seq for f in found]
    assert len(seqs) == 20 and len(set(seqs)) == 20
    assert seqs == expected(ledger, criteria, by_time=True)
    assert all(f.decision.context.terminal_id == "T9" for f in found)  # type: ignore[union-attr]
    assert "entries_after" not in ledger.calls, "an entity search reads the index, no scan"


def test_a_page_whose_every_decision_matches_reads_only_the_page() -> None:
    """Each entry read costs ClickHouse a granule: a page of 5 of the terminal's 20 decisions
    reads 5 entries (and the index row telling there are more), not a read-ahead of 200."""
    ledger = ledger_of_payments()
    read: list[int] = []
    entries_at = ledger.entries_at

    def counted(positions: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        read.append(len(positions))
        return entries_at(positions)

    ledger.entries_at = counted  # type: ignore[method-assign]
    page = search(ledger, SearchCriteria(((EntityKind.TERMINAL, "T9"),)), 5)
    assert len(page.results) == 5 and page.next_cursor is not None
    assert read == [5]


def test_a_cursor_stays_valid_while_the_ledger_grows() -> None:
    ledger = ledger_of_payments(30)
    criteria = SearchCriteria(((EntityKind.TERMINAL, "T1"),))
    first = search(ledger, criteria, 4)
    d, event = payment(100, "C1", "T1", 0.95)
    ledger.log([(d, event)])  # logged after the first page was read
    rest = every_page_from(ledger, criteria, 4, first.next_cursor)
    seqs = [f.seq for f in first.results + rest]
    assert seqs == expected(ledger, criteria, by_time=True) and len(set(seqs)) == len(seqs)
    assert seqs[-1] == 30, "the new decision comes last, once"


def every_page_from(
    ledger: SearchLedger, criteria: SearchCriteria, limit: int, cursor: str | None
) -> list[Found]:
    found: list[Found] = []
    while cursor is not None:
        page = search(ledger, criteria, limit, cursor)
        found += page.results
        cursor = page.next_cursor
    return found


FILTERS = [
    ("terminal T9 outcome block", {EntityKind.TERMINAL: "T9"}, "outcome=block"),
    ("customer and terminal", {EntityKind.CUSTOMER: "C2", EntityKind.TERMINAL: "T2"}, ""),
    ("customer, score range", {EntityKind.CUSTOMER: "C3"}, "score=0.5..0.9"),
    ("terminal, model", {EntityKind.TERMINAL: "T1"}, f"model={OTHER_MODEL}"),
    (
        "terminal, time range",
        {EntityKind.TERMINAL: "T2"},
        "from=2025-03-03T00:10:00Z to=2025-03-03T00:40:00Z",
    ),
    ("event id", {EntityKind.EVENT_ID: "tx-17"}, ""),
    ("no entity: outcome and detector", {}, "outcome=review detector=fraud"),
    ("no entity: score and time", {}, "score=0.8.. from=2025-03-03T00:20:00Z"),
]


@pytest.mark.parametrize(("name", "entities", "query"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_combinations_match_a_reading_of_every_decision(
    name: str, entities: dict[EntityKind, str], query: str, read_ahead: int
) -> None:
    ledger = ledger_of_payments()
    where = parse_query(query) if query else EntryFilter()
    criteria = SearchCriteria(tuple(entities.items()), where)
    found = every_page(ledger, criteria, 4)
    want = expected(ledger, criteria, by_time=bool(entities))
    assert want, f"the ledger has decisions for {name}"
    assert [f.seq for f in found] == want
    assert len(want) < len(ledger.entries), "the filter excludes something"
    assert ("entries_after" in ledger.calls) == (not entities)


def test_a_cursor_pages_only_its_own_search_and_garbage_is_refused() -> None:
    ledger = ledger_of_payments()
    page = search(ledger, SearchCriteria(((EntityKind.TERMINAL, "T9"),)), 2)
    assert page.next_cursor is not None
    other = SearchCriteria(((EntityKind.TERMINAL, "T1"),))
    with pytest.raises(UsageError, match="another search"):
        search(ledger, other, 2, page.next_cursor)
    with pytest.raises(UsageError, match="not a cursor"):
        search(ledger, other, 2, "not-a-cursor!")
    with pytest.raises(UsageError, match="limit"):
        search(ledger, other, 0)


def test_an_event_id_resolves_to_its_one_decision() -> None:
    ledger = ledger_of_payments(10)
    d = ledger.decisions()[4][2]
    assert resolve_decision_id(ledger, d.event_id) == d.decision_id
    assert resolve_decision_id(ledger, d.decision_id) == d.decision_id
    assert "entries_with_ids" not in ledger.calls, "a decision id's shape: no scan"


def test_an_event_with_two_decisions_is_ambiguous_and_names_both() -> None:
    ledger = ledger_of_payments(10)
    fraud, event = payment(50, "C1", "T1", 0.3)
    second = decision_on(
        fraud.event_id,
        fraud.event_time,
        fraud.context,  # type: ignore[arg-type]
        0.95,
        event,
        Detector.AUTHENTICITY,
    )
    ledger.log([(fraud, event), (second, event)])
    with pytest.raises(AmbiguousIdError) as raised:
        resolve_decision_id(ledger, "tx-50")
    assert raised.value.exit_code == ExitCode.USAGE
    message = str(raised.value)
    assert fraud.decision_id in message and second.decision_id in message
    assert {c.decision_id for c in raised.value.candidates} == {
        fraud.decision_id,
        second.decision_id,
    }


def test_an_unknown_id_is_a_usage_error_and_an_unindexed_event_is_found_in_the_entries() -> None:
    ledger = ledger_of_payments(10)
    with pytest.raises(UsageError, match="no logged decision or event has the id tx-999"):
        resolve_decision_id(ledger, "tx-999")
    d = ledger.decisions()[3][2]
    without_index(ledger, d.event_id)  # logged before the entity index
    assert resolve_decision_id(ledger, d.event_id) == d.decision_id
    assert "entries_with_ids" in ledger.calls


def test_time_bounds_of_an_entity_search_use_whole_seconds() -> None:
    ledger = SearchLedger()
    d, event = payment(0, "C1", "T1", 0.2)
    d = replaced(d, event_time=START + timedelta(seconds=10, milliseconds=700))
    ledger.log([(d, event)])
    at = parse_query("from=2025-03-03T00:00:10Z to=2025-03-03T00:00:11Z")
    after = parse_query("from=2025-03-03T00:00:11Z")
    terminal = ((EntityKind.TERMINAL, "T1"),)
    assert [f.seq for f in search(ledger, SearchCriteria(terminal, at)).results] == [0]
    assert search(ledger, SearchCriteria(terminal, after)).results == []
