"""`attestream models list | activate`: the model registry's versions and its active models.

A running `attestream detect` follows the registry's active model of each detector (unless
ATTESTREAM_<DETECTOR>_MODEL pins one) and swaps a newly activated one in between micro-batches
within ATTESTREAM_DETECT_MODEL_POLL_S seconds (attestream.rollout; docs/operations.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from attestcore.schemas import Detector
from attestream.detection import stream_model
from attestream.settings import Settings, load_settings
from detectors.registry import ModelCard, activate_model, active_sha256, list_models, resolve_model

app = typer.Typer(help="List model versions and choose the active one.", no_args_is_help=True)

ModelsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--models-dir",
        envvar="ATTESTREAM_MODELS_DIR",
        help="where models live (default: <home>/models)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _settings(models_dir: Path | None) -> Settings:
    return load_settings(models_dir=models_dir) if models_dir else load_settings()


def _pinned(settings: Settings, detector: Detector) -> str:
    return settings.fraud_model if detector == Detector.FRAUD else settings.authenticity_model


def _row(card: ModelCard, active: str | None) -> dict[str, Any]:
    return {
        "detector": card.detector.value,
        "model_id": card.model_id,
        "model_sha256": card.model_sha256,
        "active": card.model_sha256 == active,
        "created_at": card.created_at.isoformat(),
        "features": len(card.features),
        "rows": card.training.rows,
        "auc_roc": card.metrics.auc_roc,
        "average_precision": card.metrics.average_precision,
    }


@app.command("list")
def list_(
    detector: Annotated[Detector | None, typer.Argument(help="Only this detector.")] = None,
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every stored model version, oldest first, the active one marked."""
    settings = _settings(models_dir)
    models = settings.models_path
    rows: list[dict[str, Any]] = []
    for d in [detector] if detector else list(Detector):
        active = active_sha256(models, d)
        rows.extend(_row(card, active) for card in list_models(models, d))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"models in {models} (* active; digests: --json)")
    for name in ("model id", "created (UTC)", "AUC", "AP", "rows"):
        table.add_column(name, no_wrap=True)
    for r in rows:
        table.add_row(
            r["model_id"] + (" *" if r["active"] else ""),
            r["created_at"][:16].replace("T", " "),
            f"{r['auc_roc']:.3f}",
            f"{r['average_precision']:.3f}",
            f"{r['rows']:,}",
        )
    console = Console()
    console.print(table)
    for d in [detector] if detector else list(Detector):
        if _pinned(settings, d):
            console.print(
                f"{d.value}: the stream is pinned to {_pinned(settings, d)!r} by"
                f" ATTESTREAM_{d.value.upper()}_MODEL, not the active model"
            )


@app.command("activate")
def activate(
    detector: Annotated[Detector, typer.Argument(help="fraud or authenticity")],
    model: Annotated[str, typer.Argument(help="sha256, model id, or 8+ hex digits of the sha256")],
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a stored model the active one, after checking it as the stream will (artifact
    digest, features, reference data): exit 1 if its artifact does not match its digest."""
    settings = _settings(models_dir)
    models = settings.models_path
    sha256 = resolve_model(models, detector, model)
    scorer = stream_model(models, detector, sha256)
    previous = active_sha256(models, detector)
    activate_model(models, detector, sha256)
    result = {
        "detector": detector.value,
        "model_id": scorer.model_id,
        "model_sha256": sha256,
        "previous_sha256": previous,
        "poll_s": settings.detect_model_poll_s,
        "pinned": _pinned(settings, detector) or None,
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(
        f"{detector.value}: active model is now {scorer.model_id} (sha256 {sha256})"
        f"{'' if previous != sha256 else ', as it was'}"
    )
    if result["pinned"]:
        typer.echo(
            f"note: ATTESTREAM_{detector.value.upper()}_MODEL pins {result['pinned']!r};"
            " a worker with that setting keeps its model"
        )
    elif settings.detect_model_poll_s > 0:
        typer.echo(
            f"running detect workers switch within {settings.detect_model_poll_s:g} s,"
            " between two micro-batches"
        )
    else:
        typer.echo("ATTESTREAM_DETECT_MODEL_POLL_S is 0: restart detect workers to switch")
