"""`attestream serve` (the forensic API over HTTP) and `attestream access grant | revoke |
list` (its bearer tokens). See docs/operations.md, "The forensic API"."""

from __future__ import annotations

import json

import typer

from attestream.access_tokens import AccessTokens, Role, tokens_path
from attestream.observability import Readiness, process_registry, serve_metrics
from attestream.server import ServerContext, create_app
from attestream.settings import load_settings
from attestream.wiring import ledger_signer, open_store, trusted_verifiers
from attestream.workers import registered
from ledger.access_log import AccessLog

access_app = typer.Typer(help="Bearer tokens of the forensic API.", no_args_is_help=True)


def _tokens() -> AccessTokens:
    return AccessTokens(tokens_path(load_settings().home))


def serve(
    host: str = typer.Option("127.0.0.1", "--host", envvar="ATTESTREAM_SERVE_HOST"),
    port: int = typer.Option(8080, "--port", min=1, max=65535, envvar="ATTESTREAM_SERVE_PORT"),
) -> None:
    """Serve the forensic API (decision, explain, prove, bundle, search; OpenAPI at
    /openapi.json). Every request under /v1 needs a bearer token and is recorded in the
    ledger's access chain, signed with the ledger key: run ONE server per ledger. Its metrics
    (requests, durations, denials) are served on ATTESTREAM_SERVE_METRICS_PORT."""
    import uvicorn  # only the server needs it

    settings = load_settings()
    signer = ledger_signer(settings)
    store = open_store(settings, create=True)
    try:
        access_log = AccessLog(store, signer, settings.log_origin)
        access_log.open()
        ctx = ServerContext(
            store, access_log, _tokens(), trusted_verifiers(settings), settings.models_path
        )
        registry = process_registry(ctx.metrics.registry)
        # Ready once the access chain is open: ClickHouse answered and the key signs.
        Readiness("serve", ("clickhouse",), registry).started()
        metrics_port = serve_metrics(settings.metrics_host, settings.serve_metrics_port, registry)
        with registered(settings.home, "serve", settings.metrics_host, metrics_port):
            uvicorn.run(create_app(ctx), host=host, port=port, log_level="info")
    finally:
        store.close()


@access_app.command("grant")
def grant(
    name: str = typer.Argument(..., help="Who the token is for (letters, digits, ._@-)."),
    role: Role = typer.Option(
        ..., "--role", help="investigator: everything; auditor: proofs and case bundles only."
    ),
) -> None:
    """Create a token and print it, once: only its SHA-256 is kept."""
    token = _tokens().grant(name, role)
    typer.echo(token)
    typer.echo(f"granted {role.value} access to {name}; this token is not shown again", err=True)


@access_app.command("revoke")
def revoke(name: str = typer.Argument(...)) -> None:
    """Revoke NAME's token; the server refuses it from the next request on."""
    _tokens().revoke(name)
    typer.echo(f"revoked the token of {name}", err=True)


@access_app.command("list")
def list_grants(as_json: bool = typer.Option(False, "--json")) -> None:
    """Who holds a token, with which role, since when (never the token)."""
    grants = [
        {"name": g.name, "role": g.role.value, "granted_at": g.granted_at.isoformat()}
        for g in _tokens().grants()
    ]
    if as_json:
        typer.echo(json.dumps(grants, indent=2))
        return
    for g in grants:
        typer.echo(f"{g['name']}\t{g['role']}\t{g['granted_at']}")
