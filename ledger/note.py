"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

A signed note is UTF-8 text without control characters other than newline: the note text
(ending in a newline), a blank line, then one or more signature lines
``— <key name> <base64(4-byte big-endian key id || 64-byte Ed25519 signature)>\\n``, where the
signature is over the note text exactly (its final newline included, the blank line not).

A checkpoint is a note text of at least three non-empty lines: the origin (the log's name),
the tree size in decimal without leading zeros, the base64 RFC 6962 root hash, then optional
non-empty extension lines.

Opening a note follows the spec: signatures by keys that are not trusted (name and key id
both match) are ignored; a trusted key's signature that fails to verify rejects the whole
note (`SignatureError`); so does a note that no trusted key signed. Input that does not parse
is a `MalformedError`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from attestcore.errors import ConfigError, MalformedError, SignatureError, VerificationError
from ledger.keys import NoteSigner, NoteVerifier, is_valid_key_name
from ledger.merkle import HASH_SIZE, RootHash

SIGNATURE_PREFIX = "\u2014 "
"""Em dash (U+2014) and a space: how every signature line starts."""
MAX_SIGNATURES = 100
"""The spec asks verifiers to accept at least 16 and to bound the count, so a hostile note
cannot make us parse and verify without end; a checkpoint carries one or two."""
_CONTROL_CHARACTERS = re.compile("[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile("0|[1-9][0-9]*")


class OpenedNote(NamedTuple):
    """The verified note text and the names of the trusted keys whose signatures verified."""

    body: bytes
    signed_by: list[str]


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: which log (origin), how many leaves, which root (c2sp.org/tlog-checkpoint)."""

    origin: str
    size: int
    root: RootHash
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for line in (self.origin, *self.extensions):
            if not line or "\n" in line or _CONTROL_CHARACTERS.search(line):
                raise MalformedError(f"checkpoint line {line!r} is empty or has control chars")
        if self.size < 0:
            raise MalformedError(f"checkpoint tree size {self.size} is negative")
        if len(self.root) != HASH_SIZE:
            raise MalformedError(f"checkpoint root has {len(self.root)} bytes, not {HASH_SIZE}")

    def body(self) -> bytes:
        """The note text: origin, size, base64 root and extension lines, each ending in \\n."""
        root = base64.b64encode(self.root).decode()
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(f"{line}\n" for line in lines).encode()

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Read a checkpoint note text; only the canonical form (what `body` writes) parses."""
        text = _decode_note_text(body, "checkpoint")
        lines = text[:-1].split("\n") if text.endswith("\n") else []
        if len(lines) < 3 or not all(lines):
            raise MalformedError("a checkpoint is at least 3 non-empty lines, each ending in \\n")
        origin, size, root, *extensions = lines
        if not _TREE_SIZE.fullmatch(size):
            raise MalformedError(f"checkpoint tree size {size!r} is not a canonical decimal")
        root_hash = RootHash(_decode_base64(root, "checkpoint root"))
        checkpoint = cls(origin, int(size), root_hash, tuple(extensions))
        if checkpoint.body() != body:
            raise MalformedError(f"checkpoint root {root!r} is not canonical base64")
        return checkpoint


def sign_note(body: bytes, *signers: NoteSigner) -> bytes:
    """The signed note: `body`, a blank line, one signature line per signer."""
    text = _decode_note_text(body, "note text")
    if not text.endswith("\n"):
        raise MalformedError("a note text must end with a newline")
    if not signers:
        raise ConfigError("a signed note needs at least one signer")
    lines = []
    for signer in signers:
        signature = signer.key_id.to_bytes(4, "big") + signer.sign(body)
        lines.append(f"{SIGNATURE_PREFIX}{signer.name} {base64.b64encode(signature).decode()}\n")
    return body + b"\n" + "".join(lines).encode()


def open_note(note: bytes, trusted: Iterable[NoteVerifier]) -> OpenedNote:
    """Check `note` against the trusted keys; return its text and who signed it.

    Several trusted keys may be given at once (key rotation, or log key plus witnesses).
    """
    verifiers = _index_verifiers(trusted)
    text = _decode_note_text(note, "signed note")
    # The text is separated from the signatures by the last blank line.
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise MalformedError("a signed note is text, a blank line, then signature lines")
    body, signature_lines = text[: split + 1], text[split + 2 : -1].split("\n")
    if len(signature_lines) > MAX_SIGNATURES:
        raise MalformedError(f"more than {MAX_SIGNATURES} signatures on one note")
    body_bytes = body.encode()
    verified: dict[tuple[str, int], str] = {}
    present: list[str] = []
    for line in signature_lines:
        name, signer_id, signature = _parse_signature_line(line)
        present.append(f"{name}+{signer_id:08x}")
        verifier = verifiers.get((name, signer_id))
        if verifier is None or (name, signer_id) in verified:
            continue  # unknown keys are ignored (spec); a repeated key is checked once
        verifier.verify(body_bytes, signature)
        verified[(name, signer_id)] = name
    signed_by = list(dict.fromkeys(verified.values()))
    if not signed_by:
        known = ", ".join(f"{v.name}+{v.key_id:08x}" for v in verifiers.values()) or "none"
        raise SignatureError(
            f"no trusted key signed this note: it is signed by {', '.join(present)};"
            f" trusted keys: {known}"
        )
    return OpenedNote(body_bytes, signed_by)


def sign_checkpoint(checkpoint: Checkpoint, *signers: NoteSigner) -> bytes:
    """The signed note of a checkpoint."""
    return sign_note(checkpoint.body(), *signers)


def open_checkpoint(
    note: bytes, trusted: Iterable[NoteVerifier], origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and parse it; with `origin`, it must be that log's."""
    checkpoint = Checkpoint.parse(open_note(note, trusted).body)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


def _index_verifiers(trusted: Iterable[NoteVerifier]) -> dict[tuple[str, int], NoteVerifier]:
    verifiers: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in trusted:
        known = verifiers.setdefault((verifier.name, verifier.key_id), verifier)
        if known.public_key != verifier.public_key:
            raise ConfigError(
                f"two trusted keys share the name and key id {verifier.name}+{verifier.key_id:08x}"
            )
    return verifiers


def _parse_signature_line(line: str) -> tuple[str, int, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedError(f"signature line {line[:40]!r} does not start with an em dash")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not is_valid_key_name(name):
        raise MalformedError(f"signature line has an invalid key name {name!r}")
    raw = _decode_base64(encoded, f"signature by {name}")
    if len(raw) < 5:
        raise MalformedError(f"signature by {name} is {len(raw)} bytes: no room for a key id")
    return name, int.from_bytes(raw[:4], "big"), raw[4:]


def _decode_note_text(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"{what} is not valid UTF-8") from None
    if _CONTROL_CHARACTERS.search(text):
        raise MalformedError(f"{what} has control characters other than newline")
    return text


def _decode_base64(encoded: str, what: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError(f"{what} is not valid base64: {encoded[:60]!r}") from None
