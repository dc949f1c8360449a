"""`attestream evaluate fraud|authenticity`: measure a detector under a documented protocol.

One command per detector, each a thin layer over a library module that does the work and
writes a JSON report, a markdown summary and a precision-recall curve (PNG) into `--out`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Evaluate a detector under a documented protocol; write JSON, markdown and a PNG.",
    no_args_is_help=True,
)

OutOption = Annotated[
    Path,
    typer.Option("--out", envvar="ATTESTREAM_EVALUATE_OUT", help="directory for the reports"),
]
SeedOption = Annotated[
    int, typer.Option("--seed", envvar="ATTESTREAM_EVALUATE_SEED", help="simulation and model seed")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the JSON report")]
CountOption = Annotated[
    int, typer.Option("--count", min=1, envvar="ATTESTREAM_EVALUATE_COUNT", help="scans per world")
]
TrainSeedOption = Annotated[
    int, typer.Option("--train-seed", envvar="ATTESTREAM_EVALUATE_TRAIN_SEED")
]


def _command_line() -> str:
    """The command as typed, for a report to name what reproduces it ("" when not run as
    `attestream evaluate ...`, e.g. from a test)."""
    return " ".join(["attestream", *sys.argv[1:]]) if sys.argv[1:2] == ["evaluate"] else ""


@app.command("fraud")
def fraud(
    out: OutOption = Path("reports"),
    seed: SeedOption = 0,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            envvar="ATTESTREAM_EVALUATE_DATA",
            help="labelled payments JSONL (default: simulate)",
        ),
    ] = None,
    customers: Annotated[
        int, typer.Option("--customers", min=1, envvar="ATTESTREAM_EVALUATE_CUSTOMERS")
    ] = 5_000,
    terminals: Annotated[
        int, typer.Option("--terminals", min=1, envvar="ATTESTREAM_EVALUATE_TERMINALS")
    ] = 10_000,
    days: Annotated[int, typer.Option("--days", min=1, envvar="ATTESTREAM_EVALUATE_DAYS")] = 80,
    scenarios: Annotated[
        str,
        typer.Option(
            "--scenarios",
            envvar="ATTESTREAM_EVALUATE_SCENARIOS",
            help="handbook: scenarios 1-3, labels 7 days later; all: every scenario,"
            " chargebacks after 1-7 days",
        ),
    ] = "handbook",
    folds: Annotated[int, typer.Option("--folds", min=1, envvar="ATTESTREAM_EVALUATE_FOLDS")] = 4,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            min=1,
            envvar="ATTESTREAM_EVALUATE_ROUNDS",
            help="boosting rounds (default: the production model's)",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Payment fraud under the handbook's prequential protocol (7 days of training, 7 of label
    delay, 7 of test, several folds): AUC-ROC, average precision, card precision@100."""
    # Imported here so `attestream --help` stays fast (the evaluation pulls in xgboost and
    # matplotlib).
    from detectors.evaluate_fraud import FraudEvaluationConfig
    from detectors.report_fraud import evaluate_fraud_to

    config = FraudEvaluationConfig(
        seed=seed,
        data=data,
        customers=customers,
        terminals=terminals,
        days=days,
        scenarios=scenarios,
        folds=folds,
        **({"rounds": rounds} if rounds else {}),
    )
    command = _command_line()
    evaluation, paths = evaluate_fraud_to(out, config, command=command)
    if as_json:
        typer.echo(paths["json"].read_text(encoding="utf-8"))
        return
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@app.command("authenticity")
def authenticity(
    out: OutOption = Path("reports"),
    seed: SeedOption = 1,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            envvar="ATTESTREAM_EVALUATE_DATA",
            help="labelled scans JSONL (default: simulate --count scans with --seed)",
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", min=1, envvar="ATTESTREAM_EVALUATE_COUNT")
    ] = 100_000,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            "--models-dir",
            envvar="ATTESTREAM_MODELS_DIR",
            help="where models live (default: <home>/models)",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            envvar="ATTESTREAM_EVALUATE_MODEL",
            help="model sha256 (default: the active one)",
        ),
    ] = None,
    world: Annotated[
        str,
        typer.Option(
            "--world",
            envvar="ATTESTREAM_EVALUATE_WORLD",
            help="which simulated world to evaluate on without --data (a or b)",
        ),
    ] = "a",
    as_json: JsonOption = False,
) -> None:
    """Supply-chain authenticity on scans the model never saw: precision and recall per
    scenario (per scan and per item), detection delay, false positives per noise kind. Any
    labelled file is accepted, whatever its scenario and noise names, or none."""
    import msgspec

    from attestream.settings import load_settings
    from detectors.report_authenticity import evaluate_to

    directory = models_dir or load_settings().models_path
    command = _command_line()
    evaluation, paths = evaluate_to(
        out,
        directory,
        data=data,
        count=count,
        seed=seed,
        world=world,
        model_sha256=model,
        command=command,
    )
    if as_json:
        typer.echo(msgspec.json.format(msgspec.json.encode(evaluation.report), indent=2).decode())
        return
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@app.command("cross-world")
def cross_world(
    out: OutOption = Path("reports/cross-world"),
    count: CountOption = 100_000,
    train_seed: TrainSeedOption = 0,
    test_seed: Annotated[int, typer.Option("--test-seed", envvar="ATTESTREAM_EVALUATE_SEED")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Authenticity across worlds: train a model on world A and one on world B (in a scratch
    models directory, never the active one), test each on fresh scans of both worlds, and
    write the table (cross-world.md) and its JSON."""
    from detectors.cross_world import cross_world as run_cross_world
    from detectors.cross_world import write_cross_world

    command = _command_line()
    report = run_cross_world(count, train_seed=train_seed, test_seed=test_seed, command=command)
    paths = write_cross_world(out, report)
    if as_json:
        typer.echo(paths["json"].read_text(encoding="utf-8"))
        return
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@app.command("missed-copies")
def missed_copies(
    out: OutOption = Path("reports/missed-copies"),
    train_world: Annotated[str, typer.Option("--train-world", help="world the model learns")] = "a",
    test_world: Annotated[str, typer.Option("--test-world", help="world it is read on")] = "b",
    count: CountOption = 100_000,
    train_seed: TrainSeedOption = 0,
    test_seed: Annotated[
        int,
        typer.Option(
            "--test-seed",
            help="5 by default, a development seed; cross-world's test seed 1 only to count",
        ),
    ] = 5,
    as_json: JsonOption = False,
) -> None:
    """Authenticity: train on one world (scratch models directory), read another world's
    scans, and say which copies the model misses and what evidence they carry
    (missed-copies.md and its JSON)."""
    from detectors.missed_copies import missed_across_worlds, write_missed_copies

    args = (train_world, test_world, count, train_seed, test_seed, _command_line())
    paths = write_missed_copies(out, missed_across_worlds(*args))
    typer.echo(paths["json" if as_json else "markdown"].read_text(encoding="utf-8"))
