"""Ed25519 keys for C2SP signed notes: signers, verifiers, key ids and the key file.

The key strings are those of the C2SP signed-note ecosystem (as in golang.org/x/mod/sumdb/note),
so other tools can read them:

* key id: the first 4 bytes, as a big-endian uint32, of
  SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key) (c2sp.org/signed-note,
  "Ed25519 signatures"; 0x01 is the Ed25519 signature type).
* verifier key (public, handed to verifiers):
  ``<name>+<key id as 8 lowercase hex digits>+<base64(0x01 || 32-byte public key)>``
* signer key (secret), which is also the whole content of a key file, plus a newline:
  ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte Ed25519 seed)>``
  (the seed is the RFC 8032 private key). Key files are created with mode 0600 and never
  overwritten. `load_signer` takes either such a file's path or the key string itself (for a
  value passed through an environment variable).

Key names are non-empty and contain neither Unicode spaces nor "+" (c2sp.org/signed-note).
Bad key strings and files are configuration errors (`ConfigError`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from attestcore.errors import ConfigError, SignatureError

ED25519_TYPE = 0x01
"""Signature type byte of Ed25519 in c2sp.org/signed-note."""
ED25519_KEY_SIZE = 32
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"


def is_valid_key_name(name: str) -> bool:
    """c2sp.org/signed-note: key names are non-empty, without Unicode spaces or "+"."""
    return bool(name) and "+" not in name and not any(char.isspace() for char in name)


def key_id(name: str, public_key: bytes) -> int:
    """c2sp.org/signed-note: SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_TYPE]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted public key: its name, key id and raw 32-byte Ed25519 public key."""

    name: str
    key_id: int
    public_key: bytes

    def __post_init__(self) -> None:
        _checked_name(self.name)
        if len(self.public_key) != ED25519_KEY_SIZE:
            raise ConfigError(f"an Ed25519 public key has 32 bytes, got {len(self.public_key)}")

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise `SignatureError` unless `signature` is this key's signature of `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            raise SignatureError(
                f"signature by {self.name}+{self.key_id:08x} does not verify"
            ) from None


@dataclass(frozen=True)
class NoteSigner:
    """A secret signing key and the key name it signs under."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte RFC 8032 Ed25519 signature of `message`."""
        return self.private_key.sign(message)

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, self.public_key)


def generate_signer(name: str) -> NoteSigner:
    """A new random Ed25519 key named `name`."""
    return NoteSigner(_checked_name(name), Ed25519PrivateKey.generate())


def signer_from_seed(name: str, seed: bytes) -> NoteSigner:
    """The key whose RFC 8032 32-byte private key (seed) is `seed`."""
    if len(seed) != ED25519_KEY_SIZE:
        raise ConfigError(f"an Ed25519 seed has {ED25519_KEY_SIZE} bytes, got {len(seed)}")
    return NoteSigner(_checked_name(name), Ed25519PrivateKey.from_private_bytes(seed))


def signer_key_string(signer: NoteSigner) -> str:
    """``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>``: secret, keep it so."""
    seed = signer.private_key.private_bytes_raw()
    encoded = base64.b64encode(bytes([ED25519_TYPE]) + seed).decode()
    return f"{PRIVATE_KEY_PREFIX}{signer.name}+{signer.key_id:08x}+{encoded}"


def verifier_key_string(key: NoteSigner | NoteVerifier) -> str:
    """``<name>+<key id hex>+<base64(0x01 || public key)>``, for verifiers to trust."""
    encoded = base64.b64encode(bytes([ED25519_TYPE]) + key.public_key).decode()
    return f"{key.name}+{key.key_id:08x}+{encoded}"


def parse_verifier_key(text: str) -> NoteVerifier:
    """Read a verifier key string; the key id must match the name and key."""
    name, key_hex, key_data = _split_key(text.strip(), 3, "verifier key")
    public_key = _decode_key_data(key_data, "verifier key")
    verifier = NoteVerifier(name, key_hex, public_key)
    if key_id(name, public_key) != key_hex:
        raise ConfigError(f"verifier key {name}+{key_hex:08x}: key id does not match the key")
    return verifier


def parse_signer_key(text: str) -> NoteSigner:
    """Read a signer key string; the key id must match the name and derived public key."""
    text = text.strip()
    if not text.startswith(PRIVATE_KEY_PREFIX):
        raise ConfigError(f"a signer key starts with {PRIVATE_KEY_PREFIX!r}")
    name, key_hex, key_data = _split_key(text[len(PRIVATE_KEY_PREFIX) :], 3, "signer key")
    signer = signer_from_seed(name, _decode_key_data(key_data, "signer key"))
    if signer.key_id != key_hex:
        raise ConfigError(f"signer key {name}+{key_hex:08x}: key id does not match the key")
    return signer


def save_signer(signer: NoteSigner, path: str | os.PathLike[str]) -> None:
    """Write a new key file with mode 0600; refuse to replace an existing file.

    The key is written to a temporary file first and then hard-linked into place, so a
    crash never leaves a half-written key file and two writers cannot both win.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, (signer_key_string(signer) + "\n").encode())
        os.fsync(descriptor)
        os.close(descriptor)
        os.link(temporary, target)
    except FileExistsError:
        raise ConfigError(f"key file {target} already exists; it is never overwritten") from None
    finally:
        temporary.unlink(missing_ok=True)


def load_signer(path_or_key: str | os.PathLike[str]) -> NoteSigner:
    """A signer from a key file path, or from the key string itself (environment value)."""
    if isinstance(path_or_key, str) and path_or_key.strip().startswith(PRIVATE_KEY_PREFIX):
        return parse_signer_key(path_or_key)
    path = Path(path_or_key)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"signing key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"signing key file {path} cannot be read: {error}") from None
    try:
        return parse_signer_key(text)
    except ConfigError as error:
        raise ConfigError(f"signing key file {path}: {error}") from None


def _checked_name(name: str) -> str:
    if not is_valid_key_name(name):
        raise ConfigError(f"invalid key name {name!r}: it must be non-empty, no spaces or '+'")
    return name


def _split_key(text: str, parts: int, what: str) -> tuple[str, int, str]:
    # The base64 key data may itself contain "+", so split at most parts - 1 times.
    fields = text.split("+", parts - 1)
    if len(fields) != parts or not re.fullmatch("[0-9a-fA-F]{8}", fields[1]):
        raise ConfigError(f"malformed {what}: want <name>+<8 hex digits>+<base64 key>")
    name, key_hex, key_data = fields
    return _checked_name(name), int(key_hex, 16), key_data


def _decode_key_data(key_data: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(key_data, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"malformed {what}: key data is not base64") from None
    if len(raw) != 1 + ED25519_KEY_SIZE or raw[0] != ED25519_TYPE:
        raise ConfigError(f"{what}: only Ed25519 keys (type 0x01 and 32 bytes) are supported")
    return raw[1:]
