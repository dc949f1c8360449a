"""Builders of valid domain objects shared by unit and integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.chain import Incoming
from ledger.entry import EntrySource
from streams.schemas import Decision, Detector, Reason, SourceRef, decision_id

MODEL_SHA256 = "ab" * 32


def make_decision(i: int) -> Decision:
    """Decision number i: entity C<i mod 7>, one in five flagged for review."""
    event_id = f"ev-{i}"
    at = datetime(2025, 3, 3, tzinfo=UTC) + timedelta(seconds=i)
    return Decision(
        decision_id=decision_id(event_id, Detector.FRAUD, MODEL_SHA256),
        event_id=event_id,
        event_sha256="cd" * 32,
        source=SourceRef(topic="attestream.transactions", partition=0, offset=i),
        entity_id=f"C{i % 7}",
        detector=Detector.FRAUD,
        model_id="fraud-test",
        model_sha256=MODEL_SHA256,
        features={"amount": float(i), "night": 0.0},
        score=(i % 10) / 10,
        outcome="approve" if i % 10 < 8 else "review",
        reasons=[Reason(feature="amount", contribution=0.5)],
        event_time=at,
        decided_at=at + timedelta(milliseconds=5),
    )


def incoming(i: int, offset: int | None = None) -> Incoming:
    """Decision i as read from partition 0 of the decisions topic at `offset` (default i)."""
    source = EntrySource(cluster="k1", topic="decisions", partition=0,
                         offset=i if offset is None else offset)  # fmt: skip
    return Incoming(make_decision(i), source)
