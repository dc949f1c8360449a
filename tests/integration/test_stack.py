"""The local stack against the real services (README, "How it fits together").

Each test starts its own stack in its own temporary home (a start takes well under a second
here), so stopping and restarting never disturbs the session `stack` fixture.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # the class confluent_kafka.admin re-exports
from typer.testing import CliRunner

from attestcore import processes
from attestcore.errors import ConfigError, ServiceUnavailableError
from attestcore.waiting import poll_until, wait_until
from attestream import stack_services
from attestream.commands.stack import app as stack_cli
from attestream.settings import Settings, load_settings
from attestream.stack import ANVIL_DEV_KEY, ServiceStatus, StackManager, StackState, StackStatus
from attestream.stack_services import CLICKHOUSE_READER, reader_password

pytestmark = pytest.mark.integration

# Loopback round trips take milliseconds; 15 s only bounds a hung broker or chain.
KAFKA_TIMEOUT_S = 15.0
RPC_TIMEOUT_S = 10.0
DEV_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_ACCOUNT_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[StackManager]:
    """A stack manager on a fresh home; whatever it started is stopped after the test."""
    mgr = StackManager(tmp_path / "home")
    try:
        yield mgr
    finally:
        mgr.down()


# --- clients, written against the services directly (not through attestream) ---------------
def rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as resp:
        answer = json.loads(resp.read())
    assert "error" not in answer, answer
    return answer["result"]


def clickhouse(state: StackState) -> Client:
    # The `attestream` database in the URL is the ledger's to create, so connect to `default`.
    url = urlparse(state.endpoints.clickhouse_url)
    return Client(host=url.hostname, port=url.port, user="default", password="")


def kafka_cluster_id(bootstrap: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return str(admin.list_topics(timeout=KAFKA_TIMEOUT_S).cluster_id)


def kafka_topics(bootstrap: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return set(admin.list_topics(timeout=KAFKA_TIMEOUT_S).topics)


def produce_one(bootstrap: str, topic: str, value: bytes) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(timeout=KAFKA_TIMEOUT_S)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value=value, key=b"k")
    assert producer.flush(KAFKA_TIMEOUT_S) == 0


def consume_one(bootstrap: str, topic: str) -> bytes:
    # assign() rather than subscribe(): no consumer-group join, so no rebalance wait.
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "stack-test", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

        def value() -> tuple[bytes] | None:  # in a tuple: an empty value is a message too
            msg = consumer.poll(0.5)
            return (msg.value() or b"",) if msg is not None and msg.error() is None else None

        # poll() waits itself: no pause between polls.
        (found,) = wait_until(value, KAFKA_TIMEOUT_S, interval_s=0.0, what=f"a message on {topic}")
        return found
    finally:
        consumer.close()


def send_dev_tx(rpc_url: str) -> str:
    """A value transfer from anvil's unlocked dev account 0; anvil mines it at once."""
    tx = {"from": DEV_ACCOUNT_0, "to": DEV_ACCOUNT_1, "value": hex(12345)}
    tx_hash = str(rpc(rpc_url, "eth_sendTransaction", [tx]))
    # Automine answers before the block is sealed: poll for the receipt.
    receipt = wait_until(
        lambda: rpc(rpc_url, "eth_getTransactionReceipt", [tx_hash]),
        RPC_TIMEOUT_S,
        interval_s=0.05,
        what=f"the receipt of {tx_hash}",
    )
    assert receipt["status"] == "0x1"
    return tx_hash


# --- tests ----------------------------------------------------------------------------------
def test_session_fixture_serves_settings(
    stack: Any, settings_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings_env.require_kafka() == stack.kafka_bootstrap
    assert settings_env.require_rpc() == (stack.rpc_url, 31337)
    assert settings_env.anchor_private_key() == ANVIL_DEV_KEY
    # Commands with no endpoints configured find them in <home>/stack.json.
    for name in ("KAFKA_BOOTSTRAP", "CLICKHOUSE_URL", "RPC_URL", "CHAIN_ID", "ANCHOR_KEY_FILE"):
        monkeypatch.delenv(f"ATTESTREAM_{name}")
    loaded = load_settings()
    assert loaded.kafka_bootstrap == stack.kafka_bootstrap
    assert loaded.require_clickhouse() == stack.clickhouse_url
    assert loaded.require_rpc() == (stack.rpc_url, 31337)
    assert Path(loaded.anchor_key_file or "") == stack.anchor_key_file
    assert kafka_cluster_id(stack.kafka_bootstrap) == stack.broker_cluster_id


def test_anchor_key_from_stack_json(
    stack: Any, settings_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATTESTREAM_ANCHOR_KEY_FILE")
    assert load_settings().anchor_private_key() == ANVIL_DEV_KEY


def test_every_service_answers_after_up(manager: StackManager) -> None:
    state = manager.up()
    bootstrap = state.endpoints.kafka_bootstrap

    produce_one(bootstrap, "stack-test", b"hello")
    assert consume_one(bootstrap, "stack-test") == b"hello"
    assert kafka_cluster_id(bootstrap) == state.broker_cluster_id
    assert state.broker_cluster_id.startswith("attestream-")
    assert clickhouse(state).execute("SELECT 1") == [(1,)]
    assert int(rpc(state.endpoints.rpc_url, "eth_chainId", []), 16) == 31337

    report = manager.status()
    assert report.expected_up and report.healthy
    assert {s.name: s.pid for s in report.services} == {n: p.pid for n, p in state.services.items()}

    recorded = json.loads((manager.home / "stack.json").read_text())
    assert recorded["endpoints"]["chain_id"] == 31337
    assert recorded["broker_cluster_id"] == state.broker_cluster_id
    assert recorded["broker_started_at"]
    key_file = Path(recorded["endpoints"]["anchor_key_file"])
    assert key_file == manager.home / "keys" / "anchor-dev.key"
    assert key_file.read_text().strip() == ANVIL_DEV_KEY
    assert key_file.stat().st_mode & 0o777 == 0o600

    # `up` on a running stack reports it and starts nothing.
    again = manager.up()
    assert {n: p.pid for n, p in again.services.items()} == {
        n: p.pid for n, p in state.services.items()
    }
    assert again.broker_cluster_id == state.broker_cluster_id


def test_down_stops_exactly_the_recorded_pids(manager: StackManager, tmp_path: Path) -> None:
    # A decoy anvil that the stack did not start must survive `down` (no killing by name).
    anvil = stack_services.resolve_binaries(manager.home)["anvil"]
    port = stack_services.choose_ports({}, set())["anvil"]
    decoy = processes.start(
        [str(anvil), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
    )
    try:
        state = manager.up()
        pids = {n: p.pid for n, p in state.services.items()}
        assert all(pids.values())
        manager.down()
        for name, proc in state.services.items():
            assert not processes.is_running(proc.pid or 0, proc.start_ticks), name
        assert decoy.poll() is None, "down killed a process it did not start"
        report = manager.status()
        assert not report.expected_up
        assert all(not s.alive and s.pid is None for s in report.services)
        manager.down()  # down when down is fine
    finally:
        processes.stop(decoy, 30.0)


def test_restart_keeps_clickhouse_and_chain_but_resets_broker(manager: StackManager) -> None:
    first = manager.up()
    db = clickhouse(first)
    db.execute("CREATE DATABASE IF NOT EXISTS stack_test")
    db.execute("CREATE TABLE stack_test.kept (n UInt32) ENGINE = MergeTree ORDER BY n")
    db.execute("INSERT INTO stack_test.kept (n) VALUES", [(42,)])
    db.disconnect()
    tx_hash = send_dev_tx(first.endpoints.rpc_url)
    produce_one(first.endpoints.kafka_bootstrap, "before-restart", b"gone after restart")

    manager.down()
    second = manager.up()

    assert second.ports == first.ports, "free ports are reused so endpoints stay stable"
    assert second.endpoints == first.endpoints
    assert clickhouse(second).execute("SELECT n FROM stack_test.kept") == [(42,)]
    found = rpc(second.endpoints.rpc_url, "eth_getTransactionByHash", [tx_hash])
    assert found is not None and found["hash"] == tx_hash
    assert second.broker_cluster_id != first.broker_cluster_id
    assert kafka_cluster_id(second.endpoints.kafka_bootstrap) == second.broker_cluster_id
    assert "before-restart" not in kafka_topics(second.endpoints.kafka_bootstrap)


def test_stale_state_is_detected_and_up_restarts_only_the_dead(manager: StackManager) -> None:
    first = manager.up()
    broker_pid = first.services["broker"].pid
    assert broker_pid is not None
    os.kill(broker_pid, signal.SIGKILL)

    def broker_of(status: StackStatus) -> ServiceStatus:
        return next(s for s in status.services if s.name == "broker")

    report, _ = poll_until(manager.status, lambda r: not broker_of(r).alive, 10, interval_s=0.1)
    broker = broker_of(report)
    assert report.expected_up and not report.healthy
    assert not broker.alive and broker.detail == "not running"

    second = manager.up()
    assert second.services["broker"].pid != broker_pid
    assert second.services["clickhouse"].pid == first.services["clickhouse"].pid
    assert second.services["anvil"].pid == first.services["anvil"].pid
    assert second.broker_cluster_id != first.broker_cluster_id
    assert manager.status().healthy


def test_missing_binary_is_named_with_the_install_command(
    manager: StackManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTESTREAM_ANVIL_BIN", "/nonexistent/anvil")
    with pytest.raises(ConfigError, match=r"anvil.*/nonexistent/anvil.*make setup"):
        manager.up()
    assert manager.load_state() is None, "nothing may start when a binary is missing"


def test_unhealthy_service_reports_its_log_and_stops_the_rest(
    manager: StackManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "fake-anvil"
    fake.write_text("#!/bin/sh\necho 'fake anvil: cannot open state file' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ATTESTREAM_ANVIL_BIN", str(fake))
    with pytest.raises(ServiceUnavailableError, match="fake anvil: cannot open state file"):
        manager.up()
    state = manager.load_state()
    assert state is not None and not state.expected_up
    assert all(not s.alive for s in manager.status().services)


def test_cli_up_status_down(tmp_path: Path) -> None:
    home = tmp_path / "cli-home"
    runner = CliRunner()
    try:
        result = runner.invoke(stack_cli, ["up", "--json", "--home", str(home)])
        assert result.exit_code == 0, result.output
        state = json.loads(result.stdout)
        assert state["endpoints"]["chain_id"] == 31337
        # The local ledger key: created explicitly, once, and said so; never overwritten.
        key = home / "keys" / "ledger.key"
        assert f"created the local ledger signing key {key}" in result.stderr
        key_bytes = key.read_bytes()
        result = runner.invoke(stack_cli, ["up", "--json", "--home", str(home)])
        assert result.exit_code == 0 and "created" not in result.stderr, result.output
        assert key.read_bytes() == key_bytes
        # The read-only user reads, and may not write.
        reader = Client(
            host="127.0.0.1",
            port=state["ports"]["clickhouse_tcp"],
            user=CLICKHOUSE_READER,
            password=reader_password(home),
        )
        assert reader.execute("SELECT 1") == [(1,)]
        with pytest.raises(ServerException, match="readonly"):
            reader.execute("CREATE DATABASE reader_may_not")
        reader.disconnect()

        result = runner.invoke(stack_cli, ["status", "--json", "--home", str(home)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["healthy"] is True

        os.kill(state["services"]["anvil"]["pid"], signal.SIGKILL)
        time.sleep(0.2)
        result = runner.invoke(stack_cli, ["status", "--home", str(home)])
        assert result.exit_code == 3, result.output

        result = runner.invoke(stack_cli, ["down", "--json", "--home", str(home)])
        assert result.exit_code == 0, result.output
        result = runner.invoke(stack_cli, ["status", "--home", str(home)])
        assert result.exit_code == 0, result.output
        assert "down" in result.stdout
    finally:
        StackManager(home).down()


def test_prometheus_runs_with_the_stack_on_its_configured_port(tmp_path: Path) -> None:
    """`stack up` starts Prometheus with the alert rules on the configured port and interval,
    `status` prints its URL, `down` stops it; its data stays in the home."""
    home = tmp_path / "prometheus-home"
    runner = CliRunner()
    port = stack_services.choose_ports({}, set())["prometheus"]
    args = ["--home", str(home), "--prometheus-port", str(port), "--prometheus-interval", "2"]
    try:
        result = runner.invoke(stack_cli, ["up", "--json", *args])
        assert result.exit_code == 0, result.output
        state = json.loads(result.stdout)
        url = f"http://127.0.0.1:{port}"
        assert state["endpoints"]["prometheus_url"] == url
        with urllib.request.urlopen(f"{url}/api/v1/status/config", timeout=10) as resp:
            config = json.loads(resp.read())["data"]["yaml"]
        assert "scrape_interval: 2s" in config and "alerts.yml" in config
        with urllib.request.urlopen(f"{url}/api/v1/rules", timeout=10) as resp:
            groups = json.loads(resp.read())["data"]["groups"]
        assert "LedgerRefusedToSign" in {r["name"] for g in groups for r in g["rules"]}

        result = runner.invoke(stack_cli, ["status", "--home", str(home)])
        assert result.exit_code == 0, result.output
        assert f"Prometheus: {url}" in result.stdout

        pid = state["services"]["prometheus"]["pid"]
        result = runner.invoke(stack_cli, ["down", "--json", "--home", str(home)])
        assert json.loads(result.stdout)["stopped"]["prometheus"] == pid
        assert not processes.is_running(pid)
        assert any((home / "prometheus" / "data").iterdir())
    finally:
        StackManager(home).down()
