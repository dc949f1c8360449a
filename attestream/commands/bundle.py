"""`attestream forensic bundle | verify-bundle`: one file holding a whole case's evidence."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path

import typer

import attestream
from anchoring.rpc import ChainClient
from attestcore.errors import UsageError
from attestream.commands.proofs import KEY_HELP, verifiers_for
from attestream.settings import load_settings
from attestream.wiring import open_store
from forensics.case_bundle import (
    DEFAULT_MAX_ENTRIES,
    Exporter,
    Selection,
    dump_case_bundle,
    load_case_bundle,
)
from forensics.verify_bundle import BundleReport, export_case_bundle, verify_case_bundle
from ledger.entry_filter import KEYS, parse_query

QUERY_HELP = (
    "Select by the searchable columns: key=value terms that must all hold, e.g."
    f" 'entity=C3 outcome=review score=0.8..1 since=24h' (keys: {', '.join(KEYS)};"
    " from/to are RFC 3339 times of the event)."
)


def bundle(
    output: Path = typer.Option(..., "-o", "--output", help="Write the case bundle here."),
    query: str | None = typer.Option(None, "--query", metavar="FILTERS", help=QUERY_HELP),
    ids: Path | None = typer.Option(
        None,
        "--ids",
        metavar="FILE",
        help="Select by id: a file of decision ids or event ids, one a line (an event id"
        " selects every decision on that event).",
    ),
    note: str | None = typer.Option(None, "--note", help="Why the bundle was exported."),
    by: str | None = typer.Option(
        None, "--by", help="Who exports it, for the manifest (default: the OS user)."
    ),
    max_entries: int = typer.Option(
        DEFAULT_MAX_ENTRIES, "--max", min=1, help="Refuse a selection of more entries."
    ),
    key: list[str] = typer.Option(None, "--key", help=KEY_HELP),
) -> None:
    """Write one self-contained case bundle: the selected entries, their archived events,
    one signed checkpoint per chain with its anchor proof, the tree nodes of every inclusion
    proof (each once) and a manifest. It is verified before it is written: exit 1, and no
    file, if it would not verify."""
    if (query is None) == (ids is None):
        raise UsageError("give exactly one of --query FILTERS and --ids FILE")
    selection = (
        Selection(query=query, filter=parse_query(query))
        if query is not None
        else Selection(ids=_read_ids(ids))
    )
    settings = load_settings()
    verifiers = verifiers_for(key)
    exporter = Exporter(
        by or _os_user(),
        datetime.now(UTC).replace(microsecond=0),
        f"attestream {attestream.__version__}",
        note,
    )
    store = open_store(settings)
    try:
        case = export_case_bundle(store, selection, exporter, verifiers, max_entries)
    finally:
        store.close()
    output.write_bytes(dump_case_bundle(case))
    counts = case.manifest.counts
    typer.echo(
        f"wrote {output}: {counts.entries} entries in {counts.chains} chain(s)"
        f" ({counts.anchored_chains} anchored), {counts.events} archived event(s),"
        f" {counts.nodes} tree nodes",
        err=True,
    )


def verify_bundle(
    bundle_file: Path = typer.Argument(..., help="A case bundle written by `forensic bundle`."),
    key: list[str] = typer.Option(None, "--key", help=KEY_HELP),
    rpc_url: str = typer.Option(
        None,
        "--rpc-url",
        envvar="ATTESTREAM_VERIFY_RPC_URL",
        help="Also check each anchor transaction on this EVM JSON-RPC (else offline only).",
    ),
    chain_id: int = typer.Option(
        None,
        "--chain-id",
        envvar="ATTESTREAM_VERIFY_CHAIN_ID",
        help="With --rpc-url: the network the anchors must be on (default: the bundle's).",
    ),
    confirmations: int = typer.Option(
        1,
        "--confirmations",
        min=0,
        envvar="ATTESTREAM_VERIFY_CONFIRMATIONS",
        help="With --rpc-url: blocks each anchor must be buried under.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check a case bundle offline with the log's verifier key: every checkpoint signature,
    every entry's inclusion, every anchor proof, every archived event's digest, and that the
    entries are what the manifest says was selected; with --rpc-url also the anchor
    transactions. Exit 1 naming each failure, 3 if the RPC cannot be reached."""
    try:
        content = bundle_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {bundle_file}: {exc.strerror or exc}") from None
    case = load_case_bundle(content)
    verifiers = verifiers_for(key)
    lookup = None
    if rpc_url is not None:
        anchored = [c.anchor.network_chain_id for c in case.chains if c.anchor is not None]
        network = chain_id if chain_id is not None else (anchored[0] if anchored else 0)
        lookup = ChainClient(rpc_url, network)
    report = verify_case_bundle(case, verifiers, lookup, confirmations)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def _print_report(report: BundleReport) -> None:
    manifest = report.manifest
    verdict = "VERIFIED" if report.ok else "FAILED"
    typer.echo(
        f"{verdict}: {report.entries} entries in {len(report.chains)} chain(s),"
        f" {report.events} archived event(s); exported by {manifest['exported_by']}"
        f" at {manifest['exported_at']}"
    )
    for c in report.chains:
        if not c.ok:
            continue
        looked_up = "checked on chain" if c.anchor_checked_on_chain else "not looked up"
        anchor = (
            f"anchored in {c.anchor_tx} ({looked_up})"
            if c.anchor_tx
            else "not anchored when exported"
        )
        typer.echo(
            f"  chain {c.chain}: {c.origin} tree size {c.tree_size}, signed by"
            f" {', '.join(c.signed_by)}; {anchor}"
        )
    for f in report.failures:
        where = (
            ""
            if f.chain is None
            else f" chain {f.chain}" + ("" if f.seq is None else f" seq {f.seq}")
        )
        typer.echo(f"  {f.kind}{where}: {f.detail}")


def _read_ids(path: Path | None) -> list[str]:
    """The ids a file lists, one a line (blank lines skipped), each once, in order."""
    assert path is not None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the id list {path}: {exc}") from None
    ids = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    if not ids:
        raise UsageError(f"the id list {path} names no id")
    return ids


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
