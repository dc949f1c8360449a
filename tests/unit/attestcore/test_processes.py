"""attestcore.processes on real child processes: start, liveness (a zombie counts as gone, a
recycled pid as not ours), stop with SIGTERM then SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from attestcore import processes
from attestcore.waiting import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# Ignores SIGTERM: only SIGKILL stops it. It says so once the handler is set.
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM,"
    " signal.SIG_IGN); print('ignoring', flush=True); time.sleep(60)",
]


def test_start_appends_output_to_the_log_with_no_stdin(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    log.parent.mkdir()
    log.write_text("earlier run\n")
    script = (
        "import os, sys; print(sys.stdin.read() == '', os.environ['COLOUR']);"
        " print('to stderr', file=sys.stderr)"
    )
    child = processes.start(
        [sys.executable, "-c", script], log=log, env={**os.environ, "COLOUR": "green"}
    )
    assert child.wait(30) == 0
    assert log.read_text().splitlines() == ["earlier run", "True green", "to stderr"]


def test_start_in_a_new_session(tmp_path: Path) -> None:
    child = processes.start(SLEEPER, log=tmp_path / "s.log", new_session=True)
    try:
        assert os.getsid(child.pid) == child.pid != os.getsid(0)
    finally:
        processes.stop(child, 10.0)


def test_start_to_a_pipe() -> None:
    child = processes.start([sys.executable, "-c", "print('piped')"], stdout=subprocess.PIPE)
    out, _ = child.communicate(timeout=30)
    assert out == b"piped\n"


def test_a_running_child_is_running_and_a_zombie_is_not(tmp_path: Path) -> None:
    child = processes.start([sys.executable, "-c", "import sys; sys.stdin.read()"])
    ticks = processes.start_ticks(child.pid)
    assert ticks is not None
    assert processes.is_running(child.pid) and processes.is_running(child.pid, ticks)
    # It exits at once (stdin is /dev/null); not reaped, it stays a zombie in the table.
    wait_until(
        lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE,
        30.0,
        what="the child to exit",
    )
    assert psutil.pid_exists(child.pid)
    assert not processes.is_running(child.pid)
    assert not processes.is_running(child.pid, ticks)
    child.wait()
    assert not processes.is_running(child.pid)
    assert processes.start_ticks(child.pid) is None


def test_a_recycled_pid_with_another_start_time_is_not_ours(tmp_path: Path) -> None:
    child = processes.start(SLEEPER)
    try:
        ticks = processes.start_ticks(child.pid)
        assert ticks is not None
        assert not processes.is_running(child.pid, ticks + 1)
    finally:
        processes.stop(child, 10.0)


def test_start_ticks_are_the_kernels_own_field() -> None:
    # /proc/PID/stat field 22: what stack.json and worker records hold.
    raw = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert processes.start_ticks(os.getpid()) == int(raw[raw.rindex(")") + 2 :].split()[19])


def test_stop_terminates_with_sigterm() -> None:
    child = processes.start(SLEEPER)
    assert processes.stop(child, 10.0) == -15
    assert child.returncode == -15


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    child = processes.start(STUBBORN, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ignoring\n"
    killed: list[int] = []
    assert processes.stop(child, 0.5, 10.0, on_kill=lambda c: killed.append(c.pid)) == -9
    assert killed == [child.pid]
    child.stdout.close()


def test_stop_all_shares_one_grace_period_and_kills_only_the_stubborn() -> None:
    stubborn = processes.start(STUBBORN, stdout=subprocess.PIPE)
    polite = processes.start(SLEEPER)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ignoring\n"
    killed: list[int] = []
    codes = processes.stop_all(
        [stubborn, polite], 0.5, 10.0, on_kill=lambda c: killed.append(c.pid)
    )
    assert codes == [-9, -15]
    assert killed == [stubborn.pid]
    stubborn.stdout.close()


def test_stop_of_an_exited_child_reaps_it() -> None:
    child = processes.start([sys.executable, "-c", "raise SystemExit(3)"])
    wait_until(lambda: child.poll() is not None, 30.0, what="the child to exit")
    assert processes.stop(child, 10.0) == 3


def test_stop_pids_stops_recorded_processes_by_pid(tmp_path: Path) -> None:
    polite = processes.start(SLEEPER)
    stubborn = processes.start(STUBBORN, stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ignoring\n"
    children = {c.pid: c for c in (polite, stubborn)}

    def alive(pid: int) -> bool:
        children[pid].poll()  # reap our own child, as a stack manager does
        return processes.is_running(pid)

    assert processes.stop_pids(list(children), alive, grace_s=1.0, kill_wait_s=10.0) == []
    assert polite.returncode == -15 and stubborn.returncode == -9
    stubborn.stdout.close()


def test_stop_pids_skips_pids_that_are_not_alive() -> None:
    child = processes.start(SLEEPER)
    try:
        assert processes.stop_pids([child.pid], lambda pid: False, 1.0, 1.0) == []
        assert child.poll() is None  # never signalled
    finally:
        processes.stop(child, 10.0)
