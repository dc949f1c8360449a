from __future__ import annotations

import msgspec
import numpy as np
import pytest

from attestcore.errors import UsageError
from attestcore.schemas import OUTCOMES, Detector, Reason
from detectors.dataset import TrainingSet
from detectors.fraud_features import FRAUD_FEATURES
from detectors.registry import LoadedModel
from detectors.scoring import Scorer, as_reasons, feature_dict, vector_from_dict


def test_scores_are_probabilities(fraud_model: LoadedModel, payment_rows: TrainingSet) -> None:
    scores = Scorer(fraud_model).score_batch(payment_rows.X[:512])
    assert scores.shape == (512,) and np.all((scores >= 0) & (scores <= 1))
    scorer = Scorer(fraud_model)
    assert scorer.score_batch(payment_rows.X[:1]).shape == (1,)
    assert (scorer.model_id, scorer.model_sha256) == (
        fraud_model.model_id,
        fraud_model.model_sha256,
    )


def test_a_matrix_of_the_wrong_width_is_refused(fraud_model: LoadedModel) -> None:
    with pytest.raises(UsageError, match=f"takes {len(FRAUD_FEATURES)} features"):
        Scorer(fraud_model).score_batch(np.zeros((2, 5), dtype=np.float32))


def test_three_named_reasons_per_row(fraud_model: LoadedModel, payment_rows: TrainingSet) -> None:
    scorer = Scorer(fraud_model)
    X = payment_rows.X[:64]
    reasons = scorer.reasons_batch(X)
    assert len(reasons) == 64
    for row in reasons:
        assert len(row) == 3 and len({name for name, _ in row}) == 3
        assert {name for name, _ in row} <= set(scorer.feature_names)
        sizes = [abs(contribution) for _, contribution in row]
        assert sizes == sorted(sizes, reverse=True)
    wire = as_reasons(reasons[0])
    assert all(isinstance(r, Reason) for r in wire) and wire[0].feature == reasons[0][0][0]


def test_reasons_are_the_largest_contributions(
    fraud_model: LoadedModel, payment_rows: TrainingSet
) -> None:
    import xgboost as xgb

    scorer = Scorer(fraud_model)
    X = payment_rows.X[:8]
    full = fraud_model.booster.predict(
        xgb.DMatrix(X, feature_names=list(scorer.feature_names)),
        pred_contribs=True,
        approx_contribs=True,
    )
    margins = fraud_model.booster.inplace_predict(X, predict_type="margin", validate_features=False)
    assert np.allclose(full.sum(axis=1), margins, atol=1e-4)  # contributions add up to the margin
    for row, reasons in zip(full, scorer.reasons_batch(X), strict=True):
        top = np.sort(np.abs(row[:-1]))[::-1][:3]
        assert np.allclose([abs(c) for _, c in reasons], top)


def with_thresholds(model: LoadedModel, lower: float, upper: float) -> LoadedModel:
    _, middle, severe = OUTCOMES[model.detector]
    card = msgspec.structs.replace(model.card, thresholds={middle: lower, severe: upper})
    return LoadedModel(card, model.booster, model.artifact_path)


def test_outcomes_follow_the_card_thresholds(
    fraud_model: LoadedModel, authenticity_model: LoadedModel
) -> None:
    fraud = Scorer(with_thresholds(fraud_model, 0.2, 0.8))
    assert [fraud.outcome(s) for s in (0.0, 0.19, 0.2, 0.79, 0.8, 1.0)] == [
        "approve",
        "approve",
        "review",
        "review",
        "block",
        "block",
    ]
    auth = Scorer(with_thresholds(authenticity_model, 0.1, 0.5))
    assert auth.outcomes(np.array([0.05, 0.3, 0.9])) == ["authentic", "suspect", "counterfeit"]
    assert fraud.outcome_names == OUTCOMES[Detector.FRAUD]


def test_real_thresholds_flag_a_small_share(
    fraud_model: LoadedModel, payment_rows: TrainingSet
) -> None:
    scorer = Scorer(fraud_model)
    outcomes = scorer.outcomes(scorer.score_batch(payment_rows.X))
    assert outcomes.count("approve") / len(outcomes) > 0.95
    assert outcomes.count("block") > 0


def test_feature_dict_round_trip(payment_rows: TrainingSet) -> None:
    names = payment_rows.feature_names
    named = feature_dict(names, payment_rows.X[5].tolist())
    assert list(named) == list(names)
    assert np.array_equal(vector_from_dict(names, named)[0], payment_rows.X[5])
    with pytest.raises(UsageError, match="no feature"):
        vector_from_dict(names, {})
