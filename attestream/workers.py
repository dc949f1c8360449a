"""The long-running processes (`detect`, `ledger run`, `anchor run`) started on a stack home.

Each records itself in `<home>/workers/<process>-<pid>.json` (pid, start time, metrics
endpoint) while it runs, so `attestream stack status` can report it: alive or not, and
whether its `attestream_<process>_ready` gauge says it works. A worker that crash-loops or
waits for a dependency is then visibly unhealthy, not hidden behind healthy services.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from attestcore import processes
from attestream import stack_prometheus

WORKERS_DIR = "workers"
# A worker's metrics answer from memory in milliseconds; 2 s means it is stuck.
SCRAPE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class WorkerRecord:
    process: str
    pid: int
    start_ticks: int | None
    metrics_url: str
    """Empty when the process serves no metrics (port 0)."""
    started_at: str


@dataclass(frozen=True)
class WorkerStatus:
    process: str
    pid: int
    alive: bool
    healthy: bool
    detail: str


@contextlib.contextmanager
def registered(home: Path, process: str, host: str, port: int) -> Iterator[WorkerRecord]:
    """Record this process under `home` while the block runs, and publish its metrics
    endpoint (if any) as a scrape target of the stack's Prometheus (attestream.stack_prometheus)."""
    pid = os.getpid()
    record = WorkerRecord(
        process,
        pid,
        processes.start_ticks(pid),
        f"http://{host}:{port}/metrics" if port else "",
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = Path(home) / WORKERS_DIR / f"{process}-{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(record)) + "\n", encoding="utf-8")
    target = stack_prometheus.publish_target(home, process, pid, host, port) if port else None
    try:
        yield record
    except BaseException as exc:
        # A crash keeps the scrape target, so Prometheus sees the process down (`up` 0);
        # a clean stop (SIGTERM, Ctrl-C, exit 0) removes it like the record.
        if target is not None and _clean_exit(exc):
            target.unlink(missing_ok=True)
        raise
    else:
        if target is not None:
            target.unlink(missing_ok=True)
    finally:
        path.unlink(missing_ok=True)


def _clean_exit(exc: BaseException) -> bool:
    if isinstance(exc, KeyboardInterrupt):
        return True
    return isinstance(exc, SystemExit) and exc.code in (None, 0)


def worker_statuses(home: Path) -> list[WorkerStatus]:
    """Every recorded worker; records of processes that are gone are reported, then removed
    (a worker killed with SIGKILL could not remove its own)."""
    statuses = []
    for path in sorted((Path(home) / WORKERS_DIR).glob("*.json")):
        try:
            record = WorkerRecord(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if not processes.is_running(record.pid, record.start_ticks):
            path.unlink(missing_ok=True)
            statuses.append(WorkerStatus(record.process, record.pid, False, False, "exited"))
            continue
        problem = readiness_problem(record)
        statuses.append(
            WorkerStatus(record.process, record.pid, True, problem is None, problem or "ready")
        )
    return statuses


def readiness_problem(record: WorkerRecord) -> str | None:
    """None when the worker's ready gauge is 1, otherwise what is wrong."""
    if not record.metrics_url:
        return None  # no endpoint: liveness is all there is to know
    try:
        with urllib.request.urlopen(record.metrics_url, timeout=SCRAPE_TIMEOUT_S) as resp:
            text = resp.read().decode("utf-8", errors="replace")
    except (OSError, urllib.error.URLError) as exc:
        return f"metrics: {exc}"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    if samples.get((f"attestream_{record.process}_ready", ())) == 1:
        return None
    down = [
        dict(labels)["dependency"]
        for (name, labels), value in samples.items()
        if name == f"attestream_{record.process}_dependency_up" and value == 0
    ]
    restarts = samples.get((f"attestream_{record.process}_worker_restarts_total", ()), 0)
    parts = ["not ready"] + [f"waiting for {d}" for d in down]
    if restarts:
        parts.append(f"{restarts:.0f} worker restart(s)")
    return ", ".join(parts)
