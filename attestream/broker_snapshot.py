"""What a memory-only broker held when it was stopped, and what its reset may have cost.

The local broker keeps no data: after `stack down`/`up` it is empty, with a new cluster id.
At `stack down` the stack manager records, per topic partition, the end offset and every
consumer group's committed offset (`<home>/broker-snapshot.json`). At the next `up`, when the
cluster id changed, the unconsumed difference is the number of events that were published
and never consumed by a group that had been reading the topic: lost with the old broker.
A broker that died without `down` left no snapshot: its cost is unknown.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from attestcore.waiting import WaitTimeout, wait_until

SNAPSHOT_FILE = "broker-snapshot.json"
# Metadata and offsets of a local broker arrive in milliseconds; this bounds a dying one.
SNAPSHOT_TIMEOUT_S = 5.0
# Reading the last batch of every partition (for its exact end offset) takes one fetch each.
LAST_BATCH_WAIT_S = 3.0
# Topics of the broker itself and faust's internal ones: no events of ours.
INTERNAL_PREFIXES = ("__",)


@dataclass(frozen=True)
class BrokerSnapshot:
    cluster_id: str
    taken_at: str
    ends: dict[str, dict[str, int]]
    """topic -> partition -> offset after its last record"""
    committed: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """group -> topic -> partition -> committed offset"""

    def unconsumed(self) -> dict[str, int]:
        """Per "group/topic": records after the group's committed offsets."""
        lost: dict[str, int] = {}
        for group, topics in self.committed.items():
            for topic, partitions in topics.items():
                ends = self.ends.get(topic, {})
                behind = sum(max(0, end - partitions.get(p, 0)) for p, end in ends.items())
                lost[f"{group}/{topic}"] = behind
        return lost


@dataclass(frozen=True)
class BrokerReset:
    """Reported by `stack up` when the broker came back with another cluster id."""

    previous_cluster_id: str
    cluster_id: str
    unconsumed: dict[str, int] | None
    """Per group/topic; None when unknown (no snapshot of the previous broker)."""

    def describe(self) -> str:
        head = (
            f"the broker was reset: cluster id {self.previous_cluster_id} is now"
            f" {self.cluster_id}; its topics and data are gone"
        )
        if self.unconsumed is None:
            return (
                head + ". Events it held that no consumer had read: unknown (it stopped"
                " without `attestream stack down`, so nothing was recorded)"
            )
        total = sum(self.unconsumed.values())
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.unconsumed.items()) if v)
        return head + f". Events lost unconsumed: {total}" + (f" ({detail})" if detail else "")

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def take_snapshot(bootstrap: str, cluster_id: str) -> BrokerSnapshot:
    """End offsets of every topic and the committed offsets of every consumer group."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=SNAPSHOT_TIMEOUT_S)
    partitions = [
        TopicPartition(name, p)
        for name, t in metadata.topics.items()
        if not name.startswith(INTERNAL_PREFIXES)
        for p in t.partitions
    ]
    ends = _end_offsets(bootstrap, partitions)
    groups = admin.list_consumer_groups(request_timeout=SNAPSHOT_TIMEOUT_S).result()
    committed: dict[str, dict[str, dict[str, int]]] = {}
    for group in groups.valid:
        request = [ConsumerGroupTopicPartitions(group.group_id)]
        for future in admin.list_consumer_group_offsets(request).values():
            for tp in future.result().topic_partitions or []:
                if tp.offset >= 0 and tp.topic in ends:
                    by_topic = committed.setdefault(group.group_id, {})
                    by_topic.setdefault(tp.topic, {})[str(tp.partition)] = tp.offset
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return BrokerSnapshot(cluster_id, now, ends, committed)


def _end_offsets(bootstrap: str, partitions: list[TopicPartition]) -> dict[str, dict[str, int]]:
    """The offset after each partition's last record, read from its last batch: the local
    broker's high watermark counts batches, not records, so it alone undercounts."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "attestream-snapshot",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    ends: dict[str, dict[str, int]] = {}
    try:
        starts = []
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=SNAPSHOT_TIMEOUT_S)
            ends.setdefault(tp.topic, {})[str(tp.partition)] = high
            if high > low:
                starts.append(TopicPartition(tp.topic, tp.partition, max(low, high - 1)))
        if starts:
            consumer.assign(starts)
            _read_to_end(consumer, ends, len(starts))
    finally:
        consumer.close()
    return ends


def _read_to_end(consumer: Consumer, ends: dict[str, dict[str, int]], pending: int) -> None:
    """Raise `ends` to the offsets read until every partition reported its end (`pending` of
    them) or LAST_BATCH_WAIT_S passed; what was read by then stands."""

    def all_read() -> bool:
        nonlocal pending
        for msg in consumer.consume(1000, 0.2):
            if msg.error() is not None:
                pending -= 1  # the end of a partition (or it is gone): nothing more to read
                continue
            topic, partition, offset = msg.topic(), str(msg.partition()), msg.offset()
            if topic is not None and offset is not None:
                ends[topic][partition] = max(ends[topic][partition], offset + 1)
        return pending <= 0

    # consume() itself waits for records, so the loop needs no pause of its own.
    with contextlib.suppress(WaitTimeout):
        wait_until(all_read, LAST_BATCH_WAIT_S, interval_s=0.0, what="the last batches")


def reset_between(home: Path, previous_cluster_id: str, cluster_id: str) -> BrokerReset | None:
    """The reset `stack up` reports when the broker's cluster id changed (None if it did not)."""
    if not previous_cluster_id or previous_cluster_id == cluster_id:
        return None
    snapshot = load(home, previous_cluster_id)
    unconsumed = snapshot.unconsumed() if snapshot is not None else None
    return BrokerReset(previous_cluster_id, cluster_id, unconsumed)


def save(home: Path, snapshot: BrokerSnapshot) -> None:
    (home / SNAPSHOT_FILE).write_text(
        json.dumps(asdict(snapshot), indent=2) + "\n", encoding="utf-8"
    )


def load(home: Path, cluster_id: str) -> BrokerSnapshot | None:
    """The snapshot of the broker with `cluster_id`, if `down` recorded one."""
    try:
        data = json.loads((home / SNAPSHOT_FILE).read_text(encoding="utf-8"))
        snapshot = BrokerSnapshot(**data)
    except (OSError, ValueError, TypeError):
        return None
    return snapshot if snapshot.cluster_id == cluster_id else None


def snapshot_quietly(home: Path, bootstrap: str, cluster_id: str) -> str | None:
    """Record the snapshot; on failure return why (the broker is going away anyway)."""
    try:
        save(home, take_snapshot(bootstrap, cluster_id))
    except (KafkaException, OSError) as exc:
        return str(exc)
    return None
