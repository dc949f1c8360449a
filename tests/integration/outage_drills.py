"""Helpers of the outage tests: a stack of their own (so stopping a service never disturbs
the session stack), environments pointing at it, and scraping a process's metrics."""

from __future__ import annotations

import os
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from attestcore.ports import unused_port
from attestream.settings import Settings
from attestream.stack import StackManager, StackState
from attestream.wiring import create_ledger_key

# A scrape of a local process answers in milliseconds; 5 s bounds one stuck in a GC pause.
SCRAPE_TIMEOUT_S = 5.0


@dataclass
class DrillStack:
    manager: StackManager
    state: StackState

    def env(self, suffix: str | None = None) -> dict[str, str]:
        """ATTESTREAM_* variables for this stack, with topics, database, group and keys of
        their own; the ledger signing key is created, as an operator would before a first
        `ledger run`."""
        ep = self.state.endpoints
        suffix = suffix or uuid.uuid4().hex[:10]
        home = self.manager.home
        key_file = home / "keys" / f"ledger-{suffix}.key"
        if not key_file.exists():
            create_ledger_key(Settings(home=home, ledger_key_file=key_file))
        return {
            "ATTESTREAM_HOME": str(home),
            "ATTESTREAM_KAFKA_BOOTSTRAP": ep.kafka_bootstrap,
            "ATTESTREAM_CLICKHOUSE_URL": ep.clickhouse_url.rsplit("/", 1)[0] + f"/t_{suffix}",
            "ATTESTREAM_RPC_URL": ep.rpc_url,
            "ATTESTREAM_CHAIN_ID": str(ep.chain_id),
            "ATTESTREAM_ANCHOR_KEY_FILE": ep.anchor_key_file,
            "ATTESTREAM_TOPIC_TRANSACTIONS": f"tx-{suffix}",
            "ATTESTREAM_TOPIC_SUPPLY_CHAIN": f"sc-{suffix}",
            "ATTESTREAM_TOPIC_DECISIONS": f"decisions-{suffix}",
            "ATTESTREAM_TOPIC_DEAD_LETTER": f"dead-{suffix}",
            "ATTESTREAM_TOPIC_LABELS": f"labels-{suffix}",
            "ATTESTREAM_LEDGER_GROUP": f"ledger-{suffix}",
            "ATTESTREAM_DETECT_APP_ID": f"detect-{suffix}",
            "ATTESTREAM_LEDGER_KEY_FILE": str(key_file),
            "ATTESTREAM_DETECT_METRICS_PORT": str(unused_port()),
            "ATTESTREAM_LEDGER_METRICS_PORT": str(unused_port()),
            "ATTESTREAM_ANCHOR_METRICS_PORT": str(unused_port()),
        }

    def settings(self, monkeypatch: pytest.MonkeyPatch, **extra: str) -> Settings:
        """Point this test (and the CLI processes it starts) at this stack alone: every
        ATTESTREAM_* variable of the outer environment removed, `env()` and `extra` set."""
        for name in list(os.environ):
            if name.startswith("ATTESTREAM_"):
                monkeypatch.delenv(name)
        for name, value in {**self.env(), **extra}.items():
            monkeypatch.setenv(name, value)
        return Settings()

    def restart(self) -> None:
        """Start the stopped service again on its recorded port; wait until it answers."""
        before = self.state.ports
        self.state = self.manager.up()
        assert self.state.ports == before, "a restarted service must keep its port"


def drill_stack(home: Path) -> Iterator[DrillStack]:
    manager = StackManager(home)
    try:
        yield DrillStack(manager, manager.up())
    finally:
        manager.down()


def scrape(port: str | int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample a process exports, keyed by (name, sorted labels)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def family_prefixes(port: str | int) -> set[str]:
    """The `attestream_<component>` prefixes of the families a process exports."""
    return {
        "_".join(name.split("_")[:2]) for name, _ in scrape(port) if name.startswith("attestream_")
    }


def try_scrape(port: str | int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        return scrape(port)
    except OSError:
        return {}
