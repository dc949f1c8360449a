"""Bearer tokens of the forensic API (`attestream access grant | revoke | list`).

A token is 32 random bytes, shown once (URL-safe base64, prefixed `ast_`) when it is granted;
the file keeps only its SHA-256, with the name and role it was granted to. The file is
`<home>/access-tokens.json` (mode 0600), written atomically (`attestcore.state_files`); the
server reads it again for every request, so a revoked token stops working at once.

Roles: an `investigator` may use every endpoint; an `auditor` may fetch proofs and case
bundles only (docs/operations.md, "The forensic API").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import msgspec

from attestcore.errors import UsageError
from attestcore.state_files import read_state, write_state

TOKENS_FORMAT = "attestream-access-tokens/1"
TOKEN_PREFIX = "ast_"
TOKEN_BYTES = 32
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


class Role(str, Enum):
    INVESTIGATOR = "investigator"
    AUDITOR = "auditor"


class Grant(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    role: Role
    token_sha256: str
    granted_at: datetime


class TokenFile(msgspec.Struct, kw_only=True):
    format: str = TOKENS_FORMAT
    grants: list[Grant] = msgspec.field(default_factory=list)


def tokens_path(home: Path) -> Path:
    return home / "access-tokens.json"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccessTokens:
    """The grants in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> TokenFile:
        return read_state(
            self.path, TokenFile, "the access token file", "revoke and grant every token again"
        )

    def grants(self) -> list[Grant]:
        return self._read().grants

    def grant(self, name: str, role: Role) -> str:
        """A new token for `name` with `role`; returns the token (never stored)."""
        if not _NAME.match(name):
            raise UsageError(f"a token name is 1-64 letters, digits or ._@-, got {name!r}")
        state = self._read()
        if any(g.name == name for g in state.grants):
            raise UsageError(f"{name} holds a token already: revoke it first")
        raw = secrets.token_bytes(TOKEN_BYTES)
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        at = datetime.now(UTC).replace(microsecond=0)
        state.grants.append(
            Grant(name=name, role=role, token_sha256=token_digest(token), granted_at=at)
        )
        write_state(self.path, state, 0o600)
        return token

    def revoke(self, name: str) -> None:
        state = self._read()
        kept = [g for g in state.grants if g.name != name]
        if len(kept) == len(state.grants):
            raise UsageError(f"no token is granted to {name}")
        state.grants = kept
        write_state(self.path, state, 0o600)

    def holder(self, token: str) -> Grant | None:
        """The grant whose token this is (compared in constant time), or None."""
        digest = token_digest(token)
        found = None
        for grant in self.grants():
            if hmac.compare_digest(grant.token_sha256, digest):
                found = grant
        return found
