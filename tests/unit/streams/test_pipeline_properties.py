"""Property: whatever the records contain, the pure pipeline gives each exactly one outcome,
and every decision is finite and valid on the wire.

Hypothesis generates batches over the whole wire schema (payments, their labels and
supply-chain scans) with boundary and hostile values: huge, tiny, negative and zero amounts,
the poles and the antimeridian, times from the year 1 to 9999 in any offset, unicode and
empty strings, duplicate ids, few entities (so one entity's events arrive out of order),
missing fields, wrong keys and raw garbage bytes. They run through `decide_batch` and
`apply_labels` with real trained models and the stream's JSON state tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestcore.schemas import Action, BizStep, Channel, Decision, TagAuth
from attestream.detection import authenticity_spec, fraud_spec
from detectors.registry import load_active
from detectors.scoring import Scorer
from detectors.simulate_supply import simulate_supply
from streams.app import JSONStates
from streams.intake import RecordRef
from streams.pipeline import BatchResult, DetectorSpec, apply_labels, decide_batch

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

ZONES = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=14)),
        timezone(-timedelta(hours=14)),
        timezone(timedelta(hours=5, minutes=45)),
    ]
)
# Mostly the weeks before the clock (so windows fill and reorder), else anything at all.
TIMES = st.one_of(
    st.datetimes(
        NOW.replace(tzinfo=None) - timedelta(days=60),
        NOW.replace(tzinfo=None) + timedelta(minutes=10),
        timezones=ZONES,
    ),
    st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=ZONES),
).map(datetime.isoformat)
HOSTILE_TEXT = st.sampled_from(["", " ", "é", "😀", "a" * 129, "x\u0000y", "../../etc"]) | st.text(
    max_size=20
)
IDS = st.sampled_from(["id-1", "id-2", "id-3"]) | HOSTILE_TEXT  # duplicates on purpose
CUSTOMERS = st.sampled_from(["C1", "C2"])
TERMINALS = st.sampled_from(["T1", "T2"])
AMOUNTS = st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1.0, 1.99, 1e9, 1e9 + 1, -1.0]) | st.floats(
    0.0, 1e9
)
LATS = st.sampled_from([90.0, -90.0, 0.0, 90.000001]) | st.floats(-90.0, 90.0)
LONS = st.sampled_from([180.0, -180.0, 0.0, -180.1]) | st.floats(-180.0, 180.0)
GARBAGE = st.binary(max_size=64) | st.sampled_from([b"", b"{", b"null", b"[]", b"\xff\xfe"])


def payment_value() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "event_id": IDS,
            "event_time": TIMES,
            "source": st.just("pos"),
            "customer_id": CUSTOMERS,
            "terminal_id": TERMINALS,
            "amount": AMOUNTS,
            "currency": st.sampled_from(["EUR", "USD", "eur"]),
            "channel": st.sampled_from([c.value for c in Channel] + ["wire"]),
            "mcc": st.sampled_from(["5411", "6011", "541"]),
            "country": st.sampled_from(["DE", "FR", "D"]),
            "lat": LATS,
            "lon": LONS,
        },
        optional={"device_id": st.sampled_from(["D1", "D2"]) | HOSTILE_TEXT},
    )


def label_value() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "label_id": IDS,
            "label_time": TIMES,
            "transaction_id": IDS,
            "transaction_time": TIMES,
            "customer_id": CUSTOMERS,
            "terminal_id": TERMINALS,
            "fraud": st.booleans(),
        },
    )


SIMULATED = simulate_supply(60, seed=2, run_id="props")
EPCS = sorted({s.event.epc for s in SIMULATED})[:3]
SITES = sorted({s.event.biz_location for s in SIMULATED})[:6] + ["urn:epc:id:sgln:1.2.3"]


def scan_value() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "event_id": IDS,
            "event_time": TIMES,
            "event_time_zone_offset": st.sampled_from(["+01:00", "-14:00", "+14:00", "+15:00"]),
            "epc": st.sampled_from(EPCS),
            "action": st.sampled_from([a.value for a in Action]),
            "biz_step": st.sampled_from([b.value for b in BizStep]),
            "disposition": st.sampled_from(["active", "in_transit"]) | HOSTILE_TEXT,
            "read_point": st.sampled_from(SITES),
            "biz_location": st.sampled_from(SITES),
            "lat": LATS,
            "lon": LONS,
            "reader_id": st.sampled_from(["r1", "r2"]) | HOSTILE_TEXT,
            "tag_auth": st.sampled_from([t.value for t in TagAuth]),
        },
    )


@st.composite
def raw_records(
    draw: st.DrawFn, values: st.SearchStrategy[dict[str, Any]], key_field: str, topic: str
) -> list[RecordRef]:
    """A batch: JSON values keyed by their entity, some with a field dropped or a wrong key,
    some garbage; offsets in order."""
    batch: list[RecordRef] = []
    for offset in range(draw(st.integers(1, 24))):
        kind = draw(st.sampled_from(["valid"] * 6 + ["dropped", "wrong_key", "garbage"]))
        if kind == "garbage":
            batch.append(RecordRef(topic, 0, offset, draw(st.none() | GARBAGE), draw(GARBAGE)))
            continue
        value = draw(values)
        if kind == "dropped":
            value.pop(draw(st.sampled_from(sorted(value))))
        key: bytes | None = str(value.get(key_field, "")).encode("utf-8", "replace")
        if kind == "wrong_key":
            key = draw(st.none() | GARBAGE)
        body = json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
        batch.append(RecordRef(topic, 0, offset, key, body))
    return batch


@pytest.fixture(scope="module")
def specs(trained_models: Path) -> dict[str, DetectorSpec]:
    return {
        "fraud": fraud_spec(Scorer(load_active(trained_models, "fraud")), "labels"),
        "authenticity": authenticity_spec(Scorer(load_active(trained_models, "authenticity"))),
    }


def check_batch(spec: DetectorSpec, batch: Sequence[RecordRef], result: BatchResult) -> None:
    """Exactly one outcome per record; every decision finite and valid on the wire."""
    outcomes = [d.source.offset for _, _, d in result.decisions]
    outcomes += [record.offset for record, _ in result.rejections]
    assert sorted(outcomes) == [r.offset for r in batch]
    for key, encoded, decision in result.decisions:
        assert msgspec.json.decode(encoded, type=Decision) == decision
        assert key == decision.entity_id
        assert list(decision.features) == list(spec.scorer.feature_names)
        assert all(math.isfinite(v) for v in decision.features.values())
        assert math.isfinite(decision.score) and 0.0 <= decision.score <= 1.0
        assert all(math.isfinite(r.contribution) for r in decision.reasons)


def run(
    spec: DetectorSpec, batches: Sequence[list[RecordRef]], clock: Callable[[], datetime]
) -> None:
    state = JSONStates({})
    for batch in batches:
        check_batch(spec, batch, decide_batch(spec, batch, state, now=clock))


@PROPERTY_SETTINGS
@given(
    steps=st.lists(
        st.tuples(
            st.booleans(),
            raw_records(payment_value(), "customer_id", "tx"),
            raw_records(label_value(), "terminal_id", "labels"),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_every_payment_and_label_has_one_outcome(
    specs: dict[str, DetectorSpec], steps: list[tuple[bool, list[RecordRef], list[RecordRef]]]
) -> None:
    spec = specs["fraud"]
    assert spec.labels is not None
    customers, terminals = JSONStates({}), JSONStates({})
    spec.labels.attach(terminals)
    for labels_first, payments, labels in steps:
        if labels_first:
            rejected = apply_labels(spec.labels, labels, terminals, now=lambda: NOW)
        check_batch(spec, payments, decide_batch(spec, payments, customers, now=lambda: NOW))
        if not labels_first:
            rejected = apply_labels(spec.labels, labels, terminals, now=lambda: NOW)
        assert len({r.offset for r, _ in rejected}) == len(rejected) <= len(labels)


@PROPERTY_SETTINGS
@given(batches=st.lists(raw_records(scan_value(), "epc", "sc"), min_size=1, max_size=4))
def test_every_scan_has_one_outcome(
    specs: dict[str, DetectorSpec], batches: list[list[RecordRef]]
) -> None:
    run(specs["authenticity"], batches, lambda: NOW)
