"""Expected shipments: is a receipt the destination of a known despatch of this EPC?

A shipping scan with a despatch advice (EPCIS `bizTransactionList` type `desadv`, GS1 CBV 2.0
7.3) and a destination location (`destinationList` type `location`, CBV 7.4) tells where the
item must arrive; the receipt cites the same despatch advice and names its source. So a
receipt at another place than its despatch names (diversion, whatever the country), a receipt
nobody despatched (a copy slipped in through a back door), and a receipt long after the
learned transit time are all visible without the master data's country list.

A despatch record in the state is `[desadv id, destination biz_location, event time, source
biz_location, shipping event_id, lat, lon]`; at most `MAX_DESPATCHES`, the newest kept.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from attestcore.schemas import (
    BizStep,
    BizTransactionType,
    SourceDestType,
    SupplyChainEvent,
)
from detectors.geo import haversine_km
from detectors.supply_calibration import SupplyCalibration
from detectors.supply_tracks import Track

MAX_DESPATCHES = 3
MISSING = -1.0
_DESADV, _DEST, _TS, _FROM, _ID, _LAT, _LON = range(7)
_SGLN, _PGLN = "urn:epc:id:sgln:", "urn:epc:id:pgln:"
_PARTIES = (SourceDestType.OWNING_PARTY, SourceDestType.POSSESSING_PARTY)


@dataclass(frozen=True)
class Receipt:
    """What the business data says about one scan (only a receiving scan has any)."""

    expected: float  # 1 matches a known despatch or cites a return authorisation, 0 neither,
    # MISSING for a scan that is no receipt
    mismatch_flag: float  # 1 a known despatch of this EPC names another destination
    transit_ratio: float  # hours since that despatch / the learned 99th-percentile transit
    matched: list[Any] | None
    mismatch: list[Any] | None
    declared_sources: tuple[str, ...]  # the receipt's `sourceList` locations
    cites_rma: bool  # a return merchandise authorisation: sent in by a customer
    v2_receipt: bool  # a receipt of schema version 2, which carries business data
    cited: tuple[str, ...] = ()  # the despatch advices the receipt cites
    declared_parties: tuple[str, ...] = ()  # company prefixes of its `sourceList` parties

    def declares(self, location: str) -> bool:
        """The receipt names `location` as its source, or the party owning it: a party GLN
        with the location's GS1 Company Prefix."""
        if location in self.declared_sources:
            return True
        prefix = company_prefix(location)
        return prefix is not None and prefix in self.declared_parties

    def explains(self, track: Track, ts: float) -> bool:
        """The receipt accounts for its move onto `track`: the track's scan before it is where
        a despatch came from (this EPC's despatch to here, or the one the receipt cites though
        it names elsewhere: the same goods, diverted) or where the receipt declares it came
        from (a missed shipping read); or it is a customer's return (an RMA)."""
        if self.cites_rma:
            return True
        entries = track["e"]
        i = bisect.bisect_right([e[0] for e in entries], ts)
        if i == 0:
            return False
        came_from = entries[i - 1][3]
        sent = [d for d in (self.matched, self.mismatch) if d is not None]
        if self.mismatch is not None and self.mismatch[_DESADV] not in self.cited:
            sent.remove(self.mismatch)
        return self.declares(came_from) or any(d[_FROM] == came_from for d in sent)


NOT_A_RECEIPT = Receipt(MISSING, 0.0, MISSING, None, None, (), False, False)


def company_prefix(uri: str) -> str | None:
    """The GS1 Company Prefix of an SGLN or PGLN EPC URI (EPC Tag Data Standard 1.13, 6.3:
    the digits before the first dot), None for any other identifier."""
    for scheme in (_SGLN, _PGLN):
        if uri.startswith(scheme):
            return uri.removeprefix(scheme).split(".", 1)[0]
    return None


def _ids(event: SupplyChainEvent, kind: BizTransactionType) -> tuple[str, ...]:
    return tuple(t.id for t in event.biz_transactions if t.type == kind)


def check_receipt(
    event: SupplyChainEvent,
    despatches: list[list[Any]],
    cal: SupplyCalibration,
) -> Receipt:
    if event.biz_step != BizStep.RECEIVING:
        return NOT_A_RECEIPT
    here = event.biz_location
    cited = _ids(event, BizTransactionType.DESPATCH_ADVICE)
    newest_first = list(reversed(despatches))
    matched = next(
        (d for d in newest_first if d[_DEST] == here and (not cited or d[_DESADV] in cited)), None
    )
    mismatch = None
    if matched is None:
        mismatch = next((d for d in newest_first if d[_DESADV] in cited), None) or next(
            (d for d in newest_first if d[_DEST] != here), None
        )
    despatch = matched if matched is not None else mismatch
    ratio = MISSING
    if despatch is not None:
        hours = max(0.0, event.event_time.timestamp() - despatch[_TS]) / 3600
        km = haversine_km(despatch[_LAT], despatch[_LON], event.lat, event.lon)
        ratio = hours / max(cal.transit_bound_hours(km), 1.0)
    declared = tuple(s.id for s in event.source_list if s.type == SourceDestType.LOCATION)
    parties = {company_prefix(s.id) for s in event.source_list if s.type in _PARTIES}
    rma = bool(_ids(event, BizTransactionType.RETURN_MERCHANDISE_AUTHORISATION))
    return Receipt(
        expected=_expected(matched is not None or rma, event.schema_version),
        mismatch_flag=1.0 if mismatch is not None else 0.0,
        transit_ratio=ratio,
        matched=matched,
        mismatch=mismatch,
        declared_sources=declared,
        cites_rma=rma,
        v2_receipt=event.schema_version >= 2,
        cited=cited,
        declared_parties=tuple(sorted(p for p in parties if p is not None)),
    )


def _expected(explained: bool, schema_version: int) -> float:
    """A version 1 receipt carries no business data: unless a despatch named it, whether it
    was expected is unknown (MISSING), not "no"."""
    if explained:
        return 1.0
    return 0.0 if schema_version >= 2 else MISSING


def despatch_routes(despatches: list[list[Any]]) -> frozenset[tuple[str, str]]:
    """The (source, destination) sites of the known despatches."""
    return frozenset((d[_FROM], d[_DEST]) for d in despatches)


def with_despatch(despatches: list[list[Any]], event: SupplyChainEvent) -> list[list[Any]]:
    """The records with this shipping scan's despatch added, if it names one and where to."""
    advice = _ids(event, BizTransactionType.DESPATCH_ADVICE)
    to = [d.id for d in event.destination_list if d.type == SourceDestType.LOCATION]
    if not advice or not to:
        return despatches
    record = [advice[0], to[0], event.event_time.timestamp(), event.biz_location]
    record += [event.event_id, event.lat, event.lon]
    kept = [d for d in despatches if d[_DESADV] != advice[0]]
    kept.append(record)
    return kept[-MAX_DESPATCHES:]
