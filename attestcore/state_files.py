"""Small JSON state files that must survive crashes and never be silently forgotten: the
verifier's trusted state and the ledger signer's state.

A missing file is a first use (the caller gets an empty state); a file that exists but cannot
be read, parsed or is of another format is an error naming it, since forgetting it would
silently trust whatever is shown next. Writes are atomic: a temporary file in the same
directory, fsync, rename over the old one, fsync of the directory, so a reader (or a crash,
or a power loss) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec

from attestcore.errors import ConfigError


class VersionedState(Protocol):
    format: str


S = TypeVar("S", bound=msgspec.Struct)


def read_state(
    path: Path,
    state_type: type[S],
    what: str,
    reset_hint: str,
    error: type[ConfigError] = ConfigError,
) -> S:
    """The state in `path`, or `state_type()` when there is no file yet. `what` names the
    file in errors ("the verifier state file"); `reset_hint` says how to start afresh."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return state_type()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from None
    try:
        state = msgspec.json.decode(content, type=state_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise error(
            f"{what} {path} is malformed ({exc}); restore it from a backup, or {reset_hint}"
        ) from None
    expected = getattr(state_type(), "format", None)
    found = getattr(state, "format", None)
    if found != expected:
        raise error(f"{what} {path} has format {found!r}, expected {expected!r}")
    return state


def write_state(path: Path, state: msgspec.Struct, mode: int) -> None:
    """Write `state` to `path` atomically (see the module doc), as indented JSON with `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.format(msgspec.json.encode(state), indent=2) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        _sync_directory(path.parent)  # the rename itself survives a power loss
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
