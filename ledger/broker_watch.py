"""The sequencer's view of the broker: consume errors turned into one log line per backoff
step and a readiness report, instead of one warning per error.

librdkafka reconnects by itself; the sequencer keeps polling (so it notices a stop request
and the broker's return at once) and only needs to say what is going on, once per step."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from attestcore.backoff import Outage

# Asking a broker that came back for its metadata takes milliseconds; one second bounds the
# probe while it is still away (the poll loop waits this long at most once per step).
PROBE_TIMEOUT_S = 1.0
# Not broker trouble: the end of a partition, and a topic not there yet (a reset broker's
# topics come back when a producer or `attestream detect` recreates them).
QUIET_ERRORS = frozenset({KafkaError._PARTITION_EOF})


class BrokerWatch:
    def __init__(self, outage: Outage) -> None:
        self.outage = outage
        self._next_step = 0.0
        self._client_errors: list[KafkaError] = []

    def client_error(self, error: KafkaError) -> None:
        """The consumer's `error_cb` (all brokers down, transport failures), served during
        `consume`: kept for the next `observe`."""
        self._client_errors.append(error)

    def observe(self, messages: Sequence[Message], consumer: Consumer) -> None:
        """Called with every consume result (possibly empty)."""
        now = time.monotonic()
        failed = [e for m in messages if (e := m.error()) is not None]
        records = len(messages) - len(failed)
        errors = [e for e in [*failed, *self._client_errors] if e.code() not in QUIET_ERRORS]
        self._client_errors.clear()
        if errors:
            if now >= self._next_step:
                self._next_step = now + self.outage.failed("Kafka", str(errors[0]))
            return
        if not self.outage.down:
            return
        if records:  # records arrived: the broker is back
            self.outage.recovered()
            return
        if now < self._next_step:
            return
        try:
            consumer.list_topics(timeout=PROBE_TIMEOUT_S)
        except KafkaException as exc:
            self._next_step = time.monotonic() + self.outage.failed("Kafka", str(exc))
            return
        self.outage.recovered()
