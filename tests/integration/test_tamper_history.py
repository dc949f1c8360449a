"""Attacks on a real ledger's history by someone with ClickHouse access only (no signing key,
no anchoring key), and what `forensic verify` names for each: a consistent rebuild with plain
INSERTs, deleted checkpoints, forged tails, cuts at checkpoint boundaries; and a real crash
window, which must stay a benign `unsigned_tail`. (A cut behind an anchor, and deleted anchor
rows, are in test_tamper.py: `test_truncated_tail` and the `anchor_missing` tests.)

Each attack is verified with what a verifier may have: nothing but the database, its trusted
state from an earlier run, the anchors on the EVM chain, the decisions topic on Kafka. Without
the signing key no checkpoint larger than the remembered one can exist, so of the trusted
state's faults a rebuild shows as `tree_shrunk` (`fork` and `inconsistent` need a signature).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from factories import make_decision
from ledger_helpers import (
    delete_nodes_from_leaf,
    entry_row,
    publish_decisions,
    rebuild_chain,
    run_sequencer,
    tamper,
)
from sequencer_procs import START_TIMEOUT_S, SequencerProcess
from tamper_ledger import BATCH, ENTRIES, Found, Ledger, anchor_with_own_account, cli_env, found

from anchoring.rpc import ChainClient
from attestcore.schemas import Decision
from attestream.settings import Settings
from attestream.wiring import open_store, trusted_verifiers
from forensics.trusted_state import TrustedState
from forensics.verify import verify_ledger
from forensics.verify_state import check_ledger_history, latest_checkpoints
from forensics.verify_tail import TailCheck
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource
from ledger.merkle import MerkleTree, compact_range_ids
from ledger.sequencer import CRASH_AT_ENV
from ledger.topic_records import KafkaRederiver
from streams.topics import ensure_topics

FORGED = 8
"""The seq whose decision a rebuild changes to `block`."""


def forging(target: int) -> Callable[[int, Decision], Decision]:
    def forge(seq: int, decision: Decision) -> Decision:
        return msgspec.structs.replace(decision, outcome="block") if seq == target else decision

    return forge


class Verifier:
    """A verifier of one ledger as `forensic verify` runs it, with what it may have: its
    trusted state (steps 1-4 of `forensics.verify_state`), Kafka, the EVM chain."""

    def __init__(self, ledger: Ledger, kafka: bool = False, batch_max: int = BATCH) -> None:
        self.ledger = ledger
        self.state: TrustedState | None = None
        self.chain: tuple[str, ChainClient] | None = None
        rederiver = KafkaRederiver(ledger.settings.require_kafka()) if kafka else None
        self.tail_check = TailCheck(batch_max, rederiver)

    def remembering(self) -> Verifier:
        self.state = TrustedState()
        return self

    def verify(self) -> Found:
        store, verifiers = self.ledger.store, self.ledger.verifiers
        seen = latest_checkpoints(store, verifiers)
        account, reader = self.chain or (None, None)
        report = verify_ledger(store, verifiers, reader, 1, account, self.tail_check)
        if self.state is not None:
            check_ledger_history(
                store, self.state, seen, self.ledger.settings.log_origin, verifiers, report
            )
            if report.ok:
                for s in seen:
                    self.state.remember(s.record("forensic verify"))
        return found(report)


def rebuild_without_checkpoints(ledger: Ledger) -> None:
    rebuild_chain(ledger.store, 0, forging(FORGED))
    ledger.store.execute("TRUNCATE TABLE {db}.checkpoints")


def cut(ledger: Ledger, size: int) -> None:
    """Delete every entry, checkpoint and tree node beyond `size`: a shorter, consistent chain."""
    tamper(ledger.store, "ALTER TABLE {db}.entries DELETE WHERE seq >= %(n)s", {"n": size})
    tamper(ledger.store, "ALTER TABLE {db}.checkpoints DELETE WHERE size > %(n)s", {"n": size})
    delete_nodes_from_leaf(ledger.store, 0, size)


# --- a consistent rebuild with INSERT only ---------------------------------------------------


def test_rebuild_shown_by_the_trusted_state(ledger: Ledger) -> None:
    verifier = Verifier(ledger).remembering()
    assert verifier.verify() == set()  # trust on first use
    rebuild_without_checkpoints(ledger)
    assert verifier.verify() == {("tree_shrunk", 0, 0), ("unexplained_tail", 0, 0)}


def test_rebuild_shown_by_the_anchors(ledger: Ledger, tmp_path: Path) -> None:
    verifier = Verifier(ledger)
    verifier.chain = anchor_with_own_account(ledger, tmp_path)
    rebuild_without_checkpoints(ledger)
    # The anchor row names a checkpoint the store no longer holds ...
    assert verifier.verify() == {("anchor_mismatch", 0, ENTRIES), ("unexplained_tail", 0, 0)}
    # ... and with the anchor rows deleted too, the chain still holds the transaction.
    tamper(ledger.store, "ALTER TABLE {db}.anchors DELETE WHERE 1 = 1")
    assert verifier.verify() == {("anchor_missing", None, None), ("unexplained_tail", 0, 0)}


def test_rebuild_shaped_as_one_batch_shown_by_kafka(ledger: Ledger) -> None:
    """A verifier whose `ledger_batch_max` (10,000 by default) exceeds the chain: the rebuilt
    chain is one INSERT with plausible offsets, a crash window by its shape alone."""
    rebuild_without_checkpoints(ledger)
    assert Verifier(ledger, batch_max=ENTRIES).verify() == {("unsigned_tail", 0, 0)}
    assert Verifier(ledger, kafka=True, batch_max=ENTRIES).verify() == {
        ("unexplained_tail", 0, FORGED)
    }


def test_rebuild_with_nothing_else_is_longer_than_a_batch(ledger: Ledger) -> None:
    rebuild_without_checkpoints(ledger)
    assert Verifier(ledger).verify() == {("unexplained_tail", 0, 0)}
    assert Verifier(ledger, kafka=True).verify() == {("unexplained_tail", 0, 0)}


def test_rebuild_behind_an_unchanged_signed_prefix(ledger: Ledger) -> None:
    """The forged entry in the last batch, the checkpoints before it kept: what is left past
    them has the shape of one batch. Kafka shows the changed decision, the state the cut."""
    last_batch = ledger.sizes()[-2]
    verifier = Verifier(ledger, kafka=True).remembering()
    assert verifier.verify() == set()
    rebuild_chain(ledger.store, 0, forging(ENTRIES - 1))
    tamper(
        ledger.store, "ALTER TABLE {db}.checkpoints DELETE WHERE size > %(n)s", {"n": last_batch}
    )
    assert Verifier(ledger).verify() == {("unsigned_tail", 0, last_batch)}
    assert verifier.verify() == {
        ("tree_shrunk", 0, last_batch),
        ("unexplained_tail", 0, ENTRIES - 1),
    }


# --- deleted checkpoints ---------------------------------------------------------------------


def test_deleting_checkpoints_before_the_last_changes_nothing(ledger: Ledger) -> None:
    first, last = ledger.sizes()[0], ledger.sizes()[-1]
    tamper(
        ledger.store,
        "ALTER TABLE {db}.checkpoints DELETE WHERE size > %(a)s AND size < %(b)s",
        {"a": first, "b": last},
    )
    assert Verifier(ledger).verify() == set(), "the last signed checkpoint still covers all"


def test_deleting_the_last_checkpoints(ledger: Ledger) -> None:
    verifier = Verifier(ledger).remembering()
    assert verifier.verify() == set()
    last_batch = ledger.sizes()[-2]
    # Batches logged within one second share a `logged_at`: cut more than a batch away.
    earlier = max(size for size in ledger.sizes() if ENTRIES - size > BATCH)
    tamper(
        ledger.store, "ALTER TABLE {db}.checkpoints DELETE WHERE size > %(n)s", {"n": last_batch}
    )
    # One batch past the checkpoint: to the store alone (and to Kafka) a crash window.
    assert Verifier(ledger, kafka=True).verify() == {("unsigned_tail", 0, last_batch)}
    tamper(ledger.store, "ALTER TABLE {db}.checkpoints DELETE WHERE size > %(n)s", {"n": earlier})
    assert Verifier(ledger).verify() == {("unexplained_tail", 0, earlier)}
    assert verifier.verify() == {("tree_shrunk", 0, earlier), ("unexplained_tail", 0, earlier)}


def test_deleting_every_checkpoint(ledger: Ledger) -> None:
    verifier = Verifier(ledger).remembering()
    assert verifier.verify() == set()
    ledger.store.execute("TRUNCATE TABLE {db}.checkpoints")
    assert Verifier(ledger).verify() == {("unexplained_tail", 0, 0)}
    assert verifier.verify() == {("tree_shrunk", 0, 0), ("unexplained_tail", 0, 0)}


# --- forged appends --------------------------------------------------------------------------


def append_forged(ledger: Ledger, counts: list[int], offsets_from: int = ENTRIES) -> None:
    """Forged entries past the head, correctly linked and hashed, read (they claim) from the
    ledger's own topic and cluster at the next offsets: one INSERT per count, each with its
    own `logged_at`."""
    ids = compact_range_ids(ENTRIES)
    nodes = ledger.store.read_nodes(0, ids)
    tree = MerkleTree.from_compact_range(ENTRIES, [nodes[i] for i in ids])
    last = entry_row(ledger.store, 0, ENTRIES - 1)
    writer = ChainWriter(chain=0, tree=tree, prev=bytes.fromhex(last["leaf_hash"]))
    offset, at = offsets_from, datetime.now(UTC).replace(microsecond=0)
    for count in counts:
        items = []
        for i in range(offset, offset + count):
            source = EntrySource(
                cluster=last["source_cluster"], topic=last["source_topic"], partition=0, offset=i
            )
            items.append(Incoming(make_decision(1000 + i), source))
        columns = writer.append(items).entries
        columns["logged_at"] = [at] * count
        ledger.store.insert_entries(columns)
        offset, at = offset + count, at + timedelta(seconds=7)


def test_a_forged_batch_is_shown_by_kafka(ledger: Ledger) -> None:
    append_forged(ledger, [BATCH])
    assert Verifier(ledger).verify() == {("unsigned_tail", 0, ENTRIES)}
    assert Verifier(ledger, kafka=True).verify() == {
        ("unexplained_tail", 0, seq) for seq in range(ENTRIES, ENTRIES + BATCH)
    }
    # The command: --kafka re-derives even --offline (which skips the EVM chain, and the
    # Kafka of the settings).
    command = [
        sys.executable,
        "-m",
        "attestream.cli",
        "forensic",
        "verify",
        "--json",
        "--no-state",
        "--offline",
    ]
    env = {**cli_env(ledger), "ATTESTREAM_KAFKA_BOOTSTRAP": ledger.settings.require_kafka()}
    for flags, kinds, rederived in (
        (["--kafka", ledger.settings.require_kafka()], ["unexplained_tail"] * BATCH, True),
        ([], ["unsigned_tail"], False),
    ):
        done = subprocess.run(
            [*command, *flags], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert [f["kind"] for f in report["failures"]] == kinds
        assert report["tails_rederived"] is rederived


def test_a_forged_tail_longer_than_a_batch(ledger: Ledger) -> None:
    append_forged(ledger, [BATCH + 1])
    assert Verifier(ledger).verify() == {("unexplained_tail", 0, ENTRIES)}


def test_a_forged_tail_of_two_inserts(ledger: Ledger) -> None:
    append_forged(ledger, [2, 2])
    assert Verifier(ledger).verify() == {("unexplained_tail", 0, ENTRIES)}


def test_a_forged_tail_at_offsets_already_logged(ledger: Ledger) -> None:
    append_forged(ledger, [2], offsets_from=ENTRIES - 2)
    assert Verifier(ledger).verify() == {("unexplained_tail", 0, ENTRIES)}


# --- cuts at checkpoint boundaries -----------------------------------------------------------


def test_a_cut_beyond_the_last_anchor_is_shown_by_the_trusted_state(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The anchor covers the second checkpoint only (it was sent before the later ones were
    signed); the cut removes entries no anchor covers."""
    anchored, last_batch = ledger.sizes()[1], ledger.sizes()[-2]
    later = [cp for cp in ledger.store.checkpoints(0) if cp.size > anchored]
    tamper(ledger.store, "ALTER TABLE {db}.checkpoints DELETE WHERE size > %(n)s", {"n": anchored})
    chain = anchor_with_own_account(ledger, tmp_path)
    for checkpoint in later:
        ledger.store.insert_checkpoint(checkpoint)
    verifier = Verifier(ledger).remembering()
    verifier.chain = chain
    assert verifier.verify() == set()
    cut(ledger, last_batch)
    stateless = Verifier(ledger)
    stateless.chain = chain
    assert stateless.verify() == set(), "consistent in every way, and the anchor is behind it"
    assert verifier.verify() == {("tree_shrunk", 0, last_batch)}


# --- a real crash window ---------------------------------------------------------------------


def crashed_ledger(settings: Settings, point: str, tmp_path: Path) -> Ledger:
    """Ten decisions logged by the real sequencer (batches of at most five, all signed), then
    five more by a sequencer process killed at `point` of its first batch."""
    ensure_topics(settings.require_kafka(), [settings.topic_decisions], partitions=1)
    store = open_store(settings, create=True)
    publish_decisions(settings, [make_decision(i) for i in range(10)])
    run_sequencer(settings, store, batch_max=BATCH, records=10)
    publish_decisions(settings, [make_decision(i) for i in range(10, 15)])
    run = SequencerProcess(
        f"crash-{point}",
        tmp_path / "crash.log",
        {CRASH_AT_ENV: point, "ATTESTREAM_LEDGER_BATCH_MAX": str(BATCH)},
    )
    try:
        run.start()
        assert run.wait(START_TIMEOUT_S) == -signal.SIGKILL, run.output()
    finally:
        run.close()
    return Ledger(settings, store, trusted_verifiers(settings))


def test_a_crash_before_signing_is_only_an_unsigned_tail(
    isolated: Settings, tmp_path: Path
) -> None:
    ledger = crashed_ledger(isolated, "nodes", tmp_path)
    try:
        assert Verifier(ledger).verify() == {("unsigned_tail", 0, 10)}
        assert Verifier(ledger, kafka=True).verify() == {("unsigned_tail", 0, 10)}
    finally:
        ledger.store.close()


def test_a_crash_after_signing_leaves_no_tail(isolated: Settings, tmp_path: Path) -> None:
    ledger = crashed_ledger(isolated, "checkpoint", tmp_path)
    try:
        assert ledger.store.count_entries() > 10
        assert Verifier(ledger, kafka=True).verify() == set()
    finally:
        ledger.store.close()


def test_an_unreachable_broker_stops_verification(ledger: Ledger) -> None:
    append_forged(ledger, [1])
    command = [
        sys.executable,
        "-m",
        "attestream.cli",
        "forensic",
        "verify",
        "--json",
        "--no-state",
        "--offline",
        "--kafka",
        "127.0.0.1:1",
    ]
    done = subprocess.run(command, env=cli_env(ledger), capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert json.loads(done.stdout)["error"]["kind"] == "service_unavailable"
