"""The detection worker on confluent-kafka (ATTESTREAM_DETECT_ENGINE=kafka): the faust
worker's work (`streams.app`) in a plain consumer loop, with the same topics, consumer group,
changelogs and outcomes.

Each batch, on one thread, in this order (docs/hot-path.md):

1. Take what the consumer has buffered, up to `batch_max` records: wait for the first
   record (at most `IDLE_POLL_S`), then take whatever else is buffered without waiting. A
   record is never held back to fill a batch; under load batches grow to the cap.
2. Per input topic, `decide_batch` (`streams.deciding.decide_or_reject`) over the entity
   states of the partitions this worker owns (`streams.changelog.ChangelogStates`); every
   state write is produced to the changelog partition of its record (as faust's Table).
   Labels update the detector's global table the same way (`apply_or_reject`).
3. Dead letters, then decisions (keyed by entity, the event's bytes in `EVENT_HEADER`), to
   the producer.
4. Flush the producer: every changelog record, dead letter and decision of the batch is on
   the broker (a failed delivery stops the worker before step 5).
5. Commit the batch's offsets, synchronously. A committed record's outcome and state are on
   the broker; a worker stopped before this decides the batch again after its restart
   (at-least-once: decisions may be sent twice, always with the same decision id, which the
   ledger drops).

Rebalances (`streams.kafka_rebalance`) happen inside step 1, so never with a batch in flight.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from attestcore.backoff import kafka_client_logger
from attestcore.errors import ConfigError, ServiceUnavailableError
from attestcore.schemas import EVENT_HEADER
from streams.app import (
    HEARTBEAT_INTERVAL_S,
    PRODUCER_LINGER_MS,
    PRODUCER_MAX_BATCH_BYTES,
    SESSION_TIMEOUT_S,
    StreamConfig,
)
from streams.changelog import (
    ChangelogStates,
    GlobalStates,
    changelog_topic,
    entity_table,
    restore_consumer,
)
from streams.deciding import (
    apply_or_reject,
    batch_consumed,
    decide_or_reject,
    outcomes_sent,
    poll_model,
    swap_model,
)
from streams.intake import RecordRef, Rejection, dead_letter
from streams.kafka_rebalance import Ownership
from streams.metrics import DetectMetrics
from streams.outcomes import dead_lettered, fault_from_env, inject_fault
from streams.pipeline import BatchResult, DetectorSpec, LabelSpec
from streams.stages import BatchClock
from streams.topics import ensure_topics, partition_counts

log = logging.getLogger("attestream.detect")

# How long an idle worker waits for a record before it checks for SIGTERM, other workers'
# global-table writes and a new model: SIGTERM is acted on within this.
IDLE_POLL_S = 0.5
# A flush waits for the broker to acknowledge the batch's records; a live broker does so in
# milliseconds, and the supervisor stops a worker whose broker is gone within seconds.
FLUSH_TIMEOUT_S = 30.0
# The last flush at SIGTERM: within the supervisor's grace period (WORKER_STOP_GRACE_S, 7 s).
CLOSE_FLUSH_TIMEOUT_S = 5.0
# Eager rebalancing: every member gives up all its partitions, then takes its new ones. A
# partition a worker keeps is not restored again (`streams.kafka_rebalance`).
ASSIGNMENT_STRATEGY = "range"
# A changelog keeps each entity's latest state, as faust creates its tables' changelogs: a
# compacting broker drops the older states, so a restore reads one record per entity.
CHANGELOG_CONFIG = {"cleanup.policy": "compact"}


def consumer_config(config: StreamConfig) -> dict[str, Any]:
    """The detection group's consumer: faust's group id, group timeouts and offset reset;
    offsets committed by the worker only (step 5)."""
    return {
        "bootstrap.servers": config.bootstrap,
        "group.id": config.app_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": int(SESSION_TIMEOUT_S * 1000),
        "heartbeat.interval.ms": int(HEARTBEAT_INTERVAL_S * 1000),
        "fetch.wait.max.ms": config.fetch_max_wait_ms,
        "partition.assignment.strategy": ASSIGNMENT_STRATEGY,
        "logger": kafka_client_logger("detect-consumer"),
    }


def producer_config(config: StreamConfig) -> dict[str, Any]:
    """The faust worker's producer (`streams.app.new_app`): acks from all replicas, 5 ms
    linger, 256 kB batches; keys hashed as aiokafka (and Java) do, so a global table's
    records land where faust's partitioner puts them."""
    return {
        "bootstrap.servers": config.bootstrap,
        "acks": "all",
        "linger.ms": PRODUCER_LINGER_MS,
        "batch.size": PRODUCER_MAX_BATCH_BYTES,
        "partitioner": "murmur2_random",
        "enable.idempotence": False,
        "logger": kafka_client_logger("detect-producer"),
    }


def record_ref(message: Message) -> RecordRef:
    headers = cast("list[tuple[str, bytes | None]]", message.headers() or [])
    return RecordRef(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value() or b"",
        headers=tuple((k, bytes(v or b"")) for k, v in headers),
    )


@dataclass
class Labelling:
    """A labels topic, the detector it serves and the global table it writes."""

    detector: str
    spec: LabelSpec
    states: GlobalStates


class KafkaWorker:
    """Steps 1-5 per batch over every input topic of `specs` (and their labels topics)."""

    def __init__(
        self, config: StreamConfig, specs: dict[str, DetectorSpec], metrics: DetectMetrics
    ) -> None:
        self.config = config
        self.specs = specs
        self.metrics = metrics
        self.fault = fault_from_env()
        self.producer = Producer(producer_config(config))
        self.consumer = Consumer(consumer_config(config))
        self.states = {
            topic: ChangelogStates(
                self.producer, changelog_topic(config.app_id, entity_table(spec.detector.value))
            )
            for topic, spec in specs.items()
        }
        self.labelling: dict[str, Labelling] = {}
        for spec in specs.values():
            if spec.labels is not None:
                reader = restore_consumer(config.bootstrap, config.app_id)
                table = changelog_topic(config.app_id, spec.labels.table)
                states = GlobalStates(self.producer, reader, table)
                spec.labels.attach(states)
                self.labelling[spec.labels.topic] = Labelling(
                    spec.detector.value, spec.labels, states
                )
        self.ownership = Ownership(
            self.producer,
            restore_consumer(config.bootstrap, config.app_id),
            self.states,
            self.flush,
        )
        self.models: queue.SimpleQueue[tuple[DetectorSpec, Any]] = queue.SimpleQueue()
        self.failures: list[KafkaError] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        """Restore the global tables, join the group, decide batch after batch until `stop`;
        then leave the group (its partitions flushed and committed)."""
        self._ensure_changelogs()
        for labelling in self.labelling.values():
            read = labelling.states.restore()
            log.info(
                "%s: restored %d records of %s", labelling.detector, read, labelling.spec.table
            )
        for spec in self.specs.values():
            self.metrics.model_active(spec.detector.value, spec.scorer)
        self._start_model_watch()
        self.ownership.subscribe(self.consumer, [*self.specs, *self.labelling])
        try:
            while not self.stopping.is_set():
                self.step()
        except BaseException as exc:
            # A batch left before step 5 stays uncommitted: the next worker decides it again.
            # What of it the producer has not sent yet is dropped, so that its state writes
            # do not reach the changelog the next worker restores (records already sent are
            # on the broker: at-least-once).
            self.producer.purge(in_queue=True, in_flight=False)
            self.producer.poll(0)  # the purged records' delivery reports
            self.failures.clear()
            log.error(
                "the worker stops (%s: %s); its last batch stays uncommitted and is decided"
                " again after the restart",
                type(exc).__name__,
                exc,
            )
            raise
        finally:
            self.close()

    def stop(self) -> None:
        """Ask the loop to stop after its current batch (a signal handler may call this)."""
        self.stopping.set()

    def step(self) -> None:
        """One batch (steps 1-5), then what waits between batches."""
        messages = self.take()  # step 1
        if messages:
            self.decide(messages)
        for labelling in self.labelling.values():
            labelling.states.follow()
        while not self.models.empty():
            spec, scorer = self.models.get()
            swap_model(spec, scorer, self.metrics)

    def take(self) -> list[Message]:
        """Step 1: the first record within IDLE_POLL_S, then whatever else is buffered."""
        first = self.consumer.poll(IDLE_POLL_S)
        if first is None:
            return []
        more = self.config.batch_max - 1
        taken = [first, *self.consumer.consume(more, 0)] if more else [first]
        messages = []
        for message in taken:
            error = message.error()
            if error is None:
                if self.ownership.owns(message.topic() or "", message.partition() or 0):
                    messages.append(message)
            elif error.fatal():
                raise ServiceUnavailableError("Kafka", self.config.bootstrap, str(error))
            else:
                log.debug("consumer: %s", error)
        return messages

    def decide(self, messages: Sequence[Message]) -> None:
        """Steps 2-5 for one batch."""
        received = time.time()
        by_topic: dict[str, list[RecordRef]] = {}
        for message in messages:
            by_topic.setdefault(message.topic() or "", []).append(record_ref(message))
        sent: list[tuple[str, BatchResult, BatchClock]] = []
        for topic, records in by_topic.items():
            if topic in self.specs:
                sent.append(self._decide_topic(topic, records, received))
            elif topic in self.labelling:
                self._apply_labels(self.labelling[topic], records)
        for detector, result, clock in sent:  # in the producer's hands
            outcomes_sent(self.metrics, detector, result, clock, lambda _: received)
        self.flush(FLUSH_TIMEOUT_S)  # step 4
        self.ownership.commit(self.consumer, messages)  # step 5

    def _decide_topic(
        self, topic: str, records: list[RecordRef], received: float
    ) -> tuple[str, BatchResult, BatchClock]:
        spec, states = self.specs[topic], self.states[topic]
        detector = spec.detector.value
        clock = BatchClock(received)
        batch_consumed(self.metrics, detector, len(records))

        def follow_event(index: int) -> None:
            states.partition = records[index].partition

        with self.metrics.batch_seconds.labels(detector).time():  # step 2
            result = decide_or_reject(
                spec, records, states, follow_event, self.config.max_clock_skew_s, clock
            )
        sending = time.perf_counter()
        self._send_dead_letters(detector, result.rejections)  # step 3
        produce = self.producer.produce
        decisions_topic, half = self.config.decisions_topic, len(result.decisions) // 2
        for index, ((key, value, _), event) in enumerate(
            zip(result.decisions, result.events, strict=True)
        ):
            if self.fault and half and index == half:
                inject_fault(self.fault)
            produce(
                decisions_topic,
                value,
                key.encode(),
                headers=[(EVENT_HEADER, event)],
                on_delivery=self._delivered,
            )
        clock.send_s = time.perf_counter() - sending
        return detector, result, clock

    def _apply_labels(self, labelling: Labelling, records: list[RecordRef]) -> None:
        rejections = apply_or_reject(
            labelling.detector,
            labelling.spec,
            records,
            labelling.states,
            self.config.max_clock_skew_s,
            self.metrics,
        )
        self._send_dead_letters(labelling.detector, rejections)

    def _send_dead_letters(
        self, detector: str, rejections: Sequence[tuple[RecordRef, Rejection]]
    ) -> None:
        for record, rejection in rejections:
            letter = dead_letter(record, rejection)
            self.producer.produce(
                self.config.dead_letter_topic,
                letter.value,
                letter.key,
                headers=list[tuple[str, str | bytes | None]](letter.headers),
                on_delivery=self._delivered,
            )
            dead_lettered(self.metrics, detector, record, rejection)

    def _delivered(self, error: KafkaError | None, _: Message) -> None:
        if error is not None:
            self.failures.append(error)

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Step 4: every record produced so far is on the broker, or the worker stops."""
        left = self.producer.flush(timeout_s)
        if left or self.failures:
            cause = str(self.failures[0]) if self.failures else f"{left} records not delivered"
            raise ServiceUnavailableError("Kafka", self.config.bootstrap, cause)

    def close(self) -> None:
        """Leave the group: the revocation flushes and commits; then the last flush."""
        try:
            self.consumer.close()
        except KafkaException as exc:
            log.warning("leaving the consumer group: %s", exc)
        self.producer.flush(CLOSE_FLUSH_TIMEOUT_S)

    def _ensure_changelogs(self) -> None:
        """The changelog topics, as faust declares them: an entity table's with as many
        partitions as its input topic (co-partitioned), a global table's with one."""
        bootstrap = self.config.bootstrap
        sources = partition_counts(bootstrap, self.specs)
        for topic, states in self.states.items():
            wanted = sources.get(topic, self.config.partitions)
            ensure_topics(bootstrap, [states.topic], wanted, CHANGELOG_CONFIG)
            found = partition_counts(bootstrap, [states.topic]).get(states.topic, wanted)
            if found != wanted:
                raise ConfigError(
                    f"the changelog {states.topic!r} has {found} partition(s) and its input"
                    f" topic {topic!r} {wanted}: each input partition's state is in the"
                    " changelog partition of the same number"
                )
        shared = [labelling.states.topic for labelling in self.labelling.values()]
        ensure_topics(bootstrap, shared, 1, CHANGELOG_CONFIG)

    def _start_model_watch(self) -> None:
        """A thread polling each detector's model source every `model_poll_s`; a newly
        active model is swapped in by the loop, between two batches (`step`)."""
        watched = [spec for spec in self.specs.values() if spec.models is not None]
        if not watched or self.config.model_poll_s <= 0:
            return

        def watch() -> None:
            while not self.stopping.wait(self.config.model_poll_s):
                for spec in watched:
                    scorer = poll_model(spec, self.metrics)
                    if scorer is not None:
                        self.models.put((spec, scorer))

        threading.Thread(target=watch, name="model-watch", daemon=True).start()
