"""The detection worker's peer: the same work as `attestream detect` in a plain consumer loop.

`python -m bench.peer_loop SETTINGS_JSON` (the settings of `bench.stream_worker`) decides a
payments topic with the fraud detector as the faust worker does, without faust:

1. `consume` up to `batch_max` records, waiting up to `batch_within_s` (the worker's
   largest micro-batch and its wait), with confluent-kafka and the worker's fetch wait.
2. `streams.pipeline.decide_batch`, the function the worker calls per batch, with customer
   state in a plain dict of msgspec-encoded JSON (as `streams.app.JSONStates`); every state
   write is also produced to a changelog topic, keyed by entity, to the partition of the
   entity's last event of the batch, as faust's Table does.
3. Dead letters, then decisions (keyed by entity, with the event's bytes in
   `EVENT_HEADER`), to a producer with the worker's settings (acks all, linger, batch size,
   Java's murmur2 partitioner as aiokafka's).
4. Flush the producer, then commit the batch's offsets synchronously: a committed record's
   outcome is on the broker.

It writes the stamps of `bench.stream_worker` (`first_batch`, `done`), so the benchmark times
it as it times the worker, and runs until it is sent SIGTERM. Its decisions equal the
worker's apart from `decided_at` (tests/integration/test_peer_loop.py). It keeps no state
across restarts and takes no part in rebalances beyond what the consumer group does: it is
a measure of what the worker's work costs without a framework, not a worker.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import msgspec
from confluent_kafka import Consumer, KafkaError, Message, Producer

from attestcore.errors import ServiceUnavailableError
from attestcore.schemas import EVENT_HEADER, Detector
from attestream.detection import fraud_spec, stream_model
from bench.stream_worker import Stamps, WorkerSettings, stream_config
from streams import changelog
from streams.app import tune_gc
from streams.changelog import ChangelogStates
from streams.intake import dead_letter
from streams.kafka_worker import consumer_config, producer_config, record_ref
from streams.pipeline import DetectorSpec, decide_batch

# How long the last flush and the group leave may take at SIGTERM.
CLOSE_TIMEOUT_S = 30.0


def changelog_topic(app_id: str) -> str:
    """The changelog faust's Table of fraud entity state writes (`streams.app.create_app`)."""
    return changelog.changelog_topic(app_id, changelog.entity_table(Detector.FRAUD.value))


class PeerLoop:
    """One consumer, one producer, one dict of states: steps 1-4 per batch."""

    def __init__(self, s: WorkerSettings, spec: DetectorSpec, stamps: Stamps) -> None:
        self.s = s
        self.spec = spec
        self.stamps = stamps
        self.consumer = Consumer(consumer_config(stream_config(s)))
        self.producer = Producer(producer_config(stream_config(s)))
        self.states = ChangelogStates(self.producer, changelog_topic(s.app_id))
        self.started = False
        self.decided = 0
        self.failures: list[KafkaError] = []
        self.stopping = False

    def _delivered(self, error: KafkaError | None, _: Message) -> None:
        if error is not None:
            self.failures.append(error)

    def run(self) -> None:
        self.consumer.subscribe([self.s.topic])
        try:
            while not self.stopping:
                self.batch()
        finally:
            self.producer.flush(CLOSE_TIMEOUT_S)
            self.consumer.close()

    def batch(self) -> None:
        messages = self.consumer.consume(self.s.batch_max, self.s.batch_within_s)  # step 1
        for message in messages:
            error = message.error()
            if error is not None and error.fatal():
                raise ServiceUnavailableError("broker", self.s.bootstrap, str(error))
        records = [record_ref(m) for m in messages if m.error() is None]
        if not records:
            return
        if not self.started:
            self.started = True
            self.stamps.write("first_batch")

        def follow(index: int) -> None:
            self.states.partition = records[index].partition

        result = decide_batch(self.spec, records, self.states, before_state_write=follow)
        produce = self.producer.produce  # step 3
        for record, rejection in result.rejections:
            letter = dead_letter(record, rejection)
            produce(
                self.s.dead_letter_topic,
                letter.value,
                letter.key,
                headers=list[tuple[str, str | bytes | None]](letter.headers),
                on_delivery=self._delivered,
            )
        for (key, value, _), event in zip(result.decisions, result.events, strict=True):
            produce(
                self.s.decisions_topic,
                value,
                key.encode(),
                headers=[(EVENT_HEADER, event)],
                on_delivery=self._delivered,
            )
        self.producer.flush()  # step 4
        if self.failures:
            raise ServiceUnavailableError("broker", self.s.bootstrap, str(self.failures[0]))
        self.consumer.commit(asynchronous=False)
        # Stamped as the worker's `done`: once `records` decisions are out.
        before, self.decided = self.decided, self.decided + len(result.decisions)
        if before < self.s.records <= self.decided:
            self.stamps.write("done")


def peer_loop(s: WorkerSettings, stamps: Stamps) -> PeerLoop:
    """The peer over `s.topic` with the fraud detector, its terminal state an empty dict (the
    benchmark sends no labels, so the worker's terminal table stays empty too)."""
    scorer = stream_model(Path(s.models_dir), Detector.FRAUD, s.model_sha256)
    spec = fraud_spec(scorer, s.labels_topic)
    assert spec.labels is not None
    spec.labels.attach({})
    return PeerLoop(s, spec, stamps)


def main(argv: list[str]) -> None:
    (raw_settings,) = argv
    settings = msgspec.json.decode(raw_settings, type=WorkerSettings)
    loop = peer_loop(settings, Stamps(Path(settings.stamps)))

    def stop(signum: int, frame: FrameType | None) -> None:
        loop.stopping = True

    signal.signal(signal.SIGTERM, stop)
    tune_gc()  # as `attestream detect` does
    loop.run()


if __name__ == "__main__":
    main(sys.argv[1:])
