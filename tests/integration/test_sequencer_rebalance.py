"""Two sequencers share the chains: partitions move on start, stop and crash, and the chains
stay continuous. A writer that lost its chain is fenced; a fork is what fencing prevents."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message
from factories import make_decision
from sequencer_procs import (
    RESUMED,
    START_TIMEOUT_S,
    BurstProducer,
    SequencerProcess,
    all_logged,
    assert_ledger_complete,
    decision_stream,
    has_resumed,
    wait_until,
)

from anchoring.store import AnchoredStore
from attestcore.schemas import encode
from attestream.settings import Settings
from attestream.wiring import ledger_signer, open_store, trusted_verifiers
from forensics.verify import verify_ledger
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource
from ledger.merkle import MerkleTree
from ledger.sequencer import Sequencer, SequencerConfig
from streams.topics import ensure_topics

SEED = 7
DECISIONS = 3000
DUPLICATES = 200
# About 20 s of bursts: long enough that every move of the partitions happens mid-stream.
BURSTS = 16
BURST_PAUSE_S = 1.2
# Publishing plus four membership changes (each a rebalance of a few seconds) and catch-up.
FINISH_TIMEOUT_S = 60.0
RESUMED_CHAIN = re.compile(r"chain (\d+): resumed at size")


def test_chains_stay_continuous_while_partitions_move(isolated: Settings, tmp_path: Path) -> None:
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=3)
    store = open_store(isolated, create=True)
    producer = BurstProducer(
        isolated, decision_stream(DECISIONS, DUPLICATES, SEED), BURSTS, BURST_PAUSE_S
    )
    one = SequencerProcess("one", tmp_path / "one.log")
    two = SequencerProcess("two", tmp_path / "two.log")
    try:
        one.start()
        two.start()
        producer.start()
        wait_until(
            "both sequencers assigned",
            lambda: has_resumed(one)() and has_resumed(two)(),
            START_TIMEOUT_S,
            [one, two],
        )
        two.signal(signal.SIGTERM)  # a clean stop: two leaves the group, one takes over
        assert two.wait() == 0
        wait_until(
            "one taking every chain",
            lambda: resumed_chains(one) >= {0, 1, 2},
            START_TIMEOUT_S,
            [one],
        )
        restarted_at = len(two.output())
        two.start()  # a start: the chains are split again
        wait_until(
            "two assigned again",
            lambda: RESUMED in two.output()[restarted_at:],
            START_TIMEOUT_S,
            [one, two],
        )
        one.signal(signal.SIGKILL)  # a crash: one's chains move after its session times out
        assert one.wait() == -signal.SIGKILL
        restarted_at = len(one.output())
        one.start()
        producer.finish(FINISH_TIMEOUT_S)
        wait_until(
            "every decision logged and checkpointed",
            lambda: all_logged(store, DECISIONS),
            FINISH_TIMEOUT_S,
            [one, two],
        )
        # The stop below must find one past its start-up (SIGTERM handled, chains taken):
        # two may log everything before one, restarted on a loaded machine, has joined.
        wait_until(
            "one assigned again",
            lambda: RESUMED in one.output()[restarted_at:],
            START_TIMEOUT_S,
            [one, two],
        )
        for run in (one, two):
            run.signal(signal.SIGTERM)
        assert (one.wait(), two.wait()) == (0, 0)
    finally:
        one.close()
        two.close()
    assert_ledger_complete(store, isolated, DECISIONS)
    # Both processes wrote: each held chains at some point.
    assert resumed_chains(one) and resumed_chains(two)


def resumed_chains(run: SequencerProcess) -> set[int]:
    return {int(c) for c in RESUMED_CHAIN.findall(run.output())}


@pytest.fixture
def sequencers(isolated: Settings) -> Iterator[list[Sequencer]]:
    """Two sequencers on one store, driven by hand (no consumer group): who owns a chain is
    decided by the test calling `resume_chain`, as the group would on assignment."""
    config = SequencerConfig(
        isolated.require_kafka(),
        isolated.topic_decisions,
        isolated.ledger_group,
        isolated.log_origin,
        100,
    )
    made = []
    for _ in range(2):
        sequencer = Sequencer(config, open_store(isolated, create=True), ledger_signer(isolated))
        sequencer.cluster_id = "test-cluster"
        made.append(sequencer)
    yield made
    for sequencer in made:
        sequencer.consumer.close()


def records(settings: Settings, numbers: range) -> list[Message[bytes, bytes]]:
    """Consumed decisions records, as the sequencer reads them from partition 0."""
    return [
        Message(
            topic=settings.topic_decisions, partition=0, offset=i, value=encode(make_decision(i))
        )
        for i in numbers
    ]


def test_a_writer_that_lost_its_chain_is_fenced(
    isolated: Settings, sequencers: list[Sequencer]
) -> None:
    old, new = sequencers
    store = old.store
    assert isinstance(store, AnchoredStore)
    old.resume_chain(0)
    old.log_messages(records(isolated, range(0, 10)))
    # The group moves chain 0 to `new` while `old` is stalled; `new` has not written yet.
    assert new.resume_chain(0) == 10
    outcomes, _ = old.log_messages(records(isolated, range(10, 15)))
    assert [(o.fenced, o.appended) for o in outcomes] == [(True, 0)]
    assert 0 not in old.owned, "a fenced writer is dropped"
    assert old.log_messages(records(isolated, range(15, 20)))[0] == [], "and reads no more"
    outcomes, _ = new.log_messages(records(isolated, range(10, 20)))
    assert [(o.fenced, o.appended, o.size) for o in outcomes] == [(False, 10, 20)]
    assert store.count_entries() == 20
    report = verify_ledger(store, trusted_verifiers(isolated))
    assert report.ok, report.failures


def test_two_entries_with_one_seq_are_reported_as_a_fork(
    isolated: Settings, sequencers: list[Sequencer]
) -> None:
    writer, _ = sequencers
    store = writer.store
    assert isinstance(store, AnchoredStore)
    writer.resume_chain(0)
    writer.log_messages(records(isolated, range(0, 5)))
    # What fencing prevents: a second writer that never saw the chain appends at seq 0.
    stale = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    source = EntrySource(
        cluster="test-cluster", topic=isolated.topic_decisions, partition=0, offset=99
    )
    store.insert_entries(stale.append([Incoming(make_decision(99), source)]).entries)
    report = verify_ledger(store, trusted_verifiers(isolated))
    assert ("fork", 0, 0) in {(f.kind, f.chain, f.seq) for f in report.failures}
