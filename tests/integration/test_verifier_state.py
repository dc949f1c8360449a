"""A verifier that remembers: a ledger rebuilt consistently after it was verified (by the real
sequencer on the real broker and ClickHouse, signed by the same key) fails the next
`forensic verify` with a named fault, while `--no-state` (trusting the database alone)
passes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from factories import make_decision
from ledger_helpers import fresh_database_url, publish_decisions, run_sequencer
from pydantic import SecretStr

from attestcore.errors import UsageError
from attestcore.schemas import Decision
from attestream.settings import Settings
from attestream.wiring import open_store, trusted_verifiers
from forensics.proofs import prove_verified
from ledger.merkle import verify_consistency
from ledger.note import open_checkpoint
from streams.topics import ensure_topics

ENTRIES = 12
BATCH = 5


def build(settings: Settings, decisions: list[Decision], url: str | None = None) -> Settings:
    """A ledger of `decisions` written by the real sequencer from its own topic, in the
    database at `url` (a fresh one by default), signed by the test's key.

    Each ledger gets a signer state file of its own: here one key signs several histories,
    as a stolen key (or a sequencer whose state file was moved aside) could; the sequencer's
    own check before signing would otherwise refuse the second history, and this test is
    about what a verifier remembers."""
    suffix = uuid.uuid4().hex[:8]
    built = settings.model_copy(
        update={
            "clickhouse_url": SecretStr(url or fresh_database_url(settings.require_clickhouse())),
            "topic_decisions": f"decisions-{suffix}",
            "ledger_group": f"ledger-{suffix}",
            "ledger_state_file": settings.home / "signer-states" / f"{suffix}.json",
        }
    )
    ensure_topics(built.require_kafka(), [built.topic_decisions], partitions=1)
    extend(built, decisions)
    return built


def extend(settings: Settings, decisions: list[Decision]) -> None:
    publish_decisions(settings, decisions)
    store = open_store(settings, create=True)
    try:
        published = store.count_entries() + len(decisions)
        run_sequencer(settings, store, batch_max=BATCH, records=published)
    finally:
        store.close()


def verify(settings: Settings, *flags: str) -> tuple[int, dict[str, Any]]:
    env = dict(os.environ, ATTESTREAM_CLICKHOUSE_URL=settings.require_clickhouse())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "attestream.cli",
            "forensic",
            "verify",
            "--offline",
            "--json",
            *flags,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def faults(report: dict[str, Any]) -> set[tuple[str, int, int]]:
    return {(f["kind"], f["chain"], f["seq"]) for f in report["failures"]}


def check_since_size(settings: Settings) -> None:
    """`prove --since-size N` embeds the consistency proof from the signed checkpoint of size N
    to the proof's, read from the stored nodes; a size beyond the proof's is a usage error."""
    store = open_store(settings)
    try:
        verifiers = trusted_verifiers(settings)
        first = min(cp.size for cp in store.checkpoints(0))
        target = make_decision(ENTRIES - 1).decision_id
        bundle = prove_verified(store, target, verifiers, since_size=first)
        assert bundle.since_size == first and bundle.consistency is not None
        old = open_checkpoint(store.checkpoint_at(0, first)[0].note, verifiers)
        new = open_checkpoint(bundle.checkpoint, verifiers)
        verify_consistency(first, new.size, bundle.consistency, old.root, new.root)
        with pytest.raises(UsageError, match="--since-size must be between 1 and"):
            prove_verified(store, target, verifiers, since_size=ENTRIES + 1)
    finally:
        store.close()


def test_a_consistent_rebuild_is_a_named_fault(isolated: Settings) -> None:
    decisions = [make_decision(i) for i in range(ENTRIES)]
    original = build(isolated, decisions)
    code, report = verify(original)
    assert code == 0 and report["trusted_state"]["first_use"] == [0], report
    assert verify(original)[1]["trusted_state"]["checked"] == [0]
    check_since_size(original)

    shorter = build(isolated, decisions[:8])  # every hash recomputed, signed by the same key
    code, report = verify(shorter)
    assert code == 1 and faults(report) == {("tree_shrunk", 0, 8)}, report
    assert verify(shorter, "--no-state")[0] == 0

    changed = [*decisions[:3], make_decision(100), *decisions[4:]]
    forked = build(isolated, changed)
    code, report = verify(forked)  # a state moved by the failed run would say inconsistent
    assert code == 1 and faults(report) == {("fork", 0, ENTRIES)}, report
    assert verify(forked, "--no-state")[0] == 0

    extend(forked, [make_decision(i) for i in range(ENTRIES, ENTRIES + 4)])
    code, report = verify(forked)
    assert code == 1 and faults(report) == {("inconsistent", 0, ENTRIES + 4)}, report
    assert verify(forked, "--no-state")[0] == 0
