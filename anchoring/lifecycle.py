"""The anchor transaction lifecycle: a small explicit state machine, persisted as table rows.

Each state change of a transaction is a new row of the `anchors` table (anchoring/schema.py); a
transaction's current state is its newest row, so a restarted service resumes where it was.

    (new)            --signed, recorded, broadcast-->          pending
    pending          --not mined in time, or gone from the
                       node's pool: a fee-bumped copy sent-->  replaced
    pending/replaced --receipt, status 1-->                    mined
    pending/replaced --receipt, status 0-->                    reverted
    pending/replaced --its nonce used by another transaction,
                       or refused by the node-->               dropped
    mined            --N confirmations-->                      final
    mined/final      --block hash changed, or tx gone-->       reorged
    reorged          --back in the pool-->                     pending
    reorged          --included in another block-->            mined
    dropped/reorged  --the same signed bytes sent again-->     pending

An *attempt* is one nonce: a transaction and its replacements. At most one of them is mined;
when it is, the others are dropped. A reorged transaction that is gone, a dropped or a
reverted attempt leaves its checkpoints unanchored, and the next round anchors the latest
checkpoints again. Only `final` counts as covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from attestcore.records import StoredAnchor


class TxState(str, Enum):
    PENDING = "pending"
    REPLACED = "replaced"
    MINED = "mined"
    FINAL = "final"
    REORGED = "reorged"
    DROPPED = "dropped"
    REVERTED = "reverted"


S = TxState
TRANSITIONS: dict[TxState | None, frozenset[TxState]] = {
    None: frozenset({S.PENDING}),
    S.PENDING: frozenset({S.REPLACED, S.MINED, S.REVERTED, S.DROPPED}),
    S.REPLACED: frozenset({S.MINED, S.REVERTED, S.DROPPED}),
    S.MINED: frozenset({S.FINAL, S.REORGED}),
    S.FINAL: frozenset({S.REORGED}),
    S.REORGED: frozenset({S.PENDING, S.MINED}),
    S.DROPPED: frozenset({S.PENDING}),
    S.REVERTED: frozenset(),
}
WAITING = frozenset({S.PENDING, S.REPLACED})
"""Sent, not mined: one of them may still be mined."""
CLAIMING = frozenset({S.PENDING, S.REPLACED, S.MINED, S.FINAL})
"""Their checkpoints need no new anchor (one is on its way, or there)."""
COVERING = frozenset({S.FINAL})
"""Only these count as anchored (status, proofs, forensic verification)."""


class LifecycleError(RuntimeError):
    """A transition the state machine does not allow: a bug, never an operator's problem."""


def check_transition(old: TxState | None, new: TxState) -> None:
    if new not in TRANSITIONS[old]:
        raise LifecycleError(f"an anchor transaction cannot go from {old} to {new.value}")


@dataclass(frozen=True)
class Attempt:
    """One nonce's transactions, by their current rows."""

    txs: tuple[StoredAnchor, ...]

    @property
    def nonce(self) -> int:
        return self.txs[0].nonce

    @property
    def included(self) -> StoredAnchor | None:
        """The mined (or final) transaction, if one is."""
        return next((t for t in self.txs if t.state in (S.MINED, S.FINAL)), None)

    @property
    def waiting(self) -> list[StoredAnchor]:
        return [t for t in self.txs if t.state in WAITING]

    @property
    def newest(self) -> StoredAnchor:
        """The transaction the attempt currently relies on: the latest one sent."""
        pending = [t for t in self.txs if t.state == S.PENDING] or self.waiting
        return max(pending, key=lambda t: t.event_ns)


def group_attempts(txs: Iterable[StoredAnchor]) -> list[Attempt]:
    """Transactions grouped by attempt, oldest attempt first."""
    groups: dict[str, list[StoredAnchor]] = {}
    for tx in sorted(txs, key=lambda t: t.event_ns):
        groups.setdefault(tx.attempt, []).append(tx)
    return [Attempt(tuple(group)) for group in groups.values()]


def max_sizes(anchors: Sequence[StoredAnchor]) -> dict[int, int]:
    """Per chain, the largest checkpoint size these anchors commit to."""
    sizes: dict[int, int] = {}
    for anchor in anchors:
        for chain, size in anchor.checkpoints:
            sizes[chain] = max(size, sizes.get(chain, 0))
    return sizes
