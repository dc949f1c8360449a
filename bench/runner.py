"""One benchmark run: a stack, the pre-filled topic, every measurement, the figures."""

from __future__ import annotations

import contextlib
import gc
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attestream.stack import StackManager
from attestream.stack_services import Endpoints
from bench import forensic, forensic_ledger, pipeline, proofs, pure, stream
from bench.comparisons import (
    Comparisons,
    configured_stream_setup,
    measure_comparisons,
    measure_peer,
)
from bench.config import BenchConfig
from bench.decisions import decision_values, fill_topic
from bench.figures import Measurements, build_figures
from bench.forensic_figures import FORENSIC_KEYS
from bench.report import (
    FORENSIC_BLOCK,
    RESULTS_BLOCK,
    STREAM_BLOCK,
    Figure,
    machine,
    markdown_table,
    write_json,
    write_markdown,
)
from ledger.clickhouse import ClickHouseConnection


@dataclass(frozen=True)
class BenchResult:
    figures: list[Figure]
    json_path: Path
    table: str


@contextlib.contextmanager
def local_stack(endpoints: Endpoints | None) -> Iterator[Endpoints]:
    """The given stack, or a fresh one in a temporary home that is stopped and deleted after."""
    if endpoints is not None:
        yield endpoints
        return
    with tempfile.TemporaryDirectory(prefix="attestream-bench-") as home:
        manager = StackManager(Path(home))
        try:
            yield manager.up().endpoints
        finally:
            manager.down()


@contextlib.contextmanager
def forensic_stack(home: Path, endpoints: Endpoints | None) -> Iterator[Endpoints]:
    """The given stack, or the one in `home`, whose ClickHouse keeps the investigators'
    ledger between runs (started if needed and stopped after; its data stays)."""
    if endpoints is not None:
        yield endpoints
        return
    manager = StackManager(home)
    try:
        yield manager.up().endpoints
    finally:
        manager.down()


def run_benchmarks(
    config: BenchConfig, command: str, endpoints: Endpoints | None = None
) -> BenchResult:
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "runs": config.runs,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "machine": machine(),
    }
    if config.parts == ("stream",):
        meta["runs"] = config.stream_runs  # the stream figures' runs are all it measures
    measured = Measurements(sizes=_sizes(config))
    compared = Comparisons()
    if "ledger" in config.parts:
        with local_stack(endpoints) as ep:
            compared = measure(config, ep, measured)
            meta["clickhouse"] = _clickhouse_version(ep.clickhouse_url)
    if "stream" in config.parts:
        with local_stack(endpoints) as ep:
            _measure_stream(config, ep, measured)
            compared = measure_peer(config, ep)
            meta["clickhouse"] = _clickhouse_version(ep.clickhouse_url)
    if "forensic" in config.parts:
        with forensic_stack(config.forensic_home, endpoints) as ep:
            measure_forensic(config, ep, measured)
            meta["clickhouse"] = _clickhouse_version(ep.clickhouse_url)
    built = build_figures(measured)
    forensic_figures = [f for f in built if f.key in FORENSIC_KEYS]
    figures = [f for f in built if f not in forensic_figures] + compared.figures()
    figures += forensic_figures
    details = measured.details() | compared.details()
    json_path = write_json(config.results_dir, meta, figures, details)
    tables = []
    blocks = ((RESULTS_BLOCK, "ledger"), (STREAM_BLOCK, "stream"), (FORENSIC_BLOCK, "forensic"))
    for block, part in blocks:
        if part not in config.parts:
            continue
        shown = [f for f in figures if (f.key in FORENSIC_KEYS) == (part == "forensic")]
        table = markdown_table(meta, shown)
        tables.append(table)
        if config.doc_path is not None:
            write_markdown(config.doc_path, table, block)
    return BenchResult(figures, json_path, "\n".join(tables))


def _sizes(config: BenchConfig) -> dict[str, int]:
    return {
        "decisions": config.decisions,
        "batch_max": config.batch_max,
        "proofs": config.proofs,
        "tree_leaves": config.tree_leaves,
        "raw_hashes": config.raw_hashes,
        "pure_entries": config.pure_entries,
        "stream_runs": config.stream_runs,
        "stream_events": config.stream_events,
        "stream_batch_max": config.stream_batch_max,
        "forensic_entries": config.forensic_entries,
        "forensic_entities": config.forensic_entities,
        "forensic_repeats": config.forensic_repeats,
    }


def measure(config: BenchConfig, ep: Endpoints, measured: Measurements) -> Comparisons:
    """The ledger and stream figures (a-h), then the comparisons (p, s, t)."""
    topic = f"bench-decisions-{uuid.uuid4().hex[:10]}"
    fill_topic(ep.kafka_bootstrap, topic, decision_values(config.decisions, config.seed))
    args = (ep.kafka_bootstrap, ep.clickhouse_url, topic, config.decisions, config.batch_max)
    for run in range(config.runs):
        # Raw and ledger runs alternate, so that a busy moment slows both, not one.
        gc.collect()
        measured.raw.append(pipeline.run_raw(*args))
        gc.collect()
        ledger, store = pipeline.run_ledger(*args)
        measured.ledger.append(ledger)
        try:
            measured.proofs.append(proofs.time_proofs(store, config.proofs, config.seed + run))
        finally:
            store.drop_database()
            store.close()
    _measure_pure(config, measured)
    _measure_stream(config, ep, measured)
    return measure_comparisons(config, ep, topic)


def measure_forensic(config: BenchConfig, ep: Endpoints, measured: Measurements) -> None:
    """The investigators' figures (i-l) on the forensic ledger, built first if needed."""
    ledger = forensic_ledger.build(
        ep.kafka_bootstrap, ep.clickhouse_url, config.forensic_entries, config.seed
    )
    measured.forensic_build_s = ledger.built_s
    for run in range(config.runs):
        entities = forensic.sample_entities(ledger, config.seed + run, config.forensic_entities)
        gc.collect()
        measured.forensic.append(
            forensic.measure_forensics(ledger, entities, config.forensic_repeats)
        )


def _measure_pure(config: BenchConfig, measured: Measurements) -> None:
    leaves = pure.leaf_hashes(config.tree_leaves)
    for _ in range(config.runs):
        gc.collect()
        measured.tree_s.append(pure.time_tree(leaves))
        measured.raw_hash_s.append(pure.time_raw_hashes(config.raw_hashes))
    del leaves
    values = list(decision_values(config.pure_entries, config.seed))
    for _ in range(config.runs):
        gc.collect()
        measured.entry_costs.append(pure.time_entry_costs(values, config.batch_max))


def _measure_stream(config: BenchConfig, ep: Endpoints, measured: Measurements) -> None:
    """(f, g, h): a fraud model trained for the run, then workers over fresh topics."""
    with configured_stream_setup(config, ep) as setup:
        for run in range(config.stream_runs):
            gc.collect()
            runs = stream.measure_stream(setup, run)
            measured.stream_count.append(runs.count)
            measured.stream_decide.append(runs.decide)
            measured.stream_latency.append(runs.latency)
            measured.stream_kafka.append(runs.kafka)
            measured.stream_kafka_latency.append(runs.kafka_latency)
            measured.stream_relay_latency.append(runs.relay)


def _clickhouse_version(url: str) -> str:
    store = ClickHouseConnection(url)
    try:
        return store.server_version()
    finally:
        store.close()
