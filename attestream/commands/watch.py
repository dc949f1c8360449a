"""`attestream forensic watch`: the continuous verifier (forensics/watch.py) as a process.

Every --interval it runs one pass and publishes what it verified; a failure is logged and
counted, and the watch goes on (it is a monitor: the next pass checks again). ClickHouse or
the JSON-RPC endpoint unreachable is waited out with the backoff every long-running process
uses, and shown by its readiness gauges; so is a database without a ledger yet (the watch
started before the first `ledger run` created it). SIGTERM or SIGINT ends it after the pass
in hand. With --once: one pass, exit 0 when everything new verified, 1 on a failure, 3 when a
service could not be reached (README, "Exit codes").
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import typer
from prometheus_client import CollectorRegistry, Counter, Gauge

from anchoring.rpc import connect
from attestcore.backoff import Outage, backoff_delay, keep_trying, wait
from attestcore.errors import LedgerAbsentError, ServiceUnavailableError
from attestream.observability import Readiness, process_registry, serve_metrics, setup_logging
from attestream.settings import Settings, load_settings
from attestream.wiring import open_store, trusted_verifiers
from attestream.workers import registered
from forensics.report import FaultKind
from forensics.watch import DEFAULT_RECHECK, LedgerWatch, PassResult
from ledger.keys import NoteVerifier, parse_verifier_key

log = logging.getLogger("attestream.watch")

# A pass over a quiet ledger is a few queries; every 30 s keeps a tamper's detection within a
# minute at no cost worth mentioning.
DEFAULT_INTERVAL_S = 30.0


class WatchMetrics:
    """`attestream_watch_*`: the watch's own families, in its own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.last_success = Gauge(
            "attestream_watch_last_success_timestamp_seconds",
            "When the latest pass that found nothing wrong ended (Unix time)",
            registry=registry,
        )
        self.verified_size = Gauge(
            "attestream_watch_verified_tree_size_entries",
            "Entries of each chain verified so far (the size of its latest verified checkpoint)",
            ["chain"],
            registry=registry,
        )
        self.failures = Counter(
            "attestream_watch_failures",
            "Verification failures found, by kind (docs/ledger-format.md, Verification); a fault"
            " left in place is counted again on every pass",
            ["kind"],
            registry=registry,
        )
        for kind in FaultKind:
            self.failures.labels(kind.value)

    def publish(self, watch: LedgerWatch, result: PassResult) -> None:
        for chain, size in watch.verified_sizes().items():
            self.verified_size.labels(str(chain)).set(size)
        for failure in result.failures:
            self.failures.labels(failure.kind.value).inc()
        if result.ok:
            self.last_success.set(time.time())


def watch(
    interval: float = typer.Option(
        DEFAULT_INTERVAL_S,
        "--interval",
        min=0.1,
        envvar="ATTESTREAM_WATCH_INTERVAL_S",
        help="Seconds between two passes.",
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        envvar="ATTESTREAM_WATCH_METRICS_PORT",
        help="Serve the watch's metrics on this port (default 9468; 0: no endpoint).",
    ),
    keys: list[str] | None = typer.Option(
        None,
        "--key",
        envvar="ATTESTREAM_WATCH_KEYS",
        help="A verifier key to trust (repeatable; default: ATTESTREAM_TRUSTED_KEYS and the"
        " local ledger key, as `forensic verify`).",
    ),
    once: bool = typer.Option(
        False, "--once", help="One pass, then exit: 0 verified, 1 a failure, 3 unreachable."
    ),
    offline: bool = typer.Option(
        False,
        envvar="ATTESTREAM_WATCH_OFFLINE",
        help="Check anchors against the store only (no EVM chain look-ups).",
    ),
    recheck: int = typer.Option(
        DEFAULT_RECHECK,
        "--recheck",
        min=0,
        envvar="ATTESTREAM_WATCH_RECHECK",
        help="Verified entries of each chain read again per pass, to find rewritten ones.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Verify new entries, checkpoints (signature and consistency proof) and final anchors as
    they arrive, the access chain too, in work proportional to what is new."""
    setup_logging(verbose)
    settings = load_settings()
    verifiers = _verifiers(settings, keys or [])
    store = open_store(settings)  # only reads; connects on the first query
    try:
        if once:
            ledger_watch = LedgerWatch(store, verifiers, recheck=recheck)
            _connect_chain(ledger_watch, settings, offline)
            result = ledger_watch.run_pass()
            _log_pass(ledger_watch, result)
            verdict = "VERIFIED" if result.ok else "FAILED"
            typer.echo(f"{verdict}: {_summary(ledger_watch, result)}")
            raise typer.Exit(0 if result.ok else 1)
        ledger_watch = LedgerWatch(store, verifiers, recheck=recheck)
        _run(settings, ledger_watch, interval, offline, metrics_port)
    finally:
        store.close()


def _run(
    settings: Settings,
    ledger_watch: LedgerWatch,
    interval: float,
    offline: bool,
    metrics_port: int | None,
) -> None:
    """Passes every `interval` until SIGTERM or SIGINT (the module doc)."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    registry = process_registry()
    metrics = WatchMetrics(registry)
    readiness = Readiness("watch", ("clickhouse",) if offline else ("clickhouse", "rpc"), registry)
    outage = Outage(log, readiness)
    port = settings.watch_metrics_port if metrics_port is None else metrics_port
    port = serve_metrics(settings.metrics_host, port, registry)
    with registered(settings.home, "watch", settings.metrics_host, port):
        # The EVM endpoint may be down at start: wait for it like for any later outage.
        connected = keep_trying(
            lambda: _connect_chain(ledger_watch, settings, offline), outage, lambda: stopping
        )
        absent = 0  # passes in a row that found no ledger yet
        while connected and not stopping:
            try:
                result = ledger_watch.run_pass()
            except ServiceUnavailableError as exc:
                readiness.stopped()
                outage.wait_after(exc.service, exc.diagnostics(), lambda: stopping)
                continue
            except LedgerAbsentError as exc:
                readiness.stopped()
                absent += 1
                delay = backoff_delay(absent)
                log.warning(
                    "waiting for the ledger (check %d), next in %.1f s: %s", absent, delay, exc
                )
                wait(delay, lambda: stopping)
                continue
            absent = 0
            outage.recovered()
            readiness.started()
            metrics.publish(ledger_watch, result)
            _log_pass(ledger_watch, result)
            wait(interval, lambda: stopping)
    log.info("stopped")


def _verifiers(settings: Settings, keys: list[str]) -> list[NoteVerifier]:
    if keys:
        return [parse_verifier_key(key) for key in keys]
    return trusted_verifiers(settings)


def _connect_chain(ledger_watch: LedgerWatch, settings: Settings, offline: bool) -> None:
    """Online, anchors are also checked on the EVM chain (as `forensic verify` does)."""
    if offline:
        return
    rpc_url, chain_id = settings.require_rpc()
    ledger_watch.chain_reader = connect(rpc_url, chain_id)
    ledger_watch.min_confirmations = settings.confirmations(chain_id)


def _summary(ledger_watch: LedgerWatch, result: PassResult) -> str:
    sizes = ", ".join(f"{chain}: {size}" for chain, size in ledger_watch.verified_sizes().items())
    return (
        f"{result.entries} new entries, {result.checkpoints} checkpoints, {result.anchors}"
        f" anchors verified, {result.rechecked} entries re-read; verified sizes {{{sizes}}}"
    )


def _log_pass(ledger_watch: LedgerWatch, result: PassResult) -> None:
    for failure in result.failures:
        log.error(
            "verification failed: %s at chain %s seq %s: %s",
            failure.kind.value,
            failure.chain,
            failure.seq,
            failure.detail,
        )
    verdict = "pass ok" if result.ok else f"pass FAILED ({len(result.failures)} failures)"
    log.info("%s: %s", verdict, _summary(ledger_watch, result))
