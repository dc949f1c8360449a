"""Prometheus metrics of `ledger run` (`attestream_ledger_<name>_<unit>`): the sequencer's
events (ledger/events.py) as counters and gauges, the age of each chain's latest checkpoint
computed at scrape time, and the decisions topic's consumer lag (streams/lag.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from attestream.observability import Readiness
from ledger.events import BatchOutcome, SequencerEvents
from streams.lag import lag_gauge

# The sequencer's families only: `ledger run` serves this registry, no other process does.
REGISTRY = CollectorRegistry()

ENTRIES = Counter(
    "attestream_ledger_entries_total", "Entries appended", ["chain"], registry=REGISTRY
)
DUPLICATES = Counter(
    "attestream_ledger_duplicates_total",
    "Decisions dropped as already logged",
    ["chain"],
    registry=REGISTRY,
)
CHECKPOINTS = Counter(
    "attestream_ledger_checkpoints_total",
    "Checkpoints signed (after each batch, and over the head when a chain is assigned)",
    ["chain"],
    registry=REGISTRY,
)
REJECTED = Counter(
    "attestream_ledger_rejected_total",
    "Records on the decisions topic dead-lettered: not decisions, or conflicting events (a"
    " logged decision id made from another event)",
    ["reason"],
    registry=REGISTRY,
)
TREE_SIZE = Gauge(
    "attestream_ledger_tree_size_entries", "Entries in each chain", ["chain"], registry=REGISTRY
)
BATCH_SECONDS = Histogram(
    "attestream_ledger_batch_duration_seconds",
    "From a consumed batch to its offsets committed (entries, nodes, checkpoint, commit)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
RESUMES = Counter(
    "attestream_ledger_resumes_total",
    "Chains rebuilt from the store on assignment",
    ["chain"],
    registry=REGISTRY,
)
RECOVERED = Counter(
    "attestream_ledger_recovered_entries_total",
    "Entries found durable without a checkpoint when a chain was assigned (a crash between"
    " steps 1 and 2), then checkpointed",
    ["chain"],
    registry=REGISTRY,
)
FENCED = Counter(
    "attestream_ledger_fenced_writers_total",
    "Batches not written because another writer had written the chain since",
    ["chain"],
    registry=REGISTRY,
)
COMMIT_FAILURES = Counter(
    "attestream_ledger_commit_failures_total",
    "Offset commits that failed (harmless: restarts resume from the log)",
    registry=REGISTRY,
)
SIGNING_REFUSED = Gauge(
    "attestream_ledger_signing_refused",
    "1 when the sequencer refused to sign a chain it cannot re-derive (kind: why); it then"
    ' exits (docs/operations.md, "The sequencer refuses to sign")',
    ["chain", "kind"],
    registry=REGISTRY,
)
ANCHOR_CLAIMS_UNAVAILABLE = Counter(
    "attestream_ledger_anchor_claims_unavailable_total",
    "Chain rebuilds checked without the newest anchor because the EVM JSON-RPC did not answer",
    registry=REGISTRY,
)
ARCHIVED = Counter(
    "attestream_ledger_events_archived_total",
    "Events whose exact bytes were archived with their decision's entry",
    ["chain"],
    registry=REGISTRY,
)
ARCHIVE_REFUSED = Counter(
    "attestream_ledger_archive_refused_total",
    "Event bytes not archived because they do not hash to their decision's event_sha256"
    " (the entry is logged; docs/operations.md)",
    ["chain"],
    registry=REGISTRY,
)

DECISION_TO_ENTRY = Histogram(
    "attestream_ledger_decision_to_entry_seconds",
    "From a decision's decided_at to its entry durable (the entries INSERT done)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
    registry=REGISTRY,
)
CONSUMER_LAG = lag_gauge("ledger", REGISTRY)


class CheckpointAge(Collector):
    """`attestream_ledger_checkpoint_age_seconds{chain}`: now minus when this process last
    signed a checkpoint of the chain, computed at every scrape, so it grows between
    checkpoints. Only chains this process writes: a chain moved to another writer leaves."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.signed_at: dict[int, float] = {}

    def signed(self, chain: int) -> None:
        self.signed_at[chain] = self.clock()

    def released(self, chain: int) -> None:
        self.signed_at.pop(chain, None)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "attestream_ledger_checkpoint_age_seconds",
            "Seconds since the latest checkpoint of the chain was signed",
            labels=["chain"],
        )
        now = self.clock()
        for chain, at in sorted(self.signed_at.items()):
            family.add_metric([str(chain)], max(now - at, 0.0))
        yield family


CHECKPOINT_AGE = CheckpointAge()
REGISTRY.register(CHECKPOINT_AGE)


class LedgerMetrics(SequencerEvents):
    """The sequencer's events as Prometheus metrics (the chain label: one per partition)."""

    def __init__(
        self,
        readiness: Readiness | None = None,
        checkpoint_age: CheckpointAge = CHECKPOINT_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.readiness = readiness
        self.checkpoint_age = checkpoint_age
        self.clock = clock

    def batch_logged(self, outcome: BatchOutcome) -> None:
        chain = str(outcome.chain)
        ENTRIES.labels(chain).inc(outcome.appended)
        DUPLICATES.labels(chain).inc(outcome.duplicates)

    def entries_durable(self, decided_at: Sequence[datetime]) -> None:
        now = self.clock()
        for at in decided_at:
            DECISION_TO_ENTRY.observe(max(now - at.timestamp(), 0.0))

    def batch_done(self, seconds: float) -> None:
        BATCH_SECONDS.observe(seconds)

    def checkpoint_signed(self, chain: int, size: int) -> None:
        CHECKPOINTS.labels(str(chain)).inc()
        TREE_SIZE.labels(str(chain)).set(size)
        self.checkpoint_age.signed(chain)

    def chain_released(self, chain: int) -> None:
        self.checkpoint_age.released(chain)

    def chain_resumed(self, chain: int, size: int, unsigned: int) -> None:
        RESUMES.labels(str(chain)).inc()
        RECOVERED.labels(str(chain)).inc(unsigned)
        TREE_SIZE.labels(str(chain)).set(size)

    def signing_refused(self, chain: int, kind: str) -> None:
        SIGNING_REFUSED.labels(str(chain), kind).set(1)

    def writer_fenced(self, chain: int) -> None:
        FENCED.labels(str(chain)).inc()

    def commit_failed(self) -> None:
        COMMIT_FAILURES.inc()

    def events_archived(self, chain: int, archived: int, refused: int) -> None:
        ARCHIVED.labels(str(chain)).inc(archived)
        ARCHIVE_REFUSED.labels(str(chain)).inc(refused)

    def dependency(self, name: str, reachable: bool) -> None:
        if self.readiness is not None:
            self.readiness(name, reachable)

    def session_started(self) -> None:
        if self.readiness is not None:
            self.readiness.started()
