"""Wiring the detectors (features, active models) into the stream's detector specs."""

from __future__ import annotations

from typing import Any

from attestream.settings import Settings
from detectors.features import (
    initial_payment_state,
    initial_supply_state,
    payment_features,
    supply_features,
)
from detectors.model import load_active
from detectors.scoring import Scorer
from streams.app import StreamConfig
from streams.intake import EventParser
from streams.pipeline import DetectorSpec, State
from streams.schemas import Detector, PaymentTransaction, SupplyChainEvent


def _payment(event: PaymentTransaction, state: State | None) -> tuple[Any, State]:
    return payment_features(event, state if state is not None else initial_payment_state())


def _supply(event: SupplyChainEvent, state: State | None) -> tuple[Any, State]:
    return supply_features(event, state if state is not None else initial_supply_state())


def build_specs(settings: Settings) -> dict[str, DetectorSpec]:
    """Input topic -> detector spec, with the registry's active model of each detector."""
    models = settings.models_path
    return {
        settings.topic_transactions: DetectorSpec(
            Detector.FRAUD,
            EventParser(PaymentTransaction, "customer_id"),
            _payment,
            Scorer(load_active(models, Detector.FRAUD.value)),
        ),
        settings.topic_supply_chain: DetectorSpec(
            Detector.AUTHENTICITY,
            EventParser(SupplyChainEvent, "epc"),
            _supply,
            Scorer(load_active(models, Detector.AUTHENTICITY.value)),
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
