"""Dead letters are sent whatever happens: a failed send is retried with backoff, never
skipped, and the metrics count each outcome by detector and reason."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import streams.outcomes
from streams.intake import HEADER_REASON, RecordRef, Rejection, RejectReason
from streams.metrics import DetectMetrics
from streams.outcomes import send_dead_letters


class FlakyTopic:
    """A dead-letter topic whose first sends fail: refused at once, then undelivered."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failures = [RuntimeError("MessageSizeTooLargeError"), "undelivered"]

    async def send(self, **record: Any) -> Awaitable[None]:
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, Exception):
            raise failure
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        if failure == "undelivered":
            delivered.set_exception(ConnectionError("broker went away"))
        else:
            self.sent.append(record)
            delivered.set_result(None)
        return delivered


def test_a_failing_dead_letter_send_is_retried_until_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams.outcomes, "DEAD_LETTER_RETRY_INITIAL_S", 0.001)
    metrics = DetectMetrics(CollectorRegistry())
    topic = FlakyTopic()
    record = RecordRef("tx", 0, 5, b"C1", b"{")
    rejection = Rejection(RejectReason.NOT_JSON, "truncated")
    asyncio.run(send_dead_letters([(record, rejection)], topic, metrics, "fraud"))
    assert len(topic.sent) == 1 and topic.sent[0]["value"] == b"{"
    assert dict(topic.sent[0]["headers"])[HEADER_REASON] == b"not_json"
    assert metrics.dead_letter_retries.labels("fraud")._value.get() == 2
    assert metrics.dead_letters.labels("fraud", "tx", "not_json")._value.get() == 1
