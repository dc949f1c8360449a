"""Decoding a batch of decisions read from the decisions topic, as `decode_decision` would
decode each one, in about half its time.

msgspec checks a `Pattern`-constrained string by calling Python's `re` on it: for the five
such members of `Decision` (three `Sha256Hex`, two `Identifier`) that is about 2 µs of the
7 µs a decision takes to decode (docs/benchmarks.md, "Where an entry's time goes"). Here a
decision is decoded as `UncheckedDecision`, which is `Decision` with those five members as
strings without a pattern (their lengths, every other member, nested ones included, are
validated as in `Decision`), and the five patterns are then checked once per batch and
member, over all its values at once (`_patterns_hold`): a digest's length, and the
characters in one C-level pass. The check
accepts only values that the patterns accept too; when it fails, every decision of the batch
is decoded again with the full `Decision` decoder, so a batch holding a value the patterns
reject (or one the check is stricter about, such as a digest ending in a newline, which
`re`'s `$` accepts) is decoded exactly as `decode_decision` decodes it, error messages
included. The decisions returned are `Decision` instances, equal to `decode_decision`'s.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated, Any, cast

import msgspec
from msgspec import Meta

from attestcore.errors import MalformedError
from attestcore.schemas import (
    AwareTime,
    Decision,
    DecisionContext,
    Detector,
    Reason,
    SourceRef,
)
from ledger.entry import decode_decision

_HEX_DIGITS = b"0123456789abcdef"
"""Sha256Hex: `^[0-9a-f]{64}$`."""
_IDENTIFIER_CHARACTERS = (string.ascii_letters + string.digits + "._:-/").encode()
"""Identifier: `^[A-Za-z0-9._:\\-/]+$`, 1 to 128 characters."""
_SHA256_HEX_LENGTH = 64
_IDENTIFIER_MAX_LENGTH = 128


class UncheckedDecision(Decision):
    """`Decision` without the five string patterns, members in the same order (so it
    encodes byte for byte as `Decision`): every member is declared again, since msgspec
    moves a member a subclass redeclares to the end. Never leaves this module."""

    decision_id: str
    event_id: Annotated[str, Meta(min_length=1, max_length=_IDENTIFIER_MAX_LENGTH)]
    event_sha256: str
    source: SourceRef
    entity_id: Annotated[str, Meta(min_length=1, max_length=_IDENTIFIER_MAX_LENGTH)]
    detector: Detector
    model_id: str
    model_sha256: str
    features: dict[str, float]
    score: Annotated[float, Meta(ge=0.0, le=1.0)]
    outcome: str
    reasons: list[Reason]
    event_time: AwareTime
    decided_at: AwareTime
    context: DecisionContext | None = None


UNCHECKED_PATTERNS = {
    "decision_id": _HEX_DIGITS,
    "event_id": _IDENTIFIER_CHARACTERS,
    "event_sha256": _HEX_DIGITS,
    "entity_id": _IDENTIFIER_CHARACTERS,
    "model_sha256": _HEX_DIGITS,
}
"""The members `UncheckedDecision` leaves unchecked, with the characters each may hold."""

_unchecked = msgspec.json.Decoder(UncheckedDecision)


def decode_decisions(values: Sequence[bytes]) -> list[Decision | MalformedError]:
    """Each value as `decode_decision` decodes it: its `Decision`, or the `MalformedError`
    it raises, in order."""
    decoded: list[Decision | MalformedError] = []
    unchecked: list[UncheckedDecision] = []
    for value in values:
        try:
            decision = _unchecked.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # Not even without the patterns: the full decoder's error says why.
            decoded.append(_decode(value))
            continue
        decoded.append(decision)
        unchecked.append(decision)
    if not _patterns_hold(unchecked):
        return [_decode(value) for value in values]
    for decision in unchecked:
        # Checked now: the instance becomes what the full decoder would have built (same
        # members, same layout; CPython refuses the assignment between other layouts).
        cast(Any, decision).__class__ = Decision
    return decoded


def _decode(value: bytes) -> Decision | MalformedError:
    try:
        return decode_decision(value)
    except MalformedError as exc:
        return exc


def _patterns_hold(decisions: Sequence[UncheckedDecision]) -> bool:
    """Whether every value of the five members is one its pattern accepts (a sufficient
    test: False also for some values the patterns accept, which are then decoded again).
    Identifiers' lengths were checked by the decoder."""
    if not decisions:
        return True
    for name, allowed in UNCHECKED_PATTERNS.items():
        values = list(map(attrgetter(name), decisions))
        if allowed is _HEX_DIGITS and set(map(len, values)) != {_SHA256_HEX_LENGTH}:
            return False
        joined = "".join(values)
        # Deleting every allowed byte leaves nothing: one pass over the batch's values.
        if not joined.isascii() or joined.encode("ascii").translate(None, allowed):
            return False
    return True
