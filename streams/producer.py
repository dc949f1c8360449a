"""A small producer for source systems and the simulator (confluent-kafka)."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Producer

from attestream.errors import ServiceUnavailableError

# How long `flush` may wait for every record to be acknowledged before we call the broker
# unreachable: generous, because a burst of a million records takes seconds to drain.
FLUSH_TIMEOUT_S = 60.0


class EventProducer:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._failures: list[str] = []
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                # Java-compatible key hashing, so every client puts an entity in the same
                # partition as Kafka's own tools (and faust) would.
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 5,
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
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers or ()),
                    on_delivery=self._delivered,
                )  # fmt: skip
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
        self._producer.poll(0)

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

