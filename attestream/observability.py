"""Serving Prometheus metrics and setting up logs for long-running commands."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from attestream.errors import ConfigError
from attestream.redaction import redact_logs


def serve_metrics(host: str, port: int) -> None:
    """Expose /metrics on host:port; port 0 means no endpoint."""
    if port == 0:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    logging.getLogger("attestream").info("metrics on http://%s:%d/metrics", host, port)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redact_logs()
