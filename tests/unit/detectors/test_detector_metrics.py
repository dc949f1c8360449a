from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.metrics import average_precision, choose_thresholds, roc_auc


def brute_force_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Definition: P(score of a positive > score of a negative), ties count one half."""
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def test_textbook_example() -> None:
    # The classic 4-point example (also in scikit-learn's docs): AUC 0.75, AP 0.8333.
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    assert roc_auc(y, s) == 0.75
    # Thresholds 0.8, 0.4, 0.35: recall 0.5, 0.5, 1.0 at precision 1, 1/2, 2/3.
    assert average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_ties_count_half() -> None:
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert average_precision(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


def test_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        roc_auc(np.array([1, 1]), np.array([0.1, 0.2]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 6).map(lambda v: v / 6)), min_size=2, max_size=40
    ).filter(lambda rows: 0 < sum(r[0] for r in rows) < len(rows))
)
def test_auc_matches_its_definition(rows: list[tuple[bool, float]]) -> None:
    y = np.array([r[0] for r in rows], dtype=int)
    s = np.array([r[1] for r in rows])
    assert roc_auc(y, s) == pytest.approx(brute_force_auc(y, s))


def test_thresholds_for_a_budget_and_a_precision_target() -> None:
    # 100 events, scores falling from 1.0: the top 9 are positives, then the 13th.
    scores = np.linspace(1.0, 0.01, 100)
    y = np.zeros(100, dtype=int)
    y[:9] = 1
    y[12] = 1
    chosen = choose_thresholds(y, scores, alert_budget=0.2, target_precision=0.9, min_alerts=5)
    # The lowest threshold with precision >= 0.9 flags the top 10 (9 of 10 positive);
    # flagging 11 gives 9/11, and flagging 13 only 10/13.
    assert chosen.upper == scores[9] and chosen.upper_precision == pytest.approx(0.9)
    assert chosen.upper_reached_target
    assert chosen.lower == scores[19] and chosen.lower_alert_rate == 0.2
    assert chosen.lower_precision == pytest.approx(10 / 20)


def test_unreachable_precision_blocks_nothing_but_saturated_scores() -> None:
    y = np.array([1, 0] * 50)
    scores = np.linspace(0.9, 0.1, 100)
    chosen = choose_thresholds(y, scores, alert_budget=0.02, target_precision=0.9, min_alerts=5)
    assert chosen.upper == 1.0 and not chosen.upper_reached_target
    assert chosen.lower <= chosen.upper
