"""The population stability index against hand-computed values, the score bins as
Prometheus counts them, and the sliding window of live scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.drift import (
    MIN_SCORES,
    SCORE_EDGES,
    ScoreHistogram,
    ScoreWindow,
    psi,
    score_bins,
    score_histogram,
)


def test_psi_of_two_bins_by_hand() -> None:
    # Shares 0.5/0.5 against 0.25/0.75:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.25 (ln 2 + ln 1.5) = 0.25 ln 3
    assert psi([50, 50], [25, 75]) == pytest.approx(0.2746530722, abs=1e-10)
    assert psi([50, 50], [25, 75]) == pytest.approx(0.25 * math.log(3))


def test_psi_of_an_empty_bin_takes_epsilon() -> None:
    # Reference shares 1.0 and 0 (taken as 1e-4) against 0.5 and 0.5:
    # (0.5 - 1) ln(0.5) + (0.5 - 0.0001) ln(0.5 / 0.0001) = 0.3465736 + 4.2577449
    assert psi([100, 0], [50, 50], epsilon=1e-4) == pytest.approx(4.604318466, abs=1e-8)


def test_psi_of_the_same_shares_is_zero() -> None:
    assert psi([10, 30, 60], [1, 3, 6]) == pytest.approx(0.0, abs=1e-15)


def test_psi_refuses_what_it_cannot_compare() -> None:
    with pytest.raises(ValueError, match="bins"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="both sides"):
        psi([0, 0], [1, 2])


def test_scores_fall_in_bins_as_prometheus_buckets_count_them() -> None:
    assert len(SCORE_EDGES) == 20 and SCORE_EDGES[0] == 0.05 and SCORE_EDGES[-1] == 1.0
    # le semantics: 0.05 is in the first bucket, 0.0500001 in the second; 1.0 in the last.
    assert list(score_bins([0.0, 0.05, 0.0500001, 0.999, 1.0])) == [0, 0, 1, 19, 19]
    histogram = score_histogram([0.01, 0.02, 0.97], "test")
    assert histogram.counts[0] == 2 and histogram.counts[19] == 1 and sum(histogram.counts) == 3


def test_the_window_keeps_the_last_scores_only() -> None:
    window = ScoreWindow(capacity=4)
    window.add([0.01, 0.01, 0.01])
    window.add([0.99, 0.99, 0.99])  # evicts two of the three low scores
    assert window.size == 4
    assert window.counts[0] == 1 and window.counts[19] == 3
    window.add(np.full(9, 0.5))  # more than the window: only the last four count
    assert int(window.counts[score_bins([0.5])[0]]) == 4 and int(window.counts.sum()) == 4


def test_drift_needs_a_reference_and_enough_scores() -> None:
    reference = score_histogram(np.linspace(0.0, 1.0, 1000), "validation")
    window = ScoreWindow()
    window.add(np.linspace(0.0, 1.0, MIN_SCORES - 1))
    assert window.drift(reference) is None
    window.add([0.5])
    same = window.drift(reference)
    assert same is not None and same < 0.05
    assert window.drift(None) is None
    other_bins = ScoreHistogram(edges=[0.5, 1.0], counts=[1, 1], population="old")
    assert window.drift(other_bins) is None
    shifted = ScoreWindow()
    shifted.add(np.full(MIN_SCORES, 0.99))
    drifted = shifted.drift(reference)
    assert drifted is not None and drifted > 0.25
