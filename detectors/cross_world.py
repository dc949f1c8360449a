"""Cross-world evaluation of the authenticity detector: train on one world, test on another.

World A (`detectors.simulate_supply`) was written together with the features; world B
(`detectors.simulate_supply_b`) was written apart, with its own network, noise and tactics.
A model is trained on each world (training seed, the simulator's default run id, as
`attestream train authenticity [--world b]` does) and evaluated on fresh scans of both worlds
(test seed, run id `evaluate-<seed>`, as `attestream evaluate authenticity` does), so each
cell is the figure those two commands give. Four cells in all:
the two same-world cells say how well a model fits the world it came from, the two
cross-world cells how far it carries to a world it never saw. Every figure is the one of
`detectors.evaluate_authenticity` at the model card's `counterfeit` threshold, chosen on the
training world's own validation fifth.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec

from attestcore.errors import UsageError
from detectors.evaluate_authenticity import AuthenticityReport, evaluate_authenticity
from detectors.registry import LoadedModel
from detectors.report_authenticity import write_report
from detectors.supply_worlds import WORLDS, simulate_world
from detectors.training import train_detector

CROSS_WORLD_FORMAT = "attestream.authenticity-cross-world/1"
CROSS_WORLD_JSON = "cross-world.json"
CROSS_WORLD_MD = "cross-world.md"


class CrossWorldCell(msgspec.Struct, kw_only=True):
    """One model on one world's test scans."""

    train_world: str
    test_world: str
    model_id: str
    threshold: float
    precision_items: float | None
    recall_items: float
    precision_scans: float | None
    recall_scans: float
    average_precision: float
    best_precision_at_recall_90: float
    genuine_scans_flagged: float
    recall_items_by_scenario: dict[str, float]


class CrossWorldReport(msgspec.Struct, kw_only=True):
    format: str = CROSS_WORLD_FORMAT
    count: int
    train_seed: int
    test_seed: int
    cells: list[CrossWorldCell]
    command: str = ""


def cell(train_world: str, test_world: str, report: AuthenticityReport) -> CrossWorldCell:
    point = report.operating_points[0]  # the card's `counterfeit` threshold
    return CrossWorldCell(
        train_world=train_world,
        test_world=test_world,
        model_id=report.model_id,
        threshold=point.threshold,
        precision_items=point.precision_items,
        recall_items=point.recall_items,
        precision_scans=point.precision,
        recall_scans=point.recall_scans,
        average_precision=report.average_precision,
        best_precision_at_recall_90=report.best_precision_at_target_recall,
        genuine_scans_flagged=point.false_positive_rate,
        recall_items_by_scenario={k: f.recall_items for k, f in point.scenarios.items()},
    )


def train_on_world(world: str, count: int, seed: int, directory: Path) -> LoadedModel:
    """An authenticity model trained on `count` scans of `world`'s seed `seed`, stored in
    `directory` without becoming its active model."""
    return train_detector(
        "authenticity",
        directory,
        labelled=simulate_world(world, count, seed),
        seed=seed,
        data_source=f"world {world}: {count} scans, seed {seed}",
        activate=False,
    )


def cross_world(
    count: int,
    *,
    train_seed: int = 0,
    test_seed: int = 1,
    models_dir: Path | None = None,
    command: str = "",
) -> CrossWorldReport:
    """Train a model per world, evaluate each on both worlds' test scans (see the docstring)."""
    if train_seed == test_seed:
        raise UsageError("the training and test seeds must differ")
    tests = {w: simulate_world(w, count, test_seed, f"evaluate-{test_seed}") for w in WORLDS}
    with tempfile.TemporaryDirectory(prefix="cross-world-") as scratch:
        directory = models_dir or Path(scratch)
        cells = []
        for train_world in WORLDS:
            model = train_on_world(train_world, count, train_seed, directory)
            for test_world, scans in tests.items():
                source = f"world {test_world}: {count} scans, seed {test_seed}"
                evaluation = evaluate_authenticity(scans, model, source)
                cells.append(cell(train_world, test_world, evaluation.report))
    return CrossWorldReport(
        count=count, train_seed=train_seed, test_seed=test_seed, cells=cells, command=command
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_cross_world(report: CrossWorldReport) -> str:
    """The table docs/detectors.md quotes: one row per (training world, test world)."""
    lines = [
        "# Authenticity detector across worlds",
        "",
        f"{report.count} scans per world; models trained on seed {report.train_seed}, tested"
        f" on seed {report.test_seed}; figures at each model card's `counterfeit` threshold.",
        "",
        "| train | test | precision per item | recall per item | precision per scan"
        " | recall per scan | AP | best precision at recall >= 0.9 | genuine scans flagged |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in report.cells:
        lines.append(
            f"| {c.train_world.upper()} | {c.test_world.upper()} | {_pct(c.precision_items)}"
            f" | {_pct(c.recall_items)} | {_pct(c.precision_scans)} | {_pct(c.recall_scans)}"
            f" | {_pct(c.average_precision)} | {_pct(c.best_precision_at_recall_90)}"
            f" | {c.genuine_scans_flagged:.2%} |"
        )
    lines += ["", "Recall per item by scenario or tactic:", ""]
    lines += ["| train | test | scenario | recall per item |", "| --- | --- | --- | ---: |"]
    for c in report.cells:
        for name, recall in c.recall_items_by_scenario.items():
            lines.append(
                f"| {c.train_world.upper()} | {c.test_world.upper()} | `{name}` | {recall:.3f} |"
            )
    if report.command:
        lines += ["", f"Command: `{report.command}`"]
    return "\n".join(lines) + "\n"


def write_cross_world(out: Path, report: CrossWorldReport) -> dict[str, Path]:
    return write_report(out, CROSS_WORLD_JSON, CROSS_WORLD_MD, report, render_cross_world(report))
