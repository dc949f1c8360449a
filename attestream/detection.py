"""Wiring the detectors (features, active models) into the stream's detector specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attestream.errors import ConfigError
from attestream.settings import Settings
from detectors.features import FEATURE_SPECS, initial_supply_state, supply_features
from detectors.fraud_features import FraudFeaturizer
from detectors.model import load_active
from detectors.reference import check_reference_data
from detectors.scoring import Scorer
from detectors.terminal_risk import apply_label
from streams.app import StreamConfig
from streams.intake import EventParser
from streams.pipeline import BatchScorer, DetectorSpec, LabelSpec, State
from streams.schemas import Detector, PaymentLabel, PaymentTransaction, SupplyChainEvent

TERMINAL_TABLE = "fraud-terminal-risk"


def fraud_spec(scorer: BatchScorer, labels_topic: str) -> DetectorSpec:
    """Payments keyed by customer, scored with their terminal's risk, which the labels on
    `labels_topic` (keyed by terminal) maintain."""
    featurize = FraudFeaturizer()
    labels = LabelSpec(labels_topic, TERMINAL_TABLE, EventParser(PaymentLabel, "terminal_id"),
                       apply_label, featurize.attach)  # fmt: skip
    return DetectorSpec(Detector.FRAUD, EventParser(PaymentTransaction, "customer_id"),
                        featurize, scorer, labels)  # fmt: skip


def _supply(event: SupplyChainEvent, state: State | None) -> tuple[Any, State]:
    return supply_features(event, state if state is not None else initial_supply_state())


def authenticity_scorer(models: Path) -> Scorer:
    """The active authenticity model, refused if the reference table it was trained with (its
    card names it by digest) is not the one the features read now."""
    model = load_active(models, Detector.AUTHENTICITY.value)
    spec = FEATURE_SPECS[Detector.AUTHENTICITY]
    if model.feature_names != spec.names:
        raise ConfigError(f"model {model.model_id} takes other features than this version"
                          " computes: run `attestream train authenticity`")  # fmt: skip
    check_reference_data(model.model_id, model.card.reference_data, spec.reference_data())
    return Scorer(model)


def build_specs(settings: Settings) -> dict[str, DetectorSpec]:
    """Input topic -> detector spec, with the registry's active model of each detector."""
    models = settings.models_path
    return {
        settings.topic_transactions: fraud_spec(
            Scorer(load_active(models, Detector.FRAUD.value)), settings.topic_labels
        ),
        settings.topic_supply_chain: DetectorSpec(
            Detector.AUTHENTICITY,
            EventParser(SupplyChainEvent, "epc"),
            _supply,
            authenticity_scorer(models),
        ),
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
    )
