"""`python -m bench` (`make bench`): run the benchmarks and write their results.

Every option can also come from the environment (ATTESTREAM_BENCH_<OPTION>).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from attestcore.errors import AttestreamError, ConfigError
from attestream.stack import StackManager
from attestream.stack_services import Endpoints
from bench.config import FULL, QUICK
from bench.runner import run_benchmarks

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    runs: int = typer.Option(None, min=1, envvar="ATTESTREAM_BENCH_RUNS",
                             help="Runs per figure (the median is reported). Default 5, quick 1."),
    quick: bool = typer.Option(False, envvar="ATTESTREAM_BENCH_QUICK",
                               help="Tiny sizes: a smoke test of the harness, not a measurement."),
    decisions: int = typer.Option(None, min=1, envvar="ATTESTREAM_BENCH_DECISIONS",
                                  help="Decisions pre-filled into the topic (default 200,000)."),
    batch_max: int = typer.Option(None, min=1, envvar="ATTESTREAM_BENCH_BATCH_MAX",
                                  help="Records per consume call (default 5,000)."),
    stream_runs: int = typer.Option(None, min=1, envvar="ATTESTREAM_BENCH_STREAM_RUNS",
                                    help="Runs of the stream figures f-h (default 3, quick 1)."),
    stream_events: int = typer.Option(None, min=1, envvar="ATTESTREAM_BENCH_STREAM_EVENTS",
                                      help="Payments per stream run (default 40,000)."),
    results_dir: Path = typer.Option(None, envvar="ATTESTREAM_BENCH_RESULTS_DIR",
                                     help="Where the JSON goes (default bench/results)."),
    doc: Path = typer.Option(None, envvar="ATTESTREAM_BENCH_DOC",
                             help="Markdown file whose results table is replaced"
                                  " (default docs/benchmarks.md)."),
    no_doc: bool = typer.Option(False, help="Write no markdown, only the JSON."),
    stack_home: Path = typer.Option(None, envvar="ATTESTREAM_BENCH_STACK_HOME",
                                    help="Use the stack already running in this home"
                                         " instead of starting one (tests)."),
) -> None:  # fmt: skip
    """Measure the ledger and the detection stream against raw ceilings on a fresh local
    stack."""
    config = QUICK if quick else FULL
    changes = {"runs": runs, "decisions": decisions, "batch_max": batch_max,
               "stream_runs": stream_runs, "stream_events": stream_events,
               "results_dir": results_dir, "doc_path": doc}  # fmt: skip
    config = config.replace(**{k: v for k, v in changes.items() if v is not None})
    if no_doc:
        config = config.replace(doc_path=None)
    command = "python -m bench " + " ".join(sys.argv[1:])
    try:
        result = run_benchmarks(config, command.strip(), _running_stack(stack_home))
    except AttestreamError as exc:
        typer.echo(f"error: {exc.diagnostics()}", err=True)
        raise typer.Exit(exc.exit_code) from exc
    typer.echo(result.table)
    typer.echo(f"results: {result.json_path}")


def _running_stack(home: Path | None) -> Endpoints | None:
    if home is None:
        return None
    state = StackManager(home).load_state()
    if state is None or not state.expected_up:
        raise ConfigError(f"no stack is running in {home} (`attestream stack up --home {home}`)")
    return state.endpoints


if __name__ == "__main__":
    app()
