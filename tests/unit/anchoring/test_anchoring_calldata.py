"""Anchor calldata and anchor root."""

from __future__ import annotations

import hashlib

import pytest

from anchoring.calldata import CALLDATA_LENGTH, anchor_root, decode_calldata, encode_calldata
from attestcore.errors import MalformedError


def test_calldata_round_trip() -> None:
    root = bytes(range(32))
    data = encode_calldata(root)
    assert len(data) == CALLDATA_LENGTH == 37
    assert data[:5] == b"ATST\x01"
    assert decode_calldata(data) == root


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"ATST\x01" + b"\x00" * 31, "not attestream"),
        (b"XTST\x01" + b"\x00" * 32, "not attestream"),
        (b"ATST\x02" + b"\x00" * 32, "version 2"),
        (b"", "not attestream"),
    ],
)
def test_foreign_calldata_is_rejected(data: bytes, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        decode_calldata(data)


def test_anchor_root_is_the_rfc6962_root_over_notes() -> None:
    a, b = b"note a\n", b"note b\n"

    def leaf(note: bytes) -> bytes:
        return hashlib.sha256(b"\x00" + note).digest()

    assert anchor_root([a]) == leaf(a)
    assert anchor_root([a, b]) == hashlib.sha256(b"\x01" + leaf(a) + leaf(b)).digest()
