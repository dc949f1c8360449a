"""What the sequencer checks before it signs (ledger.trust, step R3), on an in-memory store:
only its own signed checkpoints count, every checkpoint it is known to have signed must still
be in the stored tree, and the uncovered tail must come from the chain's own partition. (The
re-derivation from a real broker is covered by tests/integration/test_signing_refusal.py.)"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from factories import incoming, make_decision
from memory_ledger import SIGNER, STRANGER
from test_ledger_recovery import COL, MemoryStore, fresh_writer

from attestcore.errors import ServiceUnavailableError, SigningRefusedError
from attestcore.records import StoredCheckpoint
from ledger.chain import ChainWriter, Incoming
from ledger.keys import NoteSigner
from ledger.merkle import RootHash
from ledger.note import Checkpoint, sign_note
from ledger.recovery import recover_chain
from ledger.signer_state import SignerStateFile
from ledger.trust import SignedClaim, SigningGuard, Source

ORIGIN = "attestream.test/ledger/0"
SOURCE = Source(cluster="k1", topic="decisions")


def append(
    store: MemoryStore,
    writer: ChainWriter,
    numbers: range,
    sign: bool = True,
    signer: NoteSigner = SIGNER,
    forged: int | None = None,
) -> bytes:
    """Log decisions (decision `forged` with another outcome) and, with `sign`, a checkpoint
    signed by `signer`; returns the new root."""
    batch = [incoming(i) for i in numbers]
    if forged is not None and forged in numbers:
        original = batch[forged - numbers.start]
        changed = make_decision(forged)
        changed.outcome = "approve" if changed.outcome != "approve" else "block"
        batch[forged - numbers.start] = Incoming(changed, original.source)
    result = writer.append(batch)
    store.insert_entries(result.entries)
    store.insert_nodes(0, result.node_keys, result.node_hashes)
    if sign:
        store.checkpoints.append(stored(result.size, result.root, signer))
    return result.root


def stored(
    size: int,
    root: bytes,
    signer: NoteSigner = SIGNER,
    origin: str = ORIGIN,
    column_root: bytes | None = None,
) -> StoredCheckpoint:
    note = sign_note(Checkpoint(origin, size, RootHash(root)).body(), signer)
    return StoredCheckpoint(0, size, column_root or root, note, "k1", size - 1)


def guard(
    tmp_path: Path, claims: Sequence[SignedClaim] = (), outside: object = None
) -> SigningGuard:
    state = SignerStateFile(tmp_path / "ledger.state.json")
    result = SigningGuard(SIGNER.verifier(), state, "127.0.0.1:1")
    for claim in claims:
        result.remember(ORIGIN, claim.chain, claim.size, claim.root)
    if outside is not None:
        result.outside = outside  # type: ignore[assignment]
    return result


def check(store: MemoryStore, signing: SigningGuard) -> int:
    return signing.check(store, ORIGIN, recover_chain(store, 0), SOURCE)


def test_a_chain_holding_every_signed_claim_is_covered(tmp_path: Path) -> None:
    store, writer = MemoryStore(), fresh_writer()
    first = append(store, writer, range(0, 6))
    last = append(store, writer, range(6, 11))
    outside = [SignedClaim(0, 11, last, "an anchor")]
    signing = guard(tmp_path, [SignedClaim(0, 6, first, "state")], lambda chain: outside)
    assert check(store, signing) == 11


def test_first_use_without_a_state_file_trusts_the_signed_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, writer = MemoryStore(), fresh_writer()
    append(store, writer, range(0, 6))
    with caplog.at_level(logging.WARNING, "attestream.ledger"):
        assert check(store, guard(tmp_path)) == 6
    assert "trust on first use" in caplog.text


@pytest.mark.parametrize("forgery", ["root column", "stranger", "other origin", "older note"])
def test_a_latest_checkpoint_this_signer_did_not_sign_is_refused(
    tmp_path: Path, forgery: str
) -> None:
    store, writer = MemoryStore(), fresh_writer()
    first = append(store, writer, range(0, 6))
    # Entries appended with nodes that fold to their root, and a checkpoint row over them.
    root = append(store, writer, range(6, 11), sign=False)
    row = {
        "root column": stored(11, bytes(32), column_root=root),
        "stranger": stored(11, root, STRANGER),
        "other origin": stored(11, root, origin="attestream.test/ledger/1"),
        "older note": StoredCheckpoint(0, 11, root, store.checkpoints[0].note, "k1", 10),
    }[forgery]
    store.checkpoints.append(row)
    assert recover_chain(store, 0).checkpointed == 11, "recovery alone accepts it"
    with pytest.raises(SigningRefusedError, match=r"chain 0, seq 10 \(untrusted_checkpoint\)"):
        check(store, guard(tmp_path, [SignedClaim(0, 6, first, "state")]))


def test_a_chain_shorter_than_a_signed_claim_is_truncated(tmp_path: Path) -> None:
    store, writer = MemoryStore(), fresh_writer()
    append(store, writer, range(0, 6))
    last = append(store, writer, range(6, 11))
    store.rows = [r for r in store.rows if r[COL["seq"]] < 6]
    store.checkpoints = store.checkpoints[:1]
    with pytest.raises(SigningRefusedError, match=r"seq 6 \(truncated\).*size 11") as refused:
        check(store, guard(tmp_path, [SignedClaim(0, 11, last, "state")]))
    assert (refused.value.kind, refused.value.chain, refused.value.seq) == ("truncated", 0, 6)


def test_a_rebuilt_chain_without_checkpoints_is_rewritten(tmp_path: Path) -> None:
    """The attack: one decision changed, every hash recomputed, the checkpoints deleted."""
    genuine = fresh_writer()
    genuine.append([incoming(i) for i in range(11)])
    store = MemoryStore()
    append(store, fresh_writer(), range(0, 11), sign=False, forged=3)
    claim = SignedClaim(0, 11, genuine.tree.root(), "state")
    with pytest.raises(SigningRefusedError, match=r"seq 10 \(rewritten\)"):
        check(store, guard(tmp_path, [claim]))


def test_a_claim_inside_the_signed_tree_is_compared_with_the_stored_nodes(
    tmp_path: Path,
) -> None:
    """A store restored and extended under the same key: the signed tree of 14 is ours, but
    not the tree of 11 this signer once signed."""
    other = fresh_writer()
    other.append([incoming(i) for i in range(11)])
    store, writer = MemoryStore(), fresh_writer()
    append(store, writer, range(0, 14), forged=9)
    with pytest.raises(SigningRefusedError, match=r"seq 10 \(rewritten\)"):
        check(store, guard(tmp_path, [SignedClaim(0, 11, other.tree.root(), "state")]))
    store2, writer2 = MemoryStore(), fresh_writer()
    append(store2, writer2, range(0, 14))
    assert check(store2, guard(tmp_path / "2", [SignedClaim(0, 11, other.tree.root(), "s")])) == 14


def test_a_claim_inside_the_unsigned_tail_is_compared_with_the_rehashed_tail(
    tmp_path: Path,
) -> None:
    store, writer = MemoryStore(), fresh_writer()
    append(store, writer, range(0, 6))
    append(store, writer, range(6, 11), sign=False)
    with pytest.raises(SigningRefusedError, match=r"seq 8 \(rewritten\)"):
        check(store, guard(tmp_path, outside=lambda chain: [SignedClaim(0, 9, bytes(32), "tx")]))


def test_an_unanswered_outside_source_is_counted_and_passed_over(tmp_path: Path) -> None:
    store, writer = MemoryStore(), fresh_writer()
    append(store, writer, range(0, 6))
    causes: list[str] = []

    def unreachable(chain: int) -> list[SignedClaim]:
        raise ServiceUnavailableError("EVM JSON-RPC", "127.0.0.1:1", "connection refused")

    signing = guard(tmp_path, outside=unreachable)
    signing.outside_unavailable = causes.append
    assert check(store, signing) == 6
    assert len(causes) == 1 and "connection refused" in causes[0]


def test_a_refusal_of_the_outside_source_stands(tmp_path: Path) -> None:
    store, writer = MemoryStore(), fresh_writer()
    append(store, writer, range(0, 6))

    def anchor_row_deleted(chain: int) -> list[SignedClaim]:
        raise SigningRefusedError("anchor_missing", chain, None, "no anchor row")

    with pytest.raises(SigningRefusedError, match=r"chain 0 \(anchor_missing\)"):
        check(store, guard(tmp_path, outside=anchor_row_deleted))


def test_an_uncovered_entry_from_another_partition_is_underivable(tmp_path: Path) -> None:
    store, writer = MemoryStore(), fresh_writer()
    append(store, writer, range(0, 6))
    append(store, writer, range(6, 8), sign=False)
    elsewhere = Source(cluster="k1", topic="attestream.decisions")
    with pytest.raises(SigningRefusedError, match=r"seq 6 \(underivable\).*partition"):
        guard(tmp_path).check(store, ORIGIN, recover_chain(store, 0), elsewhere)
