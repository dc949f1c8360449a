"""Ranking metrics and alert thresholds, in numpy (scikit-learn is not a dependency).

The definitions follow the usual ones so numbers compare with the literature (the fraud
handbook reports AUC-ROC and average precision):

- AUC-ROC is the Mann-Whitney statistic: the probability that a random positive scores above
  a random negative, ties counting one half.
- Average precision is the step-wise area under the precision-recall curve,
  AP = sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds from high to low (the
  scikit-learn definition, no interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != scores.shape:
        raise ValueError(f"{len(y)} labels but {len(scores)} scores")
    if y.all() or not y.any():
        raise ValueError("the metric needs both positive and negative examples")
    return y, scores


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from average ranks (ties share their mean rank)."""
    y, scores = _check(y, scores)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average rank of each run of tied scores (ranks start at 1).
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(scores)]))
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _alert_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct threshold, high to low: threshold, alerts raised, true positives."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    true_pos = np.cumsum(y[order])
    last_of_tie = np.concatenate((np.flatnonzero(np.diff(sorted_scores)), [len(scores) - 1]))
    return sorted_scores[last_of_tie], last_of_tie + 1, true_pos[last_of_tie]


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    y, scores = _check(y, scores)
    _, alerts, true_pos = _alert_curve(y, scores)
    precision = true_pos / alerts
    recall = true_pos / y.sum()
    return float(np.sum(np.diff(np.concatenate(([0.0], recall))) * precision))


@dataclass(frozen=True)
class AlertThresholds:
    """Two cut-offs on the score and what they did on the validation data."""

    lower: float  # at or above: review / suspect
    upper: float  # at or above: block / counterfeit
    lower_alert_rate: float
    upper_alert_rate: float
    lower_precision: float
    upper_precision: float
    upper_reached_target: bool


def choose_thresholds(
    y: np.ndarray,
    scores: np.ndarray,
    alert_budget: float,
    target_precision: float,
    min_alerts: int,
) -> AlertThresholds:
    """Thresholds for an alert budget and a precision target, chosen on validation data.

    `lower` is the score of the `alert_budget` fraction of events scored highest (what the
    review team can look at). `upper` is the lowest threshold whose alerts reach
    `target_precision` with at least `min_alerts` of them (so one lucky top score does not
    set it); if no threshold does, `upper` is 1.0 and `upper_reached_target` is False, which
    blocks almost nothing. `lower` never exceeds `upper`.
    """
    y, scores = _check(y, scores)
    thresholds, alerts, true_pos = _alert_curve(y, scores)
    precision = true_pos / alerts
    budget = max(1, int(np.ceil(alert_budget * len(scores))))
    within_budget = np.flatnonzero(alerts <= budget)
    lower_i = int(within_budget[-1]) if len(within_budget) else 0
    ok = np.flatnonzero((precision >= target_precision) & (alerts >= min_alerts))
    reached = len(ok) > 0
    upper = float(thresholds[ok[-1]]) if reached else 1.0
    lower = min(float(thresholds[lower_i]), upper)

    def rate_and_precision(threshold: float) -> tuple[float, float]:
        flagged = scores >= threshold
        n = int(flagged.sum())
        return n / len(scores), (float(y[flagged].mean()) if n else 0.0)

    lower_rate, lower_precision = rate_and_precision(lower)
    upper_rate, upper_precision = rate_and_precision(upper)
    return AlertThresholds(
        lower, upper, lower_rate, upper_rate, lower_precision, upper_precision, reached
    )
