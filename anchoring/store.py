"""The anchors table's reads and writes, and the anchor lifecycle's view of them.

`AnchoredStore` is the ledger's ClickHouse store with the anchors table the anchoring package
owns (anchoring/schema.py): what the composition root opens for writers, verification and
proofs. `AnchorRecords` is one network's transactions by lifecycle state, over the narrow
`AnchorLedger` it reads and writes. SQL runs on ClickHouse 18.16 and current releases.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from anchoring.lifecycle import CLAIMING, COVERING, WAITING, TxState, max_sizes
from anchoring.rows import anchor_from_row, anchor_row
from anchoring.schema import ANCHOR_COLUMNS, ANCHORS_SCHEMA
from attestcore.records import ChainTail, StoredAnchor, StoredCheckpoint
from ledger.schema import ARCHIVE_SCHEMA, LEDGER_SCHEMA, Schema
from ledger.store import ClickHouseStore

_OTHER_COLUMNS = tuple(c for c in ANCHOR_COLUMNS if c != "tx_hash")
# Each transaction's current row: argMax per column by event_ns, named cur_<column> (it runs
# on ClickHouse 18.16, where tuple IN over a subquery of mixed types does not).
_SELECT_CURRENT = (
    "SELECT tx_hash, "
    + ", ".join(f"argMax({c}, event_ns) AS cur_{c}" for c in _OTHER_COLUMNS)
    + " FROM {db}.anchors GROUP BY tx_hash"
)


def _states(states: Iterable[TxState]) -> str:
    """A SQL list of lifecycle states (enum values: no quote can occur in them)."""
    return ", ".join(f"'{s.value}'" for s in sorted(states, key=lambda s: s.value))


class AnchoredStore(ClickHouseStore):
    """The ledger's tables and its anchors: creates, migrates, reads and writes all four."""

    schemas: ClassVar[tuple[Schema, ...]] = (LEDGER_SCHEMA, ARCHIVE_SCHEMA, ANCHORS_SCHEMA)

    def migrate_anchors(self) -> None:
        """Bring an anchors table from before the anchor lifecycle to this version."""
        ANCHORS_SCHEMA.migrate(self)

    def insert_anchor(self, anchor: StoredAnchor) -> None:
        """Append one row of an anchor transaction's history (a state change)."""
        self.execute(
            f"INSERT INTO {{db}}.anchors ({', '.join(ANCHOR_COLUMNS)}) VALUES", [anchor_row(anchor)]
        )

    def anchors(self) -> list[StoredAnchor]:
        """The anchors that count: transactions whose current state is final."""
        return self._current(f"cur_state = '{TxState.FINAL.value}'", {})

    def current_anchor(self, tx_hash: str) -> StoredAnchor | None:
        """The current row of the transaction `tx_hash` (any letter case), if stored."""
        rows = self._current("lower(tx_hash) = %(h)s", {"h": tx_hash.lower()})
        return rows[-1] if rows else None

    def current_anchors(
        self, network_chain_id: int, states: Iterable[TxState], final_from_block: int | None = None
    ) -> list[StoredAnchor]:
        """The current rows of one network's transactions in one of `states`, and with
        `final_from_block` also those final in that block or a later one; oldest first."""
        condition = f"cur_state IN ({_states(states)})"
        params: dict[str, Any] = {"net": network_chain_id}
        if final_from_block is not None:
            condition += f" OR (cur_state = '{TxState.FINAL.value}' AND cur_block_number >= %(b)s)"
            params["b"] = final_from_block
        return self._current(f"cur_network_chain_id = %(net)s AND ({condition})", params)

    def anchor_history(self, tx_hash: str) -> list[StoredAnchor]:
        """Every row of one transaction, oldest first."""
        rows = self.execute(
            f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM {{db}}.anchors WHERE tx_hash = %(h)s"
            " ORDER BY event_ns",
            {"h": tx_hash},
        )
        return [anchor_from_row(dict(zip(ANCHOR_COLUMNS, row, strict=True))) for row in rows]

    def _current(self, having: str, params: dict[str, Any]) -> list[StoredAnchor]:
        """Each transaction's current row passing `having` (built in this class only),
        oldest first."""
        rows = self.execute(
            f"{_SELECT_CURRENT} HAVING {having} ORDER BY cur_event_ns, tx_hash", params
        )
        names = ("tx_hash", *_OTHER_COLUMNS)
        return [anchor_from_row(dict(zip(names, r, strict=True))) for r in rows]


class AnchorLedger(Protocol):
    """What the anchor lifecycle reads and writes (`AnchoredStore`)."""

    def chains(self) -> list[int]: ...
    def latest_checkpoint(self, chain: int) -> StoredCheckpoint | None: ...
    def checkpoint_created_at(self, chain: int, size: int) -> datetime | None: ...
    def tail_beyond(self, chain: int, size: int) -> ChainTail: ...
    def migrate_anchors(self) -> None: ...
    def insert_anchor(self, anchor: StoredAnchor) -> None: ...
    def anchor_history(self, tx_hash: str) -> list[StoredAnchor]: ...
    def current_anchors(
        self, network_chain_id: int, states: Iterable[TxState], final_from_block: int | None = None
    ) -> list[StoredAnchor]: ...


@dataclass(frozen=True)
class ChainBacklog:
    """What of one chain is not covered by a final anchor yet."""

    chain: int
    latest_size: int
    anchored_size: int
    unanchored_checkpoints: int
    oldest_unanchored_logged_at: datetime | None
    """When the first entry past the anchored size was logged (None: nothing unanchored)."""


class AnchorRecords:
    """The lifecycle rows of one EVM network (chain id) in the ledger's store."""

    def __init__(self, store: AnchorLedger, network_chain_id: int) -> None:
        self.store = store
        self.network_chain_id = network_chain_id

    def migrate(self) -> None:
        """Add the lifecycle columns to an anchors table created before them
        (`anchoring.schema.AnchorsSchema.migrate`)."""
        self.store.migrate_anchors()

    def append(self, anchor: StoredAnchor) -> None:
        self.store.insert_anchor(anchor)

    def open_transactions(self, watch_from_block: int) -> list[StoredAnchor]:
        """Transactions the lifecycle still watches: sent, mined, or final in a recent block
        (a reorg can still remove those)."""
        return self.store.current_anchors(
            self.network_chain_id, [*WAITING, TxState.MINED], max(watch_from_block, 0)
        )

    def history(self, tx_hash: str) -> list[StoredAnchor]:
        """Every row of one transaction, oldest first (for tests and operators)."""
        return self.store.anchor_history(tx_hash)

    def final(self) -> list[StoredAnchor]:
        return self.store.current_anchors(self.network_chain_id, COVERING)

    def covered_sizes(self) -> dict[int, int]:
        """Per chain, the largest checkpoint size a final anchor commits to."""
        return max_sizes(self.final())

    def claimed_sizes(self) -> dict[int, int]:
        """Per chain, the largest checkpoint size an anchor on its way (or final) commits to:
        checkpoints up to these need no new transaction."""
        return max_sizes(self.store.current_anchors(self.network_chain_id, CLAIMING))

    def checkpoint_created_at(self, chain: int, size: int) -> datetime | None:
        return self.store.checkpoint_created_at(chain, size)

    def backlog(self, covered: dict[int, int]) -> list[ChainBacklog]:
        """Per chain: checkpoints past the covered size, and the oldest entry past it."""
        result = []
        for chain in self.store.chains():
            anchored = covered.get(chain, 0)
            tail = self.store.tail_beyond(chain, anchored)
            latest_size = max(tail.max_size, anchored) if tail.checkpoints else anchored
            result.append(ChainBacklog(chain, latest_size, anchored, tail.checkpoints,
                                       tail.oldest_logged_at))  # fmt: skip
        return result
