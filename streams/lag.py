"""Consumer lag: how many records of each input partition a consumer group has still to read.

Read off the hot path, by a thread of the process with a consumer of its own that never joins
the group: every `LAG_REFRESH_S` it asks the broker for each partition's high watermark and
the group's committed offset, and publishes their difference as
`attestream_<process>_consumer_lag_messages{topic,partition}`. The committed offset is what a
restarted consumer resumes from (`detect` commits after its decisions are flushed, `ledger
run` after its batch is durable), so the figure is the work a restart would have to redo or
do. While the broker does not answer the gauge is emptied: a stale lag would look healthy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from attestcore.backoff import kafka_client_logger

log = logging.getLogger("attestream.lag")

# Often enough for an alert on a growing backlog, rare enough to cost the broker nothing
# (one metadata, one offset-fetch and one list-offsets request per partition).
LAG_REFRESH_S = 5.0
# A live broker answers these requests in milliseconds; a slower one counts as unreachable.
LAG_REQUEST_TIMEOUT_S = 5.0
# At shutdown the thread gets this long to finish a read; one stuck on a dead broker is left
# to end with the process (a daemon thread), so SIGTERM still ends it within 10 s.
STOP_JOIN_S = 1.0

PartitionLag = dict[tuple[str, int], int]


def partition_lag(high: int, committed: int, low: int = 0) -> int:
    """Records the group has still to read in one partition: the high watermark minus the
    committed offset. Without a committed offset (negative: librdkafka's OFFSET_INVALID) or
    one below the log start, every retained record counts. Never negative: the broker's
    watermark may lag behind the offsets it has handed out (Tansu)."""
    start = committed if committed >= 0 else low
    return max(high - max(start, low), 0)


def lag_gauge(process: str, registry: CollectorRegistry) -> Gauge:
    return Gauge(
        f"attestream_{process}_consumer_lag_messages",
        "Records of an input partition the consumer group has not committed yet (high"
        " watermark minus committed offset)",
        ["topic", "partition"],
        registry=registry,
    )


class LagReader:
    """The group's lag on `topics`, read with a consumer that never subscribes."""

    def __init__(self, bootstrap: str, group: str, topics: Iterable[str]) -> None:
        self.topics = list(topics)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "error_cb": lambda error: log.debug("lag reader: %s", error),
                "logger": kafka_client_logger("lag"),
            }
        )

    def read(self) -> PartitionLag:
        metadata = self.consumer.list_topics(timeout=LAG_REQUEST_TIMEOUT_S)
        partitions = [
            TopicPartition(topic, partition)
            for topic in self.topics
            if topic in metadata.topics
            for partition in sorted(metadata.topics[topic].partitions)
        ]
        if not partitions:
            return {}
        committed = self.consumer.committed(partitions, timeout=LAG_REQUEST_TIMEOUT_S)
        lag: PartitionLag = {}
        for tp in committed:
            if tp.error is not None:
                continue
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=LAG_REQUEST_TIMEOUT_S
            )
            lag[(tp.topic, tp.partition)] = partition_lag(high, tp.offset, low)
        return lag

    def close(self) -> None:
        self.consumer.close()


class LagMonitor:
    """A daemon thread publishing `LagReader.read` into `gauge` every `interval_s`."""

    def __init__(self, reader: LagReader, gauge: Gauge, interval_s: float = LAG_REFRESH_S) -> None:
        self.reader = reader
        self.gauge = gauge
        self.interval_s = interval_s
        self._published: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consumer-lag", daemon=True)

    def start(self) -> LagMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(STOP_JOIN_S)
        if not self._thread.is_alive():  # never close a consumer another thread is using
            self.reader.close()

    def refresh(self) -> None:
        try:
            lag = self.reader.read()
        except KafkaException as exc:
            log.debug("consumer lag not read: %s", exc)
            lag = {}
        published = set()
        for (topic, partition), value in lag.items():
            labels = (topic, str(partition))
            self.gauge.labels(*labels).set(value)
            published.add(labels)
        for gone in self._published - published:
            self.gauge.remove(*gone)
        self._published = published

    def _run(self) -> None:
        while True:
            self.refresh()
            if self._stop.wait(self.interval_s):
                return
