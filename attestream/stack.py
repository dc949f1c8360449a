"""The local stack: a Kafka-compatible broker, ClickHouse, an EVM chain and Prometheus (README,
"How it fits together"; docs/operations.md, "Prometheus and Grafana").

`StackManager(home)` starts the four services as detached processes on free loopback ports,
records their pids and endpoints in `<home>/stack.json` (the file `attestream.settings` reads),
waits until each answers, and stops exactly the pids it recorded. The CLI (`attestream stack`)
and the test fixtures use this same code.

What survives `down` then `up`: ClickHouse data (`<home>/clickhouse/`), the anvil chain
(`<home>/anvil/state.json`, dumped on SIGTERM and every few seconds), Prometheus's history
(`<home>/prometheus/data/`) and the ports, while they are still free. The broker is
memory-only: it comes back empty with a new cluster id, which the ledger compares to notice
the reset.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attestcore import processes
from attestcore.errors import ConfigError, ServiceUnavailableError
from attestcore.waiting import WaitTimeout, wait_until
from attestream import broker_snapshot, stack_prometheus
from attestream import stack_services as svc
from attestream.broker_snapshot import BrokerReset
from attestream.settings import STACK_STATE_FILE
from attestream.stack_services import Endpoints
from attestream.workers import WorkerStatus, worker_statuses

log = logging.getLogger("attestream.stack")

STATE_VERSION = 1
ANVIL_CHAIN_ID = 31337
# Anvil's well-known dev account 0: public test key, funded only on local dev chains.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
SERVICES = ("broker", "clickhouse", "anvil", "prometheus")

# Tansu starts in well under a second here; 30 s leaves room for a loaded 2-core CI machine.
BROKER_HEALTH_TIMEOUT_S = 30.0
# ClickHouse 18.16 loads system tables and every table's parts before it listens: ~2 s empty,
# longer once the ledger has written a few million rows.
CLICKHOUSE_HEALTH_TIMEOUT_S = 90.0
# anvil replays its state file (every block since the first `up`) before it answers.
ANVIL_HEALTH_TIMEOUT_S = 60.0
# Prometheus replays its write-ahead log (a week of a few processes' series) before it is ready.
PROMETHEUS_HEALTH_TIMEOUT_S = 60.0
HEALTH_TIMEOUTS_S = {
    "broker": BROKER_HEALTH_TIMEOUT_S,
    "clickhouse": CLICKHOUSE_HEALTH_TIMEOUT_S,
    "anvil": ANVIL_HEALTH_TIMEOUT_S,
    "prometheus": PROMETHEUS_HEALTH_TIMEOUT_S,
}
# Between health probes: short, because `up` time is dominated by this wait in tests.
HEALTH_POLL_INTERVAL_S = 0.2
# After SIGTERM anvil dumps its chain state and ClickHouse finishes merges and closes parts;
# killing sooner can lose the last anchors. Both take well under 5 s here.
STOP_GRACE_S = 30.0
STOP_POLL_INTERVAL_S = 0.1
# After SIGKILL: enough for the kernel to tear down a large ClickHouse address space.
KILL_WAIT_S = 5.0


@dataclass(frozen=True)
class ServiceProcess:
    """One started process. `start_ticks` (from /proc) guards against a recycled pid."""

    pid: int | None
    start_ticks: int | None
    endpoint: str
    log_file: str
    command: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StackState:
    """The content of `<home>/stack.json`."""

    home: Path
    endpoints: Endpoints
    ports: dict[str, int]
    services: dict[str, ServiceProcess]
    broker_cluster_id: str
    broker_started_at: str
    updated_at: str

    @property
    def expected_up(self) -> bool:
        """True while the state records pids, i.e. `up` ran and `down` has not."""
        return any(p.pid is not None for p in self.services.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "home": str(self.home),
            "updated_at": self.updated_at,
            "broker_cluster_id": self.broker_cluster_id,
            "broker_started_at": self.broker_started_at,
            "endpoints": asdict(self.endpoints),
            "ports": dict(self.ports),
            "services": {name: asdict(proc) for name, proc in self.services.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], home: Path) -> StackState:
        try:
            return cls(
                home=home,
                endpoints=Endpoints(**data["endpoints"]),
                ports={k: int(v) for k, v in data["ports"].items()},
                services={k: ServiceProcess(**v) for k, v in data["services"].items()},
                broker_cluster_id=str(data["broker_cluster_id"]),
                broker_started_at=str(data["broker_started_at"]),
                updated_at=str(data.get("updated_at", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"stack state file {home / STACK_STATE_FILE} is not in the expected shape "
                f"({exc!r}); stop any stack processes by hand, then delete it"
            ) from exc


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    alive: bool
    endpoint: str
    healthy: bool
    detail: str


@dataclass(frozen=True)
class StackStatus:
    state_file: Path
    expected_up: bool
    services: tuple[ServiceStatus, ...]
    workers: tuple[WorkerStatus, ...] = ()
    """`detect`, `ledger run`, `anchor run` processes recorded on this home (attestream.workers)."""

    @property
    def services_healthy(self) -> bool:
        """Every service of the stack runs and answers (whatever the workers do)."""
        return bool(self.services) and all(s.alive and s.healthy for s in self.services)

    @property
    def healthy(self) -> bool:
        return self.services_healthy and all(w.healthy for w in self.workers)


class StackManager:
    """Starts, checks and stops the local stack whose state lives under `home`."""

    def __init__(
        self,
        home: Path,
        prometheus_port: int = 0,
        prometheus_interval_s: float = stack_prometheus.DEFAULT_INTERVAL_S,
    ) -> None:
        """`prometheus_port` 0 takes a free one (kept across down/up while it stays free);
        `prometheus_interval_s` is its scrape and rule-evaluation interval."""
        self.home = Path(home).expanduser().resolve()
        self.prometheus_port = prometheus_port
        self.prometheus_interval_s = prometheus_interval_s
        self.state_path = self.home / STACK_STATE_FILE
        self.logs_dir = self.home / "logs"
        # Popen objects of processes this instance started, so they are reaped, not zombies.
        self._children: dict[int, svc.Child] = {}
        self.last_reset: BrokerReset | None = None
        """Set by `up` when the broker came back with a new cluster id (its data lost)."""

    # --- public API ------------------------------------------------------------------------
    def up(self) -> StackState:
        """Start whatever is not running, wait for health, return the recorded state.

        1. Find every binary first, so a missing one fails before anything starts.
        2. Keep running services; reuse recorded ports that are still free for the rest.
        3. Start the missing services and record their pids at once, so an interrupted `up`
           can still be stopped by `down`.
        4. Wait for every service to answer; on failure stop what this call started.
        """
        binaries = svc.resolve_binaries(self.home)  # step 1
        with self._lock():
            previous = self._load()
            running = self._running_services(previous)
            ports = svc.choose_ports(  # step 2
                previous.ports if previous else {}, running, {"prometheus": self.prometheus_port}
            )
            state, started = self._start_missing(previous, running, ports, binaries)  # step 3
            self._write(state)
            try:
                self._wait_healthy(state)  # step 4
            except ServiceUnavailableError:
                self._stop_pids([state.services[name] for name in started])
                self._write(_without_pids(state, started))
                raise
            if previous is not None:
                self.last_reset = broker_snapshot.reset_between(
                    self.home, previous.broker_cluster_id, state.broker_cluster_id
                )
            return state

    def _snapshot_broker(self, state: StackState) -> None:
        """Before the broker stops: record what it holds (see attestream.broker_snapshot)."""
        if not self._is_ours_and_alive(state.services["broker"]):
            return
        problem = broker_snapshot.snapshot_quietly(
            self.home, state.endpoints.kafka_bootstrap, state.broker_cluster_id
        )
        if problem:
            log.warning("the broker's offsets were not recorded before it stopped: %s", problem)

    def down(self) -> None:
        """Stop exactly the recorded pids (SIGTERM, then SIGKILL after a grace period)."""
        with self._lock():
            state = self._load()
            if state is None:
                return
            self._snapshot_broker(state)
            self._stop_pids(list(state.services.values()))
            self._write(_without_pids(state, SERVICES))

    def stop_service(self, name: str) -> None:
        """Stop one service (outage drills and tests); `up` starts it again on the same port
        while that port is free. A stopped broker comes back empty, as after `down`."""
        if name not in SERVICES:
            raise ConfigError(f"unknown service {name!r}: one of {', '.join(SERVICES)}")
        with self._lock():
            state = self._load()
            if state is None:
                return
            if name == "broker":
                self._snapshot_broker(state)
            self._stop_pids([state.services[name]])
            self._write(_without_pids(state, [name]))

    def status(self) -> StackStatus:
        """Per service: recorded pid, whether it runs, and whether it answers one probe."""
        state = self._load()
        if state is None:
            return StackStatus(self.state_path, False, ())
        rows = []
        for name in SERVICES:
            proc = state.services.get(name)
            if proc is None:
                continue
            alive = self._is_ours_and_alive(proc)
            problem = (
                svc.probe(name, state.endpoints, state.broker_cluster_id)
                if alive
                else "not running"
            )
            healthy = problem is None
            rows.append(
                ServiceStatus(name, proc.pid, alive, proc.endpoint, healthy, problem or "ok")
            )
        workers = tuple(worker_statuses(self.home))
        return StackStatus(self.state_path, state.expected_up, tuple(rows), workers)

    def load_state(self) -> StackState | None:
        return self._load()

    # --- starting --------------------------------------------------------------------------
    def _start_missing(
        self,
        previous: StackState | None,
        running: set[str],
        ports: dict[str, int],
        binaries: dict[str, Path],
    ) -> tuple[StackState, list[str]]:
        now = _now()
        endpoints = Endpoints(
            kafka_bootstrap=f"127.0.0.1:{ports['broker']}",
            clickhouse_url=f"clickhouse://default:@127.0.0.1:{ports['clickhouse_tcp']}/attestream",
            clickhouse_http_url=f"http://127.0.0.1:{ports['clickhouse_http']}",
            rpc_url=f"http://127.0.0.1:{ports['anvil']}",
            chain_id=ANVIL_CHAIN_ID,
            anchor_key_file=str(self._write_dev_key()),
            prometheus_url=stack_prometheus.url(ports["prometheus"]),
        )
        cluster_id = previous.broker_cluster_id if previous and "broker" in running else ""
        broker_started_at = previous.broker_started_at if previous and cluster_id else now
        cluster_id = cluster_id or f"attestream-{secrets.token_hex(8)}"
        commands = {
            "broker": svc.broker_command(binaries["broker"], ports["broker"], cluster_id),
            "clickhouse": svc.clickhouse_command(
                binaries["clickhouse"], self.home, ports["clickhouse_tcp"], ports["clickhouse_http"]
            ),
            "anvil": svc.anvil_command(
                binaries["anvil"], self.home, ports["anvil"], ANVIL_CHAIN_ID
            ),
            "prometheus": stack_prometheus.command(
                binaries["prometheus"], self.home, ports["prometheus"], self.prometheus_interval_s
            ),
        }
        endpoint_of = {
            "broker": endpoints.kafka_bootstrap,
            "clickhouse": endpoints.clickhouse_url,
            "anvil": endpoints.rpc_url,
            "prometheus": endpoints.prometheus_url,
        }
        services: dict[str, ServiceProcess] = {}
        started: list[str] = []
        for name in SERVICES:
            if name in running and previous is not None:
                services[name] = previous.services[name]
                continue
            log_file = self.logs_dir / f"{name}.log"
            child = svc.spawn(commands[name], log_file, cwd=self.home)
            self._children[child.pid] = child
            services[name] = ServiceProcess(
                child.pid,
                processes.start_ticks(child.pid),
                endpoint_of[name],
                str(log_file),
                commands[name],
            )
            started.append(name)
        state = StackState(
            self.home, endpoints, ports, services, cluster_id, broker_started_at, now
        )
        return state, started

    def _write_dev_key(self) -> Path:
        path = self.home / "keys" / "anchor-dev.key"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(ANVIL_DEV_KEY + "\n")
        return path

    def _wait_healthy(self, state: StackState) -> None:
        """Poll every service until it answers; each fails on its own timeout, so the
        slowest bounds the wait."""
        pending = set(SERVICES)
        started_at = time.monotonic()
        last: dict[str, str] = {}

        def all_answer() -> bool:
            for name in sorted(pending):
                proc = state.services[name]
                if not self._is_ours_and_alive(proc):
                    self._fail(name, proc, "the process exited")
                detail = svc.probe(name, state.endpoints, state.broker_cluster_id)
                if detail is None:
                    pending.discard(name)
                    continue
                last[name] = detail
                waited = time.monotonic() - started_at
                if waited > HEALTH_TIMEOUTS_S[name]:
                    self._fail(name, proc, f"not healthy after {waited:.0f} s ({detail})")
            return not pending

        try:
            wait_until(
                all_answer,
                max(HEALTH_TIMEOUTS_S.values()),
                interval_s=HEALTH_POLL_INTERVAL_S,
                what="the stack's services",
            )
        except WaitTimeout as exc:  # the slowest service's own timeout, seen at the deadline
            name = sorted(pending)[0]
            self._fail(name, state.services[name], f"{exc} ({last.get(name, '')})")

    def _fail(self, name: str, proc: ServiceProcess, why: str) -> None:
        tails = [svc.log_tail(Path(proc.log_file))]
        if name == "clickhouse":
            tails.append(svc.log_tail(svc.clickhouse_error_log(self.home)))
        raise ServiceUnavailableError(name, proc.endpoint, why + "\n" + "\n".join(tails))

    # --- stopping --------------------------------------------------------------------------
    def _stop_pids(self, procs: list[ServiceProcess]) -> None:
        """SIGTERM every live recorded pid at once, then SIGKILL what outlives the grace."""
        recorded = {p.pid: p for p in procs if p.pid is not None}
        # The kernel reaps a SIGKILLed process at once unless it is stuck in I/O (state D);
        # then waiting longer would not help, so give up after KILL_WAIT_S.
        processes.stop_pids(
            list(recorded),
            lambda pid: self._is_ours_and_alive(recorded[pid]),
            STOP_GRACE_S,
            KILL_WAIT_S,
            STOP_POLL_INTERVAL_S,
        )

    # --- state -----------------------------------------------------------------------------
    def _is_ours_and_alive(self, proc: ServiceProcess) -> bool:
        if proc.pid is None:
            return False
        child = self._children.get(proc.pid)
        if child is not None:
            child.poll()  # reaps our own exited child so it does not linger as a zombie
        return processes.is_running(proc.pid, proc.start_ticks)

    def _running_services(self, state: StackState | None) -> set[str]:
        if state is None:
            return set()
        return {
            n for n, p in state.services.items() if n in SERVICES and self._is_ours_and_alive(p)
        }

    def _load(self) -> StackState | None:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"stack state file {self.state_path} is unreadable: {exc}") from exc
        return StackState.from_json(data, self.home)

    def _write(self, state: StackState) -> None:
        """Write atomically: readers see the old file or the new one, never half of one."""
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(f".tmp.{os.getpid()}")
        tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise `up`/`down` on one home (two terminals, or a test and a CLI)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "stack.lock", "w", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _without_pids(state: StackState, names: list[str] | tuple[str, ...]) -> StackState:
    services = {
        n: (ServiceProcess(None, None, p.endpoint, p.log_file, p.command) if n in names else p)
        for n, p in state.services.items()
    }
    return StackState(
        state.home,
        state.endpoints,
        state.ports,
        services,
        state.broker_cluster_id,
        state.broker_started_at,
        _now(),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
