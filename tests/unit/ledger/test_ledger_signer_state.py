"""The signer state file (ledger.signer_state): what the sequencer remembers signing survives a
round trip, is written atomically, and a file that cannot be read is an error, not a reset."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ledger.signer_state import SignerStateError, SignerStateFile

KEY = "attestream.test/ledger+0a1b2c3d"


def test_the_last_checkpoint_of_each_origin_round_trips(tmp_path: Path) -> None:
    state = SignerStateFile(tmp_path / "keys" / "ledger.state.json")
    assert not state.exists() and state.last("o/0", KEY) is None  # first use: nothing known
    state.record("o/0", KEY, 0, 10, b"\x01" * 32)
    state.record("o/1", KEY, 1, 4, b"\x02" * 32)
    state.record("o/0", KEY, 0, 25, b"\x03" * 32)
    again = SignerStateFile(state.path)
    first, second = again.last("o/0", KEY), again.last("o/1", KEY)
    assert first is not None and (first.chain, first.size, first.root_hash) == (0, 25, b"\x03" * 32)
    assert second is not None and (second.size, second.root_hash) == (4, b"\x02" * 32)
    assert again.last("o/0", "another+00000000") is None
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600


def test_a_write_that_fails_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = SignerStateFile(tmp_path / "ledger.state.json")
    state.record("o/0", KEY, 0, 10, b"\x01" * 32)
    before = state.path.read_bytes()

    def power_loss(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", power_loss)
    with pytest.raises(SignerStateError, match="cannot write .* disk gone"):
        state.record("o/0", KEY, 0, 20, b"\x02" * 32)
    assert state.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "ledger.state.json"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is malformed"),
        (b'{"format": "other/9", "heads": []}', "has format"),
        (b'{"format": "attestream-signer-state/1", "heads": [{"origin": 1}]}', "is malformed"),
    ],
)
def test_a_corrupt_file_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "ledger.state.json"
    path.write_bytes(content)
    state = SignerStateFile(path)
    with pytest.raises(SignerStateError, match=message) as raised:
        state.last("o/0", KEY)
    assert str(path) in str(raised.value)
    with pytest.raises(SignerStateError):  # and it is never overwritten by a new record
        state.record("o/0", KEY, 0, 1, b"\x01" * 32)
    assert path.read_bytes() == content
