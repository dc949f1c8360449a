"""Ledger entries: the exact bytes that are stored, hashed and proven.

"Hash what you store, store what you hash": an entry is encoded once, by the sequencer, and
never re-encoded. Verifiers hash the stored bytes (RFC 9162 section 2.1.1 leaf hash) and parse
them only to check the chain link and the searchable columns. See docs/ledger-format.md,
"Entries".

The encoding is compact JSON: the entry's own members in sorted order (`chain`, `decision`,
`prev`, `seq`, `source`, `v`; `source`'s members sorted too), and the decision as msgspec
encodes a validated `Decision`, members in schema order. The sequencer encodes each decision
once, unsorted, into a reused buffer and formats the entry around it with a byte template
whose shared members are filled in once per batch: 1.7 µs for a typical 1.4 kB entry, where
a sorted encoding of the whole `Entry` took 2.5 µs (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from attestcore.errors import MalformedError
from attestcore.schemas import Decision

ENTRY_VERSION = 2
"""The format of entries whose decision carries its event's investigation fields
(`Decision.context`); a decision without them is logged as a version 1 entry, byte for byte
as before they existed, so every format-1 entry, proof and worked example stays valid."""
ENTRY_VERSION_1 = 1
GENESIS_PREV = "00" * 32
"""The `prev` of a chain's first entry: 32 zero bytes, hex."""

_ENTRY_LAYOUT = (
    b'{"chain":%d,"decision":%%b,"prev":%%b,"seq":%%d,'
    b'"source":{"cluster":%b,"offset":%%d,"partition":%d,"topic":%b},"v":%d}'
)
"""The entry's members in sorted order, in two stages: `entry_format` fills in what a run of
entries shares (chain, cluster, partition, topic, version); the format it returns takes the
decision, `prev` (both JSON texts), `seq` and the source offset."""


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


_json = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Entry)
_decision_decoder = msgspec.json.Decoder(Decision)


def json_text(value: str) -> bytes:
    """A string as a JSON text (quoted and escaped), for a `%b` slot of ENTRY_TEMPLATE."""
    return _json.encode(value)


def entry_version(decision: Decision) -> int:
    """The entry format a decision is logged in: 2 with investigation fields, else 1."""
    return ENTRY_VERSION_1 if decision.context is None else ENTRY_VERSION


def encode_decision(decision: Decision) -> bytes:
    """The decision's bytes inside an entry: compact JSON, members in schema order."""
    return _json.encode(decision)


def encode_decision_into(decision: Decision, buffer: bytearray) -> None:
    """`encode_decision` into a reused buffer (no new bytes object per entry)."""
    _json.encode_into(decision, buffer)


def entry_format(chain: int, cluster: str, topic: str, partition: int, version: int) -> bytes:
    """The %-format of the entries that share these members; it takes
    `(decision JSON, prev JSON, seq, offset)` and yields an entry's canonical bytes."""
    cluster_text = json_text(cluster).replace(b"%", b"%%")
    topic_text = json_text(topic).replace(b"%", b"%%")
    return _ENTRY_LAYOUT % (chain, cluster_text, partition, topic_text, version)


def encode_entry(entry: Entry) -> bytes:
    """The entry's canonical bytes (see the module doc and docs/ledger-format.md)."""
    s = entry.source
    layout = entry_format(entry.chain, s.cluster, s.topic, s.partition, entry.v)
    return layout % (encode_decision(entry.decision), json_text(entry.prev), entry.seq, s.offset)


def decode_entry(data: bytes) -> Entry:
    """Parse stored entry bytes; anything else raises MalformedError, and so does an entry
    whose version is not its decision's (v1: no `context`, v2: a `context`)."""
    try:
        entry = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedError(f"not a ledger entry: {exc}") from exc
    if entry.v != entry_version(entry.decision):
        shape = "without" if entry.decision.context is None else "with"
        raise MalformedError(
            f"not a ledger entry: format version {entry.v} for a decision {shape}"
            f" investigation fields (those are format {entry_version(entry.decision)})"
        )
    return entry


def decode_decision(data: bytes) -> Decision:
    """Parse a decision as read from the decisions topic; raises MalformedError."""
    try:
        return _decision_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedError(f"not a decision: {exc}") from exc
