"""The stream figures (f, g, h) from the runs of `bench.stream`, and their per-run details."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from bench.config import TARGET_STREAM_RATIO
from bench.report import Figure, Target, median, percentile
from bench.stream import LatencyRun, StreamRun
from streams.stages import STAGES

P50, P99 = 50, 99
# Event to decision at half load: a card network leaves a fraud check about 100 ms.
LATENCY_TARGETS_MS = (30, 100)


def stream_figures(
    count: list[StreamRun], decide: list[StreamRun], latency: list[LatencyRun]
) -> list[Figure]:
    what = (
        "stream: decisions/s of one faust worker (parse, state, features, score, reasons,"
        " decision sent)"
    )
    ceiling = Figure(
        "g",
        "stream raw ceiling: the same worker's agent taking batches and counting",
        "events/s",
        median([r.rate for r in count]),
        [r.rate for r in count],
    )
    return [
        *_decide_figures("f", what, count, decide),
        ceiling,
        *_latency_figures("h", "f", latency, stages=True),
    ]


def kafka_figures(
    count: list[StreamRun],
    decide: list[StreamRun],
    latency: list[LatencyRun],
    relay: list[LatencyRun],
) -> list[Figure]:
    """(q) The detection worker on the confluent-kafka engine, against g as f is; its latency
    against (r) the relay's, the broker's part of a decision alone (`bench.relay`)."""
    what = "stream: decisions/s of one worker on the confluent-kafka engine (the work of f)"
    figures = [
        *_decide_figures("q", what, count, decide),
        *_latency_figures("q", "q", latency, stages=False, first=2),
    ]
    if not relay:
        return figures
    floors = [
        replace(
            f,
            name=f.name.replace(
                "stream latency", "latency ceiling (a relay doing only the broker's part)"
            ),
        )
        for f in _latency_figures("r", "q", relay, stages=False)
    ]
    latencies = [
        replace(
            q,
            ceiling=floor.value,
            ceiling_name=f"{floor.key}: the relay",
            ratio=floor.value / q.value,
            targets=[Target(f"≤ {target} ms", q.value <= target)],
        )
        for q, floor, target in zip(figures[2:4], floors, LATENCY_TARGETS_MS, strict=True)
    ]
    return [*figures[:2], *latencies, *floors]


def _decide_figures(
    key: str, what: str, count: list[StreamRun], decide: list[StreamRun]
) -> list[Figure]:
    rates, ceilings = [r.rate for r in decide], [r.rate for r in count]
    value, ceiling = median(rates), median(ceilings)
    ratio = value / ceiling
    cpu, cpu_raw = [r.cpu_us_per_event for r in decide], [r.cpu_us_per_event for r in count]
    cpu_value, cpu_ceiling = median(cpu), median(cpu_raw)
    return [
        Figure(
            key,
            what,
            "decisions/s",
            value,
            rates,
            ceiling,
            "g",
            "events/s",
            ratio,
            [Target(f"ratio ≥ {TARGET_STREAM_RATIO}", ratio >= TARGET_STREAM_RATIO)],
        ),
        Figure(
            f"{key}1",
            "  its CPU time per decision (all threads)",
            "µs",
            cpu_value,
            cpu,
            cpu_ceiling,
            "per event counted by g",
            "",
            cpu_ceiling / cpu_value,
        ),
    ]


def _latency_figures(
    key: str, of: str, latency: list[LatencyRun], stages: bool, first: int = 1
) -> list[Figure]:
    """p50 and p99 from event time to decision read back (`key` + `first`, + `first`+1),
    and, with `stages`, the mean of each stage."""
    half = median([run.rate for run in latency])
    figures = []
    for number, pct in enumerate((P50, P99), start=first):
        values = [percentile(run.received_ms, pct) for run in latency]
        figures.append(
            Figure(
                f"{key}{number}",
                f"stream latency p{pct}: event time to decision read back, at half of {of}"
                f" ({half:,.0f} events/s)",
                "ms",
                median(values),
                values,
            )
        )
    if not stages:
        return figures
    for number, stage in enumerate(STAGES, start=first + 2):
        means = [run.stages[stage]["mean_ms"] for run in latency if run.stages]
        figures.append(
            Figure(
                f"{key}{number}",
                f"  of which {stage} ({STAGE_SPANS[stage]}), mean per decision",
                "ms",
                median(means) if means else 0.0,
                means,
            )
        )
    return figures


STAGE_SPANS = {
    "fetch": "event time to the worker's fetch returning",
    "queue": "to its micro-batch starting",
    "features": "parse, state, features",
    "scoring": "scores, reasons, decisions built",
    "send": "decisions to the producer",
}


def tail_sent_at(run: LatencyRun) -> dict[str, float]:
    """When the payments of the slowest 1% were sent, in seconds from the first: a tail that
    all comes from the first moments of the send is the sender's start, not the worker."""
    cut = percentile(run.received_ms, P99)
    sent = sorted(at for at, ms in zip(run.sent_s, run.received_ms, strict=True) if ms >= cut)
    if not sent:
        return {}
    return {"count": len(sent), "first_s": sent[0], "median_s": median(sent), "last_s": sent[-1]}


def stream_details(
    count: list[StreamRun], decide: list[StreamRun], latency: list[LatencyRun]
) -> dict[str, Any]:
    """The per-run numbers behind the medians, for the JSON file."""
    return {
        "stream_count_runs": [_run(r) for r in count],
        "stream_decide_runs": [_run(r) for r in decide],
        "stream_latency_runs": _latency_details(latency),
    }


def kafka_details(
    decide: list[StreamRun], latency: list[LatencyRun], relay: list[LatencyRun]
) -> dict[str, Any]:
    """The runs of the confluent-kafka engine (q) and of the relay (r), for the JSON file."""
    return {
        "stream_kafka_runs": [_run(r) for r in decide],
        "stream_kafka_latency_runs": _latency_details(latency),
        "stream_relay_latency_runs": _latency_details(relay),
    }


def _run(r: StreamRun) -> dict[str, Any]:
    return asdict(r) | {"rate": r.rate, "cpu_us_per_event": r.cpu_us_per_event}


def _latency_details(latency: list[LatencyRun]) -> list[dict[str, Any]]:
    def spread(values: list[float]) -> dict[str, float]:
        return {"p50": percentile(values, P50), "p99": percentile(values, P99), "max": max(values)}

    return [
        {
            "rate": r.rate,
            "events": r.events,
            "decisions": len(r.received_ms),
            "received_ms": spread(r.received_ms),
            "decided_ms": spread(r.decided_ms),
            "p99_tail_sent_at": tail_sent_at(r),
            "send_s": max(r.sent_s, default=0.0),
            "stages": r.stages,
        }
        for r in latency
    ]
