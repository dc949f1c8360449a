"""The anchors table as the anchor lifecycle sees it: one network's transactions, by state.

The table and its row type live in ledger/store.py (forensic verification reads them too);
this module adds the lifecycle's queries and the one-time migration of a table created before
the lifecycle columns existed. SQL runs on ClickHouse 18.16 and current releases.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from anchoring.lifecycle import CLAIMING, COVERING, WAITING, TxState, max_sizes
from attestcore.records import StoredAnchor
from ledger.store import ANCHOR_COLUMNS, ANCHOR_LIFECYCLE_COLUMNS, ClickHouseStore, anchor_from_row


def _states(states: Iterable[TxState]) -> str:
    return ", ".join(f"'{s.value}'" for s in sorted(states, key=lambda s: s.value))


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

    def __init__(self, store: ClickHouseStore, network_chain_id: int) -> None:
        self.store = store
        self.network_chain_id = network_chain_id

    def migrate(self) -> None:
        """Add the lifecycle columns to an anchors table created before them. Their DEFAULT
        expressions give the old rows their meaning (a successful anchor was final)."""
        present = {
            name
            for (name,) in self.store.execute(
                "SELECT name FROM system.columns WHERE database = %(d)s AND table = 'anchors'",
                {"d": self.store.database},
            )
        }
        for name, ddl in ANCHOR_LIFECYCLE_COLUMNS.items():
            if present and name not in present:
                self.store.execute(f"ALTER TABLE {{db}}.anchors ADD COLUMN {name} {ddl}")

    def append(self, anchor: StoredAnchor) -> None:
        self.store.insert_anchor(anchor)

    def _current(self, condition: str, **params: int) -> list[StoredAnchor]:
        return self.store.anchor_states(
            f"cur_network_chain_id = %(net)s AND ({condition})",
            {"net": self.network_chain_id, **params},
        )

    def open_transactions(self, watch_from_block: int) -> list[StoredAnchor]:
        """Transactions the lifecycle still watches: sent, mined, or final in a recent block
        (a reorg can still remove those)."""
        return self._current(
            f"cur_state IN ({_states([*WAITING, TxState.MINED])})"
            f" OR (cur_state = '{TxState.FINAL.value}' AND cur_block_number >= %(b)s)",
            b=max(watch_from_block, 0),
        )

    def history(self, tx_hash: str) -> list[StoredAnchor]:
        """Every row of one transaction, oldest first (for tests and operators)."""
        rows = self.store.execute(
            f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM {{db}}.anchors WHERE tx_hash = %(h)s"
            " ORDER BY event_ns",
            {"h": tx_hash},
        )
        return [anchor_from_row(dict(zip(ANCHOR_COLUMNS, row, strict=True))) for row in rows]

    def final(self) -> list[StoredAnchor]:
        return self._current(f"cur_state IN ({_states(COVERING)})")

    def covered_sizes(self) -> dict[int, int]:
        """Per chain, the largest checkpoint size a final anchor commits to."""
        return max_sizes(self.final())

    def claimed_sizes(self) -> dict[int, int]:
        """Per chain, the largest checkpoint size an anchor on its way (or final) commits to:
        checkpoints up to these need no new transaction."""
        return max_sizes(self._current(f"cur_state IN ({_states(CLAIMING)})"))

    def checkpoint_created_at(self, chain: int, size: int) -> datetime | None:
        rows = self.store.execute(
            "SELECT min(created_at), count() FROM {db}.checkpoints"
            " WHERE chain = %(c)s AND size = %(s)s",
            {"c": chain, "s": size},
        )
        return rows[0][0] if rows and rows[0][1] else None

    def backlog(self, covered: dict[int, int]) -> list[ChainBacklog]:
        """Per chain: checkpoints past the covered size, and the oldest entry past it.
        Both tables are sorted by (chain, size/seq), so each query reads only a tail."""
        result = []
        for chain in self.store.chains():
            anchored = covered.get(chain, 0)
            (count, latest), = self.store.execute(
                "SELECT count(), max(size) FROM {db}.checkpoints"
                " WHERE chain = %(c)s AND size > %(s)s",
                {"c": chain, "s": anchored},
            )  # fmt: skip
            (entries, oldest), = self.store.execute(
                "SELECT count(), min(logged_at) FROM {db}.entries"
                " WHERE chain = %(c)s AND seq >= %(s)s",
                {"c": chain, "s": anchored},
            )  # fmt: skip
            latest_size = max(int(latest), anchored) if count else anchored
            result.append(ChainBacklog(chain, latest_size, anchored, int(count),
                                       oldest if entries else None))  # fmt: skip
        return result
