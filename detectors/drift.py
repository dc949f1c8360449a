"""Score drift: live scores against the score histogram a model card was trained with.

A card written since this field exists holds `reference_scores`: the model's scores on its
validation part (the later fifth of the training data, which the model never trained on),
counted in `SCORE_EDGES` bins. The detection worker counts its live scores in the same bins
(the last `WINDOW_SCORES` scores of the active model, `ScoreWindow`) and publishes the
population stability index (PSI) between the two:

    PSI = sum over bins i of (live_i - ref_i) * ln(live_i / ref_i)

where live_i and ref_i are the shares of each population in bin i, and a share of 0 is taken
as `PSI_EPSILON` (the logarithm of 0 is undefined). Common reading: below 0.1 no shift, 0.1
to 0.25 a moderate one, above 0.25 a major one. docs/operations.md, "Metrics".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np

SCORE_BIN_WIDTH = 0.05
SCORE_EDGES: tuple[float, ...] = tuple(round(SCORE_BIN_WIDTH * i, 2) for i in range(1, 21))
"""Upper bounds of the score bins, 0.05 to 1.0: bin i holds scores in (edge[i-1], edge[i]]
(the first from 0), as Prometheus histogram buckets count them."""
PSI_EPSILON = 1e-4
"""The share an empty bin counts as: small beside the share of one score in ten thousand."""
WINDOW_SCORES = 10_000
"""Live scores the drift index is computed over: enough that a bin of 1 % holds ~100."""
MIN_SCORES = 100
"""Fewer live scores than this give no drift figure: their shares are mostly noise."""


class ScoreHistogram(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Scores counted in bins: `counts[i]` scores at most `edges[i]` (and above the edge
    before it)."""

    edges: list[float]
    counts: list[int]
    population: str
    """Which scores were counted (for the card's reader)."""


def score_bins(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """The bin index of every score (`SCORE_EDGES`); scores are in [0, 1]."""
    clipped = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    return np.searchsorted(np.asarray(SCORE_EDGES), clipped, side="left")


def score_histogram(scores: Sequence[float] | np.ndarray, population: str) -> ScoreHistogram:
    counts = np.bincount(score_bins(scores), minlength=len(SCORE_EDGES))
    return ScoreHistogram(
        edges=list(SCORE_EDGES), counts=[int(c) for c in counts], population=population
    )


def psi(reference: Sequence[int], live: Sequence[int], epsilon: float = PSI_EPSILON) -> float:
    """The population stability index of `live` against `reference`, two count vectors over
    the same bins (the module doc has the formula)."""
    if len(reference) != len(live):
        raise ValueError(f"{len(reference)} reference bins against {len(live)} live bins")
    ref_total, live_total = sum(reference), sum(live)
    if ref_total <= 0 or live_total <= 0:
        raise ValueError("a population stability index needs scores on both sides")
    index = 0.0
    for ref_count, live_count in zip(reference, live, strict=True):
        expected = max(ref_count / ref_total, epsilon)
        actual = max(live_count / live_total, epsilon)
        index += (actual - expected) * math.log(actual / expected)
    return index


class ScoreWindow:
    """The bin counts of the last `capacity` live scores (a ring of bin indices)."""

    def __init__(self, capacity: int = WINDOW_SCORES) -> None:
        self.capacity = capacity
        self._ring = np.zeros(capacity, dtype=np.int8)
        self._next = 0
        self.size = 0
        self.counts = np.zeros(len(SCORE_EDGES), dtype=np.int64)

    def add(self, scores: Sequence[float] | np.ndarray) -> None:
        bins = score_bins(scores)[-self.capacity :]
        while len(bins):
            room = self.capacity - self._next
            self._add_run(bins[:room])
            bins = bins[room:]

    def _add_run(self, bins: np.ndarray) -> None:
        """Bins that fit before the ring wraps round."""
        if not len(bins):
            return
        end = self._next + len(bins)
        if self.size == self.capacity:
            evicted = self._ring[self._next : end]
            self.counts -= np.bincount(evicted, minlength=len(SCORE_EDGES))
        self._ring[self._next : end] = bins
        self.counts += np.bincount(bins, minlength=len(SCORE_EDGES))
        self.size = min(self.capacity, self.size + len(bins))
        self._next = end % self.capacity

    def drift(self, reference: ScoreHistogram | None) -> float | None:
        """PSI of the window against `reference`; None without a reference histogram (a card
        from before it existed), with other bins, or below `MIN_SCORES` live scores."""
        if reference is None or list(reference.edges) != list(SCORE_EDGES):
            return None
        if self.size < MIN_SCORES or sum(reference.counts) == 0:
            return None
        return psi(reference.counts, [int(c) for c in self.counts])
