"""Child processes: start one with the project's conventions, tell whether a pid still runs,
and stop one (SIGTERM, a grace period, SIGKILL, reaped).

Conventions of every start: no stdin (a child never waits on the terminal), output appended
to a log file (or a pipe, or inherited), the environment given whole, and optionally a
session of its own so that a terminal's Ctrl-C reaches only the parent.

A recorded pid is checked with its start time in clock ticks since boot (the kernel's own
field, which never changes while the process lives and is unaffected by clock updates), so a
pid the kernel recycled for another process does not count as ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

from attestcore.waiting import poll_until

Child = subprocess.Popen[bytes]

# Kernel clock ticks per second: the unit of a process's start time.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Between two liveness checks while stopping recorded pids: a process that exits on SIGTERM
# is noticed within this, and checking costs one read of /proc.
STOP_POLL_INTERVAL_S = 0.1


def start(
    command: Sequence[str],
    *,
    log: Path | None = None,
    stdout: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = False,
) -> Child:
    """Start `command` with no stdin. Output: appended to `log` (stderr too) when given, else
    to `stdout` (subprocess.PIPE, DEVNULL; stderr then goes the same way), else inherited."""
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        # The child keeps its own descriptor of the log; the parent's is closed at once.
        with log.open("ab") as out:
            return _popen(command, out, env, cwd, new_session)
    return _popen(command, stdout, env, cwd, new_session)


def _popen(
    command: Sequence[str],
    out: IO[bytes] | int | None,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    new_session: bool,
) -> Child:
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=None if out is None else subprocess.STDOUT,
        env=None if env is None else dict(env),
        cwd=cwd,
        start_new_session=new_session,
        close_fds=True,
    )


def stop(
    child: Child,
    grace_s: float,
    kill_wait_s: float | None = None,
    on_kill: Callable[[Child], None] | None = None,
) -> int | None:
    """SIGTERM, wait up to `grace_s`; then `on_kill(child)`, SIGKILL and wait up to
    `kill_wait_s` (None: until it is reaped). The exit code, or None when it outlived SIGKILL
    (stuck in the kernel). A child that already exited is only reaped."""
    return stop_all([child], grace_s, kill_wait_s, on_kill)[0]


def stop_all(
    children: Sequence[Child],
    grace_s: float,
    kill_wait_s: float | None = None,
    on_kill: Callable[[Child], None] | None = None,
) -> list[int | None]:
    """`stop` for several children sharing one grace period: all get SIGTERM at once (one
    SIGTERM each: a second one may cut a clean shutdown short), then each is waited for until
    the common deadline. Their exit codes, in order."""
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    codes: list[int | None] = []
    for child in children:
        try:
            codes.append(child.wait(max(0.0, deadline - time.monotonic())))
            continue
        except subprocess.TimeoutExpired:
            pass
        if on_kill is not None:
            on_kill(child)
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        try:
            codes.append(child.wait(kill_wait_s))
        except subprocess.TimeoutExpired:
            codes.append(None)
    return codes


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot; None if no such process."""
    try:
        process = psutil.Process(pid)
        # create_time() is boot time plus the kernel's start ticks over CLOCK_TICKS: taking
        # the boot time off again gives back the kernel's exact, clock-independent count.
        return int(round((process.create_time() - psutil.boot_time()) * CLOCK_TICKS))
    except psutil.NoSuchProcess:
        return None


def is_running(pid: int, ticks: int | None = None) -> bool:
    """True if `pid` exists, is not a zombie (exited, not yet reaped), and, when `ticks` is
    given, started at that tick (is the process that was recorded, not a recycled pid)."""
    try:
        process = psutil.Process(pid)
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
    except psutil.NoSuchProcess:  # ZombieProcess is one: psutil can tell no more of it
        return False
    return ticks is None or start_ticks(pid) == ticks


def signal_pid(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to `pid`; a process already gone is no error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop_pids(
    pids: Collection[int],
    alive: Callable[[int], bool],
    grace_s: float,
    kill_wait_s: float,
    interval_s: float = STOP_POLL_INTERVAL_S,
) -> list[int]:
    """Stop processes this one did not start (recorded pids): SIGTERM all of them at once,
    SIGKILL those `alive` still reports after `grace_s`, wait up to `kill_wait_s` more. The
    pids that outlived SIGKILL (stuck in the kernel: waiting longer would not help)."""
    targets = [pid for pid in pids if alive(pid)]
    for pid in targets:
        signal_pid(pid, signal.SIGTERM)
    targets = _still_alive(targets, alive, grace_s, interval_s)
    for pid in targets:
        signal_pid(pid, signal.SIGKILL)
    return _still_alive(targets, alive, kill_wait_s, interval_s)


def _still_alive(
    pids: list[int], alive: Callable[[int], bool], timeout_s: float, interval_s: float
) -> list[int]:
    """The pids still alive once all are gone or `timeout_s` has passed."""
    left, _ = poll_until(
        lambda: [pid for pid in pids if alive(pid)],
        lambda found: not found,
        timeout_s,
        interval_s=interval_s,
    )
    return left
