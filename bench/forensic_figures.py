"""The investigators' figures (i-l) from the runs of `bench.forensic`, and their details."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.config import (
    TARGET_BUNDLE_MS,
    TARGET_SEARCH_MEDIAN_MS,
    TARGET_SEARCH_P99_MS,
    TARGET_TIMELINE_MS,
    TARGET_VERIFY_BUNDLE_MS,
)
from bench.forensic import ForensicRun
from bench.report import Figure, Target, median, percentile

P99 = 99
FORENSIC_KEYS = frozenset({"i1", "i2", "j", "k", "l"})


def _p99(values: Sequence[float]) -> float:
    return percentile(values, P99)


def forensic_figures(runs: list[ForensicRun], entries: int) -> list[Figure]:
    if not runs:
        return []
    ledger = f"{entries:,}-entry ledger"
    rows: list[tuple[str, str, str, str, Callable[[Sequence[float]], float], float]] = [
        (
            "i1",
            f"search by customer/terminal/EPC, one page (50), {ledger}: median per search",
            "search_ms",
            "index range + its entries, raw",
            median,
            TARGET_SEARCH_MEDIAN_MS,
        ),
        (
            "i2",
            f"search by customer/terminal/EPC, one page (50), {ledger}: p99 per search",
            "search_ms",
            "index range + its entries, raw",
            _p99,
            TARGET_SEARCH_P99_MS,
        ),
        (
            "j",
            f"timeline of an entity with 500 events spread over the {ledger}",
            "timeline_ms",
            "index range, 500 entries, 500 events, raw",
            median,
            TARGET_TIMELINE_MS,
        ),
        (
            "k",
            "case bundle of 100 decisions by id written (built, verified, encoded, file)",
            "bundle_ms",
            "its entries by id, checkpoint, nodes, events: one raw query each",
            median,
            TARGET_BUNDLE_MS,
        ),
        (
            "l",
            "verify-bundle of that file (parse, signature, 100 inclusion proofs, events)",
            "verify_ms",
            "JSON parse + the SHA-256 hashes it needs, bare",
            median,
            TARGET_VERIFY_BUNDLE_MS,
        ),
    ]
    figures = []
    for key, name, attr, ceiling_name, stat, target in rows:
        values = [stat(getattr(run, attr)) for run in runs]
        ceilings = [stat(getattr(run, attr.replace("_ms", "_raw_ms"))) for run in runs]
        value, ceiling = median(values), median(ceilings)
        figures.append(
            Figure(
                key,
                name,
                "ms",
                value,
                values,
                ceiling,
                ceiling_name,
                "",
                ceiling / value,
                [Target(f"≤ {target:g} ms", value <= target)],
            )
        )
    return figures


def forensic_details(runs: list[ForensicRun], build_s: float | None) -> dict[str, Any]:
    """The per-run numbers behind the medians, for the JSON file."""
    return {
        "forensic_build_seconds": build_s,
        "forensic_runs": [
            {
                "search_median_ms": median(r.search_ms),
                "search_p99_ms": _p99(r.search_ms),
                "search_max_ms": max(r.search_ms),
                "search_raw_median_ms": median(r.search_raw_ms),
                "search_raw_p99_ms": _p99(r.search_raw_ms),
                "searches": len(r.search_ms),
                "search_hits_median": median(r.search_hits),
                "timeline_ms": r.timeline_ms,
                "timeline_raw_ms": r.timeline_raw_ms,
                "bundle_ms": r.bundle_ms,
                "bundle_raw_ms": r.bundle_raw_ms,
                "verify_ms": r.verify_ms,
                "verify_raw_ms": r.verify_raw_ms,
                "bundle_bytes": r.bundle_bytes,
                "bundle_nodes": r.bundle_nodes,
            }
            for r in runs
        ],
    }
