"""`attestream forensic ...`: the investigator's commands over the forensics library.

Exit codes: 0 verified, 1 verification failed, 2 usage or config error, 3 a service could not
be reached (so nothing was checked).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from anchoring.rpc import connect
from anchoring.store import AnchoredStore
from attestcore.errors import UsageError
from attestream.commands.verifier_state import NoStateOption, StateOption, state_path
from attestream.settings import Settings, load_settings
from attestream.wiring import anchor_account, open_store, trusted_verifiers
from forensics.trusted_state import SeenCheckpoint, TrustedState, load_state, save_state
from forensics.verify import Report, verify_ledger
from forensics.verify_range import verify_range
from forensics.verify_state import HistoryCheck, check_ledger_history, latest_checkpoints
from forensics.verify_tail import TailCheck
from ledger.archive_store import ArchiveStore
from ledger.keys import NoteVerifier
from ledger.topic_records import KafkaRederiver

app = typer.Typer(help="Search, verify and prove logged decisions.", no_args_is_help=True)


VERIFY_HELP = (
    "Recompute every hash, link, tree node, root, signature and anchor; exit 1 on any fault."
    " Online, every anchor transaction the anchor account (ATTESTREAM_ANCHOR_ADDRESS, else the"
    " anchor key's address) has on the EVM chain must have its row (`anchor_missing`)."
    "\n\nWith --chain, --from and --to, only entries FROM..TO of one chain are checked, in"
    " time proportional to the range: the tree before FROM is the stored compact range at size"
    " FROM, TRUSTED rather than recomputed (the report says so), and the link into the range"
    " is the hash of entry FROM-1. Checkpoints of sizes FROM+1..TO+1 and their signatures are"
    " checked; nothing outside the range is read, and anchors are not checked."
    "\n\nA whole-ledger verification remembers the latest checkpoint of every chain in the"
    " trusted-state file (--state) and, on every later run, demands that the ledger extends"
    " it: a shrunk tree, a fork or a failed consistency proof fails. The first run trusts what"
    " it sees (trust on first use). A range verification neither reads nor writes the state."
    "\n\nEntries past a chain's last checkpoint are an `unsigned_tail` (a crash window) only if"
    " they have the shape of one batch (ATTESTREAM_LEDGER_BATCH_MAX rows at most, one INSERT,"
    " offsets following the checkpoint's) and, given Kafka, every one of them is re-derived"
    " from the record at its source offset (--kafka, else ATTESTREAM_KAFKA_BOOTSTRAP unless"
    " --offline); anything else is `unexplained_tail`."
)


@app.command("verify", help=VERIFY_HELP)
def verify(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    offline: bool = typer.Option(
        False,
        help="Skip the EVM chain look-ups (anchors are checked against the store only, and"
        " anchors missing from it cannot be seen) and, unless --kafka is given, the"
        " re-derivation of unsigned tails from Kafka.",
    ),
    kafka: str | None = typer.Option(
        None,
        "--kafka",
        metavar="BOOTSTRAP",
        help="Kafka bootstrap servers to re-derive unsigned tails from, also --offline"
        " (default: ATTESTREAM_KAFKA_BOOTSTRAP, else the local stack's, unless --offline)."
        " The broker is contacted only for a tail; unreachable, verification exits 3.",
    ),
    chain: int | None = typer.Option(
        None,
        "--chain",
        min=0,
        envvar="ATTESTREAM_VERIFY_CHAIN",
        help="With --from and --to: check only this chain's entries FROM..TO.",
    ),
    first: int | None = typer.Option(
        None, "--from", min=0, envvar="ATTESTREAM_VERIFY_FROM", help="First seq of the range."
    ),
    last: int | None = typer.Option(
        None,
        "--to",
        min=0,
        envvar="ATTESTREAM_VERIFY_TO",
        help="Last seq of the range (inclusive).",
    ),
    state: Path | None = StateOption,
    no_state: bool = NoStateOption,
) -> None:
    """Recompute every hash, link, tree node, root, signature and anchor (see VERIFY_HELP)."""
    span = _verify_span(chain, first, last)
    settings = load_settings()
    verifiers = trusted_verifiers(settings)
    reader = None
    confirmations = 0
    account = None
    if not offline and span is None:
        rpc_url, chain_id = settings.require_rpc()
        account = anchor_account(settings)
        reader = connect(rpc_url, chain_id)
        confirmations = settings.confirmations(chain_id)
    bootstrap = kafka or (None if offline else settings.kafka_bootstrap)
    if span is not None:
        bootstrap = None
    tail_check = TailCheck(
        settings.ledger_batch_max, KafkaRederiver(bootstrap) if bootstrap else None
    )
    path = state_path(state, no_state, settings) if span is None else None
    trusted = load_state(path) if path is not None else None  # a bad file: exit 2, before work
    store = open_store(settings)
    history = None
    try:
        if span is None:
            seen = latest_checkpoints(store, verifiers)
            report = verify_ledger(
                store, verifiers, reader, confirmations, account, tail_check, ArchiveStore(store)
            )
            if trusted is not None and path is not None:
                history = _remember(store, settings, verifiers, trusted, seen, report, path)
        else:
            report = verify_range(store, verifiers, *span)
    finally:
        store.close()
    if as_json:
        data = report.to_json()
        data["trusted_state"] = _history_json(path, history)
        typer.echo(json.dumps(data, indent=2))
    else:
        _print_report(report)
        _print_history(path, history)
    raise typer.Exit(0 if report.ok else 1)


def _remember(
    store: AnchoredStore,
    settings: Settings,
    verifiers: list[NoteVerifier],
    trusted: TrustedState,
    seen: list[SeenCheckpoint],
    report: Report,
    path: Path,
) -> HistoryCheck:
    """Compare with the remembered checkpoints; remember the new ones only if nothing failed
    (steps 3 and 4 of `forensics.verify_state`)."""
    history = check_ledger_history(store, trusted, seen, settings.log_origin, verifiers, report)
    if report.ok:
        for s in seen:
            trusted.remember(s.record("forensic verify"))
        save_state(path, trusted)
    return history


def _history_json(path: Path | None, history: HistoryCheck | None) -> object:
    if path is None or history is None:
        return None
    return {
        "file": str(path),
        "first_use": [s.chain for s in history.first_use],
        "checked": [s.chain for s in history.checked],
    }


def _print_history(path: Path | None, history: HistoryCheck | None) -> None:
    if path is None or history is None:
        return
    for s in history.first_use:
        typer.echo(
            f"trust on first use: chain {s.chain} of {s.checkpoint.origin} at size"
            f" {s.checkpoint.size} was not known to {path}"
        )
    for s in history.checked:
        typer.echo(f"chain {s.chain} checked against the checkpoint remembered in {path}")


def _verify_span(
    chain: int | None, first: int | None, last: int | None
) -> tuple[int, int, int] | None:
    """(chain, from, to) for a range verification, None for the whole ledger."""
    given = (chain, first, last)
    if all(value is None for value in given):
        return None
    if chain is None or first is None or last is None:
        raise UsageError("--chain, --from and --to go together (or none of them)")
    if first > last:
        raise UsageError(f"--from {first} is after --to {last}")
    return chain, first, last


def _print_report(report: Report) -> None:
    console = Console()
    verdict = "[green]VERIFIED[/green]" if report.ok else "[red]FAILED[/red]"
    console.print(
        f"{verdict}: {report.entries} entries in {len(report.chains)} chain(s),"
        f" {report.checkpoints} checkpoints, {report.anchors} anchors"
    )
    if report.anchor_account is not None:
        console.print(
            f"anchor account {report.anchor_account}: {report.anchor_transactions} transactions"
            " on the chain, every anchor among them has its row unless listed below"
        )
    elif report.range is None:
        console.print(
            "anchors on the chain were not checked (--offline): a deleted anchor row cannot be seen"
        )
    if report.range is None and not report.tails_rederived:
        console.print(
            "unsigned tails were not re-derived from Kafka (--offline, or no"
            " Kafka configured): a forged tail shaped as one batch passes"
        )
    if report.range is None and not report.archive_checked:
        console.print(
            "the event archive was not checked: this database has none (run"
            " `attestream ledger migrate`)"
        )
    if report.range is not None:
        r = report.range
        console.print(
            f"range: chain {r.chain}, entries {r.first}..{r.last}, starting from the stored"
            f" compact range at size {r.first} (trusted, not recomputed)"
        )
    if report.failures:
        table = Table("kind", "chain", "seq", "detail")
        for f in report.failures:
            table.add_row(f.kind, str(f.chain), str(f.seq), f.detail)
        console.print(table)
