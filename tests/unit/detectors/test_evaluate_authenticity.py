"""Evaluation of the authenticity detector: hand-computed counts, then the CLI on real files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pytest
from typer.testing import CliRunner

from attestcore.errors import ConfigError, UsageError
from attestcore.schemas import Action, BizStep, SupplyChainEvent, TagAuth
from attestream.commands.evaluate import app
from detectors.evaluate_authenticity import (
    UNNAMED_SCENARIO,
    best_precision_at_recall,
    counterfeit_items,
    detection_delays,
    evaluate_authenticity,
    noise_figures,
    operating_point,
    scenario_figures,
    summarise_delays,
    target_checks,
)
from detectors.metrics import average_precision
from detectors.reference import ReferenceDataDigest
from detectors.registry import LoadedModel
from detectors.simulate_supply import LabelledScan, simulate_supply, write_labelled_scans

T0 = datetime(2025, 3, 3, tzinfo=UTC)


def row(n: int, epc: str, scenario: str = "", noise: tuple[str, ...] = ()) -> LabelledScan:
    event = SupplyChainEvent(
        event_id=f"sc-t-{n}",
        event_time=T0 + timedelta(hours=n),
        event_time_zone_offset="+00:00",
        epc=f"urn:epc:id:sgtin:4012345.010020.{epc}",
        action=Action.OBSERVE,
        biz_step=BizStep.RECEIVING,
        disposition="in_progress",
        read_point="rp",
        biz_location="bl",
        lat=0.0,
        lon=0.0,
        reader_id="r",
        tag_auth=TagAuth.ABSENT,
    )
    return LabelledScan(event, 1 if scenario else 0, scenario, noise)


# Arrival order. Clone C: rows 0, 3, 5. Fake F: rows 1, 4. Fake G: row 8. Genuine: 2, 6, 7, 9.
SCANS = [
    row(0, "C", "cloned_serial"),
    row(1, "F", "injected_fake"),
    row(2, "A", noise=("missed_read",)),
    row(3, "C", "cloned_serial"),
    row(4, "F", "injected_fake"),
    row(5, "C", "cloned_serial"),
    row(6, "A", noise=("missed_read", "late_upload")),
    row(7, "B"),
    row(8, "G", "injected_fake"),
    row(9, "B", noise=("duplicate_read",)),
]
C = ("urn:epc:id:sgtin:4012345.010020.C", "cloned_serial")
F = ("urn:epc:id:sgtin:4012345.010020.F", "injected_fake")
G = ("urn:epc:id:sgtin:4012345.010020.G", "injected_fake")
#                    0      1      2     3      4      5      6      7      8     9
FLAGGED = np.array([False, False, True, True, True, False, False, False, True, False])


def test_items_and_detection_delays() -> None:
    items = counterfeit_items(SCANS)
    assert items == {C: [0, 3, 5], F: [1, 4], G: [8]}
    # C: row 0 passed, row 3 flagged -> 1 scan passed. F: row 1 passed, row 4 flagged -> 1.
    # G: caught at its first scan -> 0.
    assert detection_delays(items, FLAGGED) == {C: 1, F: 1, G: 0}
    assert detection_delays(items, np.zeros(10, dtype=bool)) == {C: None, F: None, G: None}
    summary = summarise_delays([1, 1, 0, None, 5])
    assert (summary.items, summary.caught, summary.never, summary.max) == (5, 4, 1, 5)
    assert summary.mean == pytest.approx(7 / 4) and summary.median == 1.0
    assert summary.histogram == {"0": 1, "1": 2, "2": 0, "3+": 1}


def test_recall_per_scan_and_per_item_by_scenario() -> None:
    figures = scenario_figures(SCANS, FLAGGED, counterfeit_items(SCANS))
    clone, fake = figures["cloned_serial"], figures["injected_fake"]
    # Clone: 1 of 3 scans flagged (row 3); its one item caught. False alarms: row 2 only.
    assert (clone.scans, clone.scans_flagged, clone.items, clone.items_caught) == (3, 1, 1, 1)
    assert clone.recall_scans == pytest.approx(1 / 3) and clone.recall_items == 1.0
    assert clone.precision == pytest.approx(1 / (1 + 1))
    # Fakes: rows 4 and 8 of 1, 4, 8 flagged; both items caught.
    assert fake.recall_scans == pytest.approx(2 / 3) and fake.recall_items == 1.0
    assert fake.precision == pytest.approx(2 / 3)
    assert set(figures) == {"cloned_serial", "injected_fake"}


def test_false_positive_rate_per_noise_kind() -> None:
    noise = noise_figures(SCANS, FLAGGED)
    assert (noise["missed_read"].genuine_scans, noise["missed_read"].flagged) == (2, 1)
    assert noise["missed_read"].false_positive_rate == 0.5
    assert noise["late_upload"].false_positive_rate == 0.0
    assert (noise["none"].genuine_scans, noise["none"].flagged) == (1, 0)
    # Only the kinds present in the data are counted.
    assert set(noise) == {"missed_read", "late_upload", "duplicate_read", "none"}


def test_operating_point_totals() -> None:
    scores = np.where(FLAGGED, 0.9, 0.1)
    point = operating_point("counterfeit", 0.5, SCANS, scores)
    # 4 flagged: rows 3, 4, 8 counterfeit and row 2 genuine.
    assert (point.flagged, point.precision) == (4, 0.75)
    assert point.recall_scans == pytest.approx(3 / 6) and point.recall_items == 1.0
    assert point.false_positive_rate == pytest.approx(1 / 4)
    assert point.delay.histogram == {"0": 1, "1": 2, "2": 0, "3+": 0}
    # Items flagged: C, F, G caught; genuine A (row 2) flagged, genuine B not -> 3 of 4.
    assert (point.genuine_items, point.genuine_items_flagged) == (2, 1)
    assert point.precision_items == pytest.approx(3 / 4)


def test_best_precision_at_a_recall() -> None:
    labels = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    # Thresholds 0.9: R 1/3 P 1; 0.8: R 1/3 P 1/2; 0.7: R 2/3 P 2/3; 0.6: R 1 P 3/4.
    assert best_precision_at_recall(labels, scores, 0.6) == pytest.approx(3 / 4)
    assert best_precision_at_recall(labels, scores, 0.3) == 1.0


def test_a_model_from_another_reference_table_is_refused(
    authenticity_model: LoadedModel,
) -> None:
    recorded = authenticity_model.card.reference_data
    assert [r.name for r in recorded] == ["supply-chain-v1.json", "supply-calibration-v1.json"]
    other = ReferenceDataDigest(
        name=recorded[0].name, format=recorded[0].format, version="0", sha256="0" * 64
    )
    card = msgspec.structs.replace(authenticity_model.card, reference_data=[other])
    stale = LoadedModel(card, authenticity_model.booster, authenticity_model.artifact_path)
    with pytest.raises(ConfigError, match="restore that file or retrain"):
        evaluate_authenticity(SCANS, stale, "hand-built")


def test_data_without_both_classes_is_refused(authenticity_model: LoadedModel) -> None:
    genuine = [s for s in SCANS if s.label == 0]
    with pytest.raises(UsageError, match="both counterfeit and genuine"):
        evaluate_authenticity(genuine, authenticity_model, "genuine only")


def test_cli_writes_json_markdown_and_png(models_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "held-out.jsonl"
    write_labelled_scans(data, simulate_supply(4_000, seed=11, run_id="held-out"))
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        app,
        ["authenticity", "--data", str(data), "--models-dir", str(models_dir), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "authenticity-report.json").read_text())
    assert report["data"]["scans"] == 4_000 and report["data"]["source"].endswith("held-out.jsonl")
    assert [p["outcome"] for p in report["operating_points"]] == ["counterfeit", "suspect"]
    assert {t["name"].split(" (")[0] for t in report["targets"]} == {
        "precision per scan",
        "recall per scan",
        "lowest scenario recall per scan",
    }
    summary = (out / "authenticity-summary.md").read_text()
    assert "| honest noise (genuine scans) |" in summary and "## Targets" in summary
    assert (out / "authenticity-pr-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Another source's names: scenarios and noise kinds no simulator here uses.
FOREIGN = [
    row(0, "P", "pallet_swap"),
    row(1, "A", noise=("clock_skew",)),
    row(2, "P", "pallet_swap"),
    row(3, "Q", "return_swap"),
    row(4, "B"),
    row(5, "A", noise=("clock_skew", "pallet_read")),
]
# Scores: P 0.9 / 0.2, A 0.8 / 0.1, Q 0.7, B 0.3.
FOREIGN_SCORES = np.array([0.9, 0.8, 0.2, 0.7, 0.3, 0.1])


def test_unknown_scenario_and_noise_names_are_counted_by_their_own_names() -> None:
    point = operating_point("counterfeit", 0.5, FOREIGN, FOREIGN_SCORES)
    # Flagged rows 0 (P), 1 (genuine A), 3 (Q): precision 2/3, recall per scan 2/3.
    assert point.precision == pytest.approx(2 / 3) and point.recall_scans == pytest.approx(2 / 3)
    # Items P and Q both caught; genuine A flagged, B not: per item 2/3 precision, recall 1.
    assert point.recall_items == 1.0 and point.precision_items == pytest.approx(2 / 3)
    assert set(point.scenarios) == {"pallet_swap", "return_swap"}
    assert point.scenarios["pallet_swap"].recall_scans == 0.5
    assert point.scenarios["return_swap"].recall_items == 1.0
    assert set(point.noise) == {"clock_skew", "pallet_read", "none"}
    assert point.noise["clock_skew"].false_positive_rate == 0.5
    assert point.noise["pallet_read"].flagged == 0
    assert point.false_positive_rate == pytest.approx(1 / 3)  # 1 of 3 genuine scans
    names = [t.name for t in target_checks(point)]
    assert names[-1] == "lowest scenario recall per scan (pallet_swap)"


def test_data_without_scenario_or_noise_labels_is_counted_as_one_unnamed_scenario() -> None:
    bare = [LabelledScan(s.event, s.label) for s in FOREIGN]
    point = operating_point("counterfeit", 0.5, bare, FOREIGN_SCORES)
    assert list(point.scenarios) == [UNNAMED_SCENARIO]
    assert point.scenarios[UNNAMED_SCENARIO].recall_scans == pytest.approx(2 / 3)
    assert point.recall_items == 1.0 and point.noise == {}
    # No scenario named: only the two overall targets are checked.
    assert [t.name for t in target_checks(point)] == ["precision per scan", "recall per scan"]
    labels = np.array([s.label for s in bare], dtype=bool)
    # Ranked: P+ A- Q+ B- P+ A-: AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5.
    assert average_precision(labels, FOREIGN_SCORES) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # Recall >= 0.9 needs every counterfeit: threshold 0.2, 3 of 5 flagged.
    assert best_precision_at_recall(labels, FOREIGN_SCORES, 0.9) == pytest.approx(3 / 5)


def _write_raw(path: Path, scans: list[LabelledScan], fields: tuple[str, ...]) -> None:
    """JSON lines with only `fields` of each labelled scan, as another tool might write them."""
    lines = []
    for s in scans:
        record = msgspec.to_builtins(s)
        lines.append(json.dumps({k: v for k, v in record.items() if k in fields}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("fields", "scenarios"),
    [
        (("event", "label", "scenario", "noise"), {"clone_early", "swap_at_return"}),
        (("event", "label"), {UNNAMED_SCENARIO}),
    ],
)
def test_cli_scores_labelled_files_of_any_scenario_names_or_none(
    models_dir: Path, tmp_path: Path, fields: tuple[str, ...], scenarios: set[str]
) -> None:
    renamed = {"cloned_serial": "clone_early", "injected_fake": "swap_at_return"}
    scans = [
        msgspec.structs.replace(
            s,
            scenario=renamed.get(s.scenario, "swap_at_return" if s.label else ""),
            noise=tuple(f"reader_{n}" for n in s.noise),
        )
        for s in simulate_supply(3_000, seed=12, run_id="foreign")
    ]
    data = tmp_path / "foreign.jsonl"
    _write_raw(data, scans, fields)
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        app,
        ["authenticity", "--data", str(data), "--models-dir", str(models_dir), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "authenticity-report.json").read_text())
    point = report["operating_points"][0]
    assert set(point["scenarios"]) == scenarios
    assert sum(f["scans"] for f in point["scenarios"].values()) == sum(s.label for s in scans)
    has_noise = "noise" in fields
    assert bool(point["noise"]) is has_noise
    assert all(k.startswith("reader_") or k == "none" for k in point["noise"])
    assert 0.0 <= report["average_precision"] <= 1.0 and "precision_items" in point
