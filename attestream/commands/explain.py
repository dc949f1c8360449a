"""`attestream forensic explain | replay DECISION_ID`: a logged decision, replayed with the
model it names (digest checked) and explained with exact TreeSHAP values.

Exit codes: 0 verified, 1 verification failed (entry, model digest, replay), 2 usage or config
error (an unknown decision or event id, an event id with several decisions, a model missing
from the models directory), 3 ClickHouse could not be reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from attestream.settings import load_settings
from attestream.wiring import open_store
from forensics.explain import (
    Explanation,
    LoggedDecision,
    Replay,
    explain_logged,
    explanation_json,
    replay_json,
    replay_logged,
)
from forensics.resolve import resolve_decision_id
from ledger.archive_store import ArchiveStore

DECISION_ARG = typer.Argument(
    ..., help="The decision_id, as logged, or the event id of an event with one decision."
)
MODELS_HELP = "Where the models live (default: ATTESTREAM_MODELS_DIR or <home>/models)."
JSON_HELP = "Print the result as JSON."


def _models(models_dir: Path | None) -> Path:
    return models_dir if models_dir is not None else load_settings().models_path


def explain(
    decision_id: str = DECISION_ARG,
    models_dir: Path = typer.Option(None, "--models-dir", help=MODELS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check the entry and the model's digest, replay the score, and print the exact TreeSHAP
    contribution of every feature, largest first, with the bias and their sum (the margin)."""
    store = open_store(load_settings())
    try:
        decision_id = resolve_decision_id(ArchiveStore(store), decision_id)
        logged, explained = explain_logged(store, decision_id, _models(models_dir))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(explanation_json(logged, explained), indent=2))
        return
    console = Console()
    _print_replay(console, logged, explained.replay)
    _print_contributions(console, explained)


def replay(
    decision_id: str = DECISION_ARG,
    models_dir: Path = typer.Option(None, "--models-dir", help=MODELS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check the entry and the model's digest, and recompute the score and outcome from the
    logged features; exit 1 if they differ from the logged ones."""
    store = open_store(load_settings())
    try:
        decision_id = resolve_decision_id(ArchiveStore(store), decision_id)
        logged, done = replay_logged(store, decision_id, _models(models_dir))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(replay_json(logged, done), indent=2))
        return
    _print_replay(Console(), logged, done)


def _print_replay(console: Console, logged: LoggedDecision, done: Replay) -> None:
    d, model = logged.decision, done.model
    console.print(
        f"[green]VERIFIED[/green]: decision {d.decision_id} ({d.detector.value}, event"
        f" {d.event_id}) is entry {logged.chain}/{logged.seq}, leaf hash {logged.leaf_hash.hex()}"
    )
    console.print(f"model {model.model_id}, sha256 {model.model_sha256} (artifact re-hashed)")
    console.print(
        f"replayed score {done.score:.6g} = logged {d.score:.6g} (float32); outcome"
        f" {done.outcome} = logged {d.outcome}"
    )


def _print_contributions(console: Console, explained: Explanation) -> None:
    table = Table(
        "feature", "value", "contribution (log-odds)", title="exact TreeSHAP, largest first"
    )
    for name, value, contribution in explained.contributions:
        table.add_row(name, f"{value:.6g}", f"{contribution:+.6f}")
    table.add_row("(bias)", "", f"{explained.bias:+.6f}", end_section=True)
    table.add_row("sum = margin", "", f"{explained.total:+.6f}")
    console.print(table)
    console.print(
        f"margin {explained.replay.margin:+.6f}; score = 1 / (1 + e^-margin) ="
        f" {explained.replay.score:.6g}"
    )
