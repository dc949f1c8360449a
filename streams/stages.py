"""Where a decision's time went, from its event time to its hand-over to the producer.

Five consecutive stages, each measured per decision and exported as the histogram
`attestream_detect_stage_seconds{detector,stage}`:

- fetch: from the event time until the worker's fetch that brought the record returned
  (the broker and the consumer's fetch wait);
- queue: from that receipt until its micro-batch started (delivery to the stream, the batch
  filling, earlier batches);
- features: the batch's parsing, entity states read, features computed and states written;
- scoring: the batch's scores, reasons and decisions built;
- send: the batch's dead letters and decisions handed to the producer.

The first two are the record's own; the last three are its batch's, since every decision of
a batch is sent once the whole batch is decided. Fetch compares the producer's clock with the
worker's: a negative difference (clock skew) counts as 0. The stages add up to the decision's
time from event to producer; the producer's linger and the broker's write follow.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

STAGES = ("fetch", "queue", "features", "scoring", "send")
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class BatchClock:
    """A micro-batch's own stages: when it started (time.time()) and how long each of its
    three steps took."""

    started: float
    features_s: float = 0.0
    scoring_s: float = 0.0
    send_s: float = 0.0


def record_stages(
    event_time: float, received: float | None, batch: BatchClock
) -> tuple[float, float]:
    """A record's fetch and queue seconds. Without a receipt (a record that did not come
    through the worker's consumer) its whole wait counts as queue."""
    if received is None:
        return 0.0, max(batch.started - event_time, 0.0)
    arrived = min(received, batch.started)  # a clock step back may reorder the two
    return max(arrived - event_time, 0.0), batch.started - arrived


class StageHistogram(Collector):
    """`attestream_detect_stage_seconds`: a histogram per detector and stage that takes a
    batch's stage once for all its decisions (`observe(..., count=n)`), which prometheus's
    `Histogram` cannot; a decision's five observations cost well under a microsecond."""

    name = "attestream_detect_stage_seconds"

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        if registry is not None:
            registry.register(self)

    def observe(self, detector: str, stage: str, seconds: float, count: int = 1) -> None:
        self._series_of(detector, stage).add(seconds, count)

    def observe_batch(
        self, detector: str, batch: BatchClock, records: Iterable[tuple[float, float | None]]
    ) -> int:
        """The five stages of each decision of a batch, given each decision's (event time,
        receipt); returns how many decisions were observed."""
        fetch, queue = self._series_of(detector, "fetch"), self._series_of(detector, "queue")
        count = 0
        for event_time, received in records:
            fetched, queued = record_stages(event_time, received, batch)
            fetch.add(fetched, 1)
            queue.add(queued, 1)
            count += 1
        if count:
            self.observe(detector, "features", batch.features_s, count)
            self.observe(detector, "scoring", batch.scoring_s, count)
            self.observe(detector, "send", batch.send_s, count)
        return count

    def snapshot(self, detector: str, stage: str) -> tuple[int, float, list[int]]:
        """(count, sum of seconds, count per bucket of `BUCKETS_S` then +Inf), not
        cumulative."""
        series = self._series.get((detector, stage))
        if series is None:
            return 0, 0.0, [0] * (len(BUCKETS_S) + 1)
        return series.count, series.total, list(series.buckets)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            self.name,
            "Seconds of each stage of a decision: fetch, queue, features, scoring, send",
            labels=["detector", "stage"],
        )
        for (detector, stage), series in sorted(self._series.items()):
            family.add_metric([detector, stage], series.cumulative(), series.total)
        yield family

    def _series_of(self, detector: str, stage: str) -> _Series:
        series = self._series.get((detector, stage))
        if series is None:
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r}")
            series = self._series[(detector, stage)] = _Series()
        return series


class _Series:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS_S) + 1)
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float, count: int) -> None:
        self.buckets[bisect.bisect_left(BUCKETS_S, seconds)] += count
        self.count += count
        self.total += seconds * count

    def cumulative(self) -> Sequence[tuple[str, float]]:
        running, out = 0, []
        for bound, n in zip((*BUCKETS_S, float("inf")), self.buckets, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out
