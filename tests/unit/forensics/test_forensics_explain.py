"""Explaining a logged decision: real decisions (a trained model through the stream's own
`decide_batch`) logged by the real `ChainWriter`, then replayed and explained; every way the
evidence can disagree is refused with its own error."""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from attestcore.errors import (
    ConfigError,
    EntryMismatchError,
    ReplayMismatchError,
    UsageError,
)
from attestcore.records import ENTRY_COLUMNS
from attestcore.schemas import Decision, encode
from attestream.detection import fraud_spec
from detectors.registry import ModelDigestMismatchError, artifact_path, load_active
from detectors.scoring import Scorer
from detectors.simulate_payments import simulate_payments
from detectors.training import train_detector
from forensics.explain import explain, explain_logged, explanation_json, find_decision, replay
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource
from ledger.merkle import MerkleTree
from ledger.node_keys import LEVEL_SHIFT
from streams.intake import RecordRef
from streams.pipeline import decide_batch

COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}


class LedgerRows:
    """The two reads explaining makes, over rows shaped as ClickHouse returns them."""

    def __init__(self, decisions: Sequence[Decision]) -> None:
        writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
        result = writer.append(
            [
                Incoming(d, EntrySource(cluster="k1", topic="decisions", partition=0, offset=i))
                for i, d in enumerate(decisions)
            ]
        )
        columns = result.entries
        self.rows = [[columns[name][i] for name in ENTRY_COLUMNS] for i in range(len(decisions))]
        mask = (1 << LEVEL_SHIFT) - 1
        pairs = zip(result.node_keys, result.node_hashes, strict=True)
        self.nodes = {(k >> LEVEL_SHIFT, k & mask): h for k, h in pairs}

    def entry_by_decision_id(self, decision_id: str) -> list[Any] | None:
        return next((r for r in self.rows if r[COL["decision_id"]] == decision_id), None)

    def read_nodes(
        self, chain: int, ids: Sequence[tuple[int, int]]
    ) -> Mapping[tuple[int, int], bytes]:
        return {i: self.nodes[i] for i in ids if i in self.nodes}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    train_detector("fraud", directory, count=6000, seed=11)
    return directory


@pytest.fixture(scope="module")
def decisions(models: Path) -> list[Decision]:
    payments = simulate_payments(400, seed=12, run_id="explain")
    spec = fraud_spec(Scorer(load_active(models, "fraud")), "labels")
    records = [
        RecordRef("tx", 0, i, p.event.customer_id.encode(), encode(p.event))
        for i, p in enumerate(payments)
    ]
    return [d for _, _, d in decide_batch(spec, records, {}).decisions]


@pytest.fixture
def ledger(decisions: list[Decision]) -> LedgerRows:
    return LedgerRows(decisions)


def riskiest(decisions: list[Decision]) -> Decision:
    return max(decisions, key=lambda d: d.score)


def test_replay_gives_the_logged_score_and_outcome(
    ledger: LedgerRows, decisions: list[Decision], models: Path
) -> None:
    for decision in decisions[:50]:
        logged = find_decision(ledger, decision.decision_id)
        assert logged.decision == decision
        done = replay(logged.decision, models)
        assert done.score == decision.score and done.outcome == decision.outcome
        assert done.model.model_sha256 == decision.model_sha256


def test_exact_contributions_sum_to_the_margin(
    ledger: LedgerRows, decisions: list[Decision], models: Path
) -> None:
    decision = riskiest(decisions)
    logged, explained = explain_logged(ledger, decision.decision_id, models)
    assert logged.seq == decisions.index(decision)
    names = [name for name, _, _ in explained.contributions]
    assert sorted(names) == sorted(decision.features)  # every feature, once
    sizes = [abs(c) for _, _, c in explained.contributions]
    assert sizes == sorted(sizes, reverse=True)
    parts = explained.bias + math.fsum(c for _, _, c in explained.contributions)
    assert explained.total == pytest.approx(parts, abs=1e-9)
    assert explained.total == pytest.approx(explained.replay.margin, abs=1e-4)
    assert 1 / (1 + math.exp(-explained.replay.margin)) == pytest.approx(decision.score, abs=1e-6)
    for name, value, _ in explained.contributions:
        assert value == pytest.approx(decision.features[name], rel=1e-6)
    document = explanation_json(logged, explained)
    assert document["ok"] is True and document["model"]["digest_verified"] is True
    assert document["sum"] == explained.total and len(document["contributions"]) == len(names)


def test_a_changed_model_artifact_is_refused(
    decisions: list[Decision], models: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    decision = decisions[0]
    artifact = artifact_path(copy, "fraud", decision.model_sha256)
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0x01
    artifact.write_bytes(bytes(data))
    with pytest.raises(ModelDigestMismatchError, match="has sha256 [0-9a-f]{64}, but its card"):
        explain(decision, copy)


def test_a_model_missing_from_the_registry_is_a_config_error(
    decisions: list[Decision], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="no model card"):
        explain(decisions[0], tmp_path)


def test_a_score_the_model_does_not_give_is_a_replay_failure(
    decisions: list[Decision], models: Path
) -> None:
    decision = riskiest(decisions)
    changed = msgspec.structs.replace(decision, score=decision.score / 2)
    with pytest.raises(ReplayMismatchError, match="gives score .* the ledger logged"):
        replay(changed, models)


def test_an_outcome_the_thresholds_do_not_give_is_a_replay_failure(
    decisions: list[Decision], models: Path
) -> None:
    decision = decisions[0]
    other = "block" if decision.outcome != "block" else "approve"
    with pytest.raises(ReplayMismatchError, match="thresholds, the ledger logged"):
        replay(msgspec.structs.replace(decision, outcome=other), models)


@pytest.mark.parametrize("change", ["drop", "reorder"])
def test_features_other_than_the_cards_are_a_replay_failure(
    decisions: list[Decision], models: Path, change: str
) -> None:
    features = dict(decisions[0].features)
    if change == "drop":
        features.pop(next(iter(features)))
    else:
        features = dict(reversed(list(features.items())))
    changed = msgspec.structs.replace(decisions[0], features=features)
    with pytest.raises(ReplayMismatchError, match="features are not the model card's"):
        replay(changed, models)


def test_an_entry_whose_bytes_changed_is_refused(
    ledger: LedgerRows, decisions: list[Decision]
) -> None:
    decision = decisions[3]
    row = ledger.rows[3]
    row[COL["entry"]] = row[COL["entry"]].replace(b'"score":', b'"score": ', 1)
    with pytest.raises(EntryMismatchError, match="bytes hash to .* stored leaf hash"):
        find_decision(ledger, decision.decision_id)


def test_an_entry_whose_tree_leaf_differs_is_refused(
    ledger: LedgerRows, decisions: list[Decision]
) -> None:
    ledger.nodes[(0, 5)] = bytes(32)
    with pytest.raises(EntryMismatchError, match="the stored tree leaf is 0{64}"):
        find_decision(ledger, decisions[5].decision_id)


def test_a_column_naming_another_decision_is_refused(
    ledger: LedgerRows, decisions: list[Decision]
) -> None:
    ledger.rows[7][COL["decision_id"]] = decisions[8].decision_id
    ledger.rows.insert(0, ledger.rows.pop(7))
    with pytest.raises(EntryMismatchError, match="its bytes log decision"):
        find_decision(ledger, decisions[8].decision_id)


def test_an_unknown_decision_is_a_usage_error(ledger: LedgerRows) -> None:
    with pytest.raises(UsageError, match="no logged decision has the id 0{64}"):
        find_decision(ledger, "0" * 64)
