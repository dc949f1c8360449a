"""Flagged scans name their evidence in the decision's reasons, and the timeline shows it.

The scans go through the stream's batch decider with the session's authenticity model; the
wire stays compatible: a reason without evidence and a version 1 scan encode as before.
"""

from __future__ import annotations

import msgspec
from supply_traces import EARBUDS, earbuds_life, hours_of, legacy, scan

from attestcore.schemas import (
    BizStep,
    Decision,
    Detector,
    Evidence,
    Reason,
    SupplyChainEvent,
    TagAuth,
    encode,
)
from attestream.detection import _supply
from detectors.registry import LoadedModel
from detectors.scoring import Scorer, reasons_with_evidence
from forensics.timeline import Step, step_json
from streams.intake import EventParser, RecordRef
from streams.pipeline import DetectorSpec, decide_batch


def decide(events: list[SupplyChainEvent], model: LoadedModel) -> list[Decision]:
    spec = DetectorSpec(
        Detector.AUTHENTICITY, EventParser(SupplyChainEvent, "epc"), _supply, Scorer(model)
    )
    records = [RecordRef("supply", 0, i, e.epc.encode(), encode(e)) for i, e in enumerate(events)]
    result = decide_batch(spec, records, {})
    assert not result.rejections
    return [d for _, _, d in result.decisions]


def test_a_flagged_clone_names_the_genuine_scan_it_conflicts_with(
    authenticity_model: LoadedModel,
) -> None:
    genuine = earbuds_life("shop-berlin-1")
    t = hours_of(genuine[6])
    copy = scan(t + 40, BizStep.RECEIVING, "shop-berlin-2", TagAuth.ABSENT, EARBUDS)
    decisions = decide([*genuine[:7], copy], authenticity_model)
    assert all(d.outcome == "authentic" for d in decisions[:7])
    assert all(r.evidence is None for d in decisions[:7] for r in d.reasons)
    flagged = decisions[7]
    assert flagged.outcome != "authentic"
    evidence = {r.feature: r.evidence for r in flagged.reasons if r.evidence is not None}
    conflicting = evidence["plausibility_gap"]
    assert conflicting.kind == "conflicting_scan"
    assert conflicting.event_id == genuine[6].event_id
    assert conflicting.biz_location == genuine[6].biz_location
    assert conflicting.event_time == genuine[6].event_time
    assert evidence["receipt_expected"].kind == "no_despatch"
    # The timeline shows the evidence with the reason.
    shown = step_json(Step(0, 7, flagged, None, None, None, None))
    named = {r["feature"]: r for r in shown["reasons"]}
    assert named["plausibility_gap"]["evidence"]["event_id"] == genuine[6].event_id
    assert named["plausibility_gap"]["evidence"]["biz_location"] == genuine[6].biz_location


def test_evidence_beyond_the_top_reasons_is_named_only_when_flagged() -> None:
    ranked = [("a", 2.0), ("b", -1.0), ("c", 0.5), ("d", 0.1), ("e", -0.05)]
    why = Evidence(kind="failed_challenge", detail="the tag challenge failed")
    flagged = reasons_with_evidence(ranked, [("e", why), ("a", why)], flagged=True)
    assert [r.feature for r in flagged] == ["a", "b", "c", "e"]
    assert flagged[0].evidence == why and flagged[3].evidence == why
    assert flagged[1].evidence is None
    quiet = reasons_with_evidence(ranked, [("e", why), ("a", why)], flagged=False)
    assert [r.feature for r in quiet] == ["a", "b", "c"]
    assert all(r.evidence is None for r in quiet)


def test_reasons_and_scans_without_the_new_fields_encode_as_before() -> None:
    assert encode(Reason(feature="amount", contribution=0.5)) == (
        b'{"feature":"amount","contribution":0.5}'
    )
    old = legacy(earbuds_life()[3])
    data = encode(old)
    assert b"schema_version" not in data and b"biz_transactions" not in data
    assert msgspec.json.decode(data, type=SupplyChainEvent) == old
    new = encode(earbuds_life()[3])
    assert b'"schema_version":2' in new and b'"type":"desadv"' in new
