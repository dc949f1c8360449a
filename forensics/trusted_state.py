"""What a verifier remembers: the last checkpoint it verified, per log origin, key and chain.

A verifier that trusts only what the database shows today can be shown a rebuilt history: a
shorter chain, or one with a changed entry and every hash recomputed. Transparency-log clients
therefore keep the last checkpoint they verified and demand, on every later run, that the log
is consistent with it (RFC 9162 2.1.4). This module is that memory: a small JSON file
(format `attestream-verifier-state/1`, the `TrustedState` Struct) and the comparison of a
newly verified checkpoint with the remembered one.

The file is keyed by log origin, signing key and chain, because one verifier may check many
ledgers (other databases of the same origin, other keys). It is written atomically (a
temporary file in the same directory, then a rename) with mode 0600, and only after a
verification succeeded: a failed run never moves what the verifier trusts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from attestcore.errors import AttestreamError, HistoryConflictError
from attestcore.state_files import read_state, write_state
from ledger.keys import NoteVerifier
from ledger.merkle import RootHash, verify_consistency
from ledger.note import Checkpoint, open_note

STATE_FORMAT = "attestream-verifier-state/1"
STATE_FILE_MODE = 0o600
"""Only its owner may change what a verifier trusts."""


class RememberedCheckpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The last checkpoint a verifier verified for one (origin, key, chain)."""

    origin: str
    key: str
    """The signing key(s) that signed it, as `name+keyid` (comma separated when several)."""
    chain: int
    size: int
    root: str
    """Hex of the checkpoint's root hash."""
    note: str
    """The signed checkpoint note, verbatim: evidence the verifier can hand to others."""
    verified_at: str
    """When it was verified (ISO 8601, UTC)."""
    verified_by: str
    """The command that verified it (`forensic verify` or `forensic verify-proof`)."""

    @property
    def root_hash(self) -> RootHash:
        return RootHash(bytes.fromhex(self.root))


class TrustedState(msgspec.Struct, forbid_unknown_fields=True):
    format: str = STATE_FORMAT
    checkpoints: list[RememberedCheckpoint] = msgspec.field(default_factory=list)

    def remembered(self, origin: str, key: str, chain: int) -> RememberedCheckpoint | None:
        for cp in self.checkpoints:
            if (cp.origin, cp.key, cp.chain) == (origin, key, chain):
                return cp
        return None

    def remember(self, checkpoint: RememberedCheckpoint) -> None:
        """Replace the record of the same (origin, key, chain), or add one."""
        same = (checkpoint.origin, checkpoint.key, checkpoint.chain)
        self.checkpoints = [cp for cp in self.checkpoints if (cp.origin, cp.key, cp.chain) != same]
        self.checkpoints.append(checkpoint)


def load_state(path: Path) -> TrustedState:
    """The state in `path`; an empty one when the file does not exist yet (first use). A file
    that exists but cannot be read or parsed is a ConfigError naming it: a verifier must not
    silently forget what it trusted."""
    return read_state(
        path,
        TrustedState,
        "the verifier state file",
        "move it away to trust the ledger anew on the next run",
    )


def save_state(path: Path, state: TrustedState) -> None:
    """Write `state` to `path` atomically (`attestcore.state_files`)."""
    write_state(path, state, STATE_FILE_MODE)


@dataclass(frozen=True)
class SeenCheckpoint:
    """A verified checkpoint note: what it says and which trusted keys signed it."""

    chain: int
    checkpoint: Checkpoint
    key: str
    note: bytes

    def record(self, verified_by: str) -> RememberedCheckpoint:
        cp = self.checkpoint
        return RememberedCheckpoint(
            cp.origin,
            self.key,
            self.chain,
            cp.size,
            cp.root.hex(),
            self.note.decode("utf-8"),
            datetime.now(UTC).isoformat(timespec="seconds"),
            verified_by,
        )


def seen_checkpoint(chain: int, note: bytes, verifiers: Sequence[NoteVerifier]) -> SeenCheckpoint:
    """Open `note` with the trusted keys; raises as `open_note` does."""
    checkpoint = Checkpoint.parse(open_note(note, verifiers).body)
    return SeenCheckpoint(chain, checkpoint, signing_keys(note, verifiers), note)


def signing_keys(note: bytes, verifiers: Sequence[NoteVerifier]) -> str:
    """`name+keyid` of every trusted key whose signature on `note` verifies, sorted."""
    keys = set()
    for verifier in verifiers:
        try:
            open_note(note, [verifier])
        except AttestreamError:
            continue
        keys.add(f"{verifier.name}+{verifier.key_id:08x}")
    return ",".join(sorted(keys))


def check_against(
    remembered: RememberedCheckpoint, seen: Checkpoint, consistency: Sequence[bytes] | None
) -> None:
    """Raise HistoryConflictError unless `seen` extends `remembered`: a smaller size is
    `tree_shrunk`, another root at the same size `fork`, and a consistency proof (RFC 9162
    2.1.4.2) from the remembered size that fails `inconsistent`. A larger size needs
    `consistency`; the caller decides what None means."""
    old_size, old_root = remembered.size, remembered.root_hash
    where = f"chain {remembered.chain} of {remembered.origin}"
    if seen.size < old_size:
        raise HistoryConflictError(
            "tree_shrunk",
            f"{where} has {seen.size} entries, but a checkpoint of size {old_size} was verified"
            f" on {remembered.verified_at}",
        )
    if seen.size == old_size:
        if seen.root != old_root:
            raise HistoryConflictError(
                "fork",
                f"{where} at size {old_size} has root {seen.root.hex()}, but root"
                f" {remembered.root} was verified on {remembered.verified_at}",
            )
        return
    if consistency is None:
        return
    try:
        verify_consistency(old_size, seen.size, consistency, old_root, seen.root)
    except (AttestreamError, ValueError) as exc:
        raise HistoryConflictError(
            "inconsistent",
            f"{where} of size {seen.size} is not an extension of the size {old_size} verified"
            f" on {remembered.verified_at}: {exc}",
        ) from None
