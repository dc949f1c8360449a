"""Why a logged decision was made: its entry checked, its model verified, its score replayed
and explained exactly.

Every decision carries the top three reasons from XGBoost's approximate contributions (Saabas'
method, cheap enough for the stream). On demand, `explain` gives the exact TreeSHAP value of
every feature (Lundberg et al. 2020, `pred_contribs=True` without `approx_contribs`, about a
millisecond a row) from what the ledger logged, and only after checking that it is explaining
the very model and inputs that made the decision:

1. Find the entry logging `decision_id` in the store; its stored bytes must hash
   (RFC 9162 2.1.1) to its stored leaf hash and to the stored tree leaf, so the features
   and score read from it are the logged ones (`EntryMismatchError`).
2. Load the model the decision names by digest: the registry re-hashes the artifact's bytes
   and refuses a mismatch (`detectors.registry.ModelDigestMismatchError`).
3. Rebuild the feature vector in the model card's feature order from the logged features;
   their names must be exactly the card's (`ReplayMismatchError`).
4. Replay: score the vector with the pinned model; the score must equal the logged one at
   float32 precision (the booster's own) and the outcome the logged outcome
   (`ReplayMismatchError`).
5. Exact contributions, one per feature plus the bias: their sum is the margin (log-odds),
   and the score is its logistic.

Each step raises, never returns a verdict quietly (attestcore.errors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xgboost as xgb

from attestcore.errors import EntryMismatchError, ReplayMismatchError, UsageError
from attestcore.records import ENTRY_COLUMNS
from attestcore.schemas import Decision
from detectors.registry import LoadedModel, load_model
from detectors.scoring import Scorer
from forensics.timeline import reason_json
from ledger.entry import decode_entry
from ledger.merkle import leaf_hash

COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}


class EntryStore(Protocol):
    """What explaining reads from the ledger (`ledger.store.ClickHouseStore` has it)."""

    def entry_by_decision_id(self, decision_id: str) -> Sequence[Any] | None:
        """The first entry logging `decision_id` (ENTRY_COLUMNS order), or None."""
        ...

    def read_nodes(
        self, chain: int, ids: Sequence[tuple[int, int]]
    ) -> Mapping[tuple[int, int], bytes]: ...


@dataclass(frozen=True)
class LoggedDecision:
    """A decision as the ledger holds it, its entry's bytes checked against its leaf hash."""

    chain: int
    seq: int
    leaf_hash: bytes
    decision: Decision


@dataclass(frozen=True)
class Replay:
    """The decision's score and outcome recomputed with its pinned, verified model."""

    model: LoadedModel
    features: list[tuple[str, float]]
    """(name, value as the model saw it, float32) in the card's order."""
    vector: np.ndarray
    score: float
    outcome: str
    margin: float


@dataclass(frozen=True)
class Explanation:
    replay: Replay
    contributions: list[tuple[str, float, float]]
    """(feature, value, exact TreeSHAP contribution in log-odds), largest |contribution| first."""
    bias: float
    total: float
    """Bias plus every contribution: the margin, up to float32 rounding."""


def find_decision(store: EntryStore, decision_id: str) -> LoggedDecision:
    """Step 1: the entry logging `decision_id`, its bytes checked against its leaf hashes."""
    row = store.entry_by_decision_id(decision_id)
    if row is None:
        raise UsageError(f"no logged decision has the id {decision_id}")
    chain, seq = int(row[COL["chain"]]), int(row[COL["seq"]])
    entry = bytes(row[COL["entry"]])
    calculated = leaf_hash(entry)
    stored = _text(row[COL["leaf_hash"]])
    where = f"entry {chain}/{seq}"
    if stored != calculated.hex():
        raise EntryMismatchError(
            f"{where}: its bytes hash to {calculated.hex()}, its stored leaf hash is {stored}"
        )
    node = store.read_nodes(chain, [(0, seq)]).get((0, seq))
    if node is not None and node != calculated:
        raise EntryMismatchError(
            f"{where}: its bytes hash to {calculated.hex()}, the stored tree leaf is {node.hex()}"
        )
    decision = decode_entry(entry).decision
    if decision.decision_id != decision_id:
        raise EntryMismatchError(
            f"{where} is found by decision_id {decision_id}, but its bytes log decision"
            f" {decision.decision_id}"
        )
    return LoggedDecision(chain, seq, calculated, decision)


def _text(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def replay(decision: Decision, models_dir: Path) -> Replay:
    """Steps 2 to 4: the pinned model, verified; the logged features; the same score."""
    model = load_model(models_dir, decision.detector, decision.model_sha256)  # step 2
    if model.model_id != decision.model_id:
        raise ReplayMismatchError(
            f"the decision names model {decision.model_id}, its digest is {model.model_id}"
        )
    vector = _vector(decision, model.feature_names)  # step 3
    scorer = Scorer(model)
    score = float(scorer.score_batch(vector)[0])  # step 4
    if np.float32(score) != np.float32(decision.score):
        raise ReplayMismatchError(
            f"replaying decision {decision.decision_id} with {model.model_id} gives score"
            f" {score!r}, the ledger logged {decision.score!r}"
        )
    outcome = scorer.outcome(score)
    if outcome != decision.outcome:
        raise ReplayMismatchError(
            f"score {score!r} is {outcome!r} under {model.model_id}'s thresholds, the ledger"
            f" logged {decision.outcome!r}"
        )
    margin = float(
        model.booster.inplace_predict(vector, predict_type="margin", validate_features=False)[0]
    )
    features = list(zip(model.feature_names, (float(v) for v in vector[0]), strict=True))
    return Replay(model, features, vector, score, outcome, margin)


def _vector(decision: Decision, names: Sequence[str]) -> np.ndarray:
    logged = decision.features
    if list(logged) != list(names):
        missing = [n for n in names if n not in logged]
        extra = [n for n in logged if n not in names]
        raise ReplayMismatchError(
            f"the decision's features are not the model card's: missing {missing}, extra"
            f" {extra}" + ("" if missing or extra else ", or in another order")
        )
    return np.asarray([[logged[name] for name in names]], dtype=np.float32)


def explain(decision: Decision, models_dir: Path) -> Explanation:
    """Steps 2 to 5: replay the decision, then its exact TreeSHAP contributions."""
    done = replay(decision, models_dir)
    names = list(done.model.feature_names)
    dmatrix = xgb.DMatrix(done.vector, feature_names=names, nthread=1)
    exact = np.asarray(done.model.booster.predict(dmatrix, pred_contribs=True))[0]  # step 5
    values = [value for _, value in done.features]
    rows = [(name, values[j], float(exact[j])) for j, name in enumerate(names)]
    rows.sort(key=lambda row: (-abs(row[2]), row[0]))
    bias = float(exact[len(names)])
    return Explanation(done, rows, bias, float(np.sum(exact, dtype=np.float64)))


def explain_logged(
    store: EntryStore, decision_id: str, models_dir: Path
) -> tuple[LoggedDecision, Explanation]:
    """Steps 1 to 5 for a decision in the ledger."""
    logged = find_decision(store, decision_id)
    return logged, explain(logged.decision, models_dir)


def replay_logged(
    store: EntryStore, decision_id: str, models_dir: Path
) -> tuple[LoggedDecision, Replay]:
    """Steps 1 to 4 for a decision in the ledger."""
    logged = find_decision(store, decision_id)
    return logged, replay(logged.decision, models_dir)


def replay_json(logged: LoggedDecision, done: Replay) -> dict[str, Any]:
    d, model = logged.decision, done.model
    return {
        "ok": True,
        "decision_id": d.decision_id,
        "event_id": d.event_id,
        "detector": d.detector.value,
        "entry": {"chain": logged.chain, "seq": logged.seq, "leaf_hash": logged.leaf_hash.hex()},
        "model": {
            "model_id": model.model_id,
            "model_sha256": model.model_sha256,
            "artifact": str(model.artifact_path),
            "digest_verified": True,
        },
        "logged": {
            "score": d.score,
            "outcome": d.outcome,
            "reasons": [reason_json(r) for r in d.reasons],
        },
        "replayed": {"score": done.score, "outcome": done.outcome, "margin": done.margin},
    }


def explanation_json(logged: LoggedDecision, explained: Explanation) -> dict[str, Any]:
    return {
        **replay_json(logged, explained.replay),
        "method": "exact TreeSHAP (xgboost pred_contribs), log-odds",
        "contributions": [
            {"feature": f, "value": v, "contribution": c} for f, v, c in explained.contributions
        ],
        "bias": explained.bias,
        "sum": explained.total,
        "margin": explained.replay.margin,
    }
