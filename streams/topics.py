"""Topic names and creation (confluent-kafka admin client)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # the class confluent_kafka.admin re-exports

from attestcore.backoff import kafka_client_logger
from attestcore.errors import ServiceUnavailableError

# Metadata from a live broker arrives in milliseconds; 10 s means it is not there.
ADMIN_TIMEOUT_S = 10.0


def admin_client(bootstrap: str) -> AdminClient:
    """An admin client whose own log lines (a refused connection every 50 ms while the
    broker is down) go to the throttled `attestream.kafka.admin` logger, not to stderr."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "logger": kafka_client_logger("admin"),
    }
    return AdminClient(config)


def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int, config: dict[str, str] | None = None
) -> None:
    """Create the topics that do not exist yet (with the topic `config`, if any); existing
    ones are left as they are."""
    admin = admin_client(bootstrap)
    try:
        existing = set(admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics)
    except KafkaException as exc:
        raise ServiceUnavailableError("Kafka", bootstrap, str(exc)) from exc
    missing = [
        NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {})
        for n in names
        if n not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, request_timeout=ADMIN_TIMEOUT_S).items():
        try:
            future.result(timeout=ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceUnavailableError("Kafka", bootstrap, f"create {name}: {exc}") from exc


def partition_counts(bootstrap: str, names: Iterable[str]) -> dict[str, int]:
    """How many partitions each of `names` has (topics that do not exist are left out)."""
    admin = admin_client(bootstrap)
    try:
        topics = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    except KafkaException as exc:
        raise ServiceUnavailableError("Kafka", bootstrap, str(exc)) from exc
    return {name: len(topics[name].partitions) for name in names if name in topics}


def cluster_id(bootstrap: str, timeout_s: float = ADMIN_TIMEOUT_S) -> str:
    admin = admin_client(bootstrap)
    try:
        return admin.list_topics(timeout=timeout_s).cluster_id or ""
    except KafkaException as exc:
        raise ServiceUnavailableError("Kafka", bootstrap, str(exc)) from exc
