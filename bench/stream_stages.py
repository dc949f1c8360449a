"""Where the decisions of the latency figures (h) spent their time: the decide worker's
`attestream_detect_stage_seconds` histogram (streams.stages), read from its metrics endpoint
before and after the paced payments, and the difference summarised per stage."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from streams.stages import STAGES

STAGE_METRIC = "attestream_detect_stage_seconds"
SCRAPE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StageCounts:
    """One stage's histogram at one moment: count, sum and cumulative bucket counts."""

    count: float
    total_s: float
    buckets: tuple[tuple[float, float], ...]
    """(upper bound in seconds, cumulative count), ascending, +Inf last."""

    def minus(self, earlier: StageCounts) -> StageCounts:
        before = dict(earlier.buckets)
        return StageCounts(
            self.count - earlier.count,
            self.total_s - earlier.total_s,
            tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets),
        )

    def mean_ms(self) -> float:
        return self.total_s / self.count * 1000 if self.count else 0.0

    def quantile_ms(self, q: float) -> float:
        """The upper bound of the bucket holding the q-quantile (a bucket's resolution)."""
        rank = q * self.count
        for le, n in self.buckets:
            if n >= rank:
                return le * 1000
        return float("inf")


def _metrics(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


def scrape_batches(port: int, detector: str = "fraud") -> tuple[float, float]:
    """(micro-batches decided, events consumed) by the worker's `detector` so far."""
    found = {
        "attestream_detect_batch_duration_seconds_count": 0.0,
        "attestream_detect_events_total": 0.0,
    }
    for family in text_string_to_metric_families(_metrics(port)):
        for sample in family.samples:
            if sample.name in found and sample.labels.get("detector") == detector:
                found[sample.name] = sample.value
    return (
        found["attestream_detect_batch_duration_seconds_count"],
        found["attestream_detect_events_total"],
    )


def scrape_stages(port: int, detector: str = "fraud") -> dict[str, StageCounts]:
    """The worker's stage histogram for `detector`, stage by stage."""
    text = _metrics(port)
    counts: dict[str, float] = {}
    totals: dict[str, float] = {}
    buckets: dict[str, list[tuple[float, float]]] = {stage: [] for stage in STAGES}
    for family in text_string_to_metric_families(text):
        if family.name != STAGE_METRIC:
            continue
        for sample in family.samples:
            if sample.labels.get("detector") != detector:
                continue
            stage = sample.labels["stage"]
            if sample.name.endswith("_count"):
                counts[stage] = sample.value
            elif sample.name.endswith("_sum"):
                totals[stage] = sample.value
            elif sample.name.endswith("_bucket"):
                buckets[stage].append((float(sample.labels["le"]), sample.value))
    return {
        stage: StageCounts(
            counts.get(stage, 0.0), totals.get(stage, 0.0), tuple(sorted(buckets[stage]))
        )
        for stage in STAGES
    }


def stage_spread(
    before: dict[str, StageCounts], after: dict[str, StageCounts]
) -> dict[str, dict[str, float]]:
    """Per stage, over the decisions between the two scrapes: count, mean, p50 and p99 (ms,
    the latter two at the histogram's bucket resolution)."""
    spread = {}
    for stage in STAGES:
        counts = after[stage].minus(before[stage])
        spread[stage] = {
            "decisions": counts.count,
            "mean_ms": counts.mean_ms(),
            "p50_ms_at_most": counts.quantile_ms(0.5),
            "p99_ms_at_most": counts.quantile_ms(0.99),
        }
    return spread
