"""What a benchmark run measures, how much of it, and the targets it is held to."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attestream.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DOC_PATH = REPO / "docs" / "benchmarks.md"
FORENSIC_HOME = REPO / ".attestream" / "bench-forensic"

# Targets (docs/benchmarks.md explains each).
TARGET_LEDGER_RATE = 100_000.0
"""Entries per second made durable by one sequencer, sustained."""
TARGET_LEDGER_RATIO = 0.5
"""The ledger against the raw consume-and-insert pipeline over the same topic."""
TARGET_PROOF_MS = 5.0
"""One inclusion proof read from ClickHouse, median and 99th percentile."""
TARGET_STREAM_RATIO = 0.7
"""One detect worker's decisions per second against the same worker's raw consume rate."""
TARGET_TREE_RATE = 10 * TARGET_LEDGER_RATE
"""Leaves per second appended to the in-memory tree: ten times the ledger's target rate, so
the tree is never what limits the ledger (it then costs at most a tenth of an entry's time)."""
TARGET_SEARCH_MEDIAN_MS = 50.0
TARGET_SEARCH_P99_MS = 200.0
"""One page of an entity search (i), median and 99th percentile over many entities."""
TARGET_TIMELINE_MS = 100.0
"""The timeline of an entity with 500 events (j)."""
TARGET_BUNDLE_MS = 1000.0
"""A 100-decision case bundle written (k)."""
TARGET_VERIFY_BUNDLE_MS = 200.0
"""`verify-bundle` of that bundle (l)."""

PARTS = ("ledger", "forensic", "stream")
"""What `--only` may name: the ledger and stream figures (a-h, p-t), the investigators'
(i-l), the stream figures alone (f-h, q, p)."""
DEFAULT_PARTS = ("ledger", "forensic")
"""A run without `--only` (the stream figures are part of the ledger's)."""


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run. `FULL` is `make bench` (under ~8 minutes on 2 cores);
    `QUICK` is a smoke test of the harness, whose figures mean nothing."""

    runs: int = 5
    decisions: int = 200_000
    """Decisions pre-filled into the (one-partition) decisions topic, read by every run."""
    batch_max: int = Settings.model_fields["ledger_batch_max"].default
    """Records per consume call, in the ledger and the raw pipeline alike: the production
    default (`ATTESTREAM_LEDGER_BATCH_MAX`)."""
    proofs: int = 500
    """Inclusion proofs per run, of leaves drawn at random from the ledger's chain."""
    tree_leaves: int = 1_000_000
    raw_hashes: int = 2_000_000
    pure_entries: int = 50_000
    """Decisions decoded and appended in memory for the per-entry cost breakdown."""
    stream_runs: int = 3
    """Runs of the stream figures (f, g, h): each starts two faust workers, whose group join
    alone takes ~7 s on the local broker."""
    stream_events: int = 40_000
    """Payments pre-filled into each stream run's topic."""
    stream_latency_s: float = 10.0
    """How long payments are sent at half the measured rate for the latency figures."""
    stream_batch_max: int = Settings.model_fields["detect_batch_max"].default
    stream_batch_within_s: float = Settings.model_fields["detect_batch_within_s"].default
    """The micro-batch of `attestream detect` (ATTESTREAM_DETECT_BATCH_MAX, ..._WITHIN_S)."""
    stream_fetch_max_wait_ms: int = Settings.model_fields["detect_fetch_max_wait_ms"].default
    """The consumer's fetch wait of `attestream detect` (ATTESTREAM_DETECT_FETCH_MAX_WAIT_MS)."""
    stream_training: int = 30_000
    """Payments the benchmark's fraud model is trained on."""
    forensic_entries: int = 2_000_000
    """Entries of the investigators' ledger (i-l), built once and kept (forensic_home)."""
    forensic_entities: int = 300
    """Entities searched per run (i), customers, terminals and EPCs in equal parts."""
    forensic_repeats: int = 3
    """Timelines of each chosen entity (j), bundles written and verified (k, l), per run."""
    forensic_home: Path = FORENSIC_HOME
    """The stack home whose ClickHouse keeps the investigators' ledger between runs."""
    parts: tuple[str, ...] = DEFAULT_PARTS
    seed: int = 20_250_303
    results_dir: Path = RESULTS_DIR
    doc_path: Path | None = DOC_PATH
    """Where the markdown table goes; None writes no document (the smoke test)."""
    quick: bool = False

    def replace(self, **changes: Any) -> BenchConfig:
        return dataclasses.replace(self, **changes)


FULL = BenchConfig()
QUICK = BenchConfig(
    runs=1,
    decisions=3000,
    batch_max=1000,
    proofs=20,
    tree_leaves=10_000,
    raw_hashes=20_000,
    pure_entries=2000,
    stream_runs=1,
    stream_events=2000,
    stream_latency_s=2.0,
    stream_training=6000,
    forensic_entries=5000,
    forensic_entities=30,
    forensic_repeats=1,
    quick=True,
)
