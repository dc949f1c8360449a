"""The timeline command prints the evidence behind a flagged scan's reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from factories import make_decision

from attestcore.schemas import Evidence, Reason
from attestream.commands.search import _print_timeline
from forensics.timeline import Step, Timeline, step_json
from ledger.archive import EntityKind

SEEN = datetime(2025, 3, 4, 10, tzinfo=UTC)
EVIDENCE = Evidence(
    kind="conflicting_scan",
    detail="the same EPC on another item, more plausibly the genuine one",
    event_id="sc-run-00000042",
    biz_location="urn:epc:id:sgln:4012345.00001.0",
    event_time=SEEN,
)


def flagged_timeline() -> Timeline:
    decision = msgspec.structs.replace(
        make_decision(9),
        reasons=[
            Reason(feature="plausibility_gap", contribution=2.5, evidence=EVIDENCE),
            Reason(feature="scans_before", contribution=0.1),
        ],
    )
    return Timeline(
        EntityKind.EPC,
        "urn:epc:id:sgtin:4012345.010020.X1",
        [Step(0, 9, decision, None, None, None, None)],
        False,
    )


def test_the_printed_timeline_names_the_conflicting_scan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _print_timeline(flagged_timeline())
    out = " ".join(capsys.readouterr().out.split())
    assert "ev-9 plausibility_gap: the same EPC on another item" in out
    assert f"event sc-run-00000042, urn:epc:id:sgln:4012345.00001.0, {SEEN.isoformat()}" in out
    assert "scans_before:" not in out


def test_the_json_timeline_carries_the_evidence() -> None:
    (step,) = flagged_timeline().steps
    reasons = step_json(step)["reasons"]
    assert reasons[0]["evidence"] == {
        "kind": "conflicting_scan",
        "detail": EVIDENCE.detail,
        "event_id": "sc-run-00000042",
        "biz_location": "urn:epc:id:sgln:4012345.00001.0",
        "event_time": SEEN.isoformat(),
    }
    assert "evidence" not in reasons[1]
