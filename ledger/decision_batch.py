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
from typing import Annotated, Any, cast, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta

from attestcore.errors import MalformedError
from attestcore.schemas import Decision, Identifier, Sha256Hex
from ledger.entry import decode_decision

_HEX_DIGITS = b"0123456789abcdef"  # Sha256Hex: `^[0-9a-f]{64}$`
_IDENTIFIER_CHARACTERS = (string.ascii_letters + string.digits + "._:-/").encode()
_PATTERN_CHARACTERS = {Sha256Hex: _HEX_DIGITS, Identifier: _IDENTIFIER_CHARACTERS}
"""Each pattern-constrained string type of `Decision`, with the characters it allows."""
_SHA256_HEX_LENGTH = 64


def _without_pattern(alias: Any) -> Any:
    """`Annotated[str, Meta(...)]` with the same constraints but the pattern."""
    meta = get_args(alias)[1]
    return Annotated[str, Meta(min_length=meta.min_length, max_length=meta.max_length)]


def _unchecked_struct() -> tuple[type[Decision], dict[str, bytes]]:
    """`Decision` without its string patterns, derived from it: every member redeclared in
    order (msgspec moves a member a subclass redeclares to the end, and the order is the
    encoding's), the pattern-constrained ones as plain strings of the same lengths; and
    those members with the characters their patterns allow. A pattern type not listed in
    `_PATTERN_CHARACTERS` stops the import: no member goes unchecked unnoticed."""
    hints = get_type_hints(Decision, include_extras=True)
    members: list[Any] = []
    relaxed: dict[str, bytes] = {}
    for field in msgspec.structs.fields(Decision):
        kind = hints[field.name]
        meta = get_args(kind)[1:] if get_origin(kind) is Annotated else ()
        if any(getattr(m, "pattern", None) for m in meta):
            relaxed[field.name] = _PATTERN_CHARACTERS[kind]
            kind = _without_pattern(kind)
        member = (field.name, kind)
        members.append(member if field.required else (*member, field.default))
    unchecked = msgspec.defstruct("UncheckedDecision", members, bases=(Decision,), module=__name__)
    return cast(type[Decision], unchecked), relaxed


UncheckedDecision, UNCHECKED_PATTERNS = _unchecked_struct()
"""The unchecked type (it never leaves this module) and the members it leaves unchecked, with
the characters each may hold."""

_unchecked = msgspec.json.Decoder(UncheckedDecision)


def decode_decisions(values: Sequence[bytes]) -> list[Decision | MalformedError]:
    """Each value as `decode_decision` decodes it: its `Decision`, or the `MalformedError`
    it raises, in order."""
    decoded: list[Decision | MalformedError] = []
    unchecked: list[Decision] = []  # UncheckedDecision instances
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


def _patterns_hold(decisions: Sequence[Decision]) -> bool:
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
