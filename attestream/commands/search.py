"""`attestream forensic search | timeline`: find logged decisions by entity, event, detector,
outcome, score, model or time; follow one entity's events in time order.

Both read the entity index (forensics/search.py, forensics/timeline.py); a search without an
entity scans the entries' searchable columns. Exit 2 for a bad filter or cursor, 3 when
ClickHouse cannot be reached.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from attestcore.errors import UsageError
from attestcore.schemas import Decision, PaymentContext, ScanContext
from attestream.settings import load_settings
from attestream.wiring import open_store
from forensics.search import MAX_LIMIT, Found, SearchCriteria, SearchPage, search
from forensics.timeline import MAX_EVENTS, Timeline, timeline, timeline_json
from ledger.archive import EntityKind
from ledger.archive_store import ArchiveStore
from ledger.entry_filter import EntryFilter, parse_query

CUSTOMER = typer.Option(None, "--customer", help="Payments of this customer.")
TERMINAL = typer.Option(None, "--terminal", help="Payments at this terminal.")
EPC = typer.Option(None, "--epc", help="Scans of this EPC (urn:epc:id:sgtin:...).")
GTIN = typer.Option(None, "--gtin", help="Scans of items of this GTIN-14.")
LOCATION = typer.Option(None, "--location", help="Scans at this business location.")
READ_POINT = typer.Option(None, "--read-point", help="Scans at this read point.")
SINCE = typer.Option(None, "--since", help="Events within this long before now: 90s, 30m, 24h, 7d.")
FROM = typer.Option(None, "--from", help="Events at or after this time (RFC 3339, with a zone).")
TO = typer.Option(None, "--to", help="Events before this time (RFC 3339, with a zone).")
COLUMNS = (
    "event_time",
    "chain",
    "seq",
    "decision_id",
    "event_id",
    "detector",
    "outcome",
    "score",
    "entity",
    "model_sha256",
)


def search_command(
    customer: str | None = CUSTOMER,
    terminal: str | None = TERMINAL,
    epc: str | None = EPC,
    gtin: str | None = GTIN,
    location: str | None = LOCATION,
    read_point: str | None = READ_POINT,
    event_id: str | None = typer.Option(None, "--event-id", help="Decisions on this event."),
    entity: str | None = typer.Option(
        None, "--entity", help="Decisions whose entity_id is this (a scan of the entries)."
    ),
    detector: str | None = typer.Option(None, "--detector", help="fraud or authenticity."),
    outcome: str | None = typer.Option(None, "--outcome", help="e.g. block, review, suspect."),
    score: str | None = typer.Option(None, "--score", help="A score range LO..HI (inclusive)."),
    score_min: float | None = typer.Option(None, "--score-min", help="Scores at least this."),
    score_max: float | None = typer.Option(None, "--score-max", help="Scores at most this."),
    model: str | None = typer.Option(None, "--model", help="The model's SHA-256 digest."),
    since: str | None = SINCE,
    start: str | None = FROM,
    end: str | None = TO,
    limit: int = typer.Option(50, "--limit", min=1, max=MAX_LIMIT, help="Results per page."),
    cursor: str | None = typer.Option(
        None, "--cursor", help="Continue where the page that printed this cursor ended."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the page as JSON."),
    as_csv: bool = typer.Option(False, "--csv", help="Print the page as CSV (cursor on stderr)."),
) -> None:
    """Find logged decisions. Entity filters read the entity index (cost follows the
    entity's decisions); with none, the entries are scanned. Every filter must hold. Oldest
    first; the next page's cursor is printed after the results."""
    if as_json and as_csv:
        raise UsageError("give at most one of --json and --csv")
    if score is not None and (score_min is not None or score_max is not None):
        raise UsageError("give --score LO..HI or --score-min/--score-max, not both")
    if score is None and (score_min is not None or score_max is not None):
        score = (
            f"{'' if score_min is None else score_min}..{'' if score_max is None else score_max}"
        )
    terms = {
        "entity": entity,
        "detector": detector,
        "outcome": outcome,
        "model": model,
        "score": score,
        "since": since,
        "from": start,
        "to": end,
    }
    entities = {
        EntityKind.CUSTOMER: customer,
        EntityKind.TERMINAL: terminal,
        EntityKind.EPC: epc,
        EntityKind.GTIN: gtin,
        EntityKind.BIZ_LOCATION: location,
        EntityKind.READ_POINT: read_point,
        EntityKind.EVENT_ID: event_id,
    }
    criteria = SearchCriteria(
        tuple((k, v) for k, v in entities.items() if v is not None), _filter(terms)
    )
    store = open_store(load_settings())
    try:
        page = search(ArchiveStore(store), criteria, limit, cursor)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(page_json(page), indent=2))
    elif as_csv:
        typer.echo(page_csv(page), nl=False)
        if page.next_cursor:
            typer.echo(f"next cursor: {page.next_cursor}", err=True)
    else:
        _print_page(page)


def timeline_command(
    customer: str | None = CUSTOMER,
    terminal: str | None = TERMINAL,
    epc: str | None = EPC,
    gtin: str | None = GTIN,
    location: str | None = LOCATION,
    read_point: str | None = READ_POINT,
    since: str | None = SINCE,
    start: str | None = FROM,
    end: str | None = TO,
    limit: int = typer.Option(1000, "--limit", min=1, max=MAX_EVENTS, help="Events at most."),
    as_json: bool = typer.Option(False, "--json", help="Print the timeline as JSON."),
) -> None:
    """One entity's events in time order, each with its decision, score, outcome and top
    reasons; for scans the location, business step, and the distance (km, great-circle) and
    speed (km/h) from the previous event."""
    given = [
        (k, v)
        for k, v in (
            (EntityKind.CUSTOMER, customer),
            (EntityKind.TERMINAL, terminal),
            (EntityKind.EPC, epc),
            (EntityKind.GTIN, gtin),
            (EntityKind.BIZ_LOCATION, location),
            (EntityKind.READ_POINT, read_point),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise UsageError(
            "give exactly one entity: --customer, --terminal, --epc, --gtin,"
            " --location or --read-point"
        )
    where = _filter({"since": since, "from": start, "to": end})
    store = open_store(load_settings())
    try:
        line = timeline(
            ArchiveStore(store),
            given[0][0],
            given[0][1],
            where.event_time_from,
            where.event_time_to,
            limit,
        )
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(timeline_json(line), indent=2))
    else:
        _print_timeline(line)


def _filter(terms: dict[str, str | None]) -> EntryFilter:
    """The options as an entry filter, read by the case bundle's query parser."""
    given = [f"{key}={value}" for key, value in terms.items() if value is not None]
    return parse_query(shlex.join(given)) if given else EntryFilter()


def entity_label(decision: Decision) -> str:
    context = decision.context
    if isinstance(context, PaymentContext):
        return f"{context.customer_id}@{context.terminal_id}"
    if isinstance(context, ScanContext):
        return f"{context.epc}@{context.biz_location}"
    return decision.entity_id


def result_row(found: Found) -> dict[str, Any]:
    d = found.decision
    return {
        "event_time": d.event_time.isoformat(),
        "chain": found.chain,
        "seq": found.seq,
        "decision_id": d.decision_id,
        "event_id": d.event_id,
        "detector": d.detector.value,
        "outcome": d.outcome,
        "score": d.score,
        "entity": entity_label(d),
        "model_sha256": d.model_sha256,
    }


def page_json(page: SearchPage) -> dict[str, Any]:
    return {
        "results": [result_row(f) for f in page.results],
        "next_cursor": page.next_cursor,
        "by_index": page.by_index,
    }


def page_csv(page: SearchPage) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result_row(f) for f in page.results)
    return out.getvalue()


def _print_page(page: SearchPage) -> None:
    console = Console()
    table = Table(
        "event time", "entry", "decision", "event", "detector", "outcome", "score", "entity"
    )
    for f in page.results:
        d = f.decision
        # The decision id's first 16 digits: explain, replay and prove take the event id
        # (or --json and --csv print the whole id).
        table.add_row(
            d.event_time.strftime("%Y-%m-%d %H:%M:%S"),
            f"{f.chain}/{f.seq}",
            d.decision_id[:16],
            d.event_id,
            d.detector.value,
            d.outcome,
            f"{d.score:.3f}",
            entity_label(d),
        )
    console.print(table)
    console.print(f"{len(page.results)} decision(s)")
    if page.next_cursor:
        console.print(f"next cursor: {page.next_cursor}", soft_wrap=True)
    else:
        console.print("no more results")


def _print_timeline(line: Timeline) -> None:
    console = Console()
    console.print(f"{line.kind.value} {line.value}: {len(line.steps)} decision(s)")
    table = Table(
        "event time",
        "event",
        "decision",
        "score",
        "outcome",
        "where",
        "step",
        "km",
        "km/h",
        "top reasons",
    )
    for s in line.steps:
        d, context = s.decision, s.decision.context
        where = step = ""
        if isinstance(context, ScanContext):
            where, step = context.biz_location, context.biz_step.value
        elif isinstance(context, PaymentContext):
            where = context.terminal_id
        reasons = ", ".join(f"{r.feature} {r.contribution:+.2f}" for r in d.reasons[:3])
        km = "" if s.distance_km is None else f"{s.distance_km:.1f}"
        speed = "" if s.speed_kmh is None else f"{s.speed_kmh:.1f}"
        if s.distance_km and s.speed_kmh is None:
            speed = "same second"
        table.add_row(
            d.event_time.strftime("%Y-%m-%d %H:%M:%S"),
            d.event_id,
            d.decision_id[:12],
            f"{d.score:.3f}",
            d.outcome,
            where,
            step,
            km,
            speed,
            reasons,
        )
    console.print(table)
    _print_evidence(console, line)
    if line.truncated:
        console.print("more events than --limit: narrow the time with --from/--to")


def _print_evidence(console: Console, line: Timeline) -> None:
    """What to check behind each flagged event: the scan it conflicts with (event id, place,
    time), the failed challenge, the despatch it does not match."""
    for s in line.steps:
        for r in s.decision.reasons:
            e = r.evidence
            if e is None:
                continue
            where = ", ".join(
                x
                for x in (
                    e.event_id and f"event {e.event_id}",
                    e.biz_location,
                    e.event_time and e.event_time.isoformat(),
                )
                if x
            )
            suffix = f" [{where}]" if where else ""
            console.print(f"{s.decision.event_id} {r.feature}: {e.detail}{suffix}", markup=False)
