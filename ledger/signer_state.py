"""What the ledger signer remembers: the last checkpoint it signed, per origin and key.

The database is not the only record of what the sequencer signed: anyone who may write to it
can delete checkpoint rows and rebuild the entries behind them. So every checkpoint the
sequencer stores (step 2, and R4 on assignment) is also written to a small local file next to
its signing key (format `attestream-signer-state/1`, the `SignerState` Struct). On the next
assignment the stored chain must still hold that tree (`ledger.trust`).

The file is rewritten atomically (a temporary file in the same directory, fsync, rename) with
mode 0600, under an exclusive lock, so sequencers on one machine that share it never lose each
other's chains. Several machines may share one key, each with its own file: a file that is
behind the store is fine, since the store's tree must only still contain what it says.
A missing file means trust on first use; a file that cannot be read is an error, never
silently forgotten (moving it aside is the explicit reset, docs/operations.md).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from attestcore.errors import ConfigError
from attestcore.state_files import read_state, write_state

STATE_FORMAT = "attestream-signer-state/1"
STATE_FILE_MODE = 0o600
"""Only the sequencer's user may change what it vouches for."""


class SignerStateError(ConfigError):
    """The signer state file exists but cannot be read or parsed."""

    kind = "signer_state"


class SignedHead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The last checkpoint this signer stored for one (origin, key)."""

    origin: str
    key: str
    """The signing key as `name+keyid`."""
    chain: int
    size: int
    root: str
    """Hex of the checkpoint's root hash."""
    signed_at: str
    """When it was signed (ISO 8601, UTC)."""

    @property
    def root_hash(self) -> bytes:
        return bytes.fromhex(self.root)


class SignerState(msgspec.Struct, forbid_unknown_fields=True):
    format: str = STATE_FORMAT
    heads: list[SignedHead] = msgspec.field(default_factory=list)

    def last(self, origin: str, key: str) -> SignedHead | None:
        return next((h for h in self.heads if (h.origin, h.key) == (origin, key)), None)

    def record(self, head: SignedHead) -> None:
        """Replace the record of the same (origin, key), or add one."""
        self.heads = [h for h in self.heads if (h.origin, h.key) != (head.origin, head.key)]
        self.heads.append(head)


class SignerStateFile:
    """The state file at `path` (see the module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> SignerState:
        """The state; an empty one when the file does not exist (first use)."""
        return read_state(
            self.path,
            SignerState,
            "the signer state file",
            "move it aside to trust the stored ledger anew (docs/operations.md)",
            SignerStateError,
        )

    def last(self, origin: str, key: str) -> SignedHead | None:
        return self.load().last(origin, key)

    def record(self, origin: str, key: str, chain: int, size: int, root: bytes) -> None:
        """Remember a checkpoint just stored: read, replace, write, under the lock."""
        signed_at = datetime.now(UTC).replace(microsecond=0).isoformat()
        head = SignedHead(origin, key, chain, size, root.hex(), signed_at)
        with self._locked():
            state = self.load()
            state.record(head)
            try:
                self._save(state)
            except OSError as exc:
                raise SignerStateError(
                    f"cannot write the signer state file {self.path}: {exc}"
                ) from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, STATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _save(self, state: SignerState) -> None:
        write_state(self.path, state, STATE_FILE_MODE)
