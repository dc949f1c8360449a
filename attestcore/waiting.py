"""Poll a condition until it holds or a deadline passes.

Every wait on something outside this process (a service answering, a row appearing, a child
writing a line) is this one loop: call the condition, return its value once it is truthy,
sleep `interval_s` in between, and raise `WaitTimeout` naming what was awaited when
`timeout_s` has passed. The condition is always called at least once, and once more at the
deadline, so a wait never fails without having looked after the last sleep.

A condition may raise to end the wait early (a child it depends on exited): the exception
passes through unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Between two calls of a condition when the caller names no interval: short enough that a
# wait of a few seconds ends close to the moment the condition holds, long enough that a
# condition costing a local query or a file read does not busy a 2-core machine.
DEFAULT_INTERVAL_S = 0.1


class WaitTimeout(Exception):
    """A condition did not hold within its timeout. `last` is the condition's last value."""

    def __init__(self, what: str, timeout_s: float, last: object = None, detail: str = "") -> None:
        seen = "" if last is None or last is False else f" (last seen: {last!r})"
        message = f"timed out after {timeout_s:g} s waiting for {what}{seen}"
        super().__init__(f"{message}:\n{detail}" if detail else message)
        self.what = what
        self.timeout_s = timeout_s
        self.last = last


def wait_until(
    condition: Callable[[], T | None],
    timeout_s: float,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    what: str = "a condition",
    detail: Callable[[], str] | None = None,
) -> T:
    """The condition's first truthy value; `WaitTimeout` naming `what` after `timeout_s`,
    followed by the text `detail()` returns then (say, the tail of a log), if given."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(what, timeout_s, value, detail() if detail is not None else "")
        # Never sleep past the deadline: the last look happens at the deadline itself.
        time.sleep(min(interval_s, left))


def poll_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    timeout_s: float,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
) -> tuple[T, bool]:
    """Fetch a value until `done(value)` or `timeout_s` has passed; the last value and whether
    it is done. For waits whose caller uses the last value either way (a count reported as
    "N of M", an accounting returned incomplete) instead of failing."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if done(value):
            return value, True
        left = deadline - time.monotonic()
        if left <= 0:
            return value, False
        time.sleep(min(interval_s, left))
