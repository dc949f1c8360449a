"""deploy/grafana/dashboards/: the checked-in JSON is what `make dashboards` generates from
attestream/dashboard_panels.py, and every panel says what a bad value means."""

from __future__ import annotations

import json
from pathlib import Path

from attestream import dashboard_panels
from attestream.dashboards import DASHBOARDS_DIR, write_dashboards
from attestream.monitoring_queries import panel_queries

PROVISIONING = DASHBOARDS_DIR.parent / "provisioning"


def test_regenerating_the_dashboards_gives_the_checked_in_json(tmp_path: Path) -> None:
    written = write_dashboards(tmp_path)
    assert {p.name for p in written} == {p.name for p in DASHBOARDS_DIR.glob("*.json")}
    for path in written:
        checked_in = (DASHBOARDS_DIR / path.name).read_text(encoding="utf-8")
        assert path.read_text(encoding="utf-8") == checked_in, f"run `make dashboards`: {path.name}"


def test_every_panel_has_a_description_and_a_query_on_the_provisioned_datasource() -> None:
    datasource = (PROVISIONING / "datasources" / "attestream.yaml").read_text(encoding="utf-8")
    titles = set()
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        titles.add(board["title"])
        assert board["panels"], path.name
        for panel in board["panels"]:
            assert len(panel["description"]) > 60, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
            uid = panel["datasource"]["uid"]
            assert f"uid: {uid}\n" in datasource
        assert all(expr.strip() for _, expr in panel_queries(path.read_text(encoding="utf-8")))
    assert titles == {board.title for board in dashboard_panels.DASHBOARDS}
    assert len(titles) == 5


def test_the_runway_panel_uses_the_alerts_runway_expression() -> None:
    rules = (DASHBOARDS_DIR.parents[1] / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    anchoring = (DASHBOARDS_DIR / "attestream-anchoring.json").read_text(encoding="utf-8")
    runway = dict(panel_queries(anchoring))["Runway"]
    assert runway == dashboard_panels.RUNWAY_DAYS
    assert " ".join(rules.split()).count(runway) == 1
