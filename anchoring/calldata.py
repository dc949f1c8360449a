"""The anchor: which checkpoints it commits to, its root, and the calldata that carries it.

Anchor root = RFC 6962 Merkle root over the leaf hashes SHA-256(0x00 || note bytes) of each
chain's latest signed checkpoint note, in ascending chain order (docs/ledger-format.md,
"Anchor calldata"). Calldata = MAGIC || VERSION || root: 37 bytes, no contract needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from attestcore.errors import MalformedError
from ledger.merkle import MerkleTree

MAGIC = b"ATST"
VERSION = 1
CALLDATA_LENGTH = len(MAGIC) + 1 + 32


def anchor_root(notes: Sequence[bytes]) -> bytes:
    """The root over checkpoint notes given in chain order."""
    tree = MerkleTree()
    tree.extend(notes)
    return tree.root()


def encode_calldata(root: bytes) -> bytes:
    if len(root) != 32:
        raise ValueError(f"anchor root must be 32 bytes, got {len(root)}")
    return MAGIC + bytes([VERSION]) + root


def decode_calldata(data: bytes) -> bytes:
    """The anchor root carried by a transaction's input; MalformedError if it is not ours."""
    if len(data) != CALLDATA_LENGTH or not data.startswith(MAGIC):
        raise MalformedError(
            f"not attestream anchor calldata: {data[:8].hex()}... ({len(data)} bytes)"
        )
    if data[len(MAGIC)] != VERSION:
        raise MalformedError(f"unknown anchor calldata version {data[len(MAGIC)]}")
    return data[len(MAGIC) + 1 :]
