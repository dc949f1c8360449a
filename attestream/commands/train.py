"""`attestream train fraud|authenticity`: train a detector's model and make it active.

A thin layer over `detectors.training`: simulate (or read a labelled JSONL file written by the
simulator), replay through the online feature functions, train, store the artifact and its
card under the models directory, and name it in the registry.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from attestcore.schemas import Detector
from attestream.settings import load_settings
from detectors.registry import LoadedModel, ModelCard
from detectors.simulate_payments import read_labelled_payments
from detectors.simulate_supply import read_labelled_scans
from detectors.training import DEFAULT_COUNTS, train_detector

app = typer.Typer(
    help="Train a detector's model, store it with its model card, and make it active.",
    no_args_is_help=True,
)

CountOption = Annotated[
    int | None,
    typer.Option("--count", min=1, envvar="ATTESTREAM_TRAIN_COUNT", help="events to simulate"),
]
SeedOption = Annotated[
    int, typer.Option("--seed", envvar="ATTESTREAM_TRAIN_SEED", help="simulation and model seed")
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        exists=True,
        dir_okay=False,
        envvar="ATTESTREAM_TRAIN_DATA",
        help="labelled JSONL from `attestream simulate` instead of simulating in memory",
    ),
]
ModelsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--models-dir",
        envvar="ATTESTREAM_MODELS_DIR",
        help="where models live (default: <home>/models)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the model card as JSON")]


@app.command("fraud")
def fraud(
    count: CountOption = None,
    seed: SeedOption = 0,
    data: DataOption = None,
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the payment fraud model (default: 60,000 simulated payments)."""
    _train(Detector.FRAUD, count, seed, data, models_dir, as_json)


@app.command("authenticity")
def authenticity(
    count: CountOption = None,
    seed: SeedOption = 0,
    data: DataOption = None,
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
    world: Annotated[
        str,
        typer.Option(
            "--world",
            envvar="ATTESTREAM_TRAIN_WORLD",
            help="which simulated supply-chain world to train on without --data (a or b)",
        ),
    ] = "a",
) -> None:
    """Train the supply-chain authenticity model (default: 100,000 simulated scans)."""
    if data is None and world != "a":
        from detectors.supply_worlds import simulate_world

        n = count or DEFAULT_COUNTS[Detector.AUTHENTICITY]
        labelled = simulate_world(world, n, seed)
        source = f"simulated world {world}: {n} scans, seed {seed}"
        _train(Detector.AUTHENTICITY, n, seed, None, models_dir, as_json, labelled, source)
        return
    _train(Detector.AUTHENTICITY, count, seed, data, models_dir, as_json)


def _train(
    detector: Detector,
    count: int | None,
    seed: int,
    data: Path | None,
    models_dir: Path | None,
    as_json: bool,
    labelled: list[Any] | None = None,
    source: str | None = None,
) -> None:
    directory = models_dir or load_settings().models_path
    if data is not None:
        reader = read_labelled_payments if detector == Detector.FRAUD else read_labelled_scans
        labelled = list(reader(data))
        source = f"labelled file {data.name}: {len(labelled)} events"
    started = time.perf_counter()
    model = train_detector(
        detector,
        directory,
        count=count or DEFAULT_COUNTS[detector],
        seed=seed,
        labelled=labelled,
        data_source=source,
    )
    elapsed = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(model.card), indent=2))
    else:
        _print_summary(model, directory, elapsed)


def _print_summary(model: LoadedModel, directory: Path, elapsed: float) -> None:
    card: ModelCard = model.card
    table = Table(title=f"{card.model_id} (active)", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("model_sha256", card.model_sha256)
    table.add_row("artifact", str(model.artifact_path))
    table.add_row("data", card.training.data_source)
    table.add_row("data digest", card.training.data_digest)
    table.add_row(
        "rows",
        f"{card.training.rows_train} train ({card.training.positives_train} positive), "
        f"{card.training.rows_validation} validation ({card.training.positives_validation})",
    )
    table.add_row("AUC-ROC", f"{card.metrics.auc_roc:.4f}")
    table.add_row("average precision", f"{card.metrics.average_precision:.4f}")
    for outcome, threshold in card.thresholds.items():
        table.add_row(
            f"{outcome} at score >=",
            f"{threshold:.4f}  (validation: {card.metrics.alert_rate[outcome]:.2%} of events, "
            f"precision {card.metrics.precision[outcome]:.2%})",
        )
    table.add_row("trained in", f"{elapsed:.1f} s")
    table.add_row("registry", str(directory / "registry.json"))
    Console().print(table)
