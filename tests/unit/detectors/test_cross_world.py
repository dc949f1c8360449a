"""Cross-world evaluation: a model per world, each tested on both worlds, the table written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attestcore.errors import UsageError
from attestream.commands.evaluate import app
from attestream.commands.train import app as train_app
from detectors.cross_world import cross_world
from detectors.evaluate_authenticity import evaluate_authenticity
from detectors.registry import load_model
from detectors.simulate_supply import SCENARIOS
from detectors.supply_world_b import TACTICS_B
from detectors.supply_worlds import simulate_world

# Small enough to run in seconds; large enough that each world's validation fifth holds both
# classes and every scenario or tactic occurs in the test scans.
COUNT = 8_000


def test_cli_trains_on_each_world_and_tests_on_both(tmp_path: Path) -> None:
    out = tmp_path / "cross"
    args = ["cross-world", "--count", str(COUNT), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "cross-world.json").read_text())
    pairs = [(c["train_world"], c["test_world"]) for c in report["cells"]]
    assert pairs == [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]
    for c in report["cells"]:
        names = set(SCENARIOS if c["test_world"] == "a" else TACTICS_B)
        assert set(c["recall_items_by_scenario"]) == names
        assert 0.0 <= c["genuine_scans_flagged"] <= 1.0
    # One model per training world, whichever world it is tested on.
    models = {c["train_world"]: c["model_id"] for c in report["cells"]}
    assert all(c["model_id"] == models[c["train_world"]] for c in report["cells"])
    table = (out / "cross-world.md").read_text()
    assert "| A | B |" in table and "| B | A |" in table and "`return_swap`" in table


def test_a_cell_holds_the_evaluation_figures_of_its_model_and_world(tmp_path: Path) -> None:
    report = cross_world(COUNT, models_dir=tmp_path)
    cell = report.cells[1]  # trained on A, tested on B
    sha256 = cell.model_id.rsplit("-", 1)[1]
    model = next(
        load_model(tmp_path, "authenticity", p.stem)
        for p in (tmp_path / "authenticity").glob("*.ubj")
        if p.stem.startswith(sha256)
    )
    again = evaluate_authenticity(simulate_world("b", COUNT, 1, "evaluate-1"), model, "again")
    point = again.report.operating_points[0]
    assert cell.recall_items == point.recall_items and cell.precision_scans == point.precision
    assert cell.average_precision == again.report.average_precision
    assert cell.genuine_scans_flagged == point.false_positive_rate


def test_the_same_seed_for_training_and_test_is_refused() -> None:
    with pytest.raises(UsageError, match="must differ"):
        cross_world(1_000, train_seed=3, test_seed=3)
    with pytest.raises(UsageError, match="unknown world"):
        simulate_world("c", 10, 0)


def test_train_command_trains_on_world_b(tmp_path: Path) -> None:
    args = ["authenticity", "--world", "b", "--count", str(COUNT), "--models-dir", str(tmp_path)]
    result = CliRunner().invoke(train_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["training"]["data_source"] == f"simulated world b: {COUNT} scans, seed 0"
    assert card["training"]["rows"] == COUNT
