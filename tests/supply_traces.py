"""Hand-built EPCIS scan traces on the shipped reference table's sites and products.

`scan` builds one version 2 event (with the business data the brand's own logistics records:
despatch advices, sources, destinations); `legacy` strips that data back to version 1.
`run` replays a trace through the supply features and names every vector's values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from attestcore.schemas import (
    SUPPLY_SCHEMA_VERSION,
    Action,
    BizStep,
    BizTransaction,
    BizTransactionType,
    SourceDest,
    SourceDestType,
    SupplyChainEvent,
    TagAuth,
)
from detectors.features_supply import (
    MISSING,
    SUPPLY_FEATURES,
    State,
    SupplyVector,
    initial_supply_state,
    supply_features,
)
from detectors.geo import haversine_km
from detectors.reference.supply import default_supply_reference

T0 = datetime(2025, 3, 3, 8, tzinfo=UTC)
# Cordless drill: crypto tags, authorised in AT BE CZ DE DK NL PL (not FR), made in Stuttgart.
DRILL = "urn:epc:id:sgtin:4012345.010020.TEST0001"
# Wireless earbuds: no crypto tags (a copy reads `absent` like the genuine item), authorised in
# AT BE DE DK FR IE NL, made in Shenzhen.
EARBUDS = "urn:epc:id:sgtin:6901234.012345.TEST0002"
REF = default_supply_reference()
SITES = {s.code: s for s in REF.sites.values()}
PALLET = "urn:epc:id:sscc:4012345.0000000001"


def loc(code: str) -> str:
    return SITES[code].biz_location


def scan(
    hours: float,
    step: BizStep,
    site: str,
    auth: TagAuth = TagAuth.VERIFIED,
    epc: str = DRILL,
    *,
    desadv: str | None = None,
    source: str | None = None,
    to: str | None = None,
    rma: str | None = None,
    parent: str | None = None,
    tag: str = "",
) -> SupplyChainEvent:
    where = SITES[site]
    transactions = []
    if desadv is not None:
        transactions.append(BizTransaction(type=BizTransactionType.DESPATCH_ADVICE, id=desadv))
    if rma is not None:
        kind = BizTransactionType.RETURN_MERCHANDISE_AUTHORISATION
        transactions.append(BizTransaction(type=kind, id=rma))
    return SupplyChainEvent(
        event_id=f"sc-{site}-{hours}{tag}",
        event_time=T0 + timedelta(hours=hours),
        event_time_zone_offset="+00:00",
        epc=epc,
        action=Action.ADD if step == BizStep.COMMISSIONING else Action.OBSERVE,
        biz_step=step,
        disposition="in_progress",
        read_point=where.biz_location,
        biz_location=where.biz_location,
        lat=where.lat,
        lon=where.lon,
        reader_id="r1",
        tag_auth=auth,
        schema_version=SUPPLY_SCHEMA_VERSION,
        parent_id=parent,
        biz_transactions=transactions,
        source_list=[] if source is None else [_location(source)],
        destination_list=[] if to is None else [_location(to)],
    )


def _location(code: str) -> SourceDest:
    return SourceDest(type=SourceDestType.LOCATION, id=loc(code))


def legacy(event: SupplyChainEvent) -> SupplyChainEvent:
    """The same scan as a version 1 message: no business data."""
    import msgspec

    return msgspec.structs.replace(
        event, schema_version=1, biz_transactions=[], source_list=[], destination_list=[]
    )


def life(
    epc: str = DRILL,
    maker: str = "fac-stuttgart",
    dc: str = "dc-hamburg",
    shop: str = "shop-berlin-1",
    auth: TagAuth = TagAuth.VERIFIED,
) -> list[SupplyChainEvent]:
    """A genuine item from its factory through a distribution centre to a shop, sold there."""
    serial = epc.rsplit(".", 1)[1]
    first, second = f"DA-{serial}-1", f"DA-{serial}-2"
    at_dc = 10 + transit_hours(maker, dc)
    at_shop = at_dc + 50 + transit_hours(dc, shop)
    return [
        scan(0, BizStep.COMMISSIONING, maker, auth, epc),
        scan(2, BizStep.PACKING, maker, auth, epc),
        scan(10, BizStep.SHIPPING, maker, auth, epc, desadv=first, to=dc),
        scan(at_dc, BizStep.RECEIVING, dc, auth, epc, desadv=first, source=maker),
        scan(at_dc + 4, BizStep.STORING, dc, auth, epc),
        scan(at_dc + 50, BizStep.SHIPPING, dc, auth, epc, desadv=second, to=shop),
        scan(at_shop, BizStep.RECEIVING, shop, auth, epc, desadv=second, source=dc),
        scan(at_shop + 190, BizStep.RETAIL_SELLING, shop, auth, epc),
    ]


def hours_of(event: SupplyChainEvent) -> float:
    return (event.event_time - T0).total_seconds() / 3600


def transit_hours(a: str, b: str) -> float:
    """Door to door at 40 km/h plus 12 h of handling, in whole hours."""
    km = haversine_km(SITES[a].lat, SITES[a].lon, SITES[b].lat, SITES[b].lon)
    return float(round(km / 40 + 12))


def earbuds_life(shop: str = "shop-amsterdam-1") -> list[SupplyChainEvent]:
    return life(EARBUDS, "fac-shenzhen", "dc-rotterdam", shop, TagAuth.ABSENT)


def run(
    events: list[SupplyChainEvent],
) -> tuple[list[dict[str, float]], list[SupplyVector], State]:
    state = initial_supply_state()
    named, vectors = [], []
    for event in events:
        vector, state = supply_features(event, state)
        assert len(vector) == len(SUPPLY_FEATURES)
        vectors.append(vector)
        named.append(dict(zip(SUPPLY_FEATURES, vector, strict=True)))
    return named, vectors, state


def conflicts(v: dict[str, float]) -> list[str]:
    """The features of `v` that no genuine life explains (empty: the scan is quiet)."""
    found = []
    if v["plausibility_gap"] > 0:
        found.append("plausibility_gap")
    if v["started_track"] == 1.0 and v["plausibility_gap"] >= 0:
        found.append("started_track")
    if v["speed_ratio"] > 1:
        found.append("speed_ratio")
    if v["receipt_expected"] == 0.0:
        found.append("receipt_expected")
    if v["transit_ratio"] > 1:
        found.append("transit_ratio")
    for name in (
        "despatch_mismatch",
        "order_violation",
        "after_decommissioning",
        "unauthorised_region",
        "tag_auth_failed",
    ):
        if v[name] == 1.0:
            found.append(name)
    return found


def quiet(v: dict[str, float]) -> bool:
    return not conflicts(v) and v["sales_without_return"] in (0.0, 1.0, MISSING)


def evidence_of(vector: SupplyVector) -> dict[str, object]:
    return {name: item for name, item in vector.evidence}
