"""The shared backoff: doubling with jitter up to a ceiling, one log line per step, and the
outage reported to readiness and cleared once."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from attestcore.backoff import BACKOFF_MAX_S, OncePerInterval, Outage, backoff_delay, keep_trying
from attestcore.errors import ServiceUnavailableError
from attestream.observability import Readiness


def test_delays_double_with_jitter_up_to_the_ceiling() -> None:
    assert [backoff_delay(n, 1.0, 60.0, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff_delay(3, 1.0, 60.0, rng=lambda: 0.0) == 2.0
    assert backoff_delay(50, rng=lambda: 1.0) == BACKOFF_MAX_S


def test_an_outage_logs_one_line_per_step_and_clears_readiness(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    readiness = Readiness("ledger", ("clickhouse", "kafka"), registry)
    readiness.started()
    outage = Outage(logging.getLogger("test.outage"), readiness, initial_s=0.0)
    attempts = iter(range(4))

    def flaky() -> None:
        if next(attempts) < 3:
            raise ServiceUnavailableError("ClickHouse", "127.0.0.1:1", "Connection refused")
        assert registry.get_sample_value("attestream_ledger_ready") == 0
        labels = {"dependency": "clickhouse"}
        assert registry.get_sample_value("attestream_ledger_dependency_up", labels) == 0

    with caplog.at_level(logging.INFO, logger="test.outage"):
        assert keep_trying(flaky, outage, lambda: False)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines  # three failed attempts, one recovery
    assert all("ClickHouse unreachable" in line for line in lines[:3])
    assert "reachable again after 3 failed attempt(s)" in lines[3]
    assert registry.get_sample_value("attestream_ledger_ready") == 1


def test_a_stop_request_ends_the_wait() -> None:
    def down() -> None:
        raise ServiceUnavailableError("Kafka", "127.0.0.1:1", "refused")

    outage = Outage(logging.getLogger("test.outage"), initial_s=3600.0)
    calls: list[int] = []

    def stop_after_three_checks() -> bool:
        calls.append(1)
        return len(calls) > 3

    assert not keep_trying(down, outage, stop_after_three_checks)


def test_client_log_lines_of_one_kind_pass_once_per_interval() -> None:
    throttle = OncePerInterval(interval_s=3600.0)

    def line(facility: str) -> logging.LogRecord:
        args = (facility, "rdkafka#consumer-1", "Connect failed")
        return logging.LogRecord("kafka", logging.ERROR, __file__, 1, "%s [%s] %s", args, None)

    assert [throttle.filter(line("FAIL")) for _ in range(50)] == [True] + [False] * 49
    assert throttle.filter(line("SESSTMOUT"))  # another kind still gets through
