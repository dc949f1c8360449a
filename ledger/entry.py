"""Ledger entries: the exact bytes that are stored, hashed and proven.

"Hash what you store, store what you hash": an entry is encoded once, by the sequencer, as
JSON with sorted keys and no insignificant white space. Verifiers never re-encode an entry;
they hash the stored bytes (RFC 9162 section 2.1.1 leaf hash) and parse them only to check
the chain link and the searchable columns. See docs/ledger-format.md, "Entries".
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from attestream.errors import MalformedError
from streams.schemas import Decision

ENTRY_VERSION = 1
GENESIS_PREV = "00" * 32
"""The `prev` of a chain's first entry: 32 zero bytes, hex."""


class EntrySource(Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the sequencer read the decision: cluster id, topic, partition, offset."""

    cluster: str
    topic: str
    partition: Annotated[int, Meta(ge=0)]
    offset: Annotated[int, Meta(ge=0)]


class Entry(Struct, kw_only=True, forbid_unknown_fields=True):
    """One position in one chain."""

    v: int
    chain: Annotated[int, Meta(ge=0)]
    seq: Annotated[int, Meta(ge=0)]
    prev: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    source: EntrySource
    decision: Decision


_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(Entry)
_decision_decoder = msgspec.json.Decoder(Decision)


def encode_entry(entry: Entry) -> bytes:
    """Canonical bytes: UTF-8 JSON, keys sorted, no spaces."""
    return _encoder.encode(entry)


def decode_entry(data: bytes) -> Entry:
    """Parse stored entry bytes; anything else raises MalformedError."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedError(f"not a ledger entry: {exc}") from exc


def decode_decision(data: bytes) -> Decision:
    """Parse a decision as read from the decisions topic; raises MalformedError."""
    try:
        return _decision_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedError(f"not a decision: {exc}") from exc
