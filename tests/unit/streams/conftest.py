"""The stream's own detector specs over the session's trained models (tests/conftest.py),
shared by the pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from attestream.detection import authenticity_spec, fraud_spec
from detectors.registry import load_active
from detectors.scoring import Scorer
from streams.pipeline import DetectorSpec


@pytest.fixture
def fraud(trained_models: Path) -> DetectorSpec:
    """The stream's fraud spec (a fresh one per test: tests replace its parts)."""
    return fraud_spec(Scorer(load_active(trained_models, "fraud")), "labels")


@pytest.fixture
def authenticity(trained_models: Path) -> DetectorSpec:
    return authenticity_spec(Scorer(load_active(trained_models, "authenticity")))
