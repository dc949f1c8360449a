"""Shared, session-scoped data for the detector tests: simulate and train once, reuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.dataset import TrainingSet, payment_dataset, supply_dataset
from detectors.registry import LoadedModel, load_active
from detectors.simulate_payments import LabelledPayment, simulate_payments
from detectors.simulate_supply import LabelledScan, simulate_supply
from detectors.training import train_detector

# Large enough that every fraud scenario occurs and the held-out fifth has a few dozen
# positives; small enough that simulating, replaying and training takes about a second.
PAYMENTS = 30_000
SCANS = 12_000


@pytest.fixture(scope="session")
def payments() -> list[LabelledPayment]:
    return simulate_payments(PAYMENTS, seed=0, run_id="unit")


@pytest.fixture(scope="session")
def scans() -> list[LabelledScan]:
    return simulate_supply(SCANS, seed=0, run_id="unit")


@pytest.fixture(scope="session")
def payment_rows(payments: list[LabelledPayment]) -> TrainingSet:
    return payment_dataset(payments)


@pytest.fixture(scope="session")
def scan_rows(scans: list[LabelledScan]) -> TrainingSet:
    return supply_dataset(scans)


@pytest.fixture(scope="session")
def models_dir(
    tmp_path_factory: pytest.TempPathFactory,
    payments: list[LabelledPayment],
    scans: list[LabelledScan],
) -> Path:
    """A models directory with an active fraud and authenticity model trained on the above.

    Not the session's `trained_models` (a few thousand events each): the quality and
    evaluation tests here need every fraud scenario and a few dozen held-out positives."""
    directory = tmp_path_factory.mktemp("models")
    train_detector("fraud", directory, labelled=payments, data_source="unit payments")
    train_detector("authenticity", directory, labelled=scans, data_source="unit scans")
    return directory


@pytest.fixture(scope="session")
def fraud_model(models_dir: Path) -> LoadedModel:
    return load_active(models_dir, "fraud")


@pytest.fixture(scope="session")
def authenticity_model(models_dir: Path) -> LoadedModel:
    return load_active(models_dir, "authenticity")
