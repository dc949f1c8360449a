"""Realistic decisions for the benchmarks, and the pre-filled decisions topic they read.

A decision here is shaped like one of the fraud detector's (its 16 payment features, the 3
top reasons, a pinned model digest), so entry sizes, and with them hashing and insert costs,
are those of production traffic: about 1.2 kB of JSON a decision.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from attestcore.schemas import OUTCOMES, Decision, Detector, Reason, SourceRef, decision_id, encode
from detectors.features import PAYMENT_FEATURES
from streams.producer import EventProducer
from streams.topics import ensure_topics

MODEL_SHA256 = "5e" * 32
START = datetime(2025, 3, 3, tzinfo=UTC)
CUSTOMERS = 50_000
"""Distinct entities: keys spread the way a day of card traffic does."""
TOP_REASONS = 3


def make_decision(i: int, rng: random.Random) -> Decision:
    """Decision number i of the benchmark stream (deterministic for one seed)."""
    event_id = f"tx-{i:012d}"
    features = {name: round(rng.uniform(0.0, 500.0), 6) for name in PAYMENT_FEATURES}
    score = round(rng.random(), 6)
    top = sorted(features, key=features.__getitem__, reverse=True)[:TOP_REASONS]
    at = START + timedelta(milliseconds=37 * i)
    outcomes = OUTCOMES[Detector.FRAUD]
    return Decision(
        decision_id=decision_id(event_id, Detector.FRAUD, MODEL_SHA256),
        event_id=event_id,
        event_sha256=f"{rng.getrandbits(256):064x}",
        source=SourceRef(topic="attestream.transactions", partition=0, offset=i),
        entity_id=f"C{rng.randrange(CUSTOMERS):06d}",
        detector=Detector.FRAUD,
        model_id="fraud-xgb-2025-03",
        model_sha256=MODEL_SHA256,
        features=features,
        score=score,
        outcome=outcomes[0] if score < 0.9 else outcomes[1] if score < 0.98 else outcomes[2],
        reasons=[Reason(feature=f, contribution=round(rng.uniform(0.1, 2.0), 6)) for f in top],
        event_time=at,
        decided_at=at + timedelta(milliseconds=4),
    )


def decision_values(count: int, seed: int) -> Iterator[bytes]:
    """`count` decisions as the detectors publish them (JSON bytes), made one at a time so
    that a topic of 200,000 needs no 250 MB list."""
    rng = random.Random(seed)
    for i in range(count):
        yield encode(make_decision(i, rng))


def fill_topic(bootstrap: str, topic: str, values: Iterable[bytes]) -> None:
    """Create `topic` with one partition and publish `values` to it, in order."""
    ensure_topics(bootstrap, [topic], partitions=1)
    with EventProducer(bootstrap) as producer:
        for value in values:
            producer.send(topic, None, value)
