"""Prometheus metrics of `attestream serve` (`attestream_serve_<name>_<unit>`): requests by
operation and status, their duration, and the requests refused before the route ran. The
operation label is one of the API's operation names (or `unknown`), never a path or a
parameter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Reasons a request is denied, from its status: no or an unknown token, or a role that may not.
DENIALS = {401: "unauthenticated", 403: "forbidden"}


class ServeMetrics:
    """The server's families, in a registry of their own (`attestream serve` serves it)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.requests = Counter(
            "attestream_serve_requests",
            "API requests answered, by operation and HTTP status",
            ["operation", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "attestream_serve_request_duration_seconds",
            "From a request received to its answer, access record signed (or the denial)",
            ["operation"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.denied = Counter(
            "attestream_serve_denied",
            "API requests refused before the route ran (unauthenticated, forbidden)",
            ["reason"],
            registry=self.registry,
        )
        for reason in DENIALS.values():
            self.denied.labels(reason)

    def answered(self, operation: str, status: int, seconds: float) -> None:
        self.requests.labels(operation, str(status)).inc()
        self.duration.labels(operation).observe(seconds)
        reason = DENIALS.get(status)
        if reason is not None:
            self.denied.labels(reason).inc()
