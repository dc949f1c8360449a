"""From the raw measurements of every run to the figures of the report (medians over runs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.config import TARGET_LEDGER_RATE, TARGET_LEDGER_RATIO, TARGET_PROOF_MS, TARGET_TREE_RATE
from bench.forensic import ForensicRun
from bench.forensic_figures import forensic_details, forensic_figures
from bench.pipeline import PipelineRun
from bench.proofs import ProofTimes
from bench.pure import EntryCosts
from bench.report import Figure, Target, median, percentile
from bench.stream import LatencyRun, StreamRun
from bench.stream_figures import kafka_details, kafka_figures, stream_details, stream_figures

P99 = 99


@dataclass
class Measurements:
    """Everything measured, run by run."""

    ledger: list[PipelineRun] = field(default_factory=list)
    raw: list[PipelineRun] = field(default_factory=list)
    proofs: list[ProofTimes] = field(default_factory=list)
    tree_s: list[float] = field(default_factory=list)
    raw_hash_s: list[float] = field(default_factory=list)
    entry_costs: list[EntryCosts] = field(default_factory=list)
    stream_count: list[StreamRun] = field(default_factory=list)
    stream_decide: list[StreamRun] = field(default_factory=list)
    stream_latency: list[LatencyRun] = field(default_factory=list)
    stream_kafka: list[StreamRun] = field(default_factory=list)
    stream_kafka_latency: list[LatencyRun] = field(default_factory=list)
    stream_relay_latency: list[LatencyRun] = field(default_factory=list)
    forensic: list[ForensicRun] = field(default_factory=list)
    forensic_build_s: float | None = None
    """Seconds spent building the investigators' ledger (None: reused as it was)."""
    sizes: dict[str, int] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        """The per-run numbers behind the medians, for the JSON file."""
        return {
            "sizes": self.sizes,
            "ledger_runs": [asdict(r) | {"rate": r.rate} for r in self.ledger],
            "raw_runs": [asdict(r) | {"rate": r.rate} for r in self.raw],
            "proof_runs_ms": [
                {
                    "median": median(p.proof_ms),
                    "p99": percentile(p.proof_ms, P99),
                    "max": max(p.proof_ms),
                    "single_read_median": median(p.single_read_ms),
                    "merges_settled_after_s": p.settle_s,
                }
                for p in self.proofs
            ],
            "tree_seconds": self.tree_s,
            "raw_hash_seconds": self.raw_hash_s,
            "entry_costs_us": [asdict(c) | {"total_us": c.total_us} for c in self.entry_costs],
            **stream_details(self.stream_count, self.stream_decide, self.stream_latency),
            **kafka_details(
                self.stream_kafka, self.stream_kafka_latency, self.stream_relay_latency
            ),
            **forensic_details(self.forensic, self.forensic_build_s),
        }


def build_figures(m: Measurements) -> list[Figure]:
    """The figures of the parts measured: a-h (the ledger and the stream), i-l (the
    investigators' tools)."""
    figures = []
    if m.ledger:
        figures += [
            *_pipeline_figures(m),
            *_proof_figures(m),
            _tree_figure(m),
            *_entry_figures(m),
        ]
    if m.stream_decide:
        figures += stream_figures(m.stream_count, m.stream_decide, m.stream_latency)
    if m.stream_kafka:
        figures += kafka_figures(
            m.stream_count, m.stream_kafka, m.stream_kafka_latency, m.stream_relay_latency
        )
    return figures + forensic_figures(m.forensic, m.sizes.get("forensic_entries", 0))


def _pipeline_figures(m: Measurements) -> list[Figure]:
    ledger = [r.rate for r in m.ledger]
    raw = [r.rate for r in m.raw]
    value, ceiling = median(ledger), median(raw)
    ratio = value / ceiling
    return [
        Figure(
            "a",
            "ledger throughput: decisions made durable (entries, nodes, signed checkpoint,"
            " offsets committed)",
            "entries/s",
            value,
            ledger,
            ceiling,
            "b",
            "",
            ratio,
            [
                Target(f"≥ {TARGET_LEDGER_RATE:,.0f} entries/s", value >= TARGET_LEDGER_RATE),
                Target(f"ratio ≥ {TARGET_LEDGER_RATIO}", ratio >= TARGET_LEDGER_RATIO),
            ],
        ),
        Figure(
            "b", "raw ceiling: consume, insert columns + bytes, commit", "entries/s", ceiling, raw
        ),
    ]


def _proof_figures(m: Measurements) -> list[Figure]:
    figures = []
    for key, what, stat in (("c1", "median", median), ("c2", "p99", _p99)):
        values = [stat(p.proof_ms) for p in m.proofs]
        ceilings = [stat(p.single_read_ms) for p in m.proofs]
        value, ceiling = median(values), median(ceilings)
        figures.append(
            Figure(
                key,
                f"inclusion proof from ClickHouse, {what} per proof",
                "ms",
                value,
                values,
                ceiling,
                "one node read by key",
                "",
                ceiling / value,
                [Target(f"< {TARGET_PROOF_MS:g} ms", value < TARGET_PROOF_MS)],
            )
        )
    return figures


def _p99(values: list[float]) -> float:
    return percentile(values, P99)


def _tree_figure(m: Measurements) -> Figure:
    leaves, hashes = m.sizes["tree_leaves"], m.sizes["raw_hashes"]
    rates = [leaves / s for s in m.tree_s]
    raw = [hashes / s for s in m.raw_hash_s]
    value, ceiling = median(rates), median(raw)
    ratio = value / ceiling
    return Figure(
        "d",
        f"tree append in memory, {leaves:,} leaves",
        "leaves/s",
        value,
        rates,
        ceiling,
        "raw SHA-256 of 65-byte inputs",
        "hashes/s",
        ratio,
        [Target(f"≥ {TARGET_TREE_RATE:,.0f} leaves/s", value >= TARGET_TREE_RATE)],
    )


def _entry_figures(m: Measurements) -> list[Figure]:
    costs = m.entry_costs
    rows = [
        ("e1", "per entry: decode + validate the decision", [c.decode_us for c in costs]),
        (
            "e2",
            "per entry: ChainWriter.append (encode, leaf hash, columns, tree)",
            [c.append_us for c in costs],
        ),
        ("e3", "  of which the leaf hash", [c.leaf_hash_us for c in costs]),
        ("e4", "  of which the tree", [c.tree_us for c in costs]),
    ]
    figures = [Figure(key, name, "µs", median(values), values) for key, name, values in rows]
    totals = [c.total_us for c in costs]
    hashing = median([c.leaf_hash_us for c in costs])
    total = median(totals)
    figures.append(
        Figure(
            "e",
            "per entry: pure-Python total (e1 + e2), no I/O",
            "µs",
            total,
            totals,
            hashing,
            "the leaf hash alone",
            "",
            hashing / total,
        )
    )
    return figures
