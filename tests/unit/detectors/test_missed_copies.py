"""The missed-copies report: its counts add up, and each count is the one the scans give."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from attestcore.schemas import TagAuth
from attestream.commands.evaluate import app
from detectors.supply_worlds import simulate_world

COUNT = 8_000  # as the cross-world tests: every tactic occurs, the validation fifth has both


def test_the_report_adds_up_and_counts_what_the_scans_hold(tmp_path: Path) -> None:
    out = tmp_path / "missed"
    args = ["missed-copies", "--count", str(COUNT), "--test-seed", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "missed-copies.json").read_text())
    assert 0 < report["missed"] <= report["copies"]
    assert sum(report["missed_by_tactic"].values()) == report["missed"]
    failing = report["missed_failing_once"] + report["missed_failing_twice"]
    assert failing + report["missed_without_failure"] == report["missed"]
    quiet = report["missed_without_failure"]
    assert all(0 <= n <= quiet for n in report["without_failure_carrying"].values())
    assert report["without_failure_carrying"]["failed_off_track"] == 0  # only on failures
    assert 0 <= report["without_failure_carrying_none"] <= quiet
    scans = simulate_world("b", COUNT, 3, "evaluate-3")
    failed_scans = [s for s in scans if s.event.tag_auth == TagAuth.FAILED]
    failed = [s.label for s in failed_scans]
    assert report["failed_scans"] == {
        "genuine_scans": failed.count(0),
        "copy_scans": failed.count(1),
    }
    again = report["failed_again_scans"]
    assert again["copy_scans"] <= report["failed_scans"]["copy_scans"]
    tactics = report["by_tactic"]
    assert sum(t["copies"] for t in tactics.values()) == report["copies"]
    assert sum(t["missed"] for t in tactics.values()) == report["missed"]
    failing = {(s.event.epc, s.scenario) for s in failed_scans if s.label}
    for tactic, row in tactics.items():
        assert row["missed"] == report["missed_by_tactic"].get(tactic, 0)
        items = {(s.event.epc, s.scenario) for s in scans if s.label and s.scenario == tactic}
        assert row["copies"] == len(items)
        assert row["never_failing"] == len(items - failing)
    markdown = (out / "missed-copies.md").read_text()
    assert "| a failed challenge |" in markdown
    assert "| tactic | copies | never failing a challenge | missed |" in markdown
