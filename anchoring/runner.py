"""Running the anchor service: rounds, the interval, backoff after failures, and problems
(no key, wrong chain, unfunded account, unreachable node) reported as clear errors and metrics
instead of a crash loop. The ledger does not wait for any of this."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from anchoring import metrics
from anchoring.service import AnchorService
from anchoring.status import collect_status, publish
from attestcore.backoff import DependencyReport, wait
from attestcore.backoff import backoff_delay as shared_backoff_delay
from attestcore.errors import (
    AnchorBlockedError,
    AnchorKeyError,
    AttestreamError,
    ConfigError,
    ServiceUnavailableError,
    WrongChainError,
)
from attestcore.records import StoredAnchor
from attestcore.waiting import WaitTimeout, wait_until

log = logging.getLogger("attestream.anchor")

# `anchor run --once` gives up when the anchor is not final after this long: ten minutes is
# fifty Sepolia slots, far beyond a normal inclusion plus three confirmations.
ONCE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Pacing:
    interval_s: float = 30.0
    """At most one new anchor per interval."""
    poll_s: float = 4.0
    """Rounds (receipts, confirmations, replacement) between anchors."""
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0


@dataclass(frozen=True)
class RoundResult:
    sent: StoredAnchor | None = None
    error: str | None = None
    """The kind of failure (an `attestream_anchor_errors_total` label), None if it went well."""


def error_kind(exc: AttestreamError) -> str:
    if isinstance(exc, AnchorBlockedError | AnchorKeyError | WrongChainError):
        return exc.reason
    if isinstance(exc, ServiceUnavailableError):
        return "store" if exc.service == "ClickHouse" else "rpc"
    return "config" if isinstance(exc, ConfigError) else "other"


def _failed(exc: AttestreamError) -> RoundResult:
    kind = error_kind(exc)
    metrics.ERRORS.labels(kind).inc()
    metrics.blocked(kind if kind in metrics.BLOCK_REASONS else None)
    # An outage is one line per backoff step; the operator's hint is for the other errors.
    text = str(exc) if isinstance(exc, ServiceUnavailableError) else exc.diagnostics()
    log.error("anchoring round failed (%s): %s", kind, text)
    return RoundResult(error=kind)


def run_round(service: AnchorService, send: bool = True, report: bool = True) -> RoundResult:
    """One round of the service; failures become a result, a log line and metrics. With
    `report`, the status gauges (balance, backlog...) are refreshed too."""
    try:
        sent = service.step(send=send)
    except AttestreamError as exc:
        return _failed(exc)
    metrics.blocked(None)
    if report:
        try:
            publish(
                collect_status(
                    service.records,
                    service.chain,
                    service.sender,
                    service.clock(),
                    service.policy.reorg_watch_blocks,
                )
            )
        except AttestreamError as exc:
            log.warning("anchor gauges not refreshed: %s", exc)
    return RoundResult(sent=sent)


def backoff_delay(failures: int, pacing: Pacing, rng: Callable[[], float] = random.random) -> float:
    """The shared backoff (attestcore.backoff) with the anchor's own bounds (settings)."""
    return shared_backoff_delay(failures, pacing.retry_initial_s, pacing.retry_max_s, rng)


def _report(result: RoundResult, report: DependencyReport | None) -> None:
    """Tell readiness which dependency a round found down (or that both answered)."""
    if report is not None:
        for service, kind in (("EVM JSON-RPC", "rpc"), ("ClickHouse", "store")):
            report(service, result.error != kind)


def run_service(
    service: AnchorService,
    pacing: Pacing,
    stop: Callable[[], bool],
    report: DependencyReport | None = None,
) -> None:
    """Rounds every poll, a new anchor at most once per interval, backoff after failures.
    The status gauges are refreshed once per interval: they cost RPC calls (balance) that
    a hosted endpoint's quota should not spend every few seconds."""
    last_sent = last_report = float("-inf")
    failures = 0
    while not stop():
        now = service.clock()
        due, refresh = now - last_sent >= pacing.interval_s, now - last_report >= pacing.interval_s
        result = run_round(service, send=due, report=refresh)
        _report(result, report)
        if refresh and not result.error:
            last_report = now
        if result.sent is not None:
            last_sent = service.clock()
        failures = failures + 1 if result.error else 0
        wait(backoff_delay(failures, pacing) if failures else pacing.poll_s, stop)


def supervise(
    build: Callable[[], AnchorService],
    pacing: Pacing,
    stop: Callable[[], bool],
    report: DependencyReport | None = None,
) -> None:
    """Build the service (retrying with backoff while the key is missing, the endpoint is on
    another chain or unreachable), then run it until `stop`. `report` is told which
    dependency is down after every attempt (the readiness gauges)."""
    failures = 0
    while not stop():
        try:
            service = build()
        except AttestreamError as exc:
            _report(_failed(exc), report)
            failures += 1
            wait(backoff_delay(failures, pacing), stop)
            continue
        metrics.blocked(None)
        _report(RoundResult(), report)
        run_service(service, pacing, stop, report)
        return


def anchor_once(
    service: AnchorService, timeout_s: float = ONCE_TIMEOUT_S, poll_s: float = 0.5
) -> StoredAnchor | None:
    """Anchor the latest checkpoints and wait until that anchor is final. None when a final
    anchor already covers them. Failures raise (the caller is a command or a test)."""
    target = {cp.chain: cp.size for cp in service.latest_checkpoints()}
    if not target or _covering(service, target) is not None:
        return None

    def stepped() -> StoredAnchor | None:
        service.step()
        return _covering(service, target)

    try:
        return wait_until(stepped, timeout_s, interval_s=poll_s, what="a final anchor")
    except WaitTimeout as exc:
        raise ServiceUnavailableError(
            "EVM JSON-RPC",
            service.chain.endpoint,
            f"the anchor of {sorted(target.items())} was not final within {timeout_s:.0f} s",
        ) from exc


def _covering(service: AnchorService, target: dict[int, int]) -> StoredAnchor | None:
    """The first final anchor committing to at least these sizes on every chain."""
    for anchor in service.records.final():
        sizes = dict(anchor.checkpoints)
        if all(sizes.get(chain, -1) >= size for chain, size in target.items()):
            return anchor
    return None
