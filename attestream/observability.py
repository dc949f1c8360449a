"""Serving Prometheus metrics and setting up logs for long-running commands.

Each process serves its own registry: its component's families (`attestream_detect_*`,
`attestream_ledger_*` or `attestream_anchor_*`), its readiness gauges and the runtime
collectors (process, platform, gc); never another component's families, so an alert on the
anchor balance cannot fire against a detect worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Gauge,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from attestcore.errors import ConfigError
from attestcore.redaction import redact_logs

log = logging.getLogger("attestream")

# The `dependency` label of a service as `ServiceUnavailableError.service` names it.
DEPENDENCY_LABELS = {"ClickHouse": "clickhouse", "Kafka": "kafka", "EVM JSON-RPC": "rpc"}


class _Families(Collector):
    """The families of a component's registry, as one collector of a process's registry."""

    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self.registries = tuple(registries)

    def collect(self) -> Iterator[Metric]:
        for registry in self.registries:
            yield from registry.collect()


def process_registry(*components: CollectorRegistry) -> CollectorRegistry:
    """A process's registry: the given components' families and the runtime collectors."""
    registry = CollectorRegistry()
    for runtime in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(runtime)
    if components:
        registry.register(_Families(components))
    return registry


class Readiness:
    """`attestream_<process>_ready` (1 while every dependency answers) and
    `attestream_<process>_dependency_up{dependency}` (0 names the one that is down)."""

    def __init__(
        self, process: str, dependencies: Iterable[str], registry: CollectorRegistry
    ) -> None:
        self.ready = Gauge(
            f"attestream_{process}_ready",
            "1 while the process works normally, 0 while it waits for a dependency or starts up",
            registry=registry,
        )
        self.up = Gauge(
            f"attestream_{process}_dependency_up",
            "1 while the dependency answers, 0 while the process waits for it",
            ["dependency"],
            registry=registry,
        )
        self._down: set[str] = set()
        self._started = False
        for dependency in dependencies:
            self.up.labels(dependency).set(1)
        self.ready.set(0)

    def started(self) -> None:
        """Start-up is over (connected, assigned): ready once no dependency is down."""
        self._started = True
        self._publish()

    def stopped(self) -> None:
        """The process stopped working (its worker restarts): not ready until `started`."""
        self._started = False
        self._publish()

    def __call__(self, service: str, reachable: bool) -> None:
        dependency = DEPENDENCY_LABELS.get(service, service)
        self.up.labels(dependency).set(1 if reachable else 0)
        if reachable:
            self._down.discard(dependency)
        else:
            self._down.add(dependency)
        self._publish()

    def _publish(self) -> None:
        self.ready.set(1 if self._started and not self._down else 0)


def serve_metrics(host: str, port: int, registry: CollectorRegistry) -> int:
    """Expose `registry` on http://host:port/metrics; port 0 means no endpoint. Returns the
    port (0 when disabled)."""
    if port == 0:
        return 0
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    log.info("metrics on http://%s:%d/metrics", host, port)
    return port


# Client libraries that log every failed connection attempt (with a traceback): while a
# service is down our own backoff says so once per step, naming the cause.
CHATTY_CLIENT_LOGGERS = ("clickhouse_driver", "web3", "urllib3")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redact_logs()
    if not verbose:
        for name in CHATTY_CLIENT_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
