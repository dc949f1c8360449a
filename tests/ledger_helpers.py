"""Helpers for tests on the real stack: publish decisions, run the real sequencer in-process,
copy a ledger into a fresh database, and tamper with it through plain SQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from factories import make_decision

from anchoring.store import AnchoredStore
from attestcore.records import ENTRY_COLUMNS
from attestcore.schemas import Decision, encode
from attestcore.waiting import WaitTimeout, wait_until
from attestream.settings import Settings
from attestream.wiring import create_ledger_key, ledger_signer, open_store, signing_guard
from ledger.archive_store import ArchiveStore
from ledger.chain import ChainWriter, Incoming
from ledger.entry import decode_entry
from ledger.merkle import MerkleTree
from ledger.node_keys import LEVEL_SHIFT, node_key
from ledger.sequencer import Sequencer, SequencerConfig
from ledger.store import ClickHouseStore
from streams.producer import EventProducer
from streams.topics import ensure_topics

# Long enough for a first consumer-group join on Tansu plus the batches; the sequencer exits
# once the topic has been quiet this long (or once its group committed what was published).
IDLE_S = 4.0
# How often the committed offsets are compared with the topic's end.
COMMITTED_POLL_S = 0.1
# A committed-offsets request to a live broker answers in milliseconds.
KAFKA_REQUEST_TIMEOUT_S = 10.0
# A mutation on a handful of rows takes milliseconds; 30 s covers a loaded machine.
MUTATION_TIMEOUT_S = 30.0


def publish_decisions(settings: Settings, decisions: list[Decision], garbage: int = 0) -> None:
    with EventProducer(settings.require_kafka()) as producer:
        for d in decisions:
            producer.send(settings.topic_decisions, d.entity_id.encode(), encode(d))
        for _ in range(garbage):
            producer.send(settings.topic_decisions, b"C1", b"not a decision")


def run_sequencer(
    settings: Settings,
    store: AnchoredStore,
    rejected: list[str] | None = None,
    batch_max: int = 1000,
    anchors: bool = False,
    records: int | None = None,
) -> Sequencer:
    """Run the real sequencer until the decisions topic has been quiet for IDLE_S or, given
    the number of `records` published to it, as soon as its group committed them all.

    It checks what it signs as `ledger run` does, against its signer state file and, with
    `anchors`, the newest anchor of the configured anchor account (off by default: tests on
    the session stack share its anchor account with other databases)."""
    reasons = rejected if rejected is not None else []
    config = SequencerConfig(
        settings.require_kafka(),
        settings.topic_decisions,
        settings.ledger_group,
        settings.log_origin,
        batch_max,
    )
    signer = ledger_signer(settings)
    guard = signing_guard(settings, signer, store, anchors=anchors)
    sequencer = Sequencer(
        config,
        store,
        signer,
        guard=guard,
        archive=ArchiveStore(store),
        on_reject=lambda msg, reason, detail: reasons.append(detail),
    )
    if records is None:
        sequencer.run(max_idle_s=IDLE_S)
        return sequencer
    finished = threading.Event()
    watcher = threading.Thread(
        target=_stop_once_committed, args=(config, records, sequencer.stop, finished)
    )
    watcher.start()
    try:
        sequencer.run(max_idle_s=IDLE_S)
    finally:
        finished.set()
        watcher.join()
    return sequencer


def _stop_once_committed(
    config: SequencerConfig, records: int, stop: Callable[[], None], finished: threading.Event
) -> None:
    """Stop the sequencer once its group has committed `records` offsets of the (fresh)
    topic: then each of them is logged or dead-lettered, and durable. The committed offsets
    are compared with the count published, not with the topic's high watermark: the local
    broker (Tansu) reports a watermark short of the records it holds."""
    reader = Consumer({"bootstrap.servers": config.bootstrap, "group.id": config.group})
    try:
        topic = reader.list_topics(config.topic, timeout=KAFKA_REQUEST_TIMEOUT_S).topics
        partitions = [TopicPartition(config.topic, p) for p in topic[config.topic].partitions]
        while not finished.wait(COMMITTED_POLL_S):
            committed = reader.committed(partitions, timeout=KAFKA_REQUEST_TIMEOUT_S)
            if sum(max(tp.offset, 0) for tp in committed) >= records:
                stop()
                return
    finally:
        reader.close()


def sequenced_ledger(settings: Settings, entries: int, batch_max: int) -> AnchoredStore:
    """A new ledger in the settings' own database: its signing key created, `entries`
    decisions published to its decisions topic and logged by the real sequencer, at most
    `batch_max` per batch (so several signed checkpoints)."""
    ensure_topics(settings.require_kafka(), [settings.topic_decisions], partitions=1)
    create_ledger_key(settings)
    store = open_store(settings, create=True)
    publish_decisions(settings, [make_decision(i) for i in range(entries)])
    run_sequencer(settings, store, batch_max=batch_max, records=entries)
    assert store.count_entries() == entries
    return store


def wait_for_mutations(store: ClickHouseStore, timeout_s: float = MUTATION_TIMEOUT_S) -> None:
    """ALTER ... UPDATE runs asynchronously (18.16 has no mutations_sync): wait for it."""

    def done() -> bool:
        pending = store.execute(
            "SELECT count() FROM system.mutations WHERE database = %(d)s AND is_done = 0",
            {"d": store.database},
        )[0][0]
        return bool(pending == 0)

    try:
        wait_until(done, timeout_s, interval_s=0.1, what="ClickHouse mutations")
    except WaitTimeout as exc:
        raise AssertionError("ClickHouse mutation did not finish") from exc


def tamper(store: ClickHouseStore, sql: str, params: Mapping[str, Any] | None = None) -> None:
    """Run one ALTER ... UPDATE/DELETE (a mutation) and wait until it has been applied."""
    store.execute(sql, dict(params or {}))
    wait_for_mutations(store)


def copy_ledger(source: ClickHouseStore, target_url: str) -> AnchoredStore:
    """A new database at `target_url` holding a copy of every ledger table of `source`."""
    target = AnchoredStore(target_url)
    target.create_schema()
    for table in (name for schema in target.schemas for name in schema.tables):
        target.execute(f"INSERT INTO {{db}}.{table} SELECT * FROM {source.database}.{table}")
    return target


def fresh_database_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + f"/t_{uuid.uuid4().hex[:10]}"


TIME_COLUMNS = ("event_time", "decided_at", "logged_at")


def entry_row(store: ClickHouseStore, chain: int, seq: int) -> dict[str, Any]:
    """One entry's columns; times as epoch seconds (no time-zone conversion either way)."""
    names = ", ".join(f"toUInt32({n})" if n in TIME_COLUMNS else n for n in ENTRY_COLUMNS)
    rows = store.execute(
        f"SELECT {names} FROM {{db}}.entries WHERE chain = %(c)s AND seq = %(s)s",
        {"c": chain, "s": seq},
    )
    assert len(rows) == 1, rows
    return dict(zip(ENTRY_COLUMNS, rows[0], strict=True))


def overwrite_entry(store: ClickHouseStore, chain: int, seq: int, values: dict[str, Any]) -> None:
    """ALTER TABLE entries UPDATE every non-key column of (chain, seq) to `values`.

    (chain, seq) is the sorting key, which ClickHouse cannot UPDATE: two entries swap places
    by swapping everything else."""
    sets, params = [], {"c": chain, "s": seq}
    for name in ENTRY_COLUMNS:
        if name in ("chain", "seq"):
            continue
        wrap = "toDateTime(%({})s)" if name in TIME_COLUMNS else "%({})s"
        sets.append(f"{name} = " + wrap.format(name))
        params[name] = values[name]
    tamper(
        store,
        f"ALTER TABLE {{db}}.entries UPDATE {', '.join(sets)} WHERE chain = %(c)s AND seq = %(s)s",
        params,
    )


def delete_nodes_from_leaf(store: ClickHouseStore, chain: int, size: int) -> None:
    """Delete every stored node covering a leaf at or beyond `size`."""
    mask = (1 << LEVEL_SHIFT) - 1
    tamper(
        store,
        "ALTER TABLE {db}.nodes DELETE WHERE chain = %(c)s AND bitShiftLeft("
        f"bitAnd(node, {mask}) + 1, bitShiftRight(node, {LEVEL_SHIFT})) > %(n)s",
        {"c": chain, "n": size},
    )


def set_node(store: ClickHouseStore, chain: int, level: int, index: int, hash_hex: str) -> None:
    tamper(
        store,
        "ALTER TABLE {db}.nodes UPDATE hash = %(h)s WHERE chain = %(c)s AND node = %(k)s",
        {"h": hash_hex, "c": chain, "k": node_key(level, index)},
    )


def rebuild_chain(
    store: ClickHouseStore, chain: int, forge: Callable[[int, Decision], Decision]
) -> None:
    """The database administrator's consistent rewrite: every entry of `chain` re-encoded
    with `forge(seq, decision)` in place of its decision, every leaf hash, link and tree node
    recomputed, and the tables emptied and refilled with plain INSERTs (no mutation, no
    signature). Checkpoints and anchors are left alone: delete them as the attack needs."""
    entries = [
        decode_entry(bytes(row[ENTRY_COLUMNS.index("entry")])) for row in store.entry_rows(chain)
    ]
    writer = ChainWriter(chain=chain, tree=MerkleTree(), prev=None)
    result = writer.append([Incoming(forge(e.seq, e.decision), e.source) for e in entries])
    assert result.appended == len(entries), "a forged decision id repeats an earlier one"
    for table in ("entries", "nodes"):
        store.execute(f"TRUNCATE TABLE {{db}}.{table}")
    store.insert_entries(result.entries)
    store.insert_nodes(chain, result.node_keys, result.node_hashes)
