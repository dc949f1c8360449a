"""The verifier's trusted state: the file (round trip, atomic write, a malformed file), and
every way a checkpoint can disagree with the remembered one, one broken case each."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from factories import incoming
from memory_ledger import SIGNER, STRANGER, MemoryLedger, build, checkpoint, rows_of

from attestcore.errors import ConfigError, HistoryConflictError
from forensics.report import Report
from forensics.trusted_state import (
    SeenCheckpoint,
    TrustedState,
    check_against,
    load_state,
    save_state,
    seen_checkpoint,
)
from forensics.verify_state import check_ledger_history, latest_checkpoints
from ledger.chain import ChainWriter
from ledger.keys import NoteSigner
from ledger.merkle import MerkleTree, NodeId, consistency_proof
from ledger.note import sign_note

VERIFIERS = [SIGNER.verifier()]
PREFIX = "attestream.test/ledger"


def remembered_state(sizes: tuple[int, ...]) -> TrustedState:
    """The state a verifier keeps after verifying a ledger built with checkpoints at `sizes`."""
    ledger = build(sizes)
    state = TrustedState()
    for seen in latest_checkpoints(ledger, VERIFIERS):
        state.remember(seen.record("forensic verify"))
    return state


def history(ledger: MemoryLedger, state: TrustedState) -> set[tuple[str, int | None, int | None]]:
    report = Report()
    seen = latest_checkpoints(ledger, VERIFIERS)
    check_ledger_history(ledger, state, seen, PREFIX, VERIFIERS, report)
    return {(f.kind, f.chain, f.seq) for f in report.failures}


# --- the file --------------------------------------------------------------------------------


def test_state_round_trips_with_mode_0600(tmp_path: Path) -> None:
    state = remembered_state((4, 9))
    path = tmp_path / "verifier" / "state.json"
    save_state(path, state)
    assert load_state(path) == state
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(path.read_text())["checkpoints"][0]
    assert (record["chain"], record["size"]) == (0, 9)
    assert record["key"] == f"{SIGNER.name}+{SIGNER.key_id:08x}"
    assert record["note"].startswith(f"{PREFIX}/0\n9\n")


def test_a_missing_file_is_first_use(tmp_path: Path) -> None:
    assert load_state(tmp_path / "none.json") == TrustedState()


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    old = remembered_state((4,))
    save_state(path, old)

    def crash(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        save_state(path, remembered_state((4, 9)))
    assert load_state(path) == old
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is malformed"),
        (b'{"checkpoints": [{"origin": "x"}]}', "is malformed"),
        (b'{"format": "other/9", "checkpoints": []}', "has format 'other/9'"),
    ],
)
def test_a_malformed_file_is_a_config_error_naming_it(
    content: bytes, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as raised:
        load_state(path)
    assert str(path) in str(raised.value) and raised.value.exit_code == 2


# --- one broken case per fault ---------------------------------------------------------------


def test_the_same_ledger_or_a_grown_one_extends_the_remembered_checkpoint() -> None:
    state = remembered_state((4, 9))
    assert history(build((4, 9)), state) == set()
    assert history(build((4, 9, 13)), state) == set()


def test_a_shrunk_tree_is_tree_shrunk() -> None:
    state = remembered_state((4, 9, 13))
    with pytest.raises(HistoryConflictError, match="has 9 entries, but a checkpoint of size 13"):
        check_against(state.checkpoints[0], seen_of(build((4, 9))).checkpoint, None)
    assert history(build((4, 9)), state) == {("tree_shrunk", 0, 9)}


def test_a_chain_whose_checkpoints_all_vanished_is_tree_shrunk() -> None:
    ledger = build((4, 9))
    ledger.cps[0] = []
    assert history(ledger, remembered_state((4, 9))) == {("tree_shrunk", 0, 0)}


def test_another_root_at_the_remembered_size_is_a_fork() -> None:
    state = remembered_state((4, 9))
    rebuilt = rebuilt_ledger(9)
    with pytest.raises(HistoryConflictError, match="at size 9 has root") as raised:
        check_against(state.checkpoints[0], seen_of(rebuilt).checkpoint, None)
    assert raised.value.kind == "fork"
    assert history(rebuilt, state) == {("fork", 0, 9)}


def test_a_larger_tree_that_does_not_extend_the_remembered_one_is_inconsistent() -> None:
    state = remembered_state((4, 9))
    rebuilt = rebuilt_ledger(13)
    proof = consistency_proof(9, 13, _Nodes(rebuilt))
    with pytest.raises(HistoryConflictError, match="is not an extension of the size 9") as raised:
        check_against(state.checkpoints[0], seen_of(rebuilt).checkpoint, proof)
    assert raised.value.kind == "inconsistent"
    assert history(rebuilt, state) == {("inconsistent", 0, 13)}


def test_a_larger_tree_without_the_nodes_for_a_proof_is_inconsistent() -> None:
    ledger = build((4, 9, 13))
    ledger.drop_nodes(lambda level, index: level == 0)
    assert history(ledger, remembered_state((4, 9))) == {("inconsistent", 0, 9)}


def test_a_checkpoint_by_another_key_is_remembered_apart() -> None:
    # Another key of the same origin is another log to this verifier: nothing to compare.
    state = remembered_state((4, 9))
    ledger = build((4, 9, 13))
    seen = seen_checkpoint(0, sign_with(ledger, STRANGER), [STRANGER.verifier()])
    assert state.remembered(seen.checkpoint.origin, seen.key, 0) is None


# --- building blocks -------------------------------------------------------------------------


def seen_of(ledger: MemoryLedger) -> SeenCheckpoint:
    return latest_checkpoints(ledger, VERIFIERS)[0]


def rebuilt_ledger(size: int) -> MemoryLedger:
    """A consistent rebuild: the same chain with entry 2 logged at another offset, every hash
    recomputed and the checkpoint signed again by the same key."""
    ledger = MemoryLedger()
    writer = ChainWriter(chain=0, tree=MerkleTree(), prev=None)
    result = writer.append([incoming(i, offset=1000 + i if i == 2 else None) for i in range(size)])
    ledger.rows[0] = rows_of(result.entries)
    ledger.node_rows[0] = list(zip(result.node_keys, result.node_hashes, strict=True))
    ledger.cps[0] = [checkpoint(0, size, result.root)]
    return ledger


class _Nodes:
    """One chain of a memory ledger as a `NodeReader`."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self.ledger = ledger

    def read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return dict(self.ledger.read_nodes(0, ids))


def sign_with(ledger: MemoryLedger, signer: NoteSigner) -> bytes:
    note = bytes(ledger.cps[0][-1].note)
    return sign_note(note.split(b"\n\n")[0] + b"\n", signer)
