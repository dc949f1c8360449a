"""attestcore.waiting: a condition polled until it holds, or a timeout naming what was awaited."""

from __future__ import annotations

import itertools

import pytest

from attestcore.waiting import WaitTimeout, poll_until, wait_until


def test_returns_the_first_truthy_value_of_the_condition() -> None:
    answers = iter([None, 0, "", "ready", "later"])
    assert wait_until(lambda: next(answers), 5.0, interval_s=0.001) == "ready"
    assert next(answers) == "later"  # not called again once it held


def test_a_condition_that_holds_at_once_is_called_once() -> None:
    calls = itertools.count()
    assert wait_until(lambda: next(calls) + 1, 0.0) == 1
    assert next(calls) == 1


def test_timeout_names_what_was_awaited_and_the_last_value() -> None:
    with pytest.raises(
        WaitTimeout,
        match=r"timed out after 0.05 s waiting for the anchor"
        r" \(last seen: \[\]\)",
    ) as raised:
        wait_until(list, 0.05, interval_s=0.01, what="the anchor")
    assert raised.value.what == "the anchor"
    assert raised.value.timeout_s == 0.05


def test_timeout_ends_with_the_detail_seen_at_the_deadline() -> None:
    log = ["starting"]

    def tail() -> str:
        return "\n".join(log[-2:])

    def logged_ready() -> bool:
        log.append(f"line {len(log)}")
        return False

    with pytest.raises(WaitTimeout) as raised:
        wait_until(logged_ready, 0.05, interval_s=0.01, what="'ready' in the log", detail=tail)
    text = str(raised.value)
    assert text.startswith("timed out after 0.05 s waiting for 'ready' in the log:\n")
    assert text.endswith(f"\nline {len(log) - 2}\nline {len(log) - 1}")


def test_the_condition_is_checked_again_at_the_deadline() -> None:
    calls = itertools.count()
    # An interval far beyond the timeout: the wait sleeps only to the deadline, looks once
    # more, and sees the condition that became true meanwhile.
    assert wait_until(lambda: next(calls) >= 1, 0.05, interval_s=60.0) is True


def test_an_exception_of_the_condition_ends_the_wait() -> None:
    def exited() -> bool:
        raise RuntimeError("the worker exited")

    with pytest.raises(RuntimeError, match="the worker exited"):
        wait_until(exited, 5.0)


def test_poll_until_returns_the_last_value_and_whether_it_is_done() -> None:
    counts = itertools.count()
    assert poll_until(lambda: next(counts), lambda n: n >= 3, 5.0, interval_s=0.001) == (3, True)
    value, done = poll_until(lambda: 7, lambda n: n > 10, 0.02, interval_s=0.005)
    assert (value, done) == (7, False)
