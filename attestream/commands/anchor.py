"""`attestream anchor run` and `attestream anchor status`: anchoring checkpoint roots on an EVM
chain (docs/operations.md). The logic lives in anchoring/; this module only wires it."""

from __future__ import annotations

import json
import logging
import signal
import time
from datetime import UTC, datetime
from types import FrameType

import typer
from rich.console import Console
from rich.table import Table

from anchoring import metrics
from anchoring.rpc import ChainClient
from anchoring.runner import ONCE_TIMEOUT_S, anchor_once
from anchoring.runner import supervise as supervise_service
from anchoring.service import load_account
from anchoring.status import AnchorStatus, collect_status
from anchoring.store import AnchoredStore, AnchorRecords
from attestcore.backoff import Outage, keep_trying
from attestcore.errors import AttestreamError
from attestream.observability import Readiness, process_registry, serve_metrics, setup_logging
from attestream.settings import Settings, load_settings
from attestream.wiring import open_service, open_store, pacing_from_settings
from attestream.workers import registered

app = typer.Typer(help="Anchoring checkpoint roots on an EVM chain.", no_args_is_help=True)
log = logging.getLogger("attestream.anchor")


@app.command("run")
def run(
    interval: float = typer.Option(None, help="Seconds between anchors (default: settings)."),
    once: bool = typer.Option(False, help="Anchor the latest checkpoints, wait until final, exit."),
    wait: float = typer.Option(ONCE_TIMEOUT_S, help="With --once: give up after this long."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Every interval, send one transaction committing to every chain's latest checkpoint."""
    setup_logging(verbose)
    settings = load_settings()
    if once:
        _anchor_once(settings, wait)
        return
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    registry = process_registry(metrics.REGISTRY)
    readiness = Readiness("anchor", ("clickhouse", "rpc"), registry)
    port = serve_metrics(settings.metrics_host, settings.anchor_metrics_port, registry)
    with registered(settings.home, "anchor", settings.metrics_host, port):
        # ClickHouse may be down at start: wait for it like for any later outage.
        stores: list[AnchoredStore] = []
        opened = keep_trying(
            lambda: stores.append(open_store(settings, create=True)),
            Outage(log, readiness),
            lambda: stopping,
        )
        if not opened:
            return
        store = stores[0]
        readiness.started()
        try:
            supervise_service(
                lambda: open_service(settings, store),
                pacing_from_settings(settings, interval),
                lambda: stopping,
                readiness,
            )
        finally:
            store.close()


def _anchor_once(settings: Settings, timeout_s: float) -> None:
    store = open_store(settings, create=True)
    try:
        anchor = anchor_once(open_service(settings, store), timeout_s=timeout_s)
    finally:
        store.close()
    if anchor is None:
        typer.echo("nothing new to anchor: the latest checkpoints are anchored")
    else:
        typer.echo(
            f"anchored {len(anchor.checkpoints)} checkpoint(s) in {anchor.tx_hash}"
            f" (block {anchor.block_number}, {anchor.gas_used} gas)"
        )


@app.command("status")
def status(
    as_json: bool = typer.Option(False, "--json", envvar="ATTESTREAM_JSON", help="JSON output."),
) -> None:
    """The sender and its balance, the last anchor, transactions on their way, and what is not
    anchored yet per chain."""
    settings = load_settings()
    rpc_url, chain_id = settings.require_rpc()
    store = open_store(settings)  # only reads: the writers own the schema
    try:
        records = AnchorRecords(store, chain_id)
        problems: list[str] = []
        try:
            sender: str | None = load_account(settings.anchor_private_key()).address
        except AttestreamError as exc:
            sender, problems = None, [exc.diagnostics()]
        chain = ChainClient(rpc_url, chain_id)
        try:
            chain.check_chain()
        except AttestreamError as exc:
            problems.append(exc.diagnostics().splitlines()[0])
        found = collect_status(
            records, chain, sender, time.time(), settings.anchor_reorg_watch_blocks
        )
        found.problems[:0] = problems
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(found.to_json(), indent=2))
    else:
        _print(found)


def _print(found: AnchorStatus) -> None:
    console = Console()
    data = found.to_json()
    balance = "?" if found.balance_wei is None else f"{data['balance_eth']:.6f} ETH"
    head = "?" if found.head_block is None else found.head_block
    console.print(
        f"network chain id {found.network_chain_id} via {found.rpc_url} (head block {head})"
    )
    console.print(f"sender {found.sender or '?'}  balance {balance}")
    last = found.last_anchor
    if last is None:
        console.print("last anchor: none yet")
    else:
        age = (datetime.now(UTC).replace(tzinfo=None) - last.anchored_at).total_seconds()
        console.print(
            f"last anchor: {last.tx_hash} in block {last.block_number},"
            f" final {age:.0f} s ago, {last.gas_used} gas"
        )
    console.print(f"pending transactions: {len(found.in_flight)}")
    for tx in found.in_flight:
        console.print(
            f"  {tx.tx_hash} {tx.state} nonce {tx.nonce}, {tx.age_s:.0f} s,"
            f" max fee {tx.max_fee_gwei:.4g} gwei"
        )
    table = Table("chain", "latest size", "anchored size", "unanchored checkpoints")
    for b in found.chains:
        table.add_row(
            str(b.chain), str(b.latest_size), str(b.anchored_size), str(b.unanchored_checkpoints)
        )
    console.print(table)
    oldest = found.oldest_unanchored_age_s
    console.print(
        "oldest unanchored decision: "
        + ("none" if oldest is None else f"logged {oldest:.0f} s ago")
    )
    for problem in found.problems:
        console.print(f"[yellow]problem:[/yellow] {problem}")
