"""docs/detectors.md, fraud section: what it names exists and its commands run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from attestream.cli import app
from detectors.fraud_features import FRAUD_FEATURES
from detectors.payment_scenarios import ALL_SCENARIOS
from detectors.simulate_payments import read_labelled_payments

DOC = Path(__file__).parents[3] / "docs" / "detectors.md"


def fraud_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## Fraud") : text.index("## Authenticity")]


def commands(section: str) -> list[list[str]]:
    lines = re.findall(r"^attestream .*$", section, flags=re.MULTILINE)
    return [shlex.split(line.split("#")[0])[1:] for line in lines]


def test_every_scenario_and_the_feature_count_are_documented() -> None:
    section = fraud_section()
    assert all(f"`{name}`" in section for name in ALL_SCENARIOS)
    assert f"{len(FRAUD_FEATURES)} in all (`FRAUD_FEATURES`)" in section


def test_the_documented_commands_run(tmp_path: Path) -> None:
    """The file-writing simulation runs as written; train and evaluate run on a smaller
    population (the documented sizes take minutes: their figures are in the doc)."""
    documented = commands(fraud_section())
    names = {tuple(c[:2]) for c in documented}
    assert {("simulate", "transactions"), ("train", "fraud"), ("evaluate", "fraud")} <= names
    data = tmp_path / "payments.jsonl"
    simulate = next(c for c in documented if "--data-out" in c)
    simulate = [str(data) if a == "payments.jsonl" else a for a in simulate]
    simulate[simulate.index("--count") + 1] = "3000"
    runner = CliRunner()
    assert runner.invoke(app, simulate).exit_code == 0
    assert len(read_labelled_payments(data)) == 3000
    train = next(c for c in documented if c[:2] == ["train", "fraud"])
    trained = runner.invoke(
        app,
        [
            *[str(data) if a == "payments.jsonl" else a for a in train],
            "--models-dir",
            str(tmp_path / "models"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    for evaluate in (c for c in documented if c[:2] == ["evaluate", "fraud"]):
        small = [
            *evaluate,
            "--customers",
            "150",
            "--terminals",
            "300",
            "--days",
            "21",
            "--folds",
            "1",
            "--rounds",
            "10",
        ]
        small[small.index("--out") + 1] = str(tmp_path / "reports")
        result = runner.invoke(app, small)
        assert result.exit_code == 0, result.output
