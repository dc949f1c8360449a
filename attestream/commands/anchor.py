"""`attestream anchor run`: anchor the latest checkpoints on the EVM chain every interval."""

from __future__ import annotations

import signal
from types import FrameType

import typer
from prometheus_client import Counter, Gauge

from anchoring.service import AnchorService, connect
from attestream.observability import serve_metrics, setup_logging
from attestream.settings import load_settings
from attestream.wiring import open_store
from ledger.store import StoredAnchor

app = typer.Typer(help="Anchoring checkpoint roots on an EVM chain.", no_args_is_help=True)

ANCHORS = Counter("attestream_anchor_anchors_total", "Anchor transactions mined", ["status"])
GAS = Counter("attestream_anchor_gas_used_total", "Gas used by anchor transactions")
LAST_BLOCK = Gauge("attestream_anchor_last_block_number", "Block of the latest anchor")


def _record(anchor: StoredAnchor) -> None:
    ANCHORS.labels(anchor.status).inc()
    GAS.inc(anchor.gas_used)
    LAST_BLOCK.set(anchor.block_number)


@app.command("run")
def run(
    interval: float = typer.Option(None, help="Seconds between anchors (default: settings)."),
    once: bool = typer.Option(False, help="Anchor once, if anything is new, and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Every interval, send one transaction committing to every chain's latest checkpoint."""
    setup_logging(verbose)
    settings = load_settings()
    rpc_url, chain_id = settings.require_rpc()
    store = open_store(settings, create=True)
    service = AnchorService(store, connect(rpc_url, chain_id), settings.anchor_private_key(),
                            chain_id, on_anchor=_record)  # fmt: skip
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not once:
        serve_metrics(settings.metrics_host, settings.anchor_metrics_port)
    try:
        service.run(interval or settings.anchor_interval_s, lambda: stopping, once=once)
    finally:
        store.close()
