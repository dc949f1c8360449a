"""Duplicates mean duplicates, on the real broker and ClickHouse through `attestream ledger
run`: a replayed decision is logged once and that is all; another payment that reused an
event id is not logged and not dropped, but dead-lettered as `conflicting_event_id`, also
when the sequencer restarted between the two."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import msgspec
import pytest
from factories import make_decision
from ledger_helpers import publish_decisions

from anchoring.store import AnchoredStore
from attestcore.schemas import Decision, encode
from attestream.accounting import read_topic, record_headers
from attestream.settings import Settings
from attestream.wiring import open_store, trusted_verifiers
from forensics.verify import verify_ledger
from ledger.sequencer import CRASH_AT_ENV
from streams.intake import HEADER_DETAIL, HEADER_OFFSET, HEADER_PARTITION, HEADER_REASON
from streams.topics import ensure_topics

CLI = [sys.executable, "-m", "attestream.cli"]
# `ledger run` exits once the decisions topic has been quiet this long: enough for its first
# group join on Tansu and the batches (the test's records are all published before it starts).
MAX_IDLE_S = "4"
# Interpreter start, group join and a few batches take seconds; beyond this it hangs.
RUN_TIMEOUT_S = 120

SECOND_PAYMENT_SHA256 = "ef" * 32
"""The digest of another payment's bytes that reused the event id `ev-3` (another amount,
another terminal): the detector's decision has the same decision id as the first's."""


def second_payment(first: Decision) -> Decision:
    return msgspec.structs.replace(
        first, event_sha256=SECOND_PAYMENT_SHA256, score=0.97, outcome="block"
    )


def ledger_run(crash_at: str = "") -> None:
    """One real `attestream ledger run` (a restart each time: it rebuilds from ClickHouse);
    with `crash_at`, killed by its fault injection at that point of its first batch."""
    result = subprocess.run(
        [*CLI, "ledger", "run", "--max-idle", MAX_IDLE_S],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        env={**os.environ, CRASH_AT_ENV: crash_at} if crash_at else None,
    )
    assert result.returncode == (-signal.SIGKILL if crash_at else 0), result.stderr[-3000:]


def dead_letters(settings: Settings) -> list[tuple[bytes, dict[str, bytes]]]:
    return [
        (m.value() or b"", dict(record_headers(m.headers())))
        for m in read_topic(settings.require_kafka(), settings.topic_dead_letter)
    ]


def empty_ledger(settings: Settings) -> AnchoredStore:
    """The decisions and dead-letter topics (one partition) and an empty ledger."""
    topics = [settings.topic_decisions, settings.topic_dead_letter]
    ensure_topics(settings.require_kafka(), topics, partitions=1)
    return open_store(settings, create=True)


@pytest.mark.parametrize("restart_between", [False, True], ids=["one-batch", "restart-between"])
def test_another_event_with_a_logged_event_id_is_dead_lettered_not_dropped(
    isolated: Settings, restart_between: bool
) -> None:
    store = empty_ledger(isolated)
    decisions = [make_decision(i) for i in range(8)]
    conflicting = second_payment(decisions[3])
    assert conflicting.decision_id == decisions[3].decision_id

    publish_decisions(isolated, decisions)
    if restart_between:
        ledger_run()
        assert store.count_entries() == 8 and dead_letters(isolated) == []
    # The second payment, then a detector's replay of the first decisions: offsets 8 to 12.
    publish_decisions(isolated, [conflicting, *decisions[:4]])
    ledger_run()

    assert store.count_entries() == 8, "neither the replay nor the second payment is logged"
    [(value, headers)] = dead_letters(isolated)
    assert value == encode(conflicting)
    assert headers[HEADER_REASON] == b"conflicting_event_id"
    assert (headers[HEADER_PARTITION], headers[HEADER_OFFSET]) == (b"0", b"8")
    assert headers[HEADER_DETAIL].decode() == (
        f"event_id ev-3: event_sha256 {SECOND_PAYMENT_SHA256} differs from {'cd' * 32},"
        " logged in chain 0 seq 3"
    )
    logged = store.execute(
        "SELECT visitParamExtractString(entry, 'event_sha256'), outcome FROM {db}.entries"
        " WHERE decision_id = %(d)s",
        {"d": conflicting.decision_id},
    )
    assert logged == [("cd" * 32, decisions[3].outcome)], "the first payment's decision stays"
    report = verify_ledger(store, trusted_verifiers(isolated))
    assert report.ok, report.failures


def test_dead_letters_are_on_the_broker_before_the_head_moves_past_them(
    isolated: Settings,
) -> None:
    """A sequencer killed right after inserting a batch's entries: a restart reads on from
    the head, never again the rejected records before it, so their dead letters must already
    be on the broker (step 0b), and the restart sends none twice."""
    store = empty_ledger(isolated)
    decisions = [make_decision(i) for i in range(10)]
    publish_decisions(isolated, decisions[:8])
    ledger_run()
    # Offsets 8 (not a decision), 9 (another payment under a logged event id), 10 and 11.
    publish_decisions(isolated, [], garbage=1)
    publish_decisions(isolated, [second_payment(decisions[3]), *decisions[8:]])
    ledger_run(crash_at="entries")
    assert store.count_entries() == 10, "the batch's entries are in, its checkpoint is not"
    rejected = {
        (headers[HEADER_OFFSET], headers[HEADER_REASON]) for _, headers in dead_letters(isolated)
    }
    assert rejected == {(b"8", b"not_a_decision"), (b"9", b"conflicting_event_id")}

    ledger_run()  # resumes after offset 11: the head entry's
    assert sorted(headers[HEADER_OFFSET] for _, headers in dead_letters(isolated)) == [b"8", b"9"]
    assert store.count_entries() == 10
    report = verify_ledger(store, trusted_verifiers(isolated))
    assert report.ok, report.failures
