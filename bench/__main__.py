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
from bench.config import FULL, PARTS, QUICK
from bench.runner import run_benchmarks

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    runs: int = typer.Option(
        None,
        min=1,
        envvar="ATTESTREAM_BENCH_RUNS",
        help="Runs per figure (the median is reported). Default 5, quick 1.",
    ),
    quick: bool = typer.Option(
        False,
        envvar="ATTESTREAM_BENCH_QUICK",
        help="Tiny sizes: a smoke test of the harness, not a measurement.",
    ),
    decisions: int = typer.Option(
        None,
        min=1,
        envvar="ATTESTREAM_BENCH_DECISIONS",
        help="Decisions pre-filled into the topic (default 200,000).",
    ),
    batch_max: int = typer.Option(
        None,
        min=1,
        envvar="ATTESTREAM_BENCH_BATCH_MAX",
        help="Records per consume call (default 5,000).",
    ),
    stream_runs: int = typer.Option(
        None,
        min=1,
        envvar="ATTESTREAM_BENCH_STREAM_RUNS",
        help="Runs of the stream figures f-h (default 3, quick 1).",
    ),
    stream_events: int = typer.Option(
        None,
        min=1,
        envvar="ATTESTREAM_BENCH_STREAM_EVENTS",
        help="Payments per stream run (default 40,000).",
    ),
    forensic_entries: int = typer.Option(
        None,
        min=1,
        envvar="ATTESTREAM_BENCH_FORENSIC_ENTRIES",
        help="Entries of the investigators' ledger (default 2,000,000, quick 5,000; at least"
        " 4,000). Built once, then reused.",
    ),
    forensic_entities: int = typer.Option(
        None,
        min=3,
        envvar="ATTESTREAM_BENCH_FORENSIC_ENTITIES",
        help="Entities searched per run (default 300).",
    ),
    forensic_repeats: int = typer.Option(
        None,
        min=1,
        envvar="ATTESTREAM_BENCH_FORENSIC_REPEATS",
        help="Timelines per chosen entity, bundles written and verified, per run (default 3).",
    ),
    forensic_home: Path = typer.Option(
        None,
        envvar="ATTESTREAM_BENCH_FORENSIC_HOME",
        help="Stack home whose ClickHouse keeps the investigators' ledger"
        " (default .attestream/bench-forensic).",
    ),
    only: str = typer.Option(
        None,
        envvar="ATTESTREAM_BENCH_ONLY",
        help=f"Measure one part only: {' or '.join(PARTS)} (ledger: a-h, p-t; forensic: i-l).",
    ),
    results_dir: Path = typer.Option(
        None,
        envvar="ATTESTREAM_BENCH_RESULTS_DIR",
        help="Where the JSON goes (default bench/results).",
    ),
    doc: Path = typer.Option(
        None,
        envvar="ATTESTREAM_BENCH_DOC",
        help="Markdown file whose results table is replaced (default docs/benchmarks.md).",
    ),
    no_doc: bool = typer.Option(False, help="Write no markdown, only the JSON."),
    stack_home: Path = typer.Option(
        None,
        envvar="ATTESTREAM_BENCH_STACK_HOME",
        help="Use the stack already running in this home instead of starting one (tests).",
    ),
) -> None:
    """Measure the ledger and the detection stream against raw ceilings on a fresh local
    stack, and the investigators' tools on a ledger of millions of entries kept between
    runs."""
    config = QUICK if quick else FULL
    changes = {
        "runs": runs,
        "decisions": decisions,
        "batch_max": batch_max,
        "stream_runs": stream_runs,
        "stream_events": stream_events,
        "forensic_entries": forensic_entries,
        "forensic_entities": forensic_entities,
        "forensic_repeats": forensic_repeats,
        "forensic_home": forensic_home,
        "results_dir": results_dir,
        "doc_path": doc,
    }
    config = config.replace(**{k: v for k, v in changes.items() if v is not None})
    if no_doc:
        config = config.replace(doc_path=None)
    if only is not None:
        if only not in PARTS:
            raise typer.BadParameter(f"--only takes one of {', '.join(PARTS)}, got {only!r}")
        config = config.replace(parts=(only,))
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
