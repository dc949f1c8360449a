"""The offline path: replay labelled events through the online feature functions.

Each event is featurised against the state its entity (customer for payments, EPC for scans)
had just before it, in the order given, which is the order the stream sees them in one
partition: that is what makes training vectors equal to the vectors scored online. Scans
are replayed in the order they arrive, as the supply-chain simulator writes them (a late upload
comes after newer scans of its EPC). Payments are replayed together with their late
labels, in the order both arrive (`detectors.fraud_features.replay_payments`), because the
fraud features read terminal risk from the labels that had arrived.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from attestcore.schemas import Detector
from detectors.features import FEATURE_SPECS, FeatureVector, State, supply_features
from detectors.fraud_features import FRAUD_FEATURES, replay_payments
from detectors.simulate_payments import LabelledPayment
from detectors.simulate_supply import LabelledScan
from detectors.supply_calibration import SupplyCalibration

E = TypeVar("E")

# How `TrainingSet.digest` is computed; copied into every model card so anyone holding the
# labelled events can recompute it.
DATA_DIGEST_METHOD = (
    "sha256 over UTF-8 lines '<event_id>\\t<label>\\n', one per row, in replay (event-time) order"
)


@dataclass(frozen=True)
class TrainingSet:
    """Feature matrix and labels in replay order, with the ids and times of each row."""

    detector: Detector
    feature_names: tuple[str, ...]
    X: np.ndarray  # float32, rows x features
    y: np.ndarray  # int8, 0 or 1
    event_ids: list[str]
    times: np.ndarray  # float64 epoch seconds of each event

    def __len__(self) -> int:
        return len(self.event_ids)

    def digest(self) -> str:
        """SHA-256 naming exactly which events, with which labels, a model was trained on."""
        return training_data_digest(self.event_ids, self.y)

    def rows(self, selection: slice) -> TrainingSet:
        return TrainingSet(
            self.detector,
            self.feature_names,
            self.X[selection],
            self.y[selection],
            self.event_ids[selection],
            self.times[selection],
        )


def training_data_digest(event_ids: Sequence[str], labels: Iterable[int]) -> str:
    """See `DATA_DIGEST_METHOD`."""
    h = hashlib.sha256()
    for event_id, label in zip(event_ids, labels, strict=True):
        h.update(f"{event_id}\t{int(label)}\n".encode())
    return h.hexdigest()


def replay(
    events: Iterable[E],
    entity: Callable[[E], str],
    featurize: Callable[[E, State], tuple[FeatureVector, State]],
    initial_state: Callable[[], State],
) -> Iterable[tuple[E, FeatureVector]]:
    """Yield each event with its features, keeping one state per entity as the stream does."""
    states: dict[str, State] = {}
    for event in events:
        key = entity(event)
        state = states.get(key)
        features, states[key] = featurize(event, initial_state() if state is None else state)
        yield event, features


def payment_dataset(payments: Sequence[LabelledPayment]) -> TrainingSet:
    """Rows for the fraud detector in event-time order, with terminal risk from the labels
    that had arrived before each payment's day."""
    replayed = list(replay_payments(payments))
    rows = ((event, vector) for _, event, vector in replayed)
    labels = [payments[index].label for index, _, _ in replayed]
    return _assemble(Detector.FRAUD, FRAUD_FEATURES, rows, labels)


def supply_dataset(
    scans: Sequence[LabelledScan], calibration: SupplyCalibration | None = None
) -> TrainingSet:
    """Rows for the authenticity detector, keyed by EPC, with the track calibration the model
    reads (the shipped one when None)."""
    return build_dataset(Detector.AUTHENTICITY, scans, calibration)


def build_dataset(
    detector: Detector | str,
    labelled: Sequence[Any],
    calibration: SupplyCalibration | None = None,
) -> TrainingSet:
    """Replay labelled payments (fraud) or scans (authenticity, with `calibration`) with the
    detector's spec."""
    if Detector(detector) == Detector.FRAUD:
        return payment_dataset(labelled)
    spec = FEATURE_SPECS[Detector(detector)]
    featurize = spec.featurize
    if calibration is not None:
        featurize = functools.partial(supply_features, calibration=calibration)
    rows = replay((r.event for r in labelled), spec.entity, featurize, spec.initial_state)
    return _assemble(spec.detector, spec.names, rows, [r.label for r in labelled])


def _assemble(
    detector: Detector,
    names: tuple[str, ...],
    rows: Iterable[tuple[Any, FeatureVector]],
    labels: list[int],
) -> TrainingSet:
    matrix = np.empty((len(labels), len(names)), dtype=np.float32)
    event_ids: list[str] = []
    times = np.empty(len(labels), dtype=np.float64)
    for i, (event, features) in enumerate(rows):
        matrix[i] = features
        event_ids.append(event.event_id)
        times[i] = event.event_time.timestamp()
    return TrainingSet(detector, names, matrix, np.asarray(labels, dtype=np.int8), event_ids, times)
