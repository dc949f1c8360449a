"""Scoring a micro-batch with a verified model: scores, top reasons and outcomes.

The stream scores batches of events (`stream.take`), so everything here takes a 2-D float32
matrix whose columns follow the model card's `features`. Scores use `inplace_predict` (no
DMatrix, a few microseconds a row at batch sizes in the hundreds); reasons use XGBoost's
approximate per-feature contributions (Saabas' method, about ten microseconds a row), cheap
enough to give every decision its reasons. Exact TreeSHAP is for the forensic tool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xgboost as xgb

from attestcore.errors import UsageError
from attestcore.schemas import OUTCOMES, Evidence, Reason
from detectors.registry import LoadedModel

TOP_REASONS = 3  # reasons of every decision, besides those naming evidence


class Scorer:
    """Scores, reasons and outcomes of one pinned model."""

    def __init__(self, model: LoadedModel, nthread: int = 1) -> None:
        # One thread by default (set on the model's booster): the stream worker runs one event
        # loop per process, and for batches of a few hundred rows threads cost more than they
        # save.
        self.model = model
        self.model_id: str = model.model_id
        self.model_sha256: str = model.model_sha256
        self.booster = model.booster
        self.nthread = nthread
        self.booster.set_param({"nthread": nthread})
        self.feature_names: Sequence[str] = model.feature_names
        # The live drift index's reference (detectors/drift.py); None for an older card.
        self.reference_scores = model.card.reference_scores
        self.outcome_names = OUTCOMES[model.detector]
        _, lower, upper = self.outcome_names
        self.lower_threshold = model.card.thresholds[lower]
        self.upper_threshold = model.card.thresholds[upper]

    def matrix(self, rows: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Feature vectors (in card order) as the float32 matrix the booster expects."""
        X = np.asarray(rows, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise UsageError(
                f"{self.model.model_id} takes {len(self.feature_names)} features, got shape "
                f"{X.shape}"
            )
        return X

    def score_batch(self, X: np.ndarray) -> np.ndarray:
        """Probability of fraud / counterfeit for each row, as float64 in [0, 1]."""
        # The matrix carries no names, so the booster's own names cannot be checked here;
        # `matrix` checks the width and the card fixes the order.
        scores = self.booster.inplace_predict(self.matrix(X), validate_features=False)
        return np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)

    def reasons_batch(self, X: np.ndarray, top: int = TOP_REASONS) -> list[list[tuple[str, float]]]:
        """Per row, `(feature name, contribution in log-odds)` of the `top` features with the
        largest absolute contribution, largest first.

        The bias column is left out: it is the same for every row and explains nothing.
        Ties keep feature order, so the reasons are deterministic. `as_reasons` turns a row
        into the wire `Reason` structs.
        """
        # nthread as for the booster: DMatrix's default (all cores) starts a thread pool per
        # call, 2 ms a batch of 512 rows on 2 cores, where one thread takes 0.2 ms.
        dmatrix = xgb.DMatrix(
            self.matrix(X), feature_names=list(self.feature_names), nthread=self.nthread
        )
        contribs = self.booster.predict(dmatrix, pred_contribs=True, approx_contribs=True)
        contribs = np.asarray(contribs)[:, : len(self.feature_names)]
        order = np.argsort(-np.abs(contribs), axis=1, kind="stable")[:, :top]
        return [
            [(self.feature_names[j], float(row[j])) for j in picks]
            for row, picks in zip(contribs, order, strict=True)
        ]

    def outcome(self, score: float) -> str:
        """The outcome name for a score: the most severe threshold it reaches."""
        lowest, middle, severe = self.outcome_names
        if score >= self.upper_threshold:
            return severe
        if score >= self.lower_threshold:
            return middle
        return lowest

    def outcomes(self, scores: np.ndarray) -> list[str]:
        return [self.outcome(float(s)) for s in scores]


def as_reasons(reasons: Sequence[tuple[str, float]]) -> list[Reason]:
    return [Reason(feature=name, contribution=contribution) for name, contribution in reasons]


def reasons_with_evidence(
    ranked: Sequence[tuple[str, float]],
    evidence: Sequence[tuple[str, Evidence]],
    flagged: bool,
    top: int = TOP_REASONS,
) -> list[Reason]:
    """The `top` largest contributions, each with the detector's evidence for its feature;
    a flagged decision also names every other feature with evidence (the conflicting scan,
    the failed challenge, the despatch not matched), so an investigator sees what to check.
    Ties and order are those of `ranked` (largest absolute contribution first)."""
    found: dict[str, Evidence] = {}
    for name, item in evidence:
        found.setdefault(name, item)
    reasons: list[Reason] = []
    for rank, (name, contribution) in enumerate(ranked):
        if rank < top or (flagged and name in found):
            why = found.get(name) if flagged else None
            reasons.append(
                Reason(feature=name, contribution=round(float(contribution), 6), evidence=why)
            )
    return reasons


def feature_dict(names: Sequence[str], vector: Sequence[float]) -> dict[str, float]:
    """The named feature vector a Decision records (float32-rounded, as the model saw it)."""
    values = np.asarray(vector, dtype=np.float32)
    return {name: float(v) for name, v in zip(names, values, strict=True)}


def vector_from_dict(names: Sequence[str], features: Mapping[str, float]) -> np.ndarray:
    """Back from a Decision's feature dict to a row in model order (for replay)."""
    try:
        return np.asarray([[features[name] for name in names]], dtype=np.float32)
    except KeyError as exc:
        raise UsageError(f"the decision has no feature {exc.args[0]!r}") from exc
