"""The handbook's prequential protocol and card precision, on cases computed by hand, and the
evaluate fraud command end to end on a small simulation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from attestream.commands.evaluate import app
from detectors.evaluate_fraud import HANDBOOK_FEATURES, FraudEvaluationConfig, feature_sets
from detectors.fraud_features import FRAUD_FEATURES
from detectors.prequential import (
    Fold,
    card_precision_top_k,
    card_precision_top_k_day,
    mean_and_std,
    prequential_folds,
)
from detectors.report_fraud import evaluate_fraud_to, precision_recall_curve


def test_card_precision_of_one_day() -> None:
    # Card 1: best score 0.9 and a fraud (its 0.1 payment): compromised. Card 2: 0.8, genuine.
    # Card 3: 0.7 and a fraud. Top 2 cards: 1 and 2, one compromised.
    card = np.array([1, 1, 2, 3, 3])
    score = np.array([0.9, 0.1, 0.8, 0.2, 0.7])
    label = np.array([0, 1, 0, 1, 0])
    assert card_precision_top_k_day(card, score, label, k=2) == (0.5, [1])
    assert card_precision_top_k_day(card, score, label, k=3) == (2 / 3, [1, 3])
    # k larger than the day's cards: the share is still out of k (the handbook's definition).
    assert card_precision_top_k_day(card, score, label, k=100)[0] == 0.02


def test_card_precision_leaves_out_cards_found_on_earlier_days() -> None:
    # Day 0 as above (card 1 found). Day 1: card 1 again (fraud, 0.95), card 4 (0.6) and card
    # 5 (0.4), both genuine. Card 1 is out, so the top 2 are cards 4 and 5: precision 0.
    day = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    card = np.array([1, 1, 2, 3, 3, 1, 4, 5])
    score = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.95, 0.6, 0.4])
    label = np.array([0, 1, 0, 1, 0, 1, 0, 0])
    mean, daily = card_precision_top_k(day, card, score, label, k=2)
    assert daily == [0.5, 0.0] and mean == 0.25


def test_folds_move_back_a_test_period_at_a_time() -> None:
    folds = prequential_folds(80, 4)
    assert [f.train_start for f in folds] == [59, 52, 45, 38]
    assert [(f.test_start, f.test_end) for f in folds[:2]] == [(73, 80), (66, 73)]
    with pytest.raises(ValueError, match=r"hold only 1 fold\(s\)"):
        prequential_folds(25, 2)


def test_cards_known_compromised_are_left_out_of_the_test_days() -> None:
    """Train days 0-6, delay 7-13, test 14-20. Card 1's fraud on day 3 (training) is known:
    all its test payments go. Card 2's fraud on day 13 is known from test day 21 on (13 =
    21 - 7 - 1), i.e. never in this fold; card 3's on day 7 is known from test day 15."""
    fold = Fold(train_start=0, train_days=7, delay_days=7, test_days=7)
    day = np.array([3, 14, 20, 13, 14, 20, 7, 14, 15, 16])
    card = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    label = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 1])
    keep = fold.test_mask(day, card, label)
    assert keep.tolist() == [False, False, False, False, True, True, False, True, False, False]
    assert fold.train_mask(day).tolist() == [True] + [False] * 9


def test_mean_and_sample_std() -> None:
    mean, std = mean_and_std([0.6, 0.8])
    assert mean == 0.7 and std == pytest.approx(0.1414213562)  # sqrt(0.02)
    assert mean_and_std([0.5]) == (0.5, 0.0)


def test_precision_recall_curve_by_hand() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    precision, recall = precision_recall_curve(labels, scores)
    assert precision.tolist() == [1.0, 0.5, 2 / 3, 0.5]
    assert recall.tolist() == [0.5, 0.5, 1.0, 1.0]


def test_the_handbook_feature_set_is_a_subset_of_ours() -> None:
    sets = feature_sets(FRAUD_FEATURES)
    assert len(HANDBOOK_FEATURES) == 15
    assert [FRAUD_FEATURES[i] for i in sets["handbook_features"]] == list(HANDBOOK_FEATURES)
    assert sets["attestream"] == list(range(len(FRAUD_FEATURES)))


# Few rounds: this checks the command's outputs, not the model (docs/detectors.md has that).
SMALL = FraudEvaluationConfig(
    customers=200, terminals=400, days=29, folds=2, scenarios="all", rounds=30
)


def test_evaluation_writes_json_markdown_and_png(tmp_path: Path) -> None:
    evaluation, paths = evaluate_fraud_to(tmp_path, SMALL, command="attestream evaluate fraud")
    report = json.loads(paths["json"].read_text())
    assert report["protocol"]["folds"] == 2 and len(report["folds"]) == 2
    assert report["protocol"]["rounds"] == 30
    assert [f["test_start_day"] for f in report["folds"]] == [22, 15]
    for entry in report["summary"].values():
        assert 0.5 < entry["auc_roc"]["mean"] <= 1.0
        assert set(entry["targets_reached"]) == {"average_precision", "card_precision_at_100"}
    assert report["summary"]["attestream"]["scenario_recall_at_budget"]
    markdown = paths["markdown"].read_text()
    assert "| handbook XGBoost (published) | 0.869 | 0.687 | 0.303 |" in markdown
    assert "Command: `attestream evaluate fraud`" in markdown
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(evaluation.test_scores["attestream"]) == 2


def test_the_cli_prints_the_summary_and_refuses_too_few_days(tmp_path: Path) -> None:
    common = ["fraud", "--customers", "200", "--terminals", "400", "--out", str(tmp_path)]
    result = CliRunner().invoke(
        app, [*common, "--days", "22", "--folds", "1", "--rounds", "30", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["days"] == 22
    too_short = CliRunner().invoke(app, [*common, "--days", "25"])
    assert too_short.exit_code != 0
    assert "hold only 1 fold(s) of 21 days" in str(too_short.exception)
