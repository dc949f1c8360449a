"""Model artifacts, model cards and the registry of active models.

Layout under a models directory::

    registry.json                      which model is active for each detector
    fraud/<sha256>.ubj                 the XGBoost model, UBJSON, exactly as hashed
    fraud/<sha256>.card.json           its model card
    authenticity/...

The artifact is named by the SHA-256 of its bytes, and the card repeats that digest. A model is
only ever loaded from bytes that were read once, hashed, compared with the card and then
parsed, so what is scored is what the digest names: the stream pins models by digest, and a
decision's `model_sha256` proves which model made it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import xgboost as xgb

from attestcore.errors import ConfigError, UsageError, VerificationError
from attestcore.schemas import OUTCOMES, Detector, Sha256Hex
from detectors.drift import ScoreHistogram
from detectors.reference import ReferenceDataDigest

CARD_FORMAT = "attestream.model-card/1"
REGISTRY_FORMAT = "attestream.model-registry/1"
REGISTRY_FILE = "registry.json"
ARTIFACT_FORMAT = "xgboost-ubj"


class ModelDigestMismatchError(VerificationError):
    """A model artifact's bytes do not hash to the digest its card and the registry name."""

    kind = "model_digest_mismatch"

    def __init__(self, path: Path, expected: str, calculated: str) -> None:
        super().__init__(
            f"model artifact {path} has sha256 {calculated}, but its card says {expected}:"
            " the file was changed or replaced; retrain or restore it"
        )
        self.expected = expected
        self.calculated = calculated


class TrainingSummary(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the model learnt from, precisely enough to check it against the data."""

    data_digest: Sha256Hex
    data_digest_method: str
    data_source: str
    rows: int
    rows_train: int
    rows_validation: int
    positives_train: int
    positives_validation: int
    split: str
    first_event_time: datetime
    validation_from: datetime
    last_event_time: datetime


class ValidationMetrics(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Scores on the held-out (later in time) part of the data."""

    auc_roc: float
    average_precision: float
    alert_rate: dict[str, float]  # outcome name -> share of validation events at or above it
    precision: dict[str, float]  # outcome name -> share of those that were positives


class ThresholdPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the thresholds were chosen (see `detectors.metrics.choose_thresholds`)."""

    alert_budget: float
    target_precision: float
    min_alerts: int
    target_reached: bool


class ModelCard(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything an auditor needs to know about one model, stored beside its artifact."""

    format: str = CARD_FORMAT
    model_id: str
    model_sha256: Sha256Hex
    detector: Detector
    artifact: str
    artifact_format: str = ARTIFACT_FORMAT
    features: list[str]
    params: dict[str, Any]
    num_boost_round: int
    xgboost_version: str
    training: TrainingSummary
    metrics: ValidationMetrics
    thresholds: dict[str, float]  # outcome name -> lowest score that gets it
    threshold_policy: ThresholdPolicy
    created_at: datetime
    # Reference tables the features read (authenticity: the supply-chain table), by digest.
    reference_data: list[ReferenceDataDigest] = []
    # The validation scores' histogram, the reference of the live drift index
    # (detectors/drift.py); None in cards written before it existed: no drift figure.
    reference_scores: ScoreHistogram | None = None


def model_id(detector: Detector | str, sha256: str) -> str:
    return f"{Detector(detector).value}-{sha256[:12]}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_path(models_dir: Path, detector: Detector | str, sha256: str) -> Path:
    return models_dir / Detector(detector).value / f"{sha256}.ubj"


def card_path(models_dir: Path, detector: Detector | str, sha256: str) -> Path:
    return models_dir / Detector(detector).value / f"{sha256}.card.json"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write then rename, so a reader never sees half a file (the stream may be loading)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def encode_card(card: ModelCard) -> bytes:
    return msgspec.json.format(msgspec.json.encode(card), indent=2) + b"\n"


def publish(models_dir: Path, artifact: bytes, card: ModelCard, activate: bool = True) -> Path:
    """Store artifact and card under their digest and, by default, make the model active."""
    digest = sha256_hex(artifact)
    if digest != card.model_sha256:
        raise ConfigError(f"card names model {card.model_sha256} but the artifact is {digest}")
    _write_atomically(artifact_path(models_dir, card.detector, digest), artifact)
    _write_atomically(card_path(models_dir, card.detector, digest), encode_card(card))
    if activate:
        activate_model(models_dir, card.detector, digest)
    return artifact_path(models_dir, card.detector, digest)


def read_registry(models_dir: Path) -> dict[str, Any]:
    path = models_dir / REGISTRY_FILE
    try:
        registry = msgspec.json.decode(path.read_bytes())
    except FileNotFoundError:
        return {"format": REGISTRY_FORMAT, "active": {}}
    except (OSError, msgspec.DecodeError) as exc:
        raise ConfigError(f"model registry {path} is unreadable: {exc}") from exc
    if not isinstance(registry, dict) or registry.get("format") != REGISTRY_FORMAT:
        raise ConfigError(f"model registry {path} is not in format {REGISTRY_FORMAT}")
    return registry


def activate_model(models_dir: Path, detector: Detector | str, sha256: str) -> None:
    """Name `sha256` as the active model for `detector` (its card must exist)."""
    card = read_card(models_dir, detector, sha256)
    registry = read_registry(models_dir)
    registry.setdefault("active", {})[card.detector.value] = {
        "model_id": card.model_id,
        "model_sha256": card.model_sha256,
        "artifact": f"{card.detector.value}/{card.artifact}",
        "card": f"{card.detector.value}/{sha256}.card.json",
        "activated_at": datetime.now(UTC).isoformat(),
    }
    data = msgspec.json.format(msgspec.json.encode(registry), indent=2) + b"\n"
    _write_atomically(models_dir / REGISTRY_FILE, data)


def active_sha256(models_dir: Path, detector: Detector | str) -> str | None:
    entry = read_registry(models_dir).get("active", {}).get(Detector(detector).value)
    return None if entry is None else str(entry["model_sha256"])


def list_models(models_dir: Path, detector: Detector | str) -> list[ModelCard]:
    """Every stored model of `detector`, oldest first. Cards only: no artifact is hashed."""
    folder = models_dir / Detector(detector).value
    suffix = ".card.json"
    cards = [
        read_card(models_dir, detector, path.name.removesuffix(suffix))
        for path in folder.glob(f"*{suffix}")
    ]
    return sorted(cards, key=lambda card: (card.created_at, card.model_sha256))


def resolve_model(models_dir: Path, detector: Detector | str, name: str) -> str:
    """The sha256 of the stored model `name` names: its sha256, its model id
    (`fraud-<12 hex>`) or any unambiguous prefix of at least 8 hex digits of its sha256."""
    detector = Detector(detector)
    digest = name.strip().lower().removeprefix(f"{detector.value}-")
    if not re.fullmatch(r"[0-9a-f]{8,64}", digest):
        raise UsageError(
            f"{name!r} names no {detector.value} model: give its sha256, its model id"
            f" ({detector.value}-<12 hex>) or 8+ hex digits of its sha256"
        )
    found = [
        c.model_sha256
        for c in list_models(models_dir, detector)
        if c.model_sha256.startswith(digest)
    ]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise UsageError(
            f"{what} {detector.value} models in {models_dir} match {name!r}"
            " (`attestream models list`)"
        )
    return found[0]


def read_card(models_dir: Path, detector: Detector | str, sha256: str) -> ModelCard:
    path = card_path(models_dir, detector, sha256)
    try:
        card = msgspec.json.decode(path.read_bytes(), type=ModelCard)
    except FileNotFoundError as exc:
        raise ConfigError(f"no model card {path}") from exc
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"model card {path} is unreadable: {exc}") from exc
    if card.model_sha256 != sha256 or card.detector != Detector(detector):
        raise ConfigError(f"model card {path} describes {card.model_id}, not {sha256}")
    return card


@dataclass(frozen=True)
class LoadedModel:
    """A booster whose artifact bytes were verified against its card before parsing."""

    card: ModelCard
    booster: xgb.Booster
    artifact_path: Path

    @property
    def detector(self) -> Detector:
        return self.card.detector

    @property
    def model_id(self) -> str:
        return self.card.model_id

    @property
    def model_sha256(self) -> str:
        return self.card.model_sha256

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.card.features)


def load_model(models_dir: Path, detector: Detector | str, sha256: str) -> LoadedModel:
    """Load one model pinned by digest, refusing an artifact whose bytes hash differently."""
    card = read_card(models_dir, detector, sha256)
    path = artifact_path(models_dir, detector, sha256)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read model artifact {path}: {exc}") from exc
    calculated = sha256_hex(data)
    if calculated != card.model_sha256:
        raise ModelDigestMismatchError(path, card.model_sha256, calculated)
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    if list(booster.feature_names or []) != card.features:
        raise ConfigError(f"model {card.model_id}: artifact features differ from its card")
    _check_thresholds(card)
    return LoadedModel(card, booster, path)


def load_active(models_dir: Path, detector: Detector | str) -> LoadedModel:
    """The model the registry names as active for `detector`, verified against its card."""
    sha256 = active_sha256(models_dir, detector)
    if sha256 is None:
        name = Detector(detector).value
        raise ConfigError(f"no active {name} model in {models_dir}: run `attestream train {name}`")
    return load_model(models_dir, detector, sha256)


def _check_thresholds(card: ModelCard) -> None:
    _, lower, upper = OUTCOMES[card.detector]
    if set(card.thresholds) != {lower, upper} or card.thresholds[lower] > card.thresholds[upper]:
        raise ConfigError(
            f"model {card.model_id}: thresholds must be {lower} <= {upper}, got {card.thresholds}"
        )
