"""`attestream detect` supervises its faust worker: outages, broker resets and crashes.

The worker (`attestream detect --worker-port N`, a child process) owns faust's event loop.
The supervisor around it is a plain loop that:
  1. waits until the broker answers (one log line per backoff step, `dependency_up` 0);
  2. creates the topics that are missing, with the configured partition count (after a broker
     reset nothing else may create them: producers never do);
  3. starts the worker and watches it, the broker and its cluster id;
  4. stops the worker (SIGTERM, then SIGKILL after a grace period) when the broker goes away
     (aiokafka would otherwise log dozens of errors a second and take a minute to stop), when
     the cluster id changes (a reset broker: the worker restarts with empty tables, rebuilt
     from the new, empty changelogs, instead of crash-looping on `PartitionsMismatch` or
     `ConsistencyError`), on SIGTERM, or when it exits on its own (a crash: restarted with
     backoff, counted in `attestream_detect_worker_restarts_total`).
A worker stopped at any point loses nothing: faust commits input offsets only after the
decisions are flushed, so the next worker re-decides what was not committed, and the ledger
drops re-sent decisions by id. docs/operations.md, "Outages" and "Broker reset".

The supervisor serves the process's metrics port: its own readiness and supervision families
and, re-exported, the worker's `attestream_detect_*` families (scraped from the worker's
loopback-only port).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from attestcore import processes
from attestcore.backoff import Outage, backoff_delay, wait
from attestcore.errors import ServiceUnavailableError
from attestream.observability import Readiness
from attestream.settings import Settings
from streams.topics import cluster_id, ensure_topics, partition_counts

log = logging.getLogger("attestream.detect")

# How often the supervisor checks the worker and the broker's cluster id: a reset or an
# outage is acted on within this, and one metadata request per interval costs the broker
# nothing.
WATCH_INTERVAL_S = 1.0
# A broker that does not answer metadata within this is treated as down.
BROKER_PROBE_TIMEOUT_S = 2.0
# A worker asked to stop flushes its decisions and commits its offsets within a few seconds;
# after this it is killed (which loses nothing, see the module doc), so that SIGTERM ends
# the whole process within the 10 s an orchestrator's grace period usually allows.
WORKER_STOP_GRACE_S = 7.0
# After SIGKILL the kernel reaps the worker at once; this only bounds a stuck one.
WORKER_KILL_WAIT_S = 2.0
# A worker that ran this long was not crash-looping: its next exit backs off from the start.
HEALTHY_RUN_S = 60.0
# Scraping the worker's metrics (loopback, from memory) answers in milliseconds.
WORKER_SCRAPE_TIMEOUT_S = 2.0


@dataclass
class SupervisorMetrics:
    restarts: Counter
    resets: Counter

    @classmethod
    def on(cls, registry: CollectorRegistry) -> SupervisorMetrics:
        return cls(
            Counter(
                "attestream_detect_worker_restarts_total",
                "Detection workers that exited on their own and were started again",
                registry=registry,
            ),
            Counter(
                "attestream_detect_broker_resets_total",
                "Broker resets (a new cluster id) after which the topics were recreated"
                " and the worker restarted with empty tables",
                registry=registry,
            ),
        )


class WorkerFamilies(Collector):
    """The worker's own families, re-exported on the supervisor's metrics port."""

    def __init__(self) -> None:
        self.url = ""

    def collect(self) -> Iterator[Metric]:
        if not self.url:
            return
        try:
            with urllib.request.urlopen(self.url, timeout=WORKER_SCRAPE_TIMEOUT_S) as resp:
                text = resp.read().decode("utf-8", errors="replace")
        except OSError:
            return  # the worker is starting or stopping: its families are absent meanwhile
        yield from text_string_to_metric_families(text)


class DetectSupervisor:
    def __init__(
        self,
        settings: Settings,
        readiness: Readiness,
        metrics: SupervisorMetrics,
        worker_families: WorkerFamilies,
        worker_command: Callable[[int], list[str]],
        free_port: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.bootstrap = settings.require_kafka()
        self.readiness = readiness
        self.metrics = metrics
        self.families = worker_families
        self.worker_command = worker_command
        self.free_port = free_port
        self.outage = Outage(log, readiness)
        self.stopping = False
        self.cluster = ""
        self.crashes = 0

    def stop(self) -> None:
        self.stopping = True

    def run(self) -> None:
        """Steps 1-4 of the module doc, until `stop`."""
        while not self.stopping:
            try:
                current = broker_cluster_id(self.bootstrap)  # step 1
                if self.cluster and current != self.cluster:
                    self.metrics.resets.inc()
                    log.warning(
                        "the broker was reset (cluster id %r, was %r): recreating the"
                        " topics and restarting the worker with empty tables",
                        current,
                        self.cluster,
                    )
                self._ensure_topics()  # step 2
            except ServiceUnavailableError as exc:
                self.outage.wait_after(exc.service, str(exc), lambda: self.stopping)
                continue
            self.outage.recovered()
            self.cluster = current
            ended = self._run_worker()  # steps 3 and 4
            if ended == "exited":
                self.crashes += 1
                self.metrics.restarts.inc()
                delay = backoff_delay(self.crashes)
                log.error(
                    "the detection worker exited on its own (%d time(s) in a row);"
                    " restarting it in %.1f s",
                    self.crashes,
                    delay,
                )
                wait(delay, lambda: self.stopping)
        log.info("stopped")

    def _ensure_topics(self) -> None:
        """Create the missing topics; name any that another client created with a partition
        count the worker's tables cannot use (it would stop on `PartitionsMismatch`)."""
        topics, wanted = self.settings.all_topics(), self.settings.topic_partitions
        ensure_topics(self.bootstrap, topics, wanted)
        for name, count in partition_counts(self.bootstrap, topics).items():
            if count != wanted:
                log.error(
                    "topic %r has %d partition(s), the worker expects %d"
                    " (ATTESTREAM_TOPIC_PARTITIONS): a client created it by writing to it"
                    " after a broker reset; delete it (its records are lost) or set the"
                    " partition count to match",
                    name,
                    count,
                    wanted,
                )

    def _run_worker(self) -> str:
        port = self.free_port()
        # Output inherited: the worker logs where the supervisor does. The worker itself asks
        # the kernel to stop it with the supervisor (`stop_with_supervisor`).
        child = processes.start(self.worker_command(port))
        log.info("detection worker started (pid %d, cluster %s)", child.pid, self.cluster)
        self.families.url = f"http://127.0.0.1:{port}/metrics"
        started = time.monotonic()
        try:
            ended = self._watch(child)
        finally:
            self.families.url = ""
            self.readiness.stopped()
            _stop(child)
        if time.monotonic() - started > HEALTHY_RUN_S:
            self.crashes = 0  # it ran well for a while: a crash now starts a new series
        return ended

    def _watch(self, child: processes.Child) -> str:
        """Why the worker must stop: "stop", "exited", "broker" (down) or "reset"."""
        while True:
            wait(WATCH_INTERVAL_S, lambda: self.stopping)
            if self.stopping:
                log.info("stop requested: stopping the detection worker (pid %d)", child.pid)
                return "stop"
            if child.poll() is not None:
                log.warning(
                    "the detection worker (pid %d) exited with code %s", child.pid, child.returncode
                )
                return "exited"
            try:
                current = broker_cluster_id(self.bootstrap)
            except ServiceUnavailableError as exc:
                self.outage.failed(exc.service, str(exc))
                log.warning("stopping the detection worker until the broker is back")
                return "broker"
            if current != self.cluster:
                return "reset"
            self.readiness.started()


def broker_cluster_id(bootstrap: str) -> str:
    """The broker's cluster id. A TCP connect comes first: librdkafka would print every
    refused connection to stderr, once a second while the broker is down."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=BROKER_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ServiceUnavailableError("Kafka", bootstrap, f"connect: {exc}") from exc
    return cluster_id(bootstrap, BROKER_PROBE_TIMEOUT_S)


def _stop(child: processes.Child) -> None:
    """SIGTERM, then SIGKILL after the grace period."""

    def killing(child: processes.Child) -> None:
        log.warning(
            "the detection worker (pid %d) did not stop within %.0f s; killing it",
            child.pid,
            WORKER_STOP_GRACE_S,
        )

    if processes.stop(child, WORKER_STOP_GRACE_S, WORKER_KILL_WAIT_S, on_kill=killing) is None:
        log.error("the detection worker (pid %d) outlived SIGKILL", child.pid)


def worker_command(port: int, verbose: bool = False) -> list[str]:
    """This same CLI in worker mode, with the same environment (settings) as the supervisor,
    which it names so that it stops when the supervisor is gone (`stop_with_supervisor`)."""
    command = [
        sys.executable,
        "-m",
        "attestream.cli",
        "detect",
        "--worker-port",
        str(port),
        "--supervisor-pid",
        str(os.getpid()),
    ]
    return [*command, "--verbose"] if verbose else command


# prctl(2) option: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1


def stop_with_supervisor(supervisor_pid: int) -> None:
    """Called first in the worker: ask Linux for a SIGTERM (the worker's clean shutdown) when
    the supervisor dies, however it dies (SIGKILL, OOM), so that no worker is left deciding
    unsupervised. A supervisor already gone before the request was made is stopped for at
    once. Elsewhere than on Linux the worker outlives a killed supervisor."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor_pid:
        log.warning("the supervisor (pid %d) is gone: the worker stops", supervisor_pid)
        os.kill(os.getpid(), signal.SIGTERM)
