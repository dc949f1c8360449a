"""What the copies a model misses carry: the evidence behind "what stays out of reach".

For one model and one world's labelled scans, at the card's `counterfeit` threshold: which
counterfeit items no scan of which was flagged, by tactic; how many of them fail a tag
challenge (once, or twice or more); and, for the missed items that never fail one, on how
many any scan carries each piece of track evidence (`EVIDENCE`), set against how many
genuine and copy scans of the whole file carry it. A sign that genuine scans carry as often
as copies cannot tell them apart, whatever the model. `attestream evaluate missed-copies`
trains the model on one world and writes this for another (docs/detectors.md, "What the
missed copies carry").
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

from attestcore.schemas import TagAuth
from detectors.cross_world import train_on_world
from detectors.dataset import supply_dataset
from detectors.evaluate_authenticity import ItemKey, counterfeit_items, scenario_of
from detectors.registry import LoadedModel
from detectors.report_authenticity import write_report
from detectors.scoring import Scorer
from detectors.simulate_supply import LabelledScan
from detectors.supply_calibration import model_calibration
from detectors.supply_worlds import simulate_world

MISSED_COPIES_FORMAT = "attestream.authenticity-missed-copies/1"
MISSED_COPIES_JSON = "missed-copies.json"
MISSED_COPIES_MD = "missed-copies.md"
EVIDENCE = ("despatch_mismatch", "unshipped_move", "started_track", "failed_off_track")
"""Features that say a scan does not fit a genuine life: 1 (or above 0) when it does not."""


class SignCounts(msgspec.Struct, kw_only=True):
    """Scans of the whole file carrying one sign, by label."""

    genuine_scans: int
    copy_scans: int


class TacticCopies(msgspec.Struct, kw_only=True):
    """The copies of one tactic (or scenario): all of them, those no scan of which fails a
    tag challenge, and those the model misses."""

    copies: int
    never_failing: int
    missed: int


class MissedCopies(msgspec.Struct, kw_only=True):
    format: str = MISSED_COPIES_FORMAT
    model_id: str
    threshold: float
    data: str
    copies: int
    missed: int
    missed_by_tactic: dict[str, int]
    missed_failing_once: int
    missed_failing_twice: int
    missed_without_failure: int
    without_failure_carrying: dict[str, int]
    """Missed items that never fail a challenge, with a scan carrying each sign."""
    without_failure_carrying_none: int
    failed_scans: SignCounts
    failed_again_scans: SignCounts
    """Failed challenges of an EPC that failed one before."""
    sign_scans: dict[str, SignCounts]
    by_tactic: dict[str, TacticCopies]
    """Every copy of the file by tactic: a copy that never fails a challenge is read, step by
    step, as its genuine item could be, unless its moves give it away."""
    command: str = ""


def missed_copies(
    scans: Sequence[LabelledScan], model: LoadedModel, data: str, command: str = ""
) -> MissedCopies:
    rows = supply_dataset(scans, model_calibration(model))
    flagged = Scorer(model).score_batch(rows.X) >= model.card.thresholds["counterfeit"]
    names = list(rows.feature_names)
    labels = rows.y.astype(bool)
    failed = np.array([s.event.tag_auth == TagAuth.FAILED for s in scans])
    again = failed & (rows.X[:, names.index("auth_failures_before")] > 0)
    signs = {name: rows.X[:, names.index(name)] > 0 for name in EVIDENCE}
    copies = counterfeit_items(scans)
    by_tactic = _by_tactic(scans, copies, flagged, failed)
    missed = [idx for idx in copies.values() if not flagged[idx].any()]
    failures = Counter(min(int(failed[idx].sum()), 2) for idx in missed)
    quiet = [idx for idx in missed if not failed[idx].any()]
    carrying = {name: sum(bool(sign[idx].any()) for idx in quiet) for name, sign in signs.items()}
    return MissedCopies(
        model_id=model.model_id,
        threshold=model.card.thresholds["counterfeit"],
        data=data,
        copies=len(copies),
        missed=len(missed),
        missed_by_tactic={t: row.missed for t, row in by_tactic.items() if row.missed},
        missed_failing_once=failures[1],
        missed_failing_twice=failures[2],
        missed_without_failure=len(quiet),
        without_failure_carrying=carrying,
        without_failure_carrying_none=sum(
            not any(sign[idx].any() for sign in signs.values()) for idx in quiet
        ),
        failed_scans=_by_label(failed, labels),
        failed_again_scans=_by_label(again, labels),
        sign_scans={name: _by_label(sign, labels) for name, sign in signs.items()},
        by_tactic=by_tactic,
        command=command,
    )


def missed_across_worlds(
    train_world: str, test_world: str, count: int, train_seed: int, test_seed: int, command: str
) -> MissedCopies:
    """The report for a model trained on `count` scans of `train_world` (seed `train_seed`,
    in a scratch models directory) reading `count` scans of `test_world` (seed `test_seed`,
    as `attestream evaluate authenticity` simulates them)."""
    scans = simulate_world(test_world, count, test_seed, f"evaluate-{test_seed}")
    with tempfile.TemporaryDirectory(prefix="missed-copies-") as scratch:
        model = train_on_world(train_world, count, train_seed, Path(scratch))
        data = f"world {test_world}: {count} scans, seed {test_seed}"
        return missed_copies(scans, model, data, command)


def write_missed_copies(out: Path, report: MissedCopies) -> dict[str, Path]:
    markdown = render_missed_copies(report)
    return write_report(out, MISSED_COPIES_JSON, MISSED_COPIES_MD, report, markdown)


def _by_tactic(
    scans: Sequence[LabelledScan],
    copies: dict[ItemKey, list[int]],
    flagged: np.ndarray,
    failed: np.ndarray,
) -> dict[str, TacticCopies]:
    counts: dict[str, list[int]] = {}
    for idx in copies.values():
        row = counts.setdefault(scenario_of(scans[idx[0]]), [0, 0, 0])
        row[0] += 1
        row[1] += not failed[idx].any()
        row[2] += not flagged[idx].any()
    return {
        tactic: TacticCopies(copies=total, never_failing=quiet, missed=missed)
        for tactic, (total, quiet, missed) in sorted(counts.items())
    }


def _by_label(mask: np.ndarray, labels: np.ndarray) -> SignCounts:
    return SignCounts(
        genuine_scans=int((mask & ~labels).sum()), copy_scans=int((mask & labels).sum())
    )


def render_missed_copies(report: MissedCopies) -> str:
    lines = [
        "# Copies the model misses, and what they carry",
        "",
        f"Model `{report.model_id}` at its `counterfeit` threshold {report.threshold:.4f};"
        f" {report.data}.",
        "",
        f"- counterfeit items: {report.copies}; missed (no scan flagged): {report.missed}",
        "- missed by tactic: "
        + ", ".join(f"`{k}` {v}" for k, v in report.missed_by_tactic.items()),
        f"- missed items failing a challenge once: {report.missed_failing_once}, twice or more:"
        f" {report.missed_failing_twice}, never: {report.missed_without_failure}",
        "- of those never failing one, carrying each sign on some scan: "
        + ", ".join(f"`{k}` {v}" for k, v in report.without_failure_carrying.items())
        + f"; none of them: {report.without_failure_carrying_none}",
        "",
        "| scans carrying | genuine | copy |",
        "| --- | ---: | ---: |",
        f"| a failed challenge | {report.failed_scans.genuine_scans}"
        f" | {report.failed_scans.copy_scans} |",
        f"| a failed challenge after an earlier one | {report.failed_again_scans.genuine_scans}"
        f" | {report.failed_again_scans.copy_scans} |",
    ]
    for name, counts in report.sign_scans.items():
        lines.append(f"| `{name}` | {counts.genuine_scans} | {counts.copy_scans} |")
    lines += [
        "",
        "| tactic | copies | never failing a challenge | missed |",
        "| --- | ---: | ---: | ---: |",
    ]
    for tactic, row in report.by_tactic.items():
        lines.append(f"| `{tactic}` | {row.copies} | {row.never_failing} | {row.missed} |")
    if report.command:
        lines += ["", f"Command: `{report.command}`"]
    return "\n".join(lines) + "\n"
