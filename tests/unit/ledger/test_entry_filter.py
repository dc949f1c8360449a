"""Entry filters: the query line an investigator types, what it selects, what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from factories import make_decision

from attestcore.errors import UsageError
from ledger.entry_filter import EntryFilter, parse_query

NOW = datetime(2025, 3, 4, 12, 0, 0, 700_000, tzinfo=UTC)


def test_a_query_names_columns_a_score_range_and_a_time_range() -> None:
    query = (
        "entity=C3 detector=fraud outcome=review score=0.8..1"
        " from=2025-03-03T00:00:05Z to=2025-03-03T02:00:00+01:00"
    )
    assert parse_query(query) == EntryFilter(
        entity_id="C3",
        detector="fraud",
        outcome="review",
        min_score=0.8,
        max_score=1.0,
        event_time_from=datetime(2025, 3, 3, 0, 0, 5, tzinfo=UTC),
        event_time_to=datetime(2025, 3, 3, 1, 0, 0, tzinfo=UTC),
    )


def test_since_counts_back_from_now_in_whole_seconds() -> None:
    since = parse_query("since=36h", now=NOW)
    assert since.event_time_from == datetime(2025, 3, 3, 0, 0, 0, tzinfo=UTC)
    assert parse_query("since=90s event=ev-1", now=NOW).event_time_from == datetime(
        2025, 3, 4, 11, 58, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("score", "bounds"), [("0.5..", (0.5, None)), ("..0.2", (None, 0.2)), ("0.3", (0.3, 0.3))]
)
def test_open_and_single_score_bounds(score: str, bounds: tuple[float | None, ...]) -> None:
    parsed = parse_query(f"score={score}")
    assert (parsed.min_score, parsed.max_score) == bounds


def test_matches_agrees_with_each_condition() -> None:
    d = make_decision(18)  # entity C4, score 0.8, review, event time 2025-03-03T00:00:18Z
    assert parse_query("entity=C4 outcome=review score=0.8..0.8 detector=fraud").matches(d)
    assert parse_query("from=2025-03-03T00:00:18Z to=2025-03-03T00:00:19Z").matches(d)
    assert not parse_query("to=2025-03-03T00:00:18Z").matches(d)  # `to` is exclusive
    assert not parse_query("entity=C3").matches(d)
    assert not parse_query("score=..0.7").matches(d)
    assert not parse_query("detector=authenticity").matches(d)
    assert parse_query(f"model={d.model_sha256} event=ev-18").matches(d)


def test_a_filter_round_trips_through_json_as_the_bundle_records_it() -> None:
    parsed = parse_query("entity=C3 since=24h", now=NOW)
    back = msgspec.json.decode(msgspec.json.encode(parsed), type=EntryFilter)
    assert back == parsed and not back.is_empty()


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("", "the query is empty"),
        ("entity", "'entity' is not key=value"),
        ("entity=", "'entity=' is not key=value"),
        ("colour=red", "unknown key 'colour'"),
        ("entity=C1 entity=C2", "'entity' is given twice"),
        ("score=high", "'high' is not a number"),
        ("score=1.5", "between 0 and 1"),
        ("score=0.9..0.1", "0.9 is above 0.1"),
        ("score=..", "give LO..HI"),
        ("since=yesterday", "a duration such as"),
        ("since=1h from=2025-03-03T00:00:00Z", "exclude each other"),
        ("from=2025-03-03T00:00:00", "give a time zone"),
        ("to=tomorrow", "not a time"),
        ("from=2025-03-04T00:00:00Z to=2025-03-03T00:00:00Z", "time range is empty"),
        ("entity='C1", "cannot read the query"),
    ],
)
def test_queries_that_cannot_be_read_are_refused_naming_the_term(query: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parse_query(query, now=NOW)
