"""Decoding a batch of decisions (ledger.decision_batch) gives exactly what decoding each one
with `decode_decision` gives: the same `Decision`s, the same errors with the same messages,
whatever mix of valid and malformed records a batch holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from factories import PAYMENT, make_decision

from attestcore.errors import MalformedError
from attestcore.schemas import Decision
from ledger.decision_batch import UNCHECKED_PATTERNS, UncheckedDecision, decode_decisions
from ledger.entry import decode_decision, encode_decision

Mutation = Callable[[dict[str, Any]], None]


def value(i: int, mutate: Mutation | None = None) -> bytes:
    """Decision i as the decisions topic carries it, changed by `mutate`."""
    fields = msgspec.to_builtins(make_decision(i))
    if mutate is not None:
        mutate(fields)
    return msgspec.json.encode(fields)


def with_context(i: int) -> bytes:
    return encode_decision(msgspec.structs.replace(make_decision(i), context=PAYMENT))


def each(values: list[bytes]) -> list[Decision | str]:
    """What `decode_decision` makes of each value: the decision, or its error message."""
    out: list[Decision | str] = []
    for v in values:
        try:
            out.append(decode_decision(v))
        except MalformedError as exc:
            out.append(str(exc))
    return out


def batch(values: list[bytes]) -> list[Decision | str]:
    decoded = decode_decisions(values)
    for d in decoded:
        assert type(d) in (Decision, MalformedError), type(d)
    return [str(d) if isinstance(d, MalformedError) else d for d in decoded]


def test_unchecked_decision_is_decision_without_the_five_patterns() -> None:
    full = msgspec.inspect.type_info(Decision)
    unchecked = msgspec.inspect.type_info(UncheckedDecision)
    assert isinstance(full, msgspec.inspect.StructType)
    assert isinstance(unchecked, msgspec.inspect.StructType)
    assert [f.name for f in unchecked.fields] == [f.name for f in full.fields]
    relaxed = []
    for mine, theirs in zip(unchecked.fields, full.fields, strict=True):
        if mine.name in UNCHECKED_PATTERNS:
            assert isinstance(theirs.type, msgspec.inspect.StrType) and theirs.type.pattern
            assert mine.type == msgspec.structs.replace(theirs.type, pattern=None), mine.name
            relaxed.append(mine.name)
        else:
            assert mine == theirs, mine.name
    assert sorted(relaxed) == sorted(UNCHECKED_PATTERNS)


def test_a_valid_batch_decodes_to_the_same_decisions_and_bytes() -> None:
    values = [value(i) for i in range(50)] + [with_context(50)]
    decoded = batch(values)
    assert decoded == each(values)
    assert all(type(d) is Decision for d in decoded)
    assert [encode_decision(d) for d in decoded if isinstance(d, Decision)] == [
        encode_decision(decode_decision(v)) for v in values
    ]


def _set(name: str, new: Any) -> Mutation:
    def mutate(fields: dict[str, Any]) -> None:
        fields[name] = new

    return mutate


def _drop(name: str) -> Mutation:
    def mutate(fields: dict[str, Any]) -> None:
        del fields[name]

    return mutate


MALFORMED: dict[str, Mutation] = {
    "digest in upper case": _set("decision_id", "AB" * 32),
    "digest one digit short": _set("event_sha256", "ab" * 31 + "a"),
    "digest with a non-hex digit": _set("model_sha256", "g" + "a" * 63),
    "digest not ASCII": _set("decision_id", "é" + "a" * 63),
    "identifier with a space": _set("event_id", "ev 1"),
    "identifier not ASCII": _set("entity_id", "Cé"),
    "identifier too long": _set("event_id", "e" * 129),
    "identifier empty": _set("entity_id", ""),
    "member missing": _drop("model_sha256"),
    "score out of range": _set("score", 1.5),
    "unknown member": _set("extra", 1),
}


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_a_malformed_decision_is_rejected_with_decode_decisions_message(reason: str) -> None:
    values = [value(i) for i in range(5)]
    values.insert(2, value(99, MALFORMED[reason]))
    decoded = batch(values)
    assert decoded == each(values)
    assert isinstance(decoded[2], str) and decoded[2].startswith("not a decision"), decoded[2]
    assert all(isinstance(d, Decision) for i, d in enumerate(decoded) if i != 2)


def test_records_that_are_not_json_are_rejected_in_place() -> None:
    values = [b"{", value(1), b"", b"[]", value(2)]
    decoded = batch(values)
    assert decoded == each(values)
    assert [isinstance(d, Decision) for d in decoded] == [False, True, False, False, True]


@pytest.mark.parametrize(
    ("name", "new"),
    [("event_id", "ev-7\n"), ("decision_id", "ab" * 32 + "\n")],
)
def test_values_the_patterns_accept_beyond_the_batch_check_decode_as_before(
    name: str, new: str
) -> None:
    # Python's `$` also matches before a final newline, so `decode_decision` accepts these;
    # the batch check does not, and the batch is decoded again value by value.
    values = [value(1), value(7, _set(name, new)), value(2)]
    assert batch(values) == each(values)


def test_an_empty_batch() -> None:
    assert decode_decisions([]) == []
