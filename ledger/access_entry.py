"""Access entries: the records of who asked the forensic API what, in the ledger's access chain.

Every request to `attestream serve` (allowed or denied) becomes one entry of a dedicated
chain, `ACCESS_CHAIN`, hashed, tree-noded and signed exactly like a decision chain, so
`attestream forensic verify` checks it and the anchor service anchors it with the others. No
partition of the decisions topic has that number: Kafka partitions are int32, the chain is
the largest UInt32 (docs/ledger-format.md, "Access entries").

An access entry is compact JSON with its members in sorted order:

    {"access":{...},"chain":4294967295,"kind":"access","prev":"<hex>","seq":N,"v":1}

`kind` names the entry kind (a decision entry has none), `v` its version. The access record's
members are in schema order (`AccessRecord`). Its searchable columns in `entries` are filled
from the record (`access_columns`) and verification checks them against the bytes, as for a
decision. Pure: no storage client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from attestcore.errors import MalformedError
from attestcore.records import ENTRY_COLUMNS
from attestcore.schemas import AwareTime

ACCESS_CHAIN = 0xFFFF_FFFF
"""The access chain's number: the largest UInt32 (the `chain` column's type), beyond every
Kafka partition number (int32), so no decisions partition is ever sequenced into it."""
ACCESS_KIND = "access"
ACCESS_ENTRY_VERSION = 1
ACCESS_DETECTOR = "access"
"""The `detector` column of an access entry, so a query for a detector never selects one."""

_ACCESS_LAYOUT = b'{"access":%b,"chain":%d,"kind":"access","prev":%b,"seq":%d,"v":%d}'


class AccessRecord(Struct, kw_only=True, forbid_unknown_fields=True):
    """One request to the forensic API, as the access chain records it."""

    request_id: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]
    """A random id (16 bytes, hex): the entry's `decision_id` column."""
    at: AwareTime
    """When the request arrived (whole seconds, UTC)."""
    principal: str
    """The name of the token (`attestream access grant NAME`); "" when none was valid."""
    role: str
    """The token's role (`investigator`, `auditor`); "" when none was valid."""
    operation: str
    """The API operation (`decision`, `explain`, `prove`, `bundle`, `search`)."""
    filters: dict[str, str]
    """The request's parameters as sent (ids, query terms), truncated (`MAX_FILTER_CHARS`)."""
    status: int
    """The HTTP status answered."""
    results: int
    """How many decisions the answer holds (0 when denied or failed)."""
    outcome: str
    """`allowed`, `denied` (no token, bad token or role: 401/403) or `failed` (other errors)."""


class AccessEntry(Struct, kw_only=True, forbid_unknown_fields=True):
    """One position in the access chain."""

    v: int
    kind: str
    chain: Annotated[int, Meta(ge=0)]
    seq: Annotated[int, Meta(ge=0)]
    prev: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    access: AccessRecord


MAX_FILTER_CHARS = 512
"""A recorded parameter value is cut to this many characters: an entry stays small whatever a
client sends (a query string is capped far below by the server anyway)."""

_json = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AccessEntry)


def encode_access_entry(chain: int, seq: int, prev_hex: str, record: AccessRecord) -> bytes:
    """The access entry's canonical bytes (see the module doc)."""
    return _ACCESS_LAYOUT % (
        _json.encode(record),
        chain,
        _json.encode(prev_hex),
        seq,
        ACCESS_ENTRY_VERSION,
    )


def decode_access_entry(data: bytes) -> AccessEntry:
    """Parse stored access-entry bytes; anything else raises MalformedError."""
    try:
        entry = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedError(f"not an access entry: {exc}") from exc
    if entry.kind != ACCESS_KIND or entry.v != ACCESS_ENTRY_VERSION:
        raise MalformedError(f"not an access entry: kind {entry.kind!r} version {entry.v}")
    if encode_access_entry(entry.chain, entry.seq, entry.prev, entry.access) != data:
        raise MalformedError("not an access entry: its bytes are not in canonical form")
    return entry


def access_record_columns(record: AccessRecord) -> dict[str, Any]:
    """The searchable columns an access entry's record fills (checked by verification)."""
    return {
        "decision_id": record.request_id,
        "event_id": "",
        "entity_id": record.principal,
        "detector": ACCESS_DETECTOR,
        "outcome": record.outcome,
        "score": 0.0,
        "model_sha256": "",
        "event_time": record.at,
        "decided_at": record.at,
        "source_cluster": "",
        "source_topic": "",
        "source_partition": 0,
        "source_offset": 0,
    }


def access_entries(
    chain: int,
    first_seq: int,
    prev_hex: str,
    records: Sequence[AccessRecord],
    logged_at: datetime,
) -> tuple[list[bytes], list[bytes], dict[str, list[Any]]]:
    """Entry bytes, leaf hashes (RFC 9162 2.1.1) and `entries` columns of access records
    appended at `first_seq` after the leaf `prev_hex`, each linked to the last."""
    data: list[bytes] = []
    leaves: list[bytes] = []
    columns: dict[str, list[Any]] = {name: [] for name in ENTRY_COLUMNS}
    prev = prev_hex
    for offset, record in enumerate(records):
        entry = encode_access_entry(chain, first_seq + offset, prev, record)
        leaf = hashlib.sha256(b"\x00" + entry).digest()
        row = {
            "chain": chain,
            "seq": first_seq + offset,
            "leaf_hash": leaf.hex(),
            "prev": prev,
            "entry": entry,
            "logged_at": logged_at,
            **access_record_columns(record),
        }
        for name in ENTRY_COLUMNS:
            columns[name].append(row[name])
        data.append(entry)
        leaves.append(leaf)
        prev = leaf.hex()
    return data, leaves, columns
