"""`attestream serve`: the forensic API over HTTP (FastAPI; its OpenAPI document at /openapi.json).

The routes are thin: each calls the same forensics function as its CLI command (`forensic
prove`, `explain`, `bundle`, ...). Around every request under /v1 the middleware:
  1. authenticates the bearer token (`attestream.access_tokens`): none or unknown 401, a role
     the operation does not allow 403, a token file that cannot be read 500 (the route is
     not run);
  2. runs the route (a bad parameter: 422 naming it);
  3. appends the access record (who, operation, parameters, status, result count, when) to
     the ledger's access chain and signs it (`ledger.access_log`), and only then answers; if
     that fails the answer is withheld (503).
Requests run one at a time: one ClickHouse connection, one access-chain writer.

`/` serves the investigator page (`attestream/web/`): static files, no token, nothing of the
ledger; the page calls the /v1 routes with the token its user pastes, like any client.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

import attestream
from anchoring.store import AnchoredStore
from attestcore.errors import (
    AttestreamError,
    ServiceUnavailableError,
    UsageError,
    VerificationError,
)
from attestcore.records import ENTRY_COLUMNS
from attestream.access_tokens import AccessTokens, Role
from attestream.commands.search import page_json
from attestream.serve_metrics import ServeMetrics
from forensics.case_bundle import DEFAULT_MAX_ENTRIES, Exporter, Selection, dump_case_bundle
from forensics.explain import explain_logged, explanation_json, find_decision
from forensics.proofs import dump_bundle, prove_verified
from forensics.search import SearchCriteria
from forensics.search import search as search_decisions
from forensics.timeline import MAX_EVENTS, timeline, timeline_json
from forensics.verify_bundle import export_case_bundle
from ledger.access_entry import MAX_FILTER_CHARS, AccessRecord
from ledger.access_log import AccessLog
from ledger.archive import EntityKind
from ledger.archive_store import ArchiveStore
from ledger.entry_filter import EntryFilter, parse_query
from ledger.keys import NoteVerifier

log = logging.getLogger("attestream.serve")

API_PREFIX = "/v1"
OPERATION_ROLES: dict[str, frozenset[Role]] = {
    "decision": frozenset({Role.INVESTIGATOR}),
    "explain": frozenset({Role.INVESTIGATOR}),
    "search": frozenset({Role.INVESTIGATOR}),
    "timeline": frozenset({Role.INVESTIGATOR}),
    "prove": frozenset({Role.INVESTIGATOR, Role.AUDITOR}),
    "bundle": frozenset({Role.INVESTIGATOR, Role.AUDITOR}),
    "unknown": frozenset(Role),
}
"""Who may call what: auditors fetch proofs and case bundles only."""
MAX_ID_CHARS = 128
MAX_QUERY_CHARS = 1024
SEARCH_LIMIT = 1000
Id = Annotated[str, Query(min_length=1, max_length=MAX_ID_CHARS)]
"""A decision or event id: any text (it reaches the store only as a query parameter)."""
ENTRY_COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}
WEB_DIR = Path(__file__).with_name("web")
"""The investigator page: HTML, CSS and JavaScript, no build step."""


@dataclass
class ServerContext:
    """What the routes work with; built by `attestream serve` (or a test)."""

    store: AnchoredStore
    access_log: AccessLog
    tokens: AccessTokens
    verifiers: list[NoteVerifier]
    models_dir: Path
    metrics: ServeMetrics = field(default_factory=ServeMetrics)


def create_app(ctx: ServerContext) -> FastAPI:
    app = FastAPI(title="attestream forensic API", version=attestream.__version__,
                  description=__doc__)  # fmt: skip
    bearer = HTTPBearer(auto_error=False, description="A token from `attestream access grant`.")
    lock = asyncio.Lock()

    @app.middleware("http")
    async def authenticate_and_record(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        operation = _operation(request.url.path)
        if operation is None:
            return await call_next(request)
        started = time.perf_counter()
        async with lock:
            response = await _answer_and_record(ctx, request, operation, call_next)
        ctx.metrics.answered(operation, response.status_code, time.perf_counter() - started)
        return response

    @app.exception_handler(AttestreamError)
    async def attestream_error(request: Request, exc: AttestreamError) -> JSONResponse:
        return _error(_status(exc), exc.kind, str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in e["loc"][1:]) for e in exc.errors()]
        message = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, exc.errors(), strict=True))
        error = {"kind": "usage", "message": message, "fields": fields}
        return JSONResponse(status_code=422, content={"ok": False, "error": error})

    secured = [Depends(bearer)]

    @app.get(f"{API_PREFIX}/decision", dependencies=secured)
    def decision(request: Request, id: Id) -> dict[str, Any]:  # noqa: A002
        """A logged decision by its decision id or by an event id only one decision has."""
        logged = find_decision(ctx.store, _decision_id(ctx.store, id))
        request.state.results = 1
        return {"chain": logged.chain, "seq": logged.seq, "leaf_hash": logged.leaf_hash.hex(),
                "decision": msgspec.to_builtins(logged.decision)}  # fmt: skip

    @app.get(f"{API_PREFIX}/explain", dependencies=secured)
    def explain(request: Request, decision_id: Id) -> dict[str, Any]:
        """`forensic explain --json`: the replayed score and its exact TreeSHAP values."""
        logged, explained = explain_logged(ctx.store, decision_id, ctx.models_dir)
        request.state.results = 1
        return explanation_json(logged, explained)

    @app.get(f"{API_PREFIX}/prove", dependencies=secured)
    def prove(
        request: Request, decision_id: Id, since_size: Annotated[int | None, Query(ge=1)] = None
    ) -> Response:
        """`forensic prove`: the proof file, byte for byte (check it with verify-proof)."""
        bundle = prove_verified(ctx.store, decision_id, ctx.verifiers, since_size)
        request.state.results = 1
        return Response(dump_bundle(bundle), media_type="application/json")

    @app.get(f"{API_PREFIX}/bundle", dependencies=secured)
    def bundle(
        request: Request,
        query: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
        ids: Annotated[list[str] | None, Query()] = None,
        note: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
        max_entries: Annotated[int, Query(alias="max", ge=1)] = DEFAULT_MAX_ENTRIES,
    ) -> Response:
        """`forensic bundle`: the case bundle of a query or of ids (verified before sent)."""
        if (query is None) == (not ids):
            raise UsageError("give exactly one of query and ids")
        selection = (Selection(query=query, filter=parse_query(query)) if query is not None
                     else Selection(ids=list(dict.fromkeys(ids or []))))  # fmt: skip
        exporter = Exporter(request.state.principal, _now(),
                            f"attestream serve {attestream.__version__}", note)  # fmt: skip
        case = export_case_bundle(ctx.store, selection, exporter, ctx.verifiers, max_entries)
        request.state.results = case.manifest.counts.entries
        return Response(dump_case_bundle(case), media_type="application/json")

    @app.get(f"{API_PREFIX}/search", dependencies=secured)
    def search(
        request: Request,
        query: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
        customer: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        terminal: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        epc: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        gtin: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        location: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        read_point: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        event_id: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        limit: Annotated[int, Query(ge=1, le=SEARCH_LIMIT)] = 50,
        cursor: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    ) -> dict[str, Any]:
        """`forensic search`: one page of logged decisions meeting every entity filter and
        every `key=value` term of `query` (the terms of `forensic bundle --query`), with the
        cursor of the next page."""
        entities = {EntityKind.CUSTOMER: customer, EntityKind.TERMINAL: terminal,
                    EntityKind.EPC: epc, EntityKind.GTIN: gtin,
                    EntityKind.BIZ_LOCATION: location, EntityKind.READ_POINT: read_point,
                    EntityKind.EVENT_ID: event_id}  # fmt: skip
        criteria = SearchCriteria(
            tuple((kind, value) for kind, value in entities.items() if value is not None),
            parse_query(query) if query else EntryFilter(),
        )
        page = search_decisions(ArchiveStore(ctx.store), criteria, limit, cursor)
        request.state.results = len(page.results)
        return page_json(page)

    @app.get(f"{API_PREFIX}/timeline", dependencies=secured)
    def timeline_route(
        request: Request,
        kind: Annotated[EntityKind, Query()],
        value: Annotated[str, Query(min_length=1, max_length=MAX_ID_CHARS)],
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000,
    ) -> dict[str, Any]:
        """`forensic timeline`: the entity's events in time order with their decisions (for
        an EPC also each scan's place, distance and speed from the one before)."""
        line = timeline(ArchiveStore(ctx.store), kind, value, limit=limit)
        request.state.results = len(line.steps)
        return timeline_json(line)

    # Last, so the API routes and /openapi.json match first.
    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="investigator-page")
    return app


async def _answer_and_record(
    ctx: ServerContext, request: Request, operation: str,
    call_next: Callable[[Request], Awaitable[Response]],
) -> Response:  # fmt: skip
    """Steps 1-3 of the module doc."""
    response, principal, role = await _authorized(ctx, request, operation, call_next)
    record = AccessRecord(
        request_id=secrets.token_hex(16), at=_now(), principal=principal, role=role,
        operation=operation, filters=_filters(request), status=response.status_code,
        results=getattr(request.state, "results", 0) if response.status_code < 400 else 0,
        outcome=_outcome(response.status_code),
    )  # fmt: skip
    try:
        await run_in_threadpool(ctx.access_log.append, record)
    except AttestreamError as exc:
        return _error(503, exc.kind, f"the request could not be recorded: {exc}")
    return response


async def _authorized(
    ctx: ServerContext, request: Request, operation: str,
    call_next: Callable[[Request], Awaitable[Response]],
) -> tuple[Response, str, str]:  # fmt: skip
    """Step 1, then step 2 when allowed: the response, the principal and the role."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(401, "unauthenticated", "a bearer token is required"), "", ""
    try:
        grant = await run_in_threadpool(ctx.tokens.holder, token.strip())
    except AttestreamError as exc:  # the token file unreadable: answered, and recorded, too
        return _error(_status(exc), exc.kind, str(exc)), "", ""
    if grant is None:
        return _error(401, "unauthenticated", "the bearer token is not valid"), "", ""
    if grant.role not in OPERATION_ROLES[operation]:
        message = f"the role {grant.role.value} may not use {operation}"
        return _error(403, "forbidden", message), grant.name, grant.role.value
    request.state.principal = grant.name
    try:
        response = await call_next(request)
    except Exception:  # a bug: recorded as a failed request; no traceback to the client
        log.exception("%s request failed", operation)
        response = _error(500, "internal", "internal error (see the server log)")
    return response, grant.name, grant.role.value


def _decision_id(store: AnchoredStore, given: str) -> str:
    """`given` when a decision has that id, else the one decision on the event `given`."""
    if store.entry_by_decision_id(given) is not None:
        return given
    rows = store.entries_with_ids([given], 2)
    on_event = [bytes(r[ENTRY_COL["decision_id"]]).decode() for r in rows
                if bytes(r[ENTRY_COL["event_id"]]).decode() == given]  # fmt: skip
    if len(on_event) > 1:
        raise UsageError(f"the event {given} has several decisions: ask by decision id")
    if not on_event:
        raise UsageError(f"no logged decision has the id {given}")
    return on_event[0]


def _operation(path: str) -> str | None:
    if not path.startswith(API_PREFIX + "/"):
        return None
    name = path[len(API_PREFIX) + 1 :]
    return name if name in OPERATION_ROLES else "unknown"


def _filters(request: Request) -> dict[str, str]:
    """The request's parameters (repeated ones joined by commas), each cut short."""
    params = request.query_params
    return {key: ",".join(params.getlist(key))[:MAX_FILTER_CHARS] for key in params}


def _status(exc: AttestreamError) -> int:
    if isinstance(exc, UsageError):
        return 404 if str(exc).startswith("no logged decision") else 422
    if isinstance(exc, ServiceUnavailableError):
        return 503
    if isinstance(exc, VerificationError):
        return 409
    return 500  # ConfigError and the rest: the server's setup, not the request


def _outcome(status: int) -> str:
    if status in (401, 403):
        return "denied"
    return "allowed" if status < 400 else "failed"


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"ok": False, "error": {"kind": kind, "message": message}}
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
