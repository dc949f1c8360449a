"""The field types of the JSON evidence formats, and decoding that names the bad field.

Proof files (forensics/proofs.py) and anchor proofs (anchoring/proofs.py) are msgspec Structs
built from the annotated types below. Each kind of field (a hash in hex, an EVM transaction
hash, an account address, a count, base64 bytes) is declared once: msgspec checks its type,
pattern and range on decoding, and its description goes into the published JSON Schema
(docs/schemas/) and into the message that rejects a bad value. docs/ledger-format.md ("Anchor
proofs", "Proof files") says what each member means.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
from msgspec import Meta, inspect

from attestcore.errors import MalformedError

Count = Annotated[int, Meta(ge=0, description="a non-negative integer")]
PositiveCount = Annotated[int, Meta(ge=1, description="a positive integer")]
HashHex = Annotated[
    str,
    Meta(pattern=r"^[0-9a-fA-F]{64}$", description="a string of 64 hex digits (a SHA-256 hash)"),
]
HashList = Annotated[
    list[HashHex], Meta(description="a list of hex hashes (64 hex digits, 32 bytes each)")
]
EvmHash = Annotated[
    str,
    Meta(
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="a string of 0x and 64 hex digits (an EVM transaction or block hash)",
    ),
]
EvmAddress = Annotated[
    str,
    Meta(
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="a string of 0x and 40 hex digits (an EVM account address)",
    ),
]
Base64Bytes = Annotated[bytes, Meta(description="a string of base64 (RFC 4648, padded)")]


class EvidenceFormat(msgspec.Struct, kw_only=True, frozen=True):
    """Base of a JSON evidence format: a Struct whose `format` member names it and its version.
    Unknown members are ignored, so a reader accepts files from a later minor addition."""

    KIND: ClassVar[str]
    """What the format is called in messages ("proof file", "anchor proof")."""


Format = TypeVar("Format", bound=EvidenceFormat)

_LOCATION = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")
_SHOWN = 60
"""Characters of a rejected value quoted in a message (base64 entries run to kilobytes)."""


def decode_evidence(data: object, kind: type[Format]) -> Format:
    """`data` (parsed JSON) as a `kind`; anything that does not fit raises MalformedError
    naming the field, what it must be and what it holds."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise MalformedError(_explain(str(exc), data, kind)) from None


def _explain(message: str, data: object, kind: type[EvidenceFormat]) -> str:
    """msgspec's ValidationError (`<what failed> - at `$.a.b[0]``) in the format's words."""
    match = _LOCATION.match(message)
    text, path = (match["text"], match["path"] or "") if match else (message, "")
    keys: list[str | int] = [name if name else int(index) for name, index in _STEP.findall(path)]
    missing = _MISSING.match(text)
    if missing:
        keys.append(missing["name"])
    field, owner, owner_depth = _field_type(kind, keys)
    found = _value_at(data, keys)
    if keys[-1:] == ["format"] and isinstance(field, inspect.LiteralType):
        where = f"{kind.KIND} field {_dotted(keys[:owner_depth])!r} is " if owner_depth else ""
        return f"{where}not an {field.values[0]} {owner.KIND}: format {found!r}"
    if not keys:
        return f"{kind.KIND} must be a JSON object, got {_shown(data)}"
    if missing:
        return f"{kind.KIND} lacks the field {_dotted(keys)!r}"
    return f"{kind.KIND} field {_dotted(keys)!r} must be {_describe(field)}, got {_shown(found)}"


def _field_type(
    kind: type[EvidenceFormat], keys: list[str | int]
) -> tuple[inspect.Type, type[EvidenceFormat], int]:
    """The declared type at `keys`, the innermost evidence format holding it, and how many
    keys lead to that format."""
    current: inspect.Type = inspect.type_info(kind)
    owner, depth = kind, 0
    for n, key in enumerate(keys):
        current = _bare(current)
        if isinstance(current, inspect.StructType):
            if issubclass(current.cls, EvidenceFormat):
                owner, depth = current.cls, n
            fields = {f.encode_name: f.type for f in current.fields}
            if key not in fields:
                break
            current = fields[str(key)]
        elif isinstance(current, inspect.ListType):
            current = current.item_type
    return current, owner, depth


def _bare(t: inspect.Type) -> inspect.Type:
    """The type without its metadata, and of an optional member the type when present."""
    if isinstance(t, inspect.Metadata):
        return _bare(t.type)
    if isinstance(t, inspect.UnionType):
        present = [u for u in t.types if not isinstance(u, inspect.NoneType)]
        return _bare(present[0]) if len(present) == 1 else t
    return t


def _describe(t: inspect.Type) -> str:
    """What a value of type `t` must be: the type's own description, else its JSON kind."""
    if isinstance(t, inspect.Metadata):
        description = (t.extra_json_schema or {}).get("description")
        return str(description) if description else _describe(t.type)
    if isinstance(t, inspect.UnionType):
        present = [u for u in t.types if not isinstance(u, inspect.NoneType)]
        nullable = len(present) < len(t.types)
        described = " or ".join(_describe(u) for u in present)
        return described + (" or null" if nullable else "")
    names: dict[type[inspect.Type], str] = {
        inspect.StrType: "a string",
        inspect.IntType: "an integer",
        inspect.StructType: "an object",
        inspect.ListType: "a list",
        inspect.BytesType: "a string of base64",
    }
    return names.get(type(t), f"a {type(t).__name__.removesuffix('Type').lower()}")


def _value_at(data: object, keys: list[str | int]) -> Any:
    """The value at `keys` in `data`, None where there is none."""
    for key in keys:
        if isinstance(data, dict) and isinstance(key, str):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def _dotted(keys: list[str | int]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
