"""Wiring the detectors (features, models and their rollout) into the stream's detector specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attestcore.errors import ConfigError
from attestcore.schemas import Detector, PaymentLabel, PaymentTransaction, SupplyChainEvent
from attestream.rollout import ModelWatch
from attestream.settings import Settings
from detectors.features import FEATURE_SPECS, initial_supply_state, supply_features
from detectors.fraud_features import FraudFeaturizer
from detectors.model import active_sha256, load_model
from detectors.reference import check_reference_data
from detectors.scoring import Scorer
from detectors.terminal_risk import apply_label
from streams.app import StreamConfig
from streams.intake import EventParser
from streams.pipeline import BatchScorer, DetectorSpec, LabelSpec, ScorerSource, State

TERMINAL_TABLE = "fraud-terminal-risk"


def fraud_spec(
    scorer: BatchScorer, labels_topic: str, models: ScorerSource | None = None
) -> DetectorSpec:
    """Payments keyed by customer, scored with their terminal's risk, which the labels on
    `labels_topic` (keyed by terminal) maintain."""
    featurize = FraudFeaturizer()
    labels = LabelSpec(
        labels_topic,
        TERMINAL_TABLE,
        EventParser(PaymentLabel, "terminal_id"),
        apply_label,
        featurize.attach,
    )
    return DetectorSpec(
        Detector.FRAUD,
        EventParser(PaymentTransaction, "customer_id"),
        featurize,
        scorer,
        labels,
        models,
    )


def _supply(event: SupplyChainEvent, state: State | None) -> tuple[Any, State]:
    return supply_features(event, state if state is not None else initial_supply_state())


def authenticity_spec(scorer: BatchScorer, models: ScorerSource | None = None) -> DetectorSpec:
    """Supply-chain scans keyed by EPC."""
    return DetectorSpec(
        Detector.AUTHENTICITY, EventParser(SupplyChainEvent, "epc"), _supply, scorer, models=models
    )


def stream_model(models: Path, detector: Detector, sha256: str) -> Scorer:
    """The model `sha256` of `detector`, verified against its card, refused unless it takes
    exactly the features this version computes and was trained with the reference tables
    (named by digest in its card) the features read now."""
    model = load_model(models, detector, sha256)
    spec = FEATURE_SPECS[detector]
    if model.feature_names != spec.names:
        raise ConfigError(
            f"model {model.model_id} takes other features than this version"
            f" computes: run `attestream train {detector.value}`"
        )
    check_reference_data(model.model_id, model.card.reference_data, spec.reference_data())
    return Scorer(model)


def authenticity_scorer(models: Path) -> Scorer:
    """The active authenticity model, checked as `stream_model` does."""
    sha256 = active_sha256(models, Detector.AUTHENTICITY)
    if sha256 is None:
        raise ConfigError(
            f"no active authenticity model in {models}: run `attestream train authenticity`"
        )
    return stream_model(models, Detector.AUTHENTICITY, sha256)


def model_watch(settings: Settings, detector: Detector) -> ModelWatch:
    """The detector's model source: pinned by ATTESTREAM_<DETECTOR>_MODEL, else the
    registry's active model, followed (attestream.rollout)."""
    pinned = {
        Detector.FRAUD: settings.fraud_model,
        Detector.AUTHENTICITY: settings.authenticity_model,
    }[detector]
    return ModelWatch(settings.models_path, detector, pinned, stream_model)


def build_specs(settings: Settings) -> dict[str, DetectorSpec]:
    """Input topic -> detector spec, each with its model source and the model it starts with."""
    fraud = model_watch(settings, Detector.FRAUD)
    authenticity = model_watch(settings, Detector.AUTHENTICITY)
    return {
        settings.topic_transactions: fraud_spec(fraud.start(), settings.topic_labels, fraud),
        settings.topic_supply_chain: authenticity_spec(authenticity.start(), authenticity),
    }


def stream_config(settings: Settings) -> StreamConfig:
    return StreamConfig(
        app_id=settings.detect_app_id,
        bootstrap=settings.require_kafka(),
        decisions_topic=settings.topic_decisions,
        dead_letter_topic=settings.topic_dead_letter,
        partitions=settings.topic_partitions,
        batch_max=settings.detect_batch_max,
        batch_within_s=settings.detect_batch_within_s,
        fetch_max_wait_ms=settings.detect_fetch_max_wait_ms,
        model_poll_s=settings.detect_model_poll_s,
        max_clock_skew_s=settings.detect_max_clock_skew_s,
        # faust's local files under the home, not `<app id>-data` in the working directory.
        data_dir=settings.home.resolve() / "detect" / f"{settings.detect_app_id}-data",
    )
