"""The fraud evaluation's outputs: JSON report, markdown summary, precision-recall curve PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from detectors.evaluate_fraud import FraudEvaluation, FraudEvaluationConfig, evaluate_fraud

JSON_FILE = "fraud-evaluation.json"
MARKDOWN_FILE = "fraud-evaluation.md"
PNG_FILE = "fraud-precision-recall.png"
MODEL_TITLES = {
    "attestream": "attestream features",
    "handbook_features": "the handbook's 15 features (replication)",
}
METRICS = (
    ("auc_roc", "AUC-ROC"),
    ("average_precision", "average precision"),
    ("card_precision_at_100", "card precision@100"),
)


def evaluate_fraud_to(
    out: Path, config: FraudEvaluationConfig, command: str = ""
) -> tuple[FraudEvaluation, dict[str, Path]]:
    """Evaluate and write the three files into `out`; returns the evaluation and the paths."""
    evaluation = evaluate_fraud(config)
    evaluation.report["command"] = command
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / JSON_FILE, "markdown": out / MARKDOWN_FILE, "png": out / PNG_FILE}
    paths["json"].write_text(json.dumps(evaluation.report, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_summary(evaluation.report), encoding="utf-8")
    plot_precision_recall(evaluation, paths["png"])
    return evaluation, paths


def _pm(entry: dict[str, float]) -> str:
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def markdown_summary(report: dict[str, Any]) -> str:
    data, protocol, summary = report["data"], report["protocol"], report["summary"]
    handbook, targets = report["handbook_xgboost"], report["targets"]
    share = data["frauds"] / data["payments"]
    lines = [
        "# Fraud detection under the handbook's prequential protocol",
        "",
        f"Data: {data['source']}; {data['payments']} payments, {data['frauds']} frauds"
        f" ({share:.2%}), {data['days']} days. Data digest `{data['data_digest']}`.",
        "",
        f"Protocol: {protocol['folds']} folds, each {protocol['train_days']} days of training,"
        f" {protocol['delay_days']} days of label delay, {protocol['test_days']} days of test;"
        " cards known compromised are left out of the test days; card precision@"
        f"{protocol['card_precision_k']} per day, averaged over the test days; mean ± std over"
        " folds.",
        "",
    ]
    if report.get("command"):
        lines += [f"Command: `{report['command']}`", ""]
    lines += [
        "| model | " + " | ".join(title for _, title in METRICS) + " |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines.append(
        "| handbook XGBoost (published) | "
        + " | ".join(f"{handbook[m]:.3f}" for m, _ in METRICS)
        + " |"
    )
    for name, entry in summary.items():
        cells = " | ".join(_pm(entry[m]) for m, _ in METRICS)
        lines.append(f"| {MODEL_TITLES.get(name, name)} | {cells} |")
    lines.append(
        "| target | | "
        + " | ".join(f">= {targets[m]:.2f}" if m in targets else "" for m, _ in METRICS[1:])
        + " |"
    )
    lines += ["", "Targets (attestream features, mean over folds):", ""]
    for metric, target in targets.items():
        value = summary["attestream"][metric]["mean"]
        verdict = "reached" if value >= target else "NOT reached"
        lines.append(f"- {metric.replace('_', ' ')} >= {target}: {verdict} ({value:.3f})")
    lines += ["", *_fold_table(report), "", *_scenario_table(report), ""]
    return "\n".join(lines)


def _fold_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "Per fold (attestream features):",
        "",
        "| train from day | test from day | test payments | test frauds | AUC-ROC |"
        " average precision | card precision@100 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fold in report["folds"]:
        scores = fold["models"]["attestream"]
        lines.append(
            f"| {fold['train_start_day']} | {fold['test_start_day']} | {fold['test_rows']} |"
            f" {fold['test_frauds']} | {scores['auc_roc']:.3f} |"
            f" {scores['average_precision']:.3f} | {scores['card_precision_at_100']:.3f} |"
        )
    return lines


def _scenario_table(report: dict[str, Any]) -> list[str]:
    budget = report["config"]["alert_budget"]
    lines = [
        f"Share of each scenario's test frauds among the top {budget:.0%} of test payments"
        " (mean over folds):",
        "",
        "| scenario | " + " | ".join(MODEL_TITLES.get(n, n) for n in report["summary"]) + " |",
        "| --- |" + " ---: |" * len(report["summary"]),
    ]
    scenarios = sorted(
        {s for e in report["summary"].values() for s in e["scenario_recall_at_budget"]}
    )
    for scenario in scenarios:
        cells = [
            f"{e['scenario_recall_at_budget'].get(scenario, 0.0):.3f}"
            for e in report["summary"].values()
        ]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return lines


def precision_recall_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision and recall at each distinct score threshold, from high to low."""
    order = np.argsort(-scores, kind="mergesort")
    hits = np.cumsum(labels[order].astype(bool))
    last = np.concatenate((np.flatnonzero(np.diff(scores[order])), [len(scores) - 1]))
    return hits[last] / (last + 1), hits[last] / max(1, int(hits[-1]))


def plot_precision_recall(evaluation: FraudEvaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    summary = evaluation.report["summary"]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for (name, folds), style in zip(evaluation.test_scores.items(), ("-", "--"), strict=False):
        ap = summary[name]["average_precision"]["mean"]
        for i, (labels, scores) in enumerate(folds):
            precision, recall = precision_recall_curve(labels, scores)
            label = f"{MODEL_TITLES.get(name, name)} (AP {ap:.3f})" if i == 0 else None
            ax.step(
                recall,
                precision,
                style,
                where="post",
                alpha=0.7,
                linewidth=1,
                color=f"C{list(evaluation.test_scores).index(name)}",
                label=label,
            )
    handbook_ap = evaluation.report["handbook_xgboost"]["average_precision"]
    ax.axhline(
        handbook_ap,
        color="grey",
        linewidth=0.8,
        linestyle=":",
        label=f"handbook XGBoost AP {handbook_ap}",
    )
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="Fraud: precision-recall on each fold's test days",
    )
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
