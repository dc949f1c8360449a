"""Figures, their summary across runs, and the JSON and markdown they are written as."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_BLOCK = "results"
"""The block of the ledger and stream figures (a-h) in docs/benchmarks.md."""
FORENSIC_BLOCK = "forensic"
"""The block of the investigators' figures (i-l)."""
STREAM_BLOCK = "stream"
"""The block of the stream figures alone (f-h, q, p), `--only stream`."""
_HEADINGS = {
    RESULTS_BLOCK: "Results",
    FORENSIC_BLOCK: "Results for investigators",
    STREAM_BLOCK: "Results of the stream alone",
}


@dataclass(frozen=True)
class Target:
    """One bound a figure is held to, and whether this run met it."""

    text: str
    met: bool


@dataclass(frozen=True)
class Figure:
    """One measured figure: the median over runs of `runs`, against a raw ceiling.

    `ratio` is how close the figure comes to its ceiling (1.0 = as fast as the raw way):
    value / ceiling for rates, ceiling / value for latencies.
    """

    key: str
    name: str
    unit: str
    value: float
    runs: list[float]
    ceiling: float | None = None
    ceiling_name: str = ""
    ceiling_unit: str = ""
    """When not the figure's own unit."""
    ratio: float | None = None
    targets: list[Target] = field(default_factory=list)

    @property
    def met(self) -> bool | None:
        return all(t.met for t in self.targets) if self.targets else None


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a measured sample)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return float(ordered[int(rank) - 1])


def machine() -> dict[str, Any]:
    """What the figures were measured on; the load average shows how busy it was."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "loadavg_at_start": list(os.getloadavg()),
    }


def write_json(
    results_dir: Path, meta: dict[str, Any], figures: list[Figure], extra: dict[str, Any]
) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir / f"{stamp}.json"
    figures_json = [dict(asdict(f), met=f.met) for f in figures]
    document = {"meta": meta, "figures": figures_json, "details": extra}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def markdown_table(meta: dict[str, Any], figures: list[Figure]) -> str:
    m = meta["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_at_start"])
    lines = [
        f"Measured {meta['date']} with `{meta['command']}` ({meta['runs']} runs, medians):"
        f" {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, ClickHouse"
        f" {meta['clickhouse']}, {m['system']}; load average at start {load}.",
        "",
        "| figure | value | raw ceiling | ratio | target | met? |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        unit = f.ceiling_unit or f.unit
        ceiling = f"{_number(f.ceiling, unit)} ({f.ceiling_name})" if f.ceiling else "—"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
        target = "; ".join(t.text for t in f.targets) or "—"
        met = "; ".join("yes" if t.met else "**no**" for t in f.targets) or "—"
        lines.append(
            f"| {f.key}. {f.name} | {_number(f.value, f.unit)} | {ceiling} | {ratio} | {target}"
            f" | {met} |"
        )
    return "\n".join(lines) + "\n"


def write_markdown(doc_path: Path, table: str, name: str = RESULTS_BLOCK) -> None:
    """Replace the block `name` (`<!-- bench:NAME:start -->` to its end) of `doc_path`,
    keeping the prose around it; a missing block is added at the end under a heading."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    block = f"{start}\n{table}{end}"
    section = f"## {_HEADINGS.get(name, name)}\n\n{block}\n"
    if doc_path.exists():
        text = doc_path.read_text(encoding="utf-8")
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        text = "# Benchmarks\n\n" + section
    doc_path.write_text(text, encoding="utf-8")
