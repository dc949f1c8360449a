"""Waiting out an unreachable service: the one backoff policy of every long-running process.

`ledger run`, `detect` and `anchor run` never exit because ClickHouse, the broker or the
JSON-RPC endpoint is gone: they wait with exponential backoff and jitter, log one line per
wait (not one per failed call), report the outage through a callback (the readiness gauges
of `attestream.observability`) and say once when the service is back.
docs/operations.md, "Outages", describes what an operator sees.

This module imports only the error hierarchy, so every package can use it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from attestcore.errors import ServiceUnavailableError

# First wait after a failure: a restarted service usually answers again within a second.
BACKOFF_INITIAL_S = 0.5
# Longest wait between two attempts: an outage of any length costs at most this much delay
# after the service is back, and a long one logs two lines a minute, not a flood.
BACKOFF_MAX_S = 30.0
# Each wait is drawn between this fraction and all of its ceiling, so replicas restarted
# together do not retry in lockstep.
BACKOFF_JITTER_FLOOR = 0.5
# While waiting, a stop request (SIGTERM) is checked this often: well within the 10 s a
# process has to exit.
STOP_CHECK_S = 0.2


def backoff_delay(
    failures: int,
    initial_s: float = BACKOFF_INITIAL_S,
    max_s: float = BACKOFF_MAX_S,
    rng: Callable[[], float] = random.random,
) -> float:
    """The wait after the `failures`-th failure in a row: a random time between half and all
    of initial * 2^(failures-1), capped at `max_s`."""
    ceiling = min(max_s, initial_s * 2.0 ** max(failures - 1, 0))
    return ceiling * (BACKOFF_JITTER_FLOOR + rng() * (1 - BACKOFF_JITTER_FLOOR))


def wait(seconds: float, stop: Callable[[], bool]) -> None:
    """Sleep `seconds`, returning early once `stop()` is true."""
    deadline = time.monotonic() + seconds
    while not stop() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, STOP_CHECK_S))


DependencyReport = Callable[[str, bool], None]
"""Told (dependency, reachable) on every change: the readiness gauges."""


class Outage:
    """One process's view of its dependencies being down: the failures in a row, the backoff,
    one log line per step, and the report when the dependency answers again."""

    def __init__(
        self,
        log: logging.Logger,
        report: DependencyReport | None = None,
        initial_s: float = BACKOFF_INITIAL_S,
        max_s: float = BACKOFF_MAX_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.log = log
        self.report = report or (lambda dependency, up: None)
        self.initial_s = initial_s
        self.max_s = max_s
        self.rng = rng
        self.failures = 0
        self.dependency = ""
        self._since = 0.0

    @property
    def down(self) -> bool:
        return self.failures > 0

    def failed(self, dependency: str, cause: str) -> float:
        """Record one more failed attempt; log it with the wait that follows; return the wait."""
        if not self.failures:
            self._since = time.monotonic()
        elif dependency != self.dependency:
            self.report(self.dependency, True)
        self.failures += 1
        self.dependency = dependency
        self.report(dependency, False)
        delay = backoff_delay(self.failures, self.initial_s, self.max_s, self.rng)
        self.log.warning(
            "%s unreachable (attempt %d, down %.0f s), retrying in %.1f s: %s",
            dependency,
            self.failures,
            time.monotonic() - self._since,
            delay,
            cause.splitlines()[0] if cause else "",
        )
        return delay

    def recovered(self) -> None:
        """The dependency answered: log it once, report it, start the next outage afresh."""
        if not self.failures:
            return
        self.log.info(
            "%s reachable again after %d failed attempt(s) over %.0f s",
            self.dependency,
            self.failures,
            time.monotonic() - self._since,
        )
        self.report(self.dependency, True)
        self.failures = 0

    def wait_after(self, dependency: str, cause: str, stop: Callable[[], bool]) -> None:
        """`failed`, then wait out its delay (or until `stop`)."""
        wait(self.failed(dependency, cause), stop)


def keep_trying(action: Callable[[], object], outage: Outage, stop: Callable[[], bool]) -> bool:
    """`action()` until it does not raise `ServiceUnavailableError`, backing off in between;
    False when `stop()` became true first."""
    while not stop():
        try:
            action()
        except ServiceUnavailableError as exc:
            outage.wait_after(exc.service, exc.diagnostics(), stop)
            continue
        outage.recovered()
        return True
    return False


# The Kafka client's own log lines of one kind (a refused connection, every 50 ms while the
# broker is down) pass at most once per this interval: the backoff's longest step.
CLIENT_LOG_INTERVAL_S = BACKOFF_MAX_S


class OncePerInterval(logging.Filter):
    """Lets a log line of one kind (level and first argument, librdkafka's facility) through
    at most once per `interval_s`; the rest of an outage's repeats are dropped."""

    def __init__(self, interval_s: float = CLIENT_LOG_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[int, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.levelno, str(args[0]) if args else str(record.msg))
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self.interval_s:
            return False
        self._last[key] = now
        return True


def kafka_client_logger(name: str) -> logging.Logger:
    """A logger for a Kafka client's own lines (confluent-kafka's `logger` setting), throttled
    by `OncePerInterval`."""
    logger = logging.getLogger(f"attestream.kafka.{name}")
    if not any(isinstance(f, OncePerInterval) for f in logger.filters):
        logger.addFilter(OncePerInterval())
    return logger
