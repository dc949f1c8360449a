"""What `attestream stack queries` reads and how it words a result."""

from __future__ import annotations

import json
from pathlib import Path

from attestream.monitoring_queries import (
    DASHBOARDS_DIR,
    Evaluation,
    Query,
    dashboard_queries,
    panel_queries,
)

PANEL = Query("panel", "attestream-ledger: Tree size", "sum(attestream_ledger_tree_size_entries)")


def test_every_panel_of_every_generated_dashboard_is_listed_with_its_rate_window() -> None:
    listed = dashboard_queries(rate_window="42s")
    expected = sum(
        len(panel_queries(path.read_text(encoding="utf-8")))
        for path in DASHBOARDS_DIR.glob("*.json")
    )
    assert len(listed) == expected > 30
    assert not any("$__rate_interval" in q.expr for q in listed)
    assert any("[42s]" in q.expr for q in listed)
    assert {q.name.split(":")[0] for q in listed} == {p.stem for p in DASHBOARDS_DIR.glob("*.json")}


def test_panels_without_targets_are_skipped(tmp_path: Path) -> None:
    board = {"panels": [{"title": "Text"}, {"title": "Lag", "targets": [{"expr": "up"}]}]}
    (tmp_path / "board.json").write_text(json.dumps(board), encoding="utf-8")
    assert dashboard_queries(tmp_path) == [Query("panel", "board: Lag", "up")]


def test_a_result_is_a_value_a_count_of_series_no_data_or_the_error() -> None:
    assert Evaluation(PANEL, True, 1, 2000.0).summary() == "2000"
    assert Evaluation(PANEL, True, 3, None).summary() == "3 series"
    assert Evaluation(PANEL, True, 0, None).summary() == "no data"
    failed = Evaluation(PANEL, False, 0, None, error="parse error at char 4")
    assert failed.summary() == "error: parse error at char 4"
    assert failed.to_json()["summary"] == failed.summary()
    assert failed.to_json()["expr"] == PANEL.expr
