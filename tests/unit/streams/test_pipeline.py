"""Deciding micro-batches with real XGBoost models, no Kafka: one decision per valid event."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attestream.detection import _payment
from detectors.dataset import payment_dataset
from detectors.registry import load_active
from detectors.scoring import Scorer
from detectors.simulate_payments import LabelledPayment, simulate_payments
from detectors.training import train_detector
from streams.intake import EventParser, RecordRef, RejectReason
from streams.pipeline import DetectorSpec, decide_batch
from streams.schemas import OUTCOMES, Detector, PaymentTransaction, decision_id, encode


@pytest.fixture(scope="module")
def payments() -> list[LabelledPayment]:
    return simulate_payments(6000, seed=3, run_id="pipeline")


@pytest.fixture(scope="module")
def spec(payments: list[LabelledPayment], tmp_path_factory: pytest.TempPathFactory) -> DetectorSpec:
    models: Path = tmp_path_factory.mktemp("models")
    train_detector("fraud", models, labelled=payments, data_source="pipeline test")
    scorer = Scorer(load_active(models, "fraud"))
    return DetectorSpec(Detector.FRAUD, EventParser(PaymentTransaction, "customer_id"),
                        _payment, scorer)  # fmt: skip


def records(payments: list[LabelledPayment]) -> list[RecordRef]:
    return [
        RecordRef("tx", 0, offset, p.event.customer_id.encode(), encode(p.event))
        for offset, p in enumerate(payments)
    ]


def test_one_decision_per_valid_event_and_a_rejection_per_broken_one(
    spec: DetectorSpec, payments: list[LabelledPayment]
) -> None:
    batch = records(payments[:200])
    batch.insert(50, RecordRef("tx", 0, 9999, b"C1", b"{broken"))
    result = decide_batch(spec, batch, {})
    assert len(result.decisions) == 200
    assert [r.reason for _, r in result.rejections] == [RejectReason.NOT_JSON]
    first = result.decisions[0][2]
    event = payments[0].event
    assert first.decision_id == decision_id(event.event_id, Detector.FRAUD,
                                            spec.scorer.model_sha256)  # fmt: skip
    assert first.entity_id == event.customer_id
    assert first.source.offset == 0
    assert list(first.features) == list(spec.scorer.feature_names)
    assert len(first.reasons) == 3
    assert all(d.outcome in OUTCOMES[Detector.FRAUD] for _, _, d in result.decisions)
    assert json.loads(result.decisions[0][1])["event_id"] == event.event_id


def test_stream_features_equal_the_offline_replay(
    spec: DetectorSpec, payments: list[LabelledPayment]
) -> None:
    """The state mapping carries over between batches exactly like the offline replay."""
    state: dict[str, dict[str, object]] = {}
    online = []
    batch = records(payments[:3000])
    for start in range(0, len(batch), 512):
        result = decide_batch(spec, batch[start : start + 512], state)
        online.extend(list(d.features.values()) for _, _, d in result.decisions)
    offline = payment_dataset(payments[:3000]).X
    np.testing.assert_array_equal(np.asarray(online, dtype=np.float32), offline)


def test_scores_replay_from_logged_features(
    spec: DetectorSpec, payments: list[LabelledPayment]
) -> None:
    result = decide_batch(spec, records(payments[:64]), {})
    logged = np.asarray([list(d.features.values()) for _, _, d in result.decisions],
                        dtype=np.float32)  # fmt: skip
    replayed = spec.scorer.score_batch(logged)
    np.testing.assert_allclose(replayed, [d.score for _, _, d in result.decisions], rtol=1e-6)
