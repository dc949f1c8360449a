"""Writing an authenticity evaluation: JSON report, markdown summary, precision-recall PNG."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from detectors.evaluate_authenticity import (
    TARGET_PRECISION,
    TARGET_RECALL,
    AuthenticityReport,
    DelaySummary,
    Evaluation,
    OperatingPoint,
    precision_recall_points,
)

REPORT_JSON = "authenticity-report.json"
SUMMARY_MD = "authenticity-summary.md"
CURVE_PNG = "authenticity-pr-curve.png"


def write_report(
    out: Path, json_name: str, markdown_name: str, report: msgspec.Struct, markdown: str
) -> dict[str, Path]:
    """`report` as indented JSON and its `markdown` into `out` (created if needed); returns
    the two paths by kind ("json", "markdown")."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / json_name, "markdown": out / markdown_name}
    paths["json"].write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    paths["markdown"].write_text(markdown, encoding="utf-8")
    return paths


def write_evaluation(out: Path, evaluation: Evaluation) -> dict[str, Path]:
    """Write the three files into `out` (created if needed); returns their paths by kind."""
    report = evaluation.report
    paths = write_report(out, REPORT_JSON, SUMMARY_MD, report, render_markdown(report))
    paths["png"] = out / CURVE_PNG
    plot_precision_recall(evaluation.labels, evaluation.scores, report, paths["png"])
    return paths


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _delay(d: DelaySummary) -> str:
    if d.mean is None:
        return f"never caught ({d.never} items)"
    return f"mean {d.mean:.2f}, median {d.median:.0f}, max {d.max}, never {d.never}"


def render_markdown(report: AuthenticityReport) -> str:
    """A summary a reviewer reads: targets first, then every figure the JSON holds."""
    data = report.data
    lines = [
        "# Authenticity detector evaluation",
        "",
        f"- model: `{report.model_id}` (sha256 `{report.model_sha256}`)",
        *[
            f"- reference data: `{r.name}` v{r.version} (sha256 `{r.sha256}`)"
            for r in report.reference_data
        ],
        f"- data: {data.source}; {data.scans} scans, {data.counterfeit_scans} counterfeit in"
        f" {data.counterfeit_items} items; digest `{data.digest}`",
        f"- AUC-ROC {report.auc_roc:.4f}, average precision {report.average_precision:.4f},"
        f" best precision at recall >= {TARGET_RECALL:.2f} on the curve:"
        f" {_pct(report.best_precision_at_target_recall)}",
    ]
    if report.command:
        lines.append(f"- command: `{report.command}`")
    lines += [
        "",
        "## Targets (at the model card's `counterfeit` threshold)",
        "",
        "| target | goal | measured | reached |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {t.name} | {t.target} | {_pct(t.measured)} | {'yes' if t.reached else 'NO'} |"
        for t in report.targets
    ]
    for point in report.operating_points:
        lines += ["", *_point_lines(point)]
    return "\n".join(lines) + "\n"


def _point_lines(point: OperatingPoint) -> list[str]:
    lines = [
        f"## Flagged at `{point.outcome}` (score >= {point.threshold:.4f})",
        "",
        f"{point.flagged} scans flagged ({_pct(point.flag_rate)}): precision per scan "
        f"{_pct(point.precision)}, per item {_pct(point.precision_items)}; recall per scan "
        f"{_pct(point.recall_scans)}, per item {_pct(point.recall_items)}; genuine scans "
        f"flagged {_pct(point.false_positive_rate)}, genuine items flagged "
        f"{point.genuine_items_flagged} of {point.genuine_items}; "
        f"detection delay (scans before the first flag): {_delay(point.delay)}.",
        "",
        "| scenario | scans | recall per scan | items | recall per item | precision | delay |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in point.scenarios.items():
        lines.append(
            f"| {name} | {f.scans} | {_pct(f.recall_scans)} | {f.items} | {_pct(f.recall_items)}"
            f" | {_pct(f.precision)} | {_delay(f.delay)} |"
        )
    if not point.noise:
        return [*lines, "", "No scan carries a noise label."]
    lines += [
        "",
        "| honest noise (genuine scans) | scans | flagged | false-positive rate |",
        "| --- | --- | --- | --- |",
    ]
    for kind, n in point.noise.items():
        lines.append(
            f"| {kind} | {n.genuine_scans} | {n.flagged} | {_pct(n.false_positive_rate)} |"
        )
    return lines


def plot_precision_recall(
    labels: np.ndarray, scores: np.ndarray, report: AuthenticityReport, path: Path
) -> None:
    """The curve per scan, the target region and the card's two operating points."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in CI
    import matplotlib.pyplot as plt

    recall, precision = precision_recall_points(labels, scores)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.step(recall, precision, where="post", label="per scan")
    ax.axhspan(
        TARGET_PRECISION,
        1.0,
        xmin=TARGET_RECALL,
        xmax=1.0,
        alpha=0.15,
        color="green",
        label=f"target: P >= {TARGET_PRECISION}, R >= {TARGET_RECALL}",
    )
    for point, marker in zip(report.operating_points, ("o", "s"), strict=False):
        ax.plot(
            point.recall_scans,
            point.precision or 0.0,
            marker,
            markersize=8,
            label=f"{point.outcome} (score >= {point.threshold:.3f})",
        )
    ax.set_xlim(0.0, 1.01)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("recall (counterfeit scans flagged)")
    ax.set_ylabel("precision (flagged scans that are counterfeit)")
    ax.set_title(f"{report.model_id}: average precision {report.average_precision:.4f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def evaluate_to(
    out: Path,
    models_dir: Path,
    *,
    data: Path | None = None,
    count: int = 100_000,
    seed: int = 1,
    world: str = "a",
    model_sha256: str | None = None,
    command: str = "",
) -> tuple[Evaluation, dict[str, Path]]:
    """Evaluate a stored model on a labelled file (or a fresh simulation) and write the files.

    Without `data`, scans of `world` are simulated with `seed` and run id `evaluate-<seed>`:
    use a seed other than the training one, so no EPC or event is shared with the training
    data.
    """
    from detectors.evaluate_authenticity import evaluate_authenticity
    from detectors.registry import load_active, load_model
    from detectors.simulate_supply import read_labelled_scans
    from detectors.supply_worlds import simulate_world

    if data is not None:
        scans = read_labelled_scans(data)
        source = f"labelled file {data.name}"
    else:
        scans = simulate_world(world, count, seed, f"evaluate-{seed}")
        world_name = "" if world == "a" else f"world {world}, "
        source = f"simulated: {world_name}{count} scans, seed {seed}, run id evaluate-{seed}"
    model = (
        load_model(models_dir, "authenticity", model_sha256)
        if model_sha256
        else load_active(models_dir, "authenticity")
    )
    evaluation = evaluate_authenticity(scans, model, source, command)
    return evaluation, write_evaluation(out, evaluation)
