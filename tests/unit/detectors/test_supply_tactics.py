"""Each counterfeit tactic, in a small hand-built trace, is caught with evidence; and every
scan of the genuine item in the same trace stays quiet."""

from __future__ import annotations

from supply_traces import (
    EARBUDS,
    conflicts,
    earbuds_life,
    evidence_of,
    hours_of,
    legacy,
    life,
    loc,
    quiet,
    run,
    scan,
)

from attestcore.schemas import BizStep, Evidence, SupplyChainEvent, TagAuth


def test_a_clone_seen_before_the_genuine_item_is_not_taken_as_genuine() -> None:
    """A copy is received at a Berlin shop before the genuine earbuds are even made; the
    genuine item's whole life stays quiet and the copy's sale conflicts with it."""
    genuine = earbuds_life()
    copy_received = scan(-50, BizStep.RECEIVING, "shop-berlin-1", TagAuth.ABSENT, EARBUDS)
    sold_at = hours_of(genuine[-1]) + 40
    copy_sold = scan(sold_at, BizStep.RETAIL_SELLING, "shop-berlin-1", TagAuth.ABSENT, EARBUDS)
    v, vectors, state = run([copy_received, *genuine, copy_sold])
    assert conflicts(v[0]) == ["receipt_expected"]  # nobody despatched it there
    assert all(quiet(x) for x in v[1:-1]), [conflicts(x) for x in v[1:-1]]
    assert "plausibility_gap" in conflicts(v[-1])
    evidence = evidence_of(vectors[-1])["plausibility_gap"]
    assert isinstance(evidence, Evidence) and evidence.kind == "conflicting_scan"
    assert evidence.event_id == genuine[-1].event_id  # the genuine sale, nearest in time
    assert evidence.biz_location == loc("shop-amsterdam-1")
    assert len(state["tracks"]) == 2


def test_a_clone_in_the_same_city_is_caught_by_its_missing_despatch() -> None:
    """Berlin shops 1 and 2 are a few km apart: no speed gives the copy away."""
    genuine = earbuds_life("shop-berlin-1")
    shelved = hours_of(genuine[6])
    copy = [
        scan(shelved + 40, BizStep.RECEIVING, "shop-berlin-2", TagAuth.ABSENT, EARBUDS),
        scan(shelved + 210, BizStep.RETAIL_SELLING, "shop-berlin-2", TagAuth.ABSENT, EARBUDS),
    ]
    v, vectors, _ = run([*genuine[:7], copy[0], genuine[7], copy[1]])
    assert v[7]["started_track"] == 1.0 and v[7]["speed_ratio"] < 1
    assert {"plausibility_gap", "receipt_expected"} <= set(conflicts(v[7]))
    assert quiet(v[8])  # the genuine sale
    assert conflicts(v[9]) == ["plausibility_gap"]
    evidence = evidence_of(vectors[9])["plausibility_gap"]
    assert isinstance(evidence, Evidence) and evidence.event_id == genuine[7].event_id


def test_a_diversion_within_authorised_countries_and_its_reentry() -> None:
    """Despatched to Amsterdam, received in Brussels (Belgium is authorised: no country rule
    fires), then back into an Amsterdam shop no despatch went to."""
    events = earbuds_life()[:6]
    serial_advice = "DA-TEST0002-2"
    diverted = scan(
        hours_of(events[5]) + 20,
        BizStep.RECEIVING,
        "shop-brussels-1",
        TagAuth.ABSENT,
        EARBUDS,
        desadv=serial_advice,
        source="dc-rotterdam",
    )
    reentry = scan(
        hours_of(events[5]) + 300, BizStep.RECEIVING, "shop-amsterdam-2", TagAuth.ABSENT, EARBUDS
    )
    v, vectors, _ = run([*events, diverted, reentry])
    assert all(quiet(x) for x in v[:6])
    assert v[6]["unauthorised_region"] == 0.0 and v[6]["despatch_mismatch"] == 1.0
    evidence = evidence_of(vectors[6])["despatch_mismatch"]
    assert isinstance(evidence, Evidence) and evidence.kind == "despatch_mismatch"
    assert evidence.event_id == events[5].event_id and serial_advice in evidence.detail
    assert loc("shop-amsterdam-1") in evidence.detail
    assert {"receipt_expected", "started_track"} <= set(conflicts(v[7]))


def test_a_diversion_abroad_and_its_reentry_into_an_authorised_country() -> None:
    """The centre ships the earbuds to a Madrid shop (Spain is not an authorised market for
    them), nobody there reports a receipt, and a month later they are received in Paris
    (France is): the item left its markets at the shipping, and every later scan of its track
    says so, with that shipping scan as evidence."""
    events = earbuds_life()[:5]
    t = hours_of(events[4]) + 20
    shipped = scan(
        t,
        BizStep.SHIPPING,
        "dc-rotterdam",
        TagAuth.ABSENT,
        EARBUDS,
        desadv="DA-X",
        to="shop-madrid-1",
    )
    back = scan(t + 24 * 30, BizStep.RECEIVING, "shop-paris-1", TagAuth.ABSENT, EARBUDS)
    sold = scan(t + 24 * 33, BizStep.RETAIL_SELLING, "shop-paris-1", TagAuth.ABSENT, EARBUDS)
    v, vectors, state = run([*events, shipped, legacy(back), legacy(sold)])
    assert all(quiet(x) for x in v[:6])  # the shipping itself is the centre's, in its market
    assert v[6]["unauthorised_region"] == 1.0 and v[7]["unauthorised_region"] == 1.0
    evidence = evidence_of(vectors[6])["unauthorised_region"]
    assert isinstance(evidence, Evidence) and evidence.event_id == shipped.event_id
    assert evidence.biz_location == loc("shop-madrid-1")
    assert state["tracks"][0]["out"][0] == shipped.event_id


def test_a_swap_at_a_return_fails_the_challenge_the_sold_tag_passed() -> None:
    genuine = life()
    swapped = scan(hours_of(genuine[-1]) + 100, BizStep.RETURNING, "shop-berlin-1", TagAuth.FAILED)
    v, vectors, state = run([*genuine, swapped])
    assert v[-1]["failed_after_pass"] == 1.0 and v[-1]["auth_verified_before"] == 8.0
    evidence = evidence_of(vectors[-1])["failed_after_pass"]
    assert isinstance(evidence, Evidence) and evidence.kind == "failed_challenge"
    assert evidence.event_id == genuine[-1].event_id  # the last challenge that passed
    # The failed read neither joined nor started a track: the genuine item is still sold.
    assert len(state["tracks"]) == 1 and state["tracks"][0]["sold"] == 1


def warsaw_centre_ships(hours: float) -> SupplyChainEvent:
    """The Warsaw distribution centre ships the earbuds to a Warsaw shop under its advice."""
    return scan(
        hours,
        BizStep.SHIPPING,
        "dc-warsaw",
        TagAuth.ABSENT,
        EARBUDS,
        desadv="DA-W",
        to="shop-warsaw-1",
    )


def test_a_clone_entering_through_a_real_distributor() -> None:
    """A copy received at the Warsaw distribution centre from nowhere the brand despatched,
    then shipped on to a Warsaw shop with the distributor's own despatch advice."""
    genuine = earbuds_life()
    t = hours_of(genuine[6])
    copy = [
        scan(t + 10, BizStep.RECEIVING, "dc-warsaw", TagAuth.ABSENT, EARBUDS),
        warsaw_centre_ships(t + 30),
        scan(
            t + 50,
            BizStep.RECEIVING,
            "shop-warsaw-1",
            TagAuth.ABSENT,
            EARBUDS,
            desadv="DA-W",
            source="dc-warsaw",
        ),
    ]
    v, vectors, _ = run([*genuine[:7], *copy])
    assert all(quiet(x) for x in v[:7])
    assert v[7]["started_track"] == 1.0
    for x in v[7:]:
        assert "plausibility_gap" in conflicts(x)
    assert v[9]["receipt_expected"] == 1.0  # its own despatch matches: the track gives it away
    evidence = evidence_of(vectors[9])["plausibility_gap"]
    assert isinstance(evidence, Evidence) and evidence.biz_location == loc("shop-amsterdam-1")


def test_a_failed_challenge_after_passes_never_defines_a_track() -> None:
    events = life()
    copy = scan(hours_of(events[6]) + 90, BizStep.RECEIVING, "shop-munich-1", TagAuth.FAILED)
    v, vectors, state = run([*events[:7], copy, events[7]])
    assert conflicts(v[7]) == ["receipt_expected", "tag_auth_failed"]
    assert v[7]["failed_after_pass"] == 1.0 and v[7]["hypotheses"] == 1.0
    # Munich is not where the genuine item's track says it is (it is on a Berlin shelf).
    assert v[7]["failed_off_track"] == 1.0
    assert quiet(v[8]) and v[8]["auth_failures_before"] == 1.0
    assert len(state["tracks"]) == 1
    detail = evidence_of(vectors[7])["tag_auth_failed"]
    assert isinstance(detail, Evidence) and "passed 7 time(s)" in detail.detail
    off = evidence_of(vectors[7])["failed_off_track"]
    assert isinstance(off, Evidence) and off.event_id == events[6].event_id  # Berlin's receipt
    assert off.biz_location == loc("shop-berlin-1")


def test_a_clone_entering_through_a_distributor_after_the_genuine_item_was_sold() -> None:
    """The genuine earbuds are sold in Amsterdam; days later a copy is received at the Warsaw
    distribution centre, stored and shipped on. A sold item is with its customer: only a
    return or a repair brings it to another site, so the copy's shipping cannot be the sold
    item's and stays on the copy's own, less plausible track."""
    genuine = earbuds_life()
    sold = hours_of(genuine[-1])
    copy = [
        scan(sold + 100, BizStep.RECEIVING, "dc-warsaw", TagAuth.ABSENT, EARBUDS),
        scan(sold + 110, BizStep.STORING, "dc-warsaw", TagAuth.ABSENT, EARBUDS),
        warsaw_centre_ships(sold + 130),
    ]
    v, vectors, state = run([*genuine, *copy])
    assert all(quiet(x) for x in v[: len(genuine)])
    assert v[len(genuine)]["started_track"] == 1.0
    shipping = v[-1]
    assert "plausibility_gap" in conflicts(shipping)
    assert shipping["sales_without_return"] == 0.0  # the copy's track was never sold
    evidence = evidence_of(vectors[-1])["plausibility_gap"]
    assert isinstance(evidence, Evidence) and evidence.event_id == genuine[-1].event_id
    assert len(state["tracks"]) == 2
