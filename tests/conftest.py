"""Shared fixtures.

`stack` starts the real local stack (broker, ClickHouse, anvil) once per session with the same
`StackManager` the `attestream stack` CLI uses, in a temporary home, and only when a test asks
for it: unit tests run with no services. A missing binary fails the test with the message that
names it and `make setup`; nothing is skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from anchor_account import funded_anchor_key
from detect_helpers import train_models

from attestcore.errors import AttestreamError
from attestream.settings import Settings
from attestream.stack import StackManager, StackState
from attestream.wiring import create_ledger_key

# The stack's Prometheus scrapes and evaluates its rules every second, so a test sees a rate or
# an alert within seconds (tests/integration/test_monitoring.py).
PROMETHEUS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class StackEndpoints:
    """Where the session's stack answers (the fields of `stack.json`'s "endpoints")."""

    home: Path
    kafka_bootstrap: str
    clickhouse_url: str
    clickhouse_http_url: str
    rpc_url: str
    chain_id: int
    anchor_key_file: Path
    prometheus_url: str
    broker_cluster_id: str
    manager: StackManager

    @classmethod
    def from_state(cls, state: StackState, manager: StackManager) -> StackEndpoints:
        ep = state.endpoints
        return cls(
            home=state.home,
            kafka_bootstrap=ep.kafka_bootstrap,
            clickhouse_url=ep.clickhouse_url,
            clickhouse_http_url=ep.clickhouse_http_url,
            rpc_url=ep.rpc_url,
            chain_id=ep.chain_id,
            anchor_key_file=Path(ep.anchor_key_file),
            prometheus_url=ep.prometheus_url,
            broker_cluster_id=state.broker_cluster_id,
            manager=manager,
        )


def start_stack(home: Path) -> tuple[StackManager, StackState]:
    """Start a stack in `home`, turning a missing binary or a failed start into a test failure
    with the operator's message (which names the binary and `make setup`)."""
    manager = StackManager(home, prometheus_interval_s=PROMETHEUS_INTERVAL_S)
    try:
        return manager, manager.up()
    except AttestreamError as exc:
        pytest.fail(f"the local stack did not start: {exc.diagnostics()}", pytrace=False)


# The detection engine the session's `attestream detect` runs on (docs/operations.md).
DETECT_ENGINE_ENV = "ATTESTREAM_DETECT_ENGINE"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEndpoints]:
    manager, state = start_stack(tmp_path_factory.mktemp("stack-home"))
    try:
        yield StackEndpoints.from_state(state, manager)
    finally:
        manager.down()


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An active authenticity and fraud model (`detect_helpers.train_models`: a few thousand
    simulated events each, seed 1), trained once per session and shared by every test that
    only scores with them. A test that changes the registry or an artifact works on
    `detect_helpers.copy_models(trained_models, ...)`."""
    models = tmp_path_factory.mktemp("trained-models")
    train_models(models)
    return models


@pytest.fixture
def settings_env(
    stack: StackEndpoints, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """Settings pointed at the session stack, also exported as ATTESTREAM_* variables so that
    CLI subprocesses started by the test see the same endpoints. Each test gets its own
    verifier state file: tests verify many ledgers of one log origin from one home, and a
    verifier that remembered another test's ledger would rightly call this one a fork.
    `ATTESTREAM_DETECT_ENGINE` is kept: `ATTESTREAM_DETECT_ENGINE=kafka pytest ...` runs the
    session's detect workers on that engine."""
    for name in list(os.environ):
        if name.startswith("ATTESTREAM_") and name != DETECT_ENGINE_ENV:
            monkeypatch.delenv(name)
    env = {
        "ATTESTREAM_HOME": str(stack.home),
        "ATTESTREAM_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "ATTESTREAM_CLICKHOUSE_URL": stack.clickhouse_url,
        "ATTESTREAM_RPC_URL": stack.rpc_url,
        "ATTESTREAM_CHAIN_ID": str(stack.chain_id),
        "ATTESTREAM_ANCHOR_KEY_FILE": str(stack.anchor_key_file),
        "ATTESTREAM_VERIFY_STATE": str(tmp_path / "verifier-state.json"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by directory, so `-m "not integration"` runs without services."""
    tests_dir = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if not path.is_relative_to(tests_dir):
            continue
        top = path.relative_to(tests_dir).parts[0]
        if top == "integration":
            item.add_marker(pytest.mark.integration)
        elif top == "e2e":
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def isolated(settings_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on the session stack with this test's own topics, database, group and keys,
    so tests sharing one broker and one ClickHouse never see each other's data. The anchor
    account is this test's own too: `forensic verify` demands a row in this database for
    every anchor transaction of the account."""
    suffix = uuid.uuid4().hex[:10]
    anchor_key = settings_env.home / "keys" / f"anchor-{suffix}.key"
    funded_anchor_key(settings_env.require_rpc()[0], anchor_key)
    database = f"t_{suffix}"
    url = settings_env.require_clickhouse().rsplit("/", 1)[0] + f"/{database}"
    env = {
        "ATTESTREAM_CLICKHOUSE_URL": url,
        "ATTESTREAM_TOPIC_TRANSACTIONS": f"tx-{suffix}",
        "ATTESTREAM_TOPIC_SUPPLY_CHAIN": f"sc-{suffix}",
        "ATTESTREAM_TOPIC_DECISIONS": f"decisions-{suffix}",
        "ATTESTREAM_TOPIC_DEAD_LETTER": f"dead-{suffix}",
        "ATTESTREAM_LEDGER_GROUP": f"ledger-{suffix}",
        "ATTESTREAM_DETECT_APP_ID": f"detect-{suffix}",
        "ATTESTREAM_LEDGER_KEY_FILE": str(settings_env.home / "keys" / f"ledger-{suffix}.key"),
        "ATTESTREAM_DETECT_METRICS_PORT": "0",
        "ATTESTREAM_LEDGER_METRICS_PORT": "0",
        "ATTESTREAM_ANCHOR_METRICS_PORT": "0",
        "ATTESTREAM_SERVE_METRICS_PORT": "0",
        "ATTESTREAM_WATCH_METRICS_PORT": "0",
        "ATTESTREAM_ANCHOR_KEY_FILE": str(anchor_key),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    create_ledger_key(settings)  # explicit, as an operator would: nothing creates it implicitly
    return settings
