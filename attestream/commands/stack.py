"""`attestream stack up|down|status`: the local dev stack (README, "How it fits together").

A thin layer over `attestream.stack.StackManager`, which the test fixtures use too.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from attestcore.errors import ConfigError
from attestream import monitoring_queries, stack_prometheus
from attestream.settings import Settings, load_settings
from attestream.stack import StackManager, StackState, StackStatus
from attestream.wiring import ensure_local_ledger_key

# Exit code of `status` when the stack should be up but a service is down or unhealthy.
EXIT_UNHEALTHY = 3

app = typer.Typer(
    help="Start, stop and inspect the local stack: Kafka-compatible broker, ClickHouse, anvil,"
    " Prometheus.",
    no_args_is_help=True,
)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="ATTESTREAM_HOME",
        help="Directory for stack state, data and logs [default: .attestream].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
PrometheusPortOption = Annotated[
    int,
    typer.Option(
        "--prometheus-port",
        envvar="ATTESTREAM_PROMETHEUS_PORT",
        help="Port of the stack's Prometheus; 0 takes a free one (kept across down/up).",
    ),
]
PrometheusIntervalOption = Annotated[
    float,
    typer.Option(
        "--prometheus-interval",
        envvar="ATTESTREAM_PROMETHEUS_INTERVAL_S",
        min=0.001,
        help="Seconds between Prometheus's scrapes and between its rule evaluations.",
    ),
]


@app.command()
def up(
    home: HomeOption = None,
    json_out: JsonOption = False,
    prometheus_port: PrometheusPortOption = 0,
    prometheus_interval: PrometheusIntervalOption = stack_prometheus.DEFAULT_INTERVAL_S,
) -> None:
    """Start the stack (or report the running one) and wait until every service answers."""
    manager = _manager(home, prometheus_port, prometheus_interval)
    state = manager.up()
    reset = manager.last_reset
    _say_ledger_key(state.home)
    if json_out:
        _print_json({**state.to_json(), "broker_reset": reset.to_json() if reset else None})
        return
    console = Console()
    console.print(_state_table(state))
    console.print(f"state recorded in {state.home / 'stack.json'}")
    if reset is not None:
        console.print(f"[yellow]warning:[/yellow] {reset.describe()}", soft_wrap=True)


def _say_ledger_key(home: Path) -> None:
    """The local stack's checkpoint key: created here, explicitly and once, and said so."""
    created = ensure_local_ledger_key(load_settings(home=home))
    if created is not None:
        typer.echo(
            f"created the local ledger signing key {created} (it is never overwritten;"
            " `attestream ledger keys` prints its verifier key)",
            err=True,
        )


@app.command()
def down(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Stop exactly the processes `up` started; data of ClickHouse and anvil is kept."""
    manager = _manager(home)
    before = manager.load_state()
    manager.down()
    stopped = {n: p.pid for n, p in before.services.items() if p.pid} if before else {}
    if json_out:
        _print_json({"stopped": stopped})
    elif stopped:
        Console().print(
            "stopped " + ", ".join(f"{name} (pid {pid})" for name, pid in stopped.items())
        )
    else:
        Console().print("the stack was not running")


@app.command()
def status(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Show each service's pid, liveness and health (exit 3 if up but unhealthy)."""
    report = _manager(home).status()
    if json_out:
        _print_json(_status_json(report))
    else:
        _print_status(report)
    if report.expected_up and not report.healthy:
        raise typer.Exit(EXIT_UNHEALTHY)


@app.command()
def queries(
    home: HomeOption = None,
    json_out: JsonOption = False,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            help="A Prometheus to ask instead of the local stack's (e.g. production's).",
        ),
    ] = None,
    rate_window: Annotated[
        str,
        typer.Option("--rate-window", help="What $__rate_interval stands for in panel queries."),
    ] = monitoring_queries.DEFAULT_RATE_WINDOW,
) -> None:
    """Evaluate every dashboard panel's query and every alert rule now: what each returns
    (a value, a number of series or no data) and each alert's state. Exit 1 if a query does
    not parse or an alert fires."""
    url = prometheus_url or _stack_prometheus_url(home)
    prometheus = monitoring_queries.Prometheus(url)
    evaluations = monitoring_queries.evaluate_all(prometheus, rate_window)
    if json_out:
        _print_json({"prometheus": url, "queries": [e.to_json() for e in evaluations]})
    else:
        table = Table(title=f"Queries evaluated by {url}")
        for column in ("source", "name", "result", "state"):
            table.add_column(column)
        for e in evaluations:
            table.add_row(e.query.source, e.query.name, e.summary(), e.state)
        Console().print(table)
    if any(not e.ok or e.state == "firing" for e in evaluations):
        raise typer.Exit(1)


def _stack_prometheus_url(home: Path | None) -> str:
    state = _manager(home).load_state()
    if state is None:
        raise ConfigError(
            "the local stack is not up: run `attestream stack up`, or pass --prometheus-url"
        )
    return state.endpoints.prometheus_url


def _manager(
    home: Path | None,
    prometheus_port: int = 0,
    prometheus_interval_s: float = stack_prometheus.DEFAULT_INTERVAL_S,
) -> StackManager:
    if home is None:
        try:
            home = Settings().home
        except ValidationError as exc:
            raise ConfigError(f"invalid ATTESTREAM_* settings: {exc}") from exc
    return StackManager(home, prometheus_port, prometheus_interval_s)


def _state_table(state: StackState) -> Table:
    table = Table(title="attestream stack")
    for column in ("service", "pid", "endpoint"):
        table.add_column(column)
    for name, proc in state.services.items():
        table.add_row(name, str(proc.pid), proc.endpoint)
    table.caption = f"chain id {state.endpoints.chain_id}, broker {state.broker_cluster_id}"
    return table


def _status_json(report: StackStatus) -> dict[str, Any]:
    return {
        "state_file": str(report.state_file),
        "expected_up": report.expected_up,
        "healthy": report.healthy,
        "services": [asdict(s) for s in report.services],
        "workers": [asdict(w) for w in report.workers],
    }


def _print_status(report: StackStatus) -> None:
    console = Console()
    if not report.services:
        console.print(f"the stack is down (no state at {report.state_file})")
        return
    table = Table(title="attestream stack")
    for column in ("service", "pid", "alive", "healthy", "endpoint", "detail"):
        table.add_column(column)
    for s in report.services:
        table.add_row(
            s.name,
            str(s.pid or "-"),
            _mark(s.alive),
            _mark(s.healthy),
            s.endpoint,
            s.detail,
        )
    for w in report.workers:
        table.add_row(w.process, str(w.pid), _mark(w.alive), _mark(w.healthy), "", w.detail)
    console.print(table)
    for s in report.services:
        if s.name == "prometheus" and s.alive:
            console.print(f"Prometheus: {s.endpoint} (alerts at {s.endpoint}/alerts)")
    if not report.expected_up:
        console.print("the stack is down; start it with `attestream stack up`")
    elif not report.healthy:
        console.print("[red]not every service is healthy[/red]: `attestream stack up` restarts")


def _mark(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]no[/red]"


def _print_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=2))
