"""`attestream detect --batch-max/--batch-within-s/--fetch-max-wait-ms` reach the worker
process, which reads its settings from the environment it inherits."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from attestream.cli import app
from attestream.commands.detect import export_worker_settings
from attestream.detection import stream_config
from attestream.settings import Settings

NAMES = (
    "ATTESTREAM_DETECT_BATCH_MAX",
    "ATTESTREAM_DETECT_BATCH_WITHIN_S",
    "ATTESTREAM_DETECT_FETCH_MAX_WAIT_MS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)  # restored after the test, whoever set it


def test_options_given_become_the_workers_settings() -> None:
    export_worker_settings(batch_max=64, batch_within_s=None, fetch_max_wait_ms=7)
    settings = Settings(kafka_bootstrap="localhost:9092")
    config = stream_config(settings)
    assert (config.batch_max, config.fetch_max_wait_ms) == (64, 7)
    assert config.batch_within_s == Settings.model_fields["detect_batch_within_s"].default


def test_the_defaults_hold_without_options() -> None:
    export_worker_settings(None, None, None)
    config = stream_config(Settings(kafka_bootstrap="localhost:9092"))
    assert (config.batch_max, config.batch_within_s, config.fetch_max_wait_ms) == (512, 0.05, 20)


def test_the_command_offers_the_options() -> None:
    result = CliRunner().invoke(app, ["detect", "--help"])
    assert result.exit_code == 0
    for option in ("--batch-max", "--batch-within-s", "--fetch-max-wait-ms"):
        assert option in result.output
