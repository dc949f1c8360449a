"""The anchor lifecycle's state machine and how transactions group into attempts."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest

from anchoring.lifecycle import (
    TRANSITIONS,
    Attempt,
    LifecycleError,
    TxState,
    check_transition,
    group_attempts,
    max_sizes,
)
from attestcore.records import StoredAnchor

S = TxState


def tx(tx_hash: str, state: S, event_ns: int, attempt: str = "a", **kw: Any) -> StoredAnchor:
    base = StoredAnchor(
        datetime(2025, 3, 4),
        b"\x01" * 32,
        31337,
        tx_hash,
        0,
        "",
        "0xS",
        "",
        0,
        ((0, 5), (1, 3)),
        state=state.value,
        event_ns=event_ns,
        attempt=attempt,
        nonce=7,
    )
    return dataclasses.replace(base, **kw)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (None, S.PENDING),
        (S.PENDING, S.MINED),
        (S.PENDING, S.REPLACED),
        (S.REPLACED, S.MINED),
        (S.PENDING, S.DROPPED),
        (S.MINED, S.FINAL),
        (S.FINAL, S.REORGED),
        (S.MINED, S.REORGED),
        (S.REORGED, S.PENDING),
        (S.REORGED, S.MINED),
        (S.DROPPED, S.PENDING),
        (S.PENDING, S.REVERTED),
    ],
)
def test_allowed_transitions(old: S | None, new: S) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (None, S.MINED),
        (S.PENDING, S.FINAL),
        (S.FINAL, S.PENDING),
        (S.REVERTED, S.PENDING),
        (S.REPLACED, S.PENDING),
        (S.FINAL, S.MINED),
        (S.DROPPED, S.MINED),
    ],
)
def test_forbidden_transitions(old: S | None, new: S) -> None:
    with pytest.raises(LifecycleError, match=f"to {new.value}"):
        check_transition(old, new)


def test_every_state_is_in_the_table() -> None:
    assert set(TRANSITIONS) == {None, *TxState}


def test_attempts_group_by_attempt_in_sending_order() -> None:
    attempts = group_attempts(
        [tx("0x3", S.PENDING, 30, "b"), tx("0x1", S.REPLACED, 10), tx("0x2", S.PENDING, 20)]
    )
    assert [[t.tx_hash for t in a.txs] for a in attempts] == [["0x1", "0x2"], ["0x3"]]
    first = attempts[0]
    assert first.nonce == 7 and first.included is None
    assert first.newest.tx_hash == "0x2", "the latest pending transaction is relied on"
    assert [t.tx_hash for t in first.waiting] == ["0x1", "0x2"]


def test_an_attempt_whose_pending_copy_vanished_relies_on_its_latest_replaced_one() -> None:
    attempt = Attempt((tx("0x1", S.REPLACED, 10), tx("0x2", S.REPLACED, 20)))
    assert attempt.newest.tx_hash == "0x2"


def test_the_included_transaction_is_the_mined_or_final_one() -> None:
    attempt = Attempt((tx("0x1", S.REPLACED, 10), tx("0x2", S.MINED, 20)))
    assert attempt.included is not None and attempt.included.tx_hash == "0x2"


def test_max_sizes_per_chain() -> None:
    later = tx("0x2", S.FINAL, 20, checkpoints=((0, 9),))
    assert max_sizes([tx("0x1", S.FINAL, 10), later]) == {0: 9, 1: 3}
