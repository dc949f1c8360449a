"""The scrape targets long-running processes publish for the stack's Prometheus
(attestream.workers.registered, attestream.stack_prometheus): a clean stop removes a process's
target, a crash leaves it (so `up` turns 0 and ProcessDown fires), and the next process of the
same kind replaces a crashed one's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from attestream.stack_prometheus import TARGETS_DIR, publish_target, write_config
from attestream.workers import registered


def targets(home: Path) -> dict[str, object]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((home / TARGETS_DIR).glob("*.json"))
    }


def test_a_running_process_is_a_target_with_its_job(tmp_path: Path) -> None:
    with registered(tmp_path, "ledger", "127.0.0.1", 9465):
        assert targets(tmp_path) == {
            f"ledger-{os.getpid()}.json": [
                {"targets": ["127.0.0.1:9465"], "labels": {"job": "ledger"}}
            ]
        }
    assert targets(tmp_path) == {}


def test_a_crash_leaves_the_target_and_a_process_without_metrics_has_none(
    tmp_path: Path,
) -> None:
    with pytest.raises(RuntimeError), registered(tmp_path, "anchor", "127.0.0.1", 9466):
        raise RuntimeError("the chain node is gone")
    assert list(targets(tmp_path)) == [f"anchor-{os.getpid()}.json"]
    with registered(tmp_path, "detect", "127.0.0.1", 0):
        assert list(targets(tmp_path)) == [f"anchor-{os.getpid()}.json"]


def test_a_new_process_replaces_the_target_of_a_crashed_one(tmp_path: Path) -> None:
    gone = 2**22 + 1  # above the kernel's default pid_max: no process has it
    publish_target(tmp_path, "watch", gone, "127.0.0.1", 9470)
    publish_target(tmp_path, "serve", gone, "127.0.0.1", 9471)
    publish_target(tmp_path, "watch", os.getpid(), "127.0.0.1", 9472)
    assert list(targets(tmp_path)) == [f"serve-{gone}.json", f"watch-{os.getpid()}.json"]


def test_the_configuration_loads_the_alert_rules_and_the_targets(tmp_path: Path) -> None:
    config = write_config(tmp_path, 1.0).read_text(encoding="utf-8")
    assert "scrape_interval: 1000ms" in config and "evaluation_interval: 1000ms" in config
    assert "deploy/prometheus/alerts.yml" in config
    assert f"{tmp_path / TARGETS_DIR}/*.json" in config
