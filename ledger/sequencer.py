"""The ledger sequencer: decisions topic -> hash-linked entries, tree nodes, checkpoints.

One chain per partition of the decisions topic, one writer per chain: the consumer group
assigns partitions, and a writer appends only to chains whose partition it holds.

Order of durability for every batch (never reordered):
  1. entries and tree nodes are inserted into ClickHouse (each INSERT is one block);
  2. the signed checkpoint over the new tree size is inserted;
  3. only then are the Kafka offsets committed.
A crash before 3 means the batch is read again; on restart the writer resumes from the
last logged source offset read back from ClickHouse (not from Kafka's committed offset), so
nothing is logged twice and nothing is skipped.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from attestream.errors import MalformedError
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource, decode_decision
from ledger.keys import NoteSigner
from ledger.merkle import MerkleTree, RootHash, compact_range_ids
from ledger.note import Checkpoint, sign_note
from ledger.store import ClickHouseStore, StoredCheckpoint, node_rows

log = logging.getLogger("attestream.ledger")

RECOVERY_ID_WINDOW = 200_000
"""How many recent decision ids a resumed writer reloads for de-duplication."""

# How long one consume call waits for the first message: short enough that a stop request
# or a rebalance is noticed promptly, long enough not to spin.
POLL_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class SequencerConfig:
    bootstrap: str
    topic: str
    group: str
    origin_prefix: str
    batch_max: int


@dataclass
class BatchOutcome:
    chain: int
    appended: int
    duplicates: int
    size: int


class Sequencer:
    """Consumes decisions and makes them durable, in the order written in the module doc."""

    def __init__(
        self,
        config: SequencerConfig,
        store: ClickHouseStore,
        signer: NoteSigner,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        on_reject: Callable[[Message, str], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.signer = signer
        self.writers: dict[int, ChainWriter] = {}
        self.cluster_id = ""
        self._on_batch = on_batch or (lambda outcome: None)
        self._on_reject = on_reject or (lambda msg, reason: None)
        self._stopping = False
        self.consumer = Consumer(
            {
                "bootstrap.servers": config.bootstrap,
                "group.id": config.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # A dead writer's chains move to another writer after this long.
                "session.timeout.ms": 10_000,
                "max.poll.interval.ms": 60_000,
                "isolation.level": "read_committed",
            }
        )

    def origin(self, chain: int) -> str:
        return f"{self.config.origin_prefix}/{chain}"

    # --- assignment ------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.cluster_id = consumer.list_topics(timeout=10).cluster_id or ""
        for tp in partitions:
            tp.offset = self._resume_chain(tp.partition)
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A writer that lost its partition must not append any more.
        for tp in partitions:
            self.writers.pop(tp.partition, None)
        consumer.unassign()

    def _resume_chain(self, chain: int) -> int:
        """Rebuild a chain's writer from ClickHouse; return the offset to consume from."""
        writer, head_cluster, head_offset = recover_writer(self.store, chain)
        self.writers[chain] = writer
        latest = self.store.latest_checkpoint(chain)
        if writer.size and (latest is None or latest.size != writer.size):
            # Entries made durable before a crash, but no checkpoint over them yet: sign now
            # (step 2 of the interrupted batch), before reading anything new.
            last = EntrySource(cluster=head_cluster, topic=self.config.topic, partition=chain,
                               offset=head_offset)  # fmt: skip
            self._write_checkpoint(chain, writer.size, writer.tree.root(), last)
        if head_offset < 0:
            return OFFSET_BEGINNING
        if head_cluster != self.cluster_id:
            log.warning(
                "chain %d: the decisions source changed from Kafka cluster %r to %r (a reset"
                " broker?); continuing the chain from the new source's first record",
                chain, head_cluster, self.cluster_id,
            )  # fmt: skip
            return OFFSET_BEGINNING
        # Same cluster: the next record is right after the last logged one. (No comparison
        # with the high watermark here: Tansu's watermarks lag behind its offsets.)
        return head_offset + 1

    # --- the loop ------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping = True

    def run(self, max_idle_s: float | None = None) -> None:
        self.store.create_schema()
        self.consumer.subscribe(
            [self.config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )  # fmt: skip
        idle_since = time.monotonic()
        try:
            while not self._stopping:
                messages = self.consumer.consume(self.config.batch_max, POLL_TIMEOUT_S)
                if messages or not self.writers:
                    # Idle time counts only once chains are assigned: a group join can take
                    # longer than the idle limit.
                    idle_since = time.monotonic()
                if messages:
                    self.process(messages)
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                    return
        finally:
            self.consumer.close()

    def process(self, messages: Sequence[Message]) -> list[BatchOutcome]:
        by_chain: dict[int, list[Incoming]] = defaultdict(list)
        last_offset: dict[int, int] = {}
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", msg.error())
                continue
            chain = msg.partition()
            if chain not in self.writers:
                continue  # revoked while the batch was in flight: not ours to append
            last_offset[chain] = msg.offset()
            try:
                decision = decode_decision(msg.value() or b"")
            except MalformedError as exc:
                self._on_reject(msg, str(exc))
                continue
            source = EntrySource(
                cluster=self.cluster_id, topic=msg.topic(), partition=chain, offset=msg.offset()
            )
            by_chain[chain].append(Incoming(decision, source))
        outcomes = [self._log_batch(chain, items) for chain, items in by_chain.items()]
        self._commit(last_offset)
        for outcome in outcomes:
            self._on_batch(outcome)
        return outcomes

    def _log_batch(self, chain: int, items: list[Incoming]) -> BatchOutcome:
        writer = self.writers[chain]
        result = writer.append(items)
        if result.appended:
            # Step 1: entries and tree nodes durable.
            self.store.insert_entries(result.entries)
            self.store.insert_nodes(chain, result.node_keys, result.node_hashes)
            # Step 2: the checkpoint over the new size durable.
            self._write_checkpoint(chain, result.size, result.root, result.last_source)
        return BatchOutcome(chain, result.appended, result.duplicates, result.size)

    def _write_checkpoint(
        self, chain: int, size: int, root: bytes, source: EntrySource | None
    ) -> None:
        body = Checkpoint(self.origin(chain), size, RootHash(root)).body()
        self.store.insert_checkpoint(
            StoredCheckpoint(
                chain=chain,
                size=size,
                root=root,
                note=sign_note(body, self.signer),
                source_cluster=source.cluster if source else "",
                source_offset=source.offset if source else -1,
            )
        )

    def _commit(self, last_offset: dict[int, int]) -> None:
        # Step 3: offsets committed, after the log and its checkpoint are durable.
        if not last_offset:
            return
        offsets = [TopicPartition(self.config.topic, p, o + 1) for p, o in last_offset.items()]
        self.consumer.commit(offsets=offsets, asynchronous=False)


def recover_writer(store: ClickHouseStore, chain: int) -> tuple[ChainWriter, str, int]:
    """Rebuild a chain writer from what ClickHouse holds.

    The tree is loaded from the O(log n) compact-range nodes of the last checkpoint; entries
    logged after it (a crash between steps 1 and 2) are re-read and re-hashed, and their
    nodes written again (the nodes table collapses identical rows).
    Returns the writer, and the source cluster and offset of the chain's last entry.
    """
    checkpoint = store.latest_checkpoint(chain)
    head = store.head(chain)
    tree = MerkleTree()
    if checkpoint is not None and checkpoint.size <= head.size:
        ids = compact_range_ids(checkpoint.size)
        nodes = store.read_nodes(chain, ids)
        tree = MerkleTree.from_compact_range(checkpoint.size, [nodes[i] for i in ids])
    tail = [bytes.fromhex(row[2].decode()) for row in store.entry_rows(chain, tree.size)]
    store.insert_nodes(chain, *node_rows(tree.extend_leaf_hashes(tail)))
    writer = ChainWriter(chain=chain, tree=tree, prev=head.last_leaf_hash)
    writer.remember(list(reversed(store.recent_decision_ids(chain, RECOVERY_ID_WINDOW))))
    return writer, head.source_cluster, head.source_offset
