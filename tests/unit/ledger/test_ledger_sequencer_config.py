"""The sequencer's settings and metrics, without services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from attestcore.errors import ConfigError
from attestream import ledger_metrics as command
from attestream.commands.ledger import _sequencer_config
from attestream.ledger_metrics import CheckpointAge
from attestream.settings import Settings
from ledger.events import BatchOutcome, RejectReason
from ledger.sequencer import (
    FETCH_MAX_WAIT_MS,
    MAX_POLL_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    SequencerConfig,
)

METRICS = [
    value for value in vars(command).values() if isinstance(value, Counter | Gauge | Histogram)
]


def config(**overrides: Any) -> SequencerConfig:
    fields: dict[str, Any] = {
        "bootstrap": "b:9092",
        "topic": "t",
        "group": "g",
        "origin_prefix": "o",
        "batch_max": 10,
        **overrides,
    }
    return SequencerConfig(**fields)


def test_the_poll_interval_must_cover_the_session() -> None:
    with pytest.raises(ConfigError, match="at least the session timeout"):
        config(session_timeout_ms=10_000, max_poll_interval_ms=5_000)


def test_settings_default_to_the_sequencer_timeouts() -> None:
    defaults = Settings.model_fields
    assert defaults["ledger_session_timeout_ms"].default == SESSION_TIMEOUT_MS
    assert defaults["ledger_max_poll_interval_ms"].default == MAX_POLL_INTERVAL_MS
    assert defaults["ledger_fetch_max_wait_ms"].default == FETCH_MAX_WAIT_MS


def test_the_fetch_wait_reaches_the_sequencer_from_its_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ATTESTREAM_LEDGER_FETCH_MAX_WAIT_MS", "35")
    settings = Settings(kafka_bootstrap="b:9092")
    assert _sequencer_config(settings).fetch_max_wait_ms == 35


def test_only_known_crash_points_are_accepted() -> None:
    assert config(crash_at="nodes").crash_at == "nodes"
    with pytest.raises(ConfigError, match="ATTESTREAM_LEDGER_CRASH_AT must be one of"):
        config(crash_at="somewhere")


STATE_GAUGES = {"attestream_ledger_signing_refused"}


def test_metric_names_and_labels_follow_the_convention() -> None:
    assert len(METRICS) >= 10
    for metric in METRICS:
        # prometheus_client keeps a counter's name without its `_total` suffix
        name = metric._name + ("_total" if isinstance(metric, Counter) else "")
        assert name.startswith("attestream_ledger_"), name
        # A unit suffix, or a 0/1 state gauge (no unit) whose labels say which state.
        units = ("_total", "_seconds", "_entries", "_messages")
        assert name.endswith(units) or name in STATE_GAUGES, name
        assert set(metric._labelnames) <= {"chain", "kind", "reason", "topic", "partition"}, name


def test_rejected_records_are_counted_by_reason() -> None:
    # The label values are the bounded dead-letter reasons, nothing taken from a record.
    assert command.REJECTED._labelnames == ("reason",)
    assert {reason.value for reason in RejectReason} == {"not_a_decision", "conflicting_event_id"}


def sample(name: str, chain: str | None = "91") -> float:
    labels = {"chain": chain} if chain else {}
    return command.REGISTRY.get_sample_value(f"attestream_ledger_{name}", labels) or 0.0


def test_sequencer_events_become_metrics() -> None:
    counted = ("entries_total", "recovered_entries_total", "fenced_writers_total")
    before = {name: sample(name) for name in counted}
    batches = sample("batch_duration_seconds_count", None)
    events = command.LedgerMetrics()
    events.batch_logged(BatchOutcome(chain=91, appended=5, duplicates=1, size=12))
    events.chain_resumed(91, size=7, unsigned=3)
    events.checkpoint_signed(91, 12)
    events.writer_fenced(91)
    events.batch_done(0.02)
    added = {name: sample(name) - before[name] for name in counted}
    assert added == {"entries_total": 5, "recovered_entries_total": 3, "fenced_writers_total": 1}
    assert sample("tree_size_entries") == 12
    assert sample("batch_duration_seconds_count", None) == batches + 1


def test_decision_to_entry_latency_is_observed_per_entry() -> None:
    name = "decision_to_entry_seconds"
    count, total = sample(f"{name}_count", None), sample(f"{name}_sum", None)
    decided = datetime(2026, 1, 1, tzinfo=UTC)
    events = command.LedgerMetrics(clock=lambda: decided.timestamp() + 1.5)
    events.entries_durable([decided, decided + timedelta(seconds=1)])
    assert sample(f"{name}_count", None) == count + 2
    assert sample(f"{name}_sum", None) == pytest.approx(total + 1.5 + 0.5)


def test_checkpoint_age_grows_between_checkpoints_and_leaves_with_the_chain() -> None:
    now = [1000.0]
    age = CheckpointAge(clock=lambda: now[0])
    registry = CollectorRegistry()
    registry.register(age)
    events = command.LedgerMetrics(checkpoint_age=age)
    name = "attestream_ledger_checkpoint_age_seconds"
    assert registry.get_sample_value(name, {"chain": "3"}) is None  # nothing signed yet
    events.checkpoint_signed(3, 10)
    now[0] += 42
    assert registry.get_sample_value(name, {"chain": "3"}) == 42
    events.checkpoint_signed(3, 11)
    assert registry.get_sample_value(name, {"chain": "3"}) == 0
    events.chain_released(3)
    assert registry.get_sample_value(name, {"chain": "3"}) is None
