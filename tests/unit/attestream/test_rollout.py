"""Model versions and rollout without Kafka: which model a detector starts with, when a new
active one is picked up, and every model the stream must refuse."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from attestcore.errors import ConfigError, UsageError
from attestcore.schemas import Detector
from attestream.detection import stream_model
from attestream.rollout import ModelWatch
from detectors.registry import (
    ModelDigestMismatchError,
    activate_model,
    active_sha256,
    artifact_path,
    list_models,
    publish,
    resolve_model,
)
from detectors.training import train, train_detector

FRAUD = Detector.FRAUD


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Two fraud model versions, the first active. Not the session's `trained_models`: this
    registry must hold fraud models only (a test lists no authenticity model)."""
    models = tmp_path_factory.mktemp("models")
    first = train_detector(FRAUD, models, count=4000, seed=1).model_sha256
    second = train_detector(FRAUD, models, count=4000, seed=2, activate=False).model_sha256
    assert first != second
    return models, first, second


@pytest.fixture
def models(trained: tuple[Path, str, str], tmp_path: Path) -> Path:
    """A copy each test may change."""
    return Path(shutil.copytree(trained[0], tmp_path / "models"))


def test_versions_are_listed_oldest_first_and_resolved_by_any_name(
    models: Path, trained: tuple[Path, str, str]
) -> None:
    _, first, second = trained
    assert [c.model_sha256 for c in list_models(models, FRAUD)] == [first, second]
    for name in (second, f"fraud-{second[:12]}", second[:8], second.upper()):
        assert resolve_model(models, FRAUD, name) == second
    with pytest.raises(UsageError, match="names no fraud model"):
        resolve_model(models, FRAUD, "fraud-xyz")
    with pytest.raises(UsageError, match="no fraud models .* match 'ffffffff'"):
        resolve_model(models, FRAUD, "ffffffff" if not second.startswith("ff") else "00000000")
    assert list_models(models, Detector.AUTHENTICITY) == []


def test_the_watch_follows_the_registry(models: Path, trained: tuple[Path, str, str]) -> None:
    _, first, second = trained
    watch = ModelWatch(models, FRAUD, "", stream_model)
    assert watch.start().model_sha256 == first
    assert watch.poll() is None  # nothing changed
    activate_model(models, FRAUD, second)
    swapped = watch.poll()
    assert swapped is not None and swapped.model_sha256 == second
    assert watch.poll() is None
    activate_model(models, FRAUD, first)
    back = watch.poll()
    assert back is not None and back.model_sha256 == first


def test_a_pinned_model_is_kept_whatever_the_registry_says(
    models: Path, trained: tuple[Path, str, str]
) -> None:
    _, first, second = trained
    watch = ModelWatch(models, FRAUD, f"fraud-{second[:12]}", stream_model)
    assert not watch.follows_registry
    assert watch.start().model_sha256 == second
    activate_model(models, FRAUD, first)
    assert watch.poll() is None


def test_a_changed_artifact_is_refused_once_and_the_current_model_kept(
    models: Path, trained: tuple[Path, str, str]
) -> None:
    _, first, second = trained
    watch = ModelWatch(models, FRAUD, "", stream_model)
    watch.start()
    path = artifact_path(models, FRAUD, second)
    path.write_bytes(path.read_bytes() + b"\x00")
    activate_model(models, FRAUD, second)
    with pytest.raises(ModelDigestMismatchError, match="but its card says"):
        watch.poll()
    assert watch.current == first and len(watch.refused) == 1
    assert watch.poll() is None, "a refused activation is not retried every poll"
    activate_model(models, FRAUD, second)  # activated again: a new attempt
    with pytest.raises(ModelDigestMismatchError):
        watch.poll()


def test_a_model_on_other_features_is_refused(models: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((400, 2), dtype=np.float32)
    y = (X[:, 0] > 0.8).astype(np.int8)
    other = train(
        FRAUD,
        X,
        y,
        event_ids=[f"e{i}" for i in range(400)],
        times=np.arange(400) * 86_400.0,
        feature_names=["a", "b"],
    )
    publish(models, other.artifact, other.card, activate=False)
    with pytest.raises(ConfigError, match="takes other features than this version computes"):
        stream_model(models, FRAUD, other.card.model_sha256)
    assert active_sha256(models, FRAUD) != other.card.model_sha256


def test_no_active_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no active fraud model"):
        ModelWatch(tmp_path, FRAUD, "", stream_model).start()
