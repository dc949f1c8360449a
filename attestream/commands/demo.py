"""`attestream demo`: the whole pipeline end to end on the local stack."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from attestream.demo import DemoResult, run_demo
from attestream.settings import Settings, load_settings
from attestream.stack import StackManager


def demo(
    transactions: int = typer.Option(3000, min=1, help="Simulated payments to publish."),
    scans: int = typer.Option(2000, min=1, help="Simulated supply-chain scans to publish."),
    malformed: int = typer.Option(5, min=0, help="Malformed records per input topic."),
    seed: int = typer.Option(7, help="Simulator seed."),
    keep_stack: bool = typer.Option(False, help="Leave the local stack running afterwards."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    home: Path = typer.Option(None, envvar="ATTESTREAM_HOME", help="State directory."),
) -> None:
    """Start the stack, run detect/ledger/anchor, publish events, verify, summarise."""
    console = Console(stderr=as_json)
    say = console.print
    base = Settings(home=home) if home else Settings()
    manager = StackManager(base.home)
    # Services up (a worker of an earlier run may be down): the stack is not ours to stop.
    was_up = manager.status().services_healthy
    say("starting the local stack ..." if not was_up else "using the running local stack")
    manager.up()
    try:
        settings = load_settings(home=manager.home)
        result = run_demo(settings, transactions, scans, malformed, seed, say=say)
    finally:
        if not keep_stack and not was_up:
            manager.down()
    if as_json:
        typer.echo(json.dumps(_summary(result), indent=2))
    else:
        _print(console, result)
        if keep_stack or was_up:
            say(
                "the stack is still up: try `attestream forensic verify` or"
                " `attestream stack status`; stop it with `attestream stack down`"
            )
    raise typer.Exit(0 if result.ok else 1)


def _summary(r: DemoResult) -> dict[str, object]:
    return {
        "ok": r.ok,
        "run_id": r.run_id,
        "published": [p.to_json() for p in r.published],
        "valid_events": r.valid_events,
        "logged_decisions": r.logged,
        "dead_letters": r.dead_letters,
        "input_records": {
            "consumed": len(r.accounting.consumed),
            "decided": r.accounting.decided,
            "dead_lettered": r.accounting.dead_lettered,
            "without_outcome": len(r.accounting.without_outcome()),
            "more_than_one_outcome": len(r.accounting.more_than_one()),
        },
        "models": r.models,
        "outcomes": r.outcomes,
        "quality": r.quality,
        "verification": r.report.to_json(),
        "anchors": r.anchors[-5:],
        "seconds": round(r.seconds, 1),
    }


def _print(console: Console, r: DemoResult) -> None:
    table = Table("what", "value", title=f"attestream demo {r.run_id}")
    table.add_row("valid events published", str(r.valid_events))
    table.add_row("malformed records -> dead letters", f"{r.malformed} -> {r.dead_letters}")
    table.add_row("decisions logged", str(r.logged))
    accounting = r.accounting
    if not accounting.holds:
        table.add_row(
            "[red]without one outcome[/red]",
            f"{len(accounting.without_outcome())} with none,"
            f" {len(accounting.more_than_one())} with more than one",
        )
    for detector, how in sorted(r.models.items()):
        table.add_row(f"{detector} model", how)
    for detector, counts in sorted(r.outcomes.items()):
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        table.add_row(f"{detector} outcomes", shown)
    for detector, q in sorted(r.quality.items()):
        table.add_row(
            f"{detector} precision / recall",
            f"{q['precision']:.3f} / {q['recall']:.3f} ({int(q['positives'])} positives)",
        )
    rep = r.report
    table.add_row(
        "ledger",
        f"{rep.entries} entries, {len(rep.chains)} chain(s),"
        f" {rep.checkpoints} checkpoints, {rep.anchors} anchors",
    )
    verdict = "[green]VERIFIED[/green]" if rep.ok else f"[red]FAILED[/red] {rep.failures[:3]}"
    table.add_row("verification", verdict)
    table.add_row("result", "[green]OK[/green]" if r.ok else "[red]FAILED[/red]")
    table.add_row("wall time", f"{r.seconds:.1f} s")
    console.print(table)
    # Below the table, unwrapped: a cell would cut them to the terminal's width.
    console.print(f"input records: {accounting.summary()}", soft_wrap=True)
    for anchor in r.anchors[-3:]:
        console.print(f"anchor tx {anchor['tx_hash']} (block {anchor['block']})", soft_wrap=True)
