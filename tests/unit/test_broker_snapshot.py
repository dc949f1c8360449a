"""What `stack up` says after a broker reset, from the offsets `stack down` recorded."""

from __future__ import annotations

from pathlib import Path

from attestream.broker_snapshot import BrokerSnapshot, reset_between, save


def snapshot(cluster_id: str = "old") -> BrokerSnapshot:
    return BrokerSnapshot(
        cluster_id=cluster_id,
        taken_at="2026-12-04T21:00:00Z",
        ends={"payments": {"0": 10, "1": 7}, "decisions": {"0": 5}, "unread": {"0": 3}},
        committed={"detect": {"payments": {"0": 4}}, "ledger": {"decisions": {"0": 5}}},
    )


def test_unconsumed_counts_records_after_each_groups_committed_offsets() -> None:
    # payments: 10 - 4 on partition 0, nothing committed on partition 1 (7 records).
    assert snapshot().unconsumed() == {"detect/payments": 13, "ledger/decisions": 0}


def test_a_new_cluster_id_is_reported_with_the_recorded_cost(tmp_path: Path) -> None:
    save(tmp_path, snapshot())
    reset = reset_between(tmp_path, "old", "new")
    assert reset is not None
    assert reset.describe().endswith("Events lost unconsumed: 13 (detect/payments: 13)")
    assert reset_between(tmp_path, "old", "old") is None
    assert reset_between(tmp_path, "", "new") is None


def test_a_broker_that_died_without_down_has_an_unknown_cost(tmp_path: Path) -> None:
    save(tmp_path, snapshot("an-older-broker"))
    reset = reset_between(tmp_path, "old", "new")
    assert reset is not None and reset.unconsumed is None
    assert "unknown" in reset.describe()
