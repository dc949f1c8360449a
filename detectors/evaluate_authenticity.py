"""Evaluating the authenticity detector on labelled scans it was not trained on.

Protocol (docs/detectors.md, authenticity): replay the scans in arrival order through the
online feature functions, score them with one model pinned by digest, and count at the
thresholds of the model card (chosen on the model's own validation data, never on these
scans). A scan is *flagged* at an operating point when its score reaches the threshold.

What is counted, precisely:

- recall per scan: flagged counterfeit scans / counterfeit scans. The targets apply to it.
- recall per item: counterfeit items with at least one flagged scan / counterfeit items. An
  item is one counterfeit copy, or one diverted genuine item, named `(epc, scenario)`.
- precision per item: flagged counterfeit items / flagged items, where a genuine item (the
  genuine scans of one EPC) is flagged when any of its scans is.
- detection delay of an item: how many of its scans passed (in arrival order) before its
  first flagged one; 0 means caught at its first scan. Items never caught are counted apart.
- precision: flagged counterfeit scans / flagged scans. For one scenario, its flagged scans
  over those plus *every* flagged genuine scan: the precision if it were the only attack.
- false-positive rate of a noise kind: flagged genuine scans touched by that noise / genuine
  scans touched by it (a scan can carry several kinds). `none` is genuine scans without noise.
  The share of genuine scans flagged is the same over every genuine scan.

Scenario and noise names come from the data, whatever simulator or source wrote it: a
counterfeit scan without a scenario counts under `UNNAMED_SCENARIO`, and data without any
noise label has no per-noise figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from attestcore.errors import UsageError
from attestcore.schemas import OUTCOMES, Detector
from detectors.dataset import supply_dataset
from detectors.metrics import average_precision, roc_auc
from detectors.reference import ReferenceDataDigest
from detectors.registry import LoadedModel
from detectors.scoring import Scorer
from detectors.simulate_supply import LabelledScan
from detectors.supply_calibration import model_calibration

REPORT_FORMAT = "attestream.authenticity-evaluation/1"
TARGET_PRECISION = 0.95
TARGET_RECALL = 0.90
TARGET_SCENARIO_RECALL = 0.80
DELAY_BUCKETS = ("0", "1", "2", "3+")
UNNAMED_SCENARIO = "unnamed"  # counterfeit scans whose data names no scenario
NO_NOISE = "none"

ItemKey = tuple[str, str]  # (epc, scenario)


class DelaySummary(msgspec.Struct, kw_only=True):
    items: int
    caught: int
    never: int
    mean: float | None  # over caught items
    median: float | None
    max: int | None
    histogram: dict[str, int]  # scans passed before the first flag: "0", "1", "2", "3+"


class ScenarioFigures(msgspec.Struct, kw_only=True):
    scans: int
    scans_flagged: int
    recall_scans: float
    precision: float | None
    items: int
    items_caught: int
    recall_items: float
    delay: DelaySummary


class NoiseFigures(msgspec.Struct, kw_only=True):
    genuine_scans: int
    flagged: int
    false_positive_rate: float


class OperatingPoint(msgspec.Struct, kw_only=True):
    outcome: str  # the model card outcome whose threshold this is
    threshold: float
    flagged: int
    flag_rate: float
    precision: float | None
    recall_scans: float
    recall_items: float
    precision_items: float | None  # flagged counterfeit items / flagged items
    genuine_items: int
    genuine_items_flagged: int
    false_positive_rate: float  # flagged genuine scans / genuine scans
    delay: DelaySummary
    scenarios: dict[str, ScenarioFigures]
    noise: dict[str, NoiseFigures]


class TargetCheck(msgspec.Struct, kw_only=True):
    name: str
    target: str
    measured: float | None
    reached: bool


class EvaluationData(msgspec.Struct, kw_only=True):
    source: str
    digest: str  # detectors.dataset.DATA_DIGEST_METHOD over these scans
    scans: int
    counterfeit_scans: int
    counterfeit_items: int
    genuine_scans: int
    genuine_items: int


class AuthenticityReport(msgspec.Struct, kw_only=True):
    format: str = REPORT_FORMAT
    model_id: str
    model_sha256: str
    reference_data: list[ReferenceDataDigest]
    data: EvaluationData
    auc_roc: float
    average_precision: float
    best_precision_at_target_recall: float  # on the curve, at recall >= TARGET_RECALL
    operating_points: list[OperatingPoint]
    targets: list[TargetCheck]
    command: str = ""


@dataclass(frozen=True)
class Evaluation:
    """The report and what the plot needs (scores are not written into the JSON)."""

    report: AuthenticityReport
    labels: np.ndarray
    scores: np.ndarray


def scenario_of(scan: LabelledScan) -> str:
    """The scenario a counterfeit scan counts under (its own name, or `UNNAMED_SCENARIO`)."""
    return scan.scenario or UNNAMED_SCENARIO


def counterfeit_items(scans: Sequence[LabelledScan]) -> dict[ItemKey, list[int]]:
    """Row indices of each counterfeit item's scans, in arrival order."""
    items: dict[ItemKey, list[int]] = {}
    for i, scan in enumerate(scans):
        if scan.label:
            items.setdefault((scan.event.epc, scenario_of(scan)), []).append(i)
    return items


def genuine_items(scans: Sequence[LabelledScan]) -> dict[str, list[int]]:
    """Row indices of each EPC's genuine scans, in arrival order."""
    items: dict[str, list[int]] = {}
    for i, scan in enumerate(scans):
        if not scan.label:
            items.setdefault(scan.event.epc, []).append(i)
    return items


def detection_delays(
    items: dict[ItemKey, list[int]], flagged: np.ndarray
) -> dict[ItemKey, int | None]:
    """Per item, how many of its scans passed before the first flagged one (None: never)."""
    delays: dict[ItemKey, int | None] = {}
    for key, rows in items.items():
        hits = np.flatnonzero(flagged[rows])
        delays[key] = int(hits[0]) if len(hits) else None
    return delays


def summarise_delays(delays: Sequence[int | None]) -> DelaySummary:
    caught = sorted(d for d in delays if d is not None)
    histogram = dict.fromkeys(DELAY_BUCKETS, 0)
    for d in caught:
        histogram[DELAY_BUCKETS[min(d, 3)]] += 1
    return DelaySummary(
        items=len(delays),
        caught=len(caught),
        never=len(delays) - len(caught),
        mean=float(np.mean(caught)) if caught else None,
        median=float(np.median(caught)) if caught else None,
        max=caught[-1] if caught else None,
        histogram=histogram,
    )


def scenario_figures(
    scans: Sequence[LabelledScan], flagged: np.ndarray, items: dict[ItemKey, list[int]]
) -> dict[str, ScenarioFigures]:
    """Recall per scan and per item, precision and delay for each scenario present."""
    labels = np.array([s.label for s in scans], dtype=bool)
    false_alarms = int((flagged & ~labels).sum())
    delays = detection_delays(items, flagged)
    figures = {}
    named = np.array([scenario_of(s) if s.label else "" for s in scans])
    for scenario in sorted({k[1] for k in items}):
        rows = named == scenario
        hits = int((flagged & rows).sum())
        own = [d for k, d in delays.items() if k[1] == scenario]
        caught = sum(d is not None for d in own)
        figures[scenario] = ScenarioFigures(
            scans=int(rows.sum()),
            scans_flagged=hits,
            recall_scans=hits / int(rows.sum()),
            precision=hits / (hits + false_alarms) if hits + false_alarms else None,
            items=len(own),
            items_caught=caught,
            recall_items=caught / len(own),
            delay=summarise_delays(own),
        )
    return figures


def noise_figures(scans: Sequence[LabelledScan], flagged: np.ndarray) -> dict[str, NoiseFigures]:
    """False-positive rate on genuine scans per noise kind present in the data, and on genuine
    scans without noise; nothing when no scan carries a noise label."""
    kinds = sorted({kind for s in scans for kind in s.noise})
    if not kinds:
        return {}
    figures = {}
    for kind in (*kinds, NO_NOISE):
        rows = np.array(
            [s.label == 0 and (kind in s.noise if kind != NO_NOISE else not s.noise) for s in scans]
        )
        n, hits = int(rows.sum()), int((flagged & rows).sum())
        figures[kind] = NoiseFigures(
            genuine_scans=n, flagged=hits, false_positive_rate=hits / n if n else 0.0
        )
    return figures


def operating_point(
    outcome: str, threshold: float, scans: Sequence[LabelledScan], scores: np.ndarray
) -> OperatingPoint:
    labels = np.array([s.label for s in scans], dtype=bool)
    flagged = scores >= threshold
    items = counterfeit_items(scans)
    delays = detection_delays(items, flagged)
    true_pos = int((flagged & labels).sum())
    items_caught = sum(d is not None for d in delays.values())
    genuine = genuine_items(scans)
    genuine_flagged = sum(bool(flagged[rows].any()) for rows in genuine.values())
    items_flagged = items_caught + genuine_flagged
    return OperatingPoint(
        outcome=outcome,
        threshold=threshold,
        flagged=int(flagged.sum()),
        flag_rate=float(flagged.mean()),
        precision=true_pos / int(flagged.sum()) if flagged.any() else None,
        recall_scans=true_pos / int(labels.sum()),
        recall_items=items_caught / len(items),
        precision_items=items_caught / items_flagged if items_flagged else None,
        genuine_items=len(genuine),
        genuine_items_flagged=genuine_flagged,
        false_positive_rate=int((flagged & ~labels).sum()) / int((~labels).sum()),
        delay=summarise_delays(list(delays.values())),
        scenarios=scenario_figures(scans, flagged, items),
        noise=noise_figures(scans, flagged),
    )


def precision_recall_points(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision per scan at every distinct threshold, from high to low."""
    order = np.argsort(-scores, kind="mergesort")
    true_pos = np.cumsum(labels[order])
    last_of_tie = np.concatenate((np.flatnonzero(np.diff(scores[order])), [len(scores) - 1]))
    tp = true_pos[last_of_tie]
    return tp / labels.sum(), tp / (last_of_tie + 1)


def best_precision_at_recall(labels: np.ndarray, scores: np.ndarray, recall: float) -> float:
    """The highest precision of any threshold whose recall (per scan) is at least `recall`."""
    recalls, precisions = precision_recall_points(labels, scores)
    return float(precisions[recalls >= recall].max())


def target_checks(point: OperatingPoint) -> list[TargetCheck]:
    """The targets, at the `counterfeit` threshold of the model card; the lowest scenario
    recall only when the data names a scenario."""
    precision = point.precision
    checks = [
        TargetCheck(
            name="precision per scan",
            target=f">= {TARGET_PRECISION}",
            measured=precision,
            reached=precision is not None and precision >= TARGET_PRECISION,
        ),
        TargetCheck(
            name="recall per scan",
            target=f">= {TARGET_RECALL}",
            measured=point.recall_scans,
            reached=point.recall_scans >= TARGET_RECALL,
        ),
    ]
    named = {k: v for k, v in point.scenarios.items() if k != UNNAMED_SCENARIO}
    if named:
        worst = min(named.items(), key=lambda kv: kv[1].recall_scans)
        checks.append(
            TargetCheck(
                name=f"lowest scenario recall per scan ({worst[0]})",
                target=f">= {TARGET_SCENARIO_RECALL}",
                measured=worst[1].recall_scans,
                reached=worst[1].recall_scans >= TARGET_SCENARIO_RECALL,
            )
        )
    return checks


def evaluate_authenticity(
    scans: Sequence[LabelledScan], model: LoadedModel, source: str, command: str = ""
) -> Evaluation:
    """Replay, score and count (see the module docstring for every definition)."""
    if not any(s.label for s in scans) or all(s.label for s in scans):
        raise UsageError("the evaluation needs both counterfeit and genuine scans")
    rows = supply_dataset(scans, model_calibration(model))
    scores = Scorer(model).score_batch(rows.X)
    labels = rows.y.astype(bool)
    items = counterfeit_items(scans)
    _, lower, upper = OUTCOMES[Detector.AUTHENTICITY]
    points = [
        operating_point(name, model.card.thresholds[name], scans, scores) for name in (upper, lower)
    ]
    report = AuthenticityReport(
        model_id=model.model_id,
        model_sha256=model.model_sha256,
        reference_data=list(model.card.reference_data),
        data=EvaluationData(
            source=source,
            digest=rows.digest(),
            scans=len(rows),
            counterfeit_scans=int(labels.sum()),
            counterfeit_items=len(items),
            genuine_scans=int((~labels).sum()),
            genuine_items=len(genuine_items(scans)),
        ),
        auc_roc=roc_auc(labels, scores),
        average_precision=average_precision(labels, scores),
        best_precision_at_target_recall=best_precision_at_recall(labels, scores, TARGET_RECALL),
        operating_points=points,
        targets=target_checks(points[0]),
        command=command,
    )
    return Evaluation(report, labels, scores)
