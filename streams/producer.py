"""A small producer for source systems and the simulator (confluent-kafka)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import KafkaException, Producer

from attestcore.backoff import kafka_client_logger
from attestcore.errors import MissingTopicError, ServiceUnavailableError

log = logging.getLogger("attestream.producer")

# How long `flush` may wait for every record to be acknowledged before we call the broker
# unreachable: generous, because a burst of a million records takes seconds to drain.
FLUSH_TIMEOUT_S = 60.0
# Checking that a topic exists before the first record to it: metadata from a live broker
# arrives in milliseconds, 10 s means the broker is not there.
METADATA_TIMEOUT_S = 10.0


class EventProducer:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._failures: list[str] = []
        self._checked: set[str] = set()
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                # Java-compatible key hashing, so every client puts an entity in the same
                # partition as Kafka's own tools (and faust) would.
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 5,
                # Never create a topic by writing to it: after a broker reset the broker's
                # default (not the configured partition count) would shape it, and the
                # detection worker's tables would no longer match its input.
                "allow.auto.create.topics": False,
                # While the broker is down the client logs every refused connection (once a
                # second): its own lines are throttled, failures reach `flush`.
                "logger": kafka_client_logger("producer"),
            }
        )

    def _delivered(self, err: object, msg: object) -> None:
        if err is not None:
            self._failures.append(str(err))

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        if topic not in self._checked:
            self.require_topic(topic)
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=list(headers or ()),
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
        self._producer.poll(0)

    def require_topic(self, topic: str) -> None:
        """Raise `MissingTopicError` unless the broker has `topic`."""
        try:
            metadata = self._producer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        except KafkaException as exc:
            raise ServiceUnavailableError("Kafka", self.bootstrap, str(exc)) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise MissingTopicError(topic, self.bootstrap)
        self._checked.add(topic)

    def close(self, timeout_s: float) -> None:
        """At shutdown: wait at most `timeout_s` for what is queued, then give it up (logged)."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.warning(
                "%d record(s) to %s not acknowledged at shutdown, given up",
                remaining,
                self.bootstrap,
            )

    def flush(self) -> None:
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            raise ServiceUnavailableError(
                "Kafka", self.bootstrap, f"{remaining} records not acknowledged"
            )
        if self._failures:
            first, count = self._failures[0], len(self._failures)
            self._failures.clear()
            raise ServiceUnavailableError("Kafka", self.bootstrap, f"{count} failed: {first}")

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()
        else:
            self._producer.flush(5)
