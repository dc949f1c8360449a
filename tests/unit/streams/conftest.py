"""Small trained models and the stream's own detector specs, shared by the pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from detect_helpers import train_models

from attestream.detection import authenticity_spec, fraud_spec
from detectors.registry import load_active
from detectors.scoring import Scorer
from streams.pipeline import DetectorSpec


@pytest.fixture(scope="session")
def small_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An active fraud and authenticity model, each trained on a few thousand events."""
    models = tmp_path_factory.mktemp("small-models")
    train_models(models)
    return models


@pytest.fixture
def fraud(small_models: Path) -> DetectorSpec:
    """The stream's fraud spec (a fresh one per test: tests replace its parts)."""
    return fraud_spec(Scorer(load_active(small_models, "fraud")), "labels")


@pytest.fixture
def authenticity(small_models: Path) -> DetectorSpec:
    return authenticity_spec(Scorer(load_active(small_models, "authenticity")))
