from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest
from typer.testing import CliRunner

from attestcore.errors import ConfigError, VerificationError
from attestcore.schemas import Detector
from attestream.commands.train import app
from detectors.dataset import TrainingSet, training_data_digest
from detectors.drift import SCORE_EDGES, ScoreWindow, score_histogram
from detectors.features import SUPPLY_FEATURES
from detectors.fraud_features import FRAUD_FEATURES
from detectors.metrics import roc_auc
from detectors.registry import (
    LoadedModel,
    ModelDigestMismatchError,
    artifact_path,
    card_path,
    load_active,
    read_registry,
)
from detectors.simulate_payments import LabelledPayment
from detectors.simulate_supply import simulate_supply, write_labelled_scans
from detectors.training import ensure_models, train_dataset


def test_dataset_rows_follow_the_events(
    payment_rows: TrainingSet, payments: list[LabelledPayment]
) -> None:
    assert payment_rows.X.shape == (len(payments), len(FRAUD_FEATURES))
    assert payment_rows.X.dtype == np.float32
    assert payment_rows.event_ids == [p.event.event_id for p in payments]
    assert payment_rows.y.tolist() == [p.label for p in payments]
    assert np.all(np.diff(payment_rows.times) >= 0)


def test_training_data_digest_is_documented_and_reproducible() -> None:
    # printf 'a\t0\nb\t1\n' | sha256sum
    expected = hashlib.sha256(b"a\t0\nb\t1\n").hexdigest()
    assert training_data_digest(["a", "b"], [0, 1]) == expected


def test_fraud_model_ranks_held_out_fraud(
    fraud_model: LoadedModel, payment_rows: TrainingSet
) -> None:
    card = fraud_model.card
    assert card.metrics.auc_roc > 0.8 and card.metrics.average_precision > 0.3
    # Recompute the card's figure from the artifact on the held-out (later) fifth.
    held_out = payment_rows.rows(slice(len(payment_rows) - card.training.rows_validation, None))
    scores = fraud_model.booster.inplace_predict(held_out.X, validate_features=False)
    assert roc_auc(held_out.y, scores) == pytest.approx(card.metrics.auc_roc)
    assert card.training.data_digest == payment_rows.digest()
    # Training stops 7 days before validation starts: those labels arrive only after it.
    gap = payment_rows.times[-card.training.rows_validation] - 7 * 86_400
    assert payment_rows.times[card.training.rows_train - 1] <= gap
    assert payment_rows.times[card.training.rows_train] > gap
    assert "the last 7 days before validation" in card.training.split


def test_authenticity_model_ranks_held_out_counterfeits(authenticity_model: LoadedModel) -> None:
    assert authenticity_model.card.metrics.auc_roc > 0.9
    assert authenticity_model.card.features == list(SUPPLY_FEATURES)


def test_card_digest_is_the_artifact_file_digest(
    models_dir: Path, fraud_model: LoadedModel
) -> None:
    card = fraud_model.card
    path = artifact_path(models_dir, "fraud", card.model_sha256)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card.model_sha256
    assert path.name == f"{card.model_sha256}.ubj" == card.artifact
    assert card.model_id == f"fraud-{card.model_sha256[:12]}"
    on_disk = json.loads(card_path(models_dir, "fraud", card.model_sha256).read_text())
    assert on_disk["model_sha256"] == card.model_sha256
    assert read_registry(models_dir)["active"]["fraud"]["model_sha256"] == card.model_sha256
    review, block = card.thresholds["review"], card.thresholds["block"]
    assert 0 < review <= block <= 1


def copy_models(models_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    return target


def test_a_tampered_artifact_is_refused(models_dir: Path, tmp_path: Path) -> None:
    copy = copy_models(models_dir, tmp_path)
    sha = read_registry(copy)["active"]["fraud"]["model_sha256"]
    path = artifact_path(copy, "fraud", sha)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelDigestMismatchError, match=f"card says {sha}") as raised:
        load_active(copy, "fraud")
    assert isinstance(raised.value, VerificationError)
    assert raised.value.calculated == hashlib.sha256(data).hexdigest()


def test_a_missing_registry_or_broken_card_is_a_config_error(
    models_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="attestream train fraud"):
        load_active(tmp_path / "empty", "fraud")
    copy = copy_models(models_dir, tmp_path)
    sha = read_registry(copy)["active"]["authenticity"]["model_sha256"]
    card_path(copy, "authenticity", sha).write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        load_active(copy, "authenticity")


def test_training_is_reproducible(scan_rows: TrainingSet) -> None:
    first = train_dataset(scan_rows, seed=3)
    again = train_dataset(scan_rows, seed=3)
    assert first.artifact == again.artifact
    assert first.card.model_sha256 == hashlib.sha256(first.artifact).hexdigest()


def test_ensure_models_keeps_active_models(models_dir: Path, tmp_path: Path) -> None:
    copy = copy_models(models_dir, tmp_path)
    before = read_registry(copy)["active"]
    models = ensure_models(copy)
    assert {d: m.model_sha256 for d, m in models.items()} == {
        Detector(d): entry["model_sha256"] for d, entry in before.items()
    }


def test_cli_trains_from_a_labelled_file(tmp_path: Path) -> None:
    data = tmp_path / "scans.jsonl"
    write_labelled_scans(data, simulate_supply(8_000, seed=4, run_id="cli"))
    result = CliRunner().invoke(
        app, ["authenticity", "--data", str(data), "--models-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    card = msgspec.json.decode(result.stdout)
    assert card["training"]["data_source"] == "labelled file scans.jsonl: 8000 events"
    assert load_active(tmp_path, "authenticity").model_sha256 == card["model_sha256"]


def test_cli_simulates_when_no_file_is_given(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["fraud", "--count", "6000", "--seed", "2", "--models-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "AUC-ROC" in result.stdout and "block at score" in result.stdout
    assert load_active(tmp_path, "fraud").card.training.rows == 6000


def test_ensure_models_replaces_a_model_of_an_older_feature_list(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attestcore.schemas import Detector
    from detectors import training
    from detectors.features import FEATURE_SPECS
    from detectors.registry import active_sha256

    # Active models of the current feature lists (the session's, so nothing is trained here).
    models = copy_models(models_dir, tmp_path)
    first = training.ensure_models(models)
    assert training.ensure_models(models)[Detector.FRAUD].model_sha256 == (
        first[Detector.FRAUD].model_sha256
    ), "a current model is kept"
    spec = FEATURE_SPECS[Detector.AUTHENTICITY]
    monkeypatch.setitem(
        FEATURE_SPECS,
        Detector.AUTHENTICITY,
        dataclasses.replace(spec, names=(*spec.names, "not_computed_yet")),
    )
    old = active_sha256(models, Detector.AUTHENTICITY)
    calls: list[Detector] = []

    def reuse_first_model(detector: Detector | str, models_dir: Path, seed: int = 0) -> LoadedModel:
        calls.append(Detector(detector))
        return first[Detector(detector)]

    monkeypatch.setattr(training, "train_detector", reuse_first_model)
    training.ensure_models(models)
    assert calls == [Detector.AUTHENTICITY] and old is not None


def test_the_card_holds_the_validation_score_histogram(
    fraud_model: LoadedModel, payment_rows: TrainingSet
) -> None:
    reference = fraud_model.card.reference_scores
    assert reference is not None and reference.edges == list(SCORE_EDGES)
    held_out = payment_rows.rows(
        slice(len(payment_rows) - fraud_model.card.training.rows_validation, None)
    )
    scores = fraud_model.booster.inplace_predict(held_out.X, validate_features=False)
    assert reference.counts == score_histogram(scores, "").counts
    assert sum(reference.counts) == fraud_model.card.training.rows_validation


def test_a_card_from_before_the_score_histogram_still_loads(
    models_dir: Path, tmp_path: Path
) -> None:
    copy = copy_models(models_dir, tmp_path)
    sha = read_registry(copy)["active"]["fraud"]["model_sha256"]
    path = card_path(copy, "fraud", sha)
    card = json.loads(path.read_text())
    del card["reference_scores"]
    path.write_text(json.dumps(card))
    loaded = load_active(copy, "fraud")
    assert loaded.card.reference_scores is None
    assert ScoreWindow().drift(loaded.card.reference_scores) is None
