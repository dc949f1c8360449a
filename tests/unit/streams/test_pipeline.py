"""Deciding micro-batches with real XGBoost models, no Kafka: one decision per valid event.

The fraud spec is the stream's own (`attestream.detection.fraud_spec`): payments through
`decide_batch` with customer state, labels through `apply_labels` into terminal state, the
two mappings standing in for the faust Table and GlobalTable.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from attestcore.schemas import (
    OUTCOMES,
    Decision,
    Detector,
    PaymentContext,
    PaymentLabel,
    PaymentTransaction,
    decision_id,
    encode,
)
from attestream.detection import fraud_spec
from detectors.dataset import payment_dataset
from detectors.features import State
from detectors.registry import load_active
from detectors.scoring import Scorer
from detectors.simulate_payments import LabelledPayment, arrival_order, simulate_payments
from detectors.terminal_risk import SECONDS_PER_HOUR
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource
from ledger.merkle import MerkleTree
from streams.intake import RecordRef, RejectReason
from streams.pipeline import DetectorSpec, apply_labels, decide_batch

BATCH = 512


@pytest.fixture(scope="module")
def payments() -> list[LabelledPayment]:
    return simulate_payments(6000, seed=3, run_id="pipeline")


@pytest.fixture(scope="module")
def spec(trained_models: Path) -> DetectorSpec:
    # Any fraud model will do: these tests compare the stream with the offline features and
    # a logged score with its replay, whichever model scored.
    return fraud_spec(Scorer(load_active(trained_models, "fraud")), "labels")


def records(payments: list[LabelledPayment]) -> list[RecordRef]:
    return [
        RecordRef("tx", 0, offset, p.event.customer_id.encode(), encode(p.event))
        for offset, p in enumerate(payments)
    ]


def label_record(label: PaymentLabel, offset: int) -> RecordRef:
    return RecordRef("labels", 0, offset, label.terminal_id.encode(), encode(label))


def test_each_decision_carries_its_events_fields_and_exact_bytes(
    spec: DetectorSpec, payments: list[LabelledPayment]
) -> None:
    batch = records(payments[:20])
    batch.insert(5, RecordRef("tx", 0, 9999, b"C1", b"{broken"))
    result = decide_batch(spec, batch, {})
    valid = [record for record in batch if record.offset != 9999]
    assert result.events == [record.value for record in valid]
    for (_, _, decision), event_bytes, p in zip(
        result.decisions, result.events, payments[:20], strict=True
    ):
        assert decision.event_sha256 == hashlib.sha256(event_bytes).hexdigest()
        context = decision.context
        assert isinstance(context, PaymentContext)
        assert (context.terminal_id, context.customer_id, context.amount, context.mcc) == (
            p.event.terminal_id,
            p.event.customer_id,
            p.event.amount,
            p.event.mcc,
        )


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
    assert first.decision_id == decision_id(
        event.event_id, Detector.FRAUD, spec.scorer.model_sha256
    )
    assert first.entity_id == event.customer_id
    assert first.source.offset == 0
    assert list(first.features) == list(spec.scorer.feature_names)
    assert len(first.reasons) == 3
    assert all(d.outcome in OUTCOMES[Detector.FRAUD] for _, _, d in result.decisions)
    assert json.loads(result.decisions[0][1])["event_id"] == event.event_id


def stream_replay(
    spec: DetectorSpec, payments: list[LabelledPayment], labels_first: bool
) -> list[Decision]:
    """Both agents' functions over payments and labels as they arrive, a UTC hour at a time.

    Within an hour the two topics may be read in any interleaving: `labels_first` applies the
    hour's labels before its payments are scored, otherwise after. Payments go in batches.
    """
    assert spec.labels is not None
    customers: dict[str, State] = {}
    terminals: dict[str, State] = {}
    spec.labels.attach(terminals)
    decisions: list[Decision] = []

    def hour_of(item: PaymentTransaction | PaymentLabel) -> int:
        at = item.label_time if isinstance(item, PaymentLabel) else item.event_time
        return math.floor(at.timestamp() / SECONDS_PER_HOUR)

    by_offset = {p.event.event_id: i for i, p in enumerate(payments)}
    for _, hour in itertools.groupby(arrival_order(payments), key=hour_of):
        items = list(hour)
        labels = [label_record(x, i) for i, x in enumerate(items) if isinstance(x, PaymentLabel)]
        txs = [payments[by_offset[x.event_id]] for x in items if not isinstance(x, PaymentLabel)]
        if labels_first:
            assert apply_labels(spec.labels, labels, terminals) == []
        batch = records(txs)
        for start in range(0, len(batch), BATCH):
            result = decide_batch(spec, batch[start : start + BATCH], customers)
            decisions.extend(d for _, _, d in result.decisions)
        if not labels_first:
            assert apply_labels(spec.labels, labels, terminals) == []
    return decisions


@pytest.mark.parametrize("labels_first", [False, True])
def test_stream_features_equal_the_offline_replay(
    spec: DetectorSpec, payments: list[LabelledPayment], labels_first: bool
) -> None:
    """Customer and terminal features, scored through the stream's own functions, equal the
    training rows of the offline replay, whichever topic is read first within an hour."""
    online = stream_replay(spec, payments, labels_first)
    offline = payment_dataset(payments)
    assert [d.event_id for d in online] == offline.event_ids
    vectors = np.asarray([list(d.features.values()) for d in online], dtype=np.float32)
    np.testing.assert_array_equal(vectors, offline.X)
    terminal_rate = list(offline.feature_names).index("terminal_fraud_rate_7d")
    assert (offline.X[:, terminal_rate] > 0).sum() > 50  # terminal risk really is exercised


def test_a_broken_label_is_rejected_and_the_rest_applied(
    spec: DetectorSpec, payments: list[LabelledPayment]
) -> None:
    assert spec.labels is not None
    label = next(x for x in arrival_order(payments[:5]) if isinstance(x, PaymentLabel))
    good = label_record(label, 0)
    wrong_key = RecordRef("labels", 0, 1, b"T-other", good.value)
    terminals: dict[str, State] = {}
    rejected = apply_labels(
        spec.labels, [RecordRef("labels", 0, 2, b"T", b"{"), wrong_key, good], terminals
    )
    assert [r.reason for _, r in rejected] == [RejectReason.NOT_JSON, RejectReason.KEY_MISMATCH]
    assert list(terminals) == [label.terminal_id]


def test_scores_replay_from_logged_features(
    spec: DetectorSpec, payments: list[LabelledPayment]
) -> None:
    result = decide_batch(spec, records(payments[:64]), {})
    logged = np.asarray(
        [list(d.features.values()) for _, _, d in result.decisions], dtype=np.float32
    )
    replayed = spec.scorer.score_batch(logged)
    np.testing.assert_allclose(replayed, [d.score for _, _, d in result.decisions], rtol=1e-6)


def test_a_second_payment_reusing_an_event_id_reaches_the_ledger_as_a_conflict(
    spec: DetectorSpec, payments: list[LabelledPayment]
) -> None:
    """The detectors decide every record (they drop nothing by event id); the ledger logs the
    first payment once, drops the replay of its exact bytes, and sets the second payment,
    another amount at another terminal under the same event id, aside as a conflict."""
    first = payments[0].event
    second = msgspec.structs.replace(
        first, amount=first.amount + 250.0, terminal_id=payments[1].event.terminal_id
    )
    key = first.customer_id.encode()
    batch = [
        RecordRef("tx", 0, 0, key, encode(first)),
        RecordRef("tx", 0, 1, key, encode(second)),
        RecordRef("tx", 0, 2, key, encode(first)),
    ]
    result = decide_batch(spec, batch, {})
    decided = [d for _, _, d in result.decisions]
    assert result.rejections == [] and len(decided) == 3
    assert len({d.decision_id for d in decided}) == 1
    assert [d.event_sha256 for d in decided] == [hashlib.sha256(r.value).hexdigest() for r in batch]

    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    source = [EntrySource(cluster="k1", topic="decisions", partition=0, offset=k) for k in range(3)]
    logged = writer.append([Incoming(d, s) for d, s in zip(decided, source, strict=True)])
    assert (logged.appended, logged.duplicates) == (1, 1)
    [conflict] = logged.conflicts
    assert conflict.incoming.decision == decided[1]
    assert (conflict.logged_event_sha256, conflict.logged_seq) == (decided[0].event_sha256, 0)
