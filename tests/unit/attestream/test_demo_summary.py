"""The demo's printed summary: the input records' invariant, how each model came to be, and
anchor transaction hashes in full whatever the terminal's width."""

from __future__ import annotations

import io

from rich.console import Console

from attestream.accounting import Accounting
from attestream.commands.demo import _print, _summary
from attestream.demo import DemoResult
from attestream.simulation import PublishSummary
from forensics.report import Report

TX_HASH = "0x" + "5e" * 32


def result(accounting: Accounting) -> DemoResult:
    published = [PublishSummary("tx", 2, 1, 0, None), PublishSummary("sc", 1, 0, 0, None)]
    return DemoResult(
        run_id="demo1",
        published=published,
        logged=3,
        outcomes={},
        quality={},
        report=Report(entries=3, checkpoints=1, anchors=1, chains=[0]),
        anchors=[{"tx_hash": TX_HASH, "block": 7, "checkpoints": 1}],
        accounting=accounting,
        seconds=1.0,
        models={"fraud": "reused fraud-abc", "authenticity": "trained auth-def"},
    )


def accounted() -> Accounting:
    found = Accounting(consumed=[("tx", 0, 0), ("tx", 0, 1), ("tx", 0, 2), ("sc", 0, 0)])
    found.decisions[("tx", 0, 0)].add("d0")
    found.decisions[("tx", 0, 1)].update({"d1"})
    found.decisions[("sc", 0, 0)].add("d2")
    found.dead_letters[("tx", 0, 2)].append("not_json")
    return found


def printed(r: DemoResult, width: int) -> str:
    out = io.StringIO()
    _print(Console(file=out, width=width, color_system=None), r)
    return out.getvalue()


def test_the_summary_states_the_invariant_the_models_and_whole_hashes() -> None:
    r = result(accounted())
    assert r.ok
    text = printed(r, width=60)
    assert "consumed 4 = decided 3 + dead-lettered 1" in text
    assert "reused fraud-abc" in text and "trained auth-def" in text
    assert TX_HASH in text
    summary = _summary(r)
    assert summary["input_records"] == {
        "consumed": 4,
        "decided": 3,
        "dead_lettered": 1,
        "without_outcome": 0,
        "more_than_one_outcome": 0,
    }
    assert summary["models"] == r.models


def test_a_record_without_an_outcome_fails_the_demo() -> None:
    found = accounted()
    found.consumed.append(("sc", 0, 1))
    r = result(found)
    assert not r.ok
    assert "1 with none" in printed(r, width=120)
