"""Which input partitions the confluent-kafka detection worker owns, their entity states, and
their offsets (`streams.kafka_worker`).

The group rebalances eagerly (`streams.kafka_worker.ASSIGNMENT_STRATEGY`): every member gives
up all its partitions, then takes its new ones. librdkafka calls the callbacks below from
inside the worker's `poll`/`consume`, that is between two batches, so a batch is never in
flight at a rebalance: the last batch's outcomes and states are flushed and its offsets
committed before the callback runs.

1. Revoked (`on_revoke`): flush the producer (every changelog record, decision and dead
   letter on the broker), commit the last offsets taken, drop the partitions' states;
   records of them taken meanwhile are left to their next owner.
2. Assigned (`on_assign`), before any record of a partition is decided: its state is
   restored from its changelog partition, from the start to the end
   (`streams.changelog.read_to_end`; the last record of a key wins, a tombstone deletes),
   also when this worker owned it before the rebalance: another may have owned it between.
3. Lost (`on_lost`: the group went on without this worker): the partitions' states are
   dropped at once and nothing is committed, since another worker may own them already.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from confluent_kafka import Consumer, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as TP

from streams.changelog import ChangelogStates

log = logging.getLogger("attestream.detect")

Partition = tuple[str, int]


class Ownership:
    """The owned partitions of the input topics, and their states (`states`: input topic ->
    the table of its detector)."""

    def __init__(
        self,
        producer: Producer,
        reader: Consumer,
        states: Mapping[str, ChangelogStates],
        flush: Callable[[], None],
    ) -> None:
        self.producer = producer
        self.reader = reader
        self.states = states
        self.flush = flush
        self.owned: set[Partition] = set()
        self.taken: dict[Partition, int] = {}
        """The next offset of each owned partition once the last batch is committed."""

    def subscribe(self, consumer: Consumer, topics: Sequence[str]) -> None:
        consumer.subscribe(
            list(topics), on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost
        )

    def owns(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.owned

    def commit(self, consumer: Consumer, messages: Iterable[Message]) -> None:
        """Commit the offset after each partition's last record of a batch, synchronously.
        A commit the group refuses (a rebalance began) is logged: the new owner decides those
        records again (at-least-once)."""
        for message in messages:
            self.taken[(message.topic() or "", message.partition() or 0)] = (
                message.offset() or 0
            ) + 1
        self._commit(consumer)

    def on_assign(self, consumer: Consumer, partitions: list[TP]) -> None:
        """Step 2 (librdkafka assigns `partitions` once this returns)."""
        assigned = {(tp.topic, tp.partition) for tp in partitions}
        for topic, states in self.states.items():
            mine = sorted(p for t, p in assigned if t == topic)
            if mine:
                read = states.restore(self.reader, mine)
                log.info(
                    "%s: partitions %s assigned, %d changelog records restored", topic, mine, read
                )
        self.owned = assigned
        self.taken = {}

    def on_revoke(self, consumer: Consumer, partitions: list[TP]) -> None:
        """Step 1."""
        self.flush()
        self._commit(consumer)
        self._forget(partitions)
        log.info("partitions revoked: %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def on_lost(self, consumer: Consumer, partitions: list[TP]) -> None:
        """Step 3."""
        self._forget(partitions)
        log.warning("partitions lost: %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def _forget(self, partitions: list[TP]) -> None:
        for tp in partitions:
            self.owned.discard((tp.topic, tp.partition))
            self.taken.pop((tp.topic, tp.partition), None)
            states = self.states.get(tp.topic)
            if states is not None:
                states.drop([tp.partition])

    def _commit(self, consumer: Consumer) -> None:
        if not self.taken:
            return
        offsets = [
            TP(topic, partition, offset) for (topic, partition), offset in self.taken.items()
        ]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("offsets not committed (%s): their records are decided again", exc)
        self.taken = {}
