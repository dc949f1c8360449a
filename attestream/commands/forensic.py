"""`attestream forensic ...`: the investigator's commands over the forensics library.

Exit codes: 0 verified, 1 verification failed, 2 usage or config error, 3 a service could not
be reached (so nothing was checked).
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from anchoring.reader import Web3ChainReader
from anchoring.service import connect
from attestream.settings import load_settings
from attestream.wiring import open_store, trusted_verifiers
from forensics.verify import Report, verify_ledger

app = typer.Typer(help="Search, verify and prove logged decisions.", no_args_is_help=True)


@app.command("verify")
def verify(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    offline: bool = typer.Option(
        False, help="Skip the EVM chain look-ups (anchors are checked against the store only)."
    ),
) -> None:
    """Recompute every hash, link, root, signature and anchor; exit 1 on any fault."""
    settings = load_settings()
    verifiers = trusted_verifiers(settings)
    reader = None
    if not offline:
        rpc_url, chain_id = settings.require_rpc()
        reader = Web3ChainReader(connect(rpc_url, chain_id), rpc_url)
    store = open_store(settings)
    try:
        report = verify_ledger(store, verifiers, reader)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def _print_report(report: Report) -> None:
    console = Console()
    verdict = "[green]VERIFIED[/green]" if report.ok else "[red]FAILED[/red]"
    console.print(
        f"{verdict}: {report.entries} entries in {len(report.chains)} chain(s),"
        f" {report.checkpoints} checkpoints, {report.anchors} anchors"
    )
    if report.failures:
        table = Table("kind", "chain", "seq", "detail")
        for f in report.failures:
            table.add_row(f.kind, str(f.chain), str(f.seq), f.detail)
        console.print(table)
