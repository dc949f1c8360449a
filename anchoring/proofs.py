"""Anchor proofs: from a checkpoint to the EVM transaction that anchors it.

docs/ledger-format.md ("Anchor proofs") specifies the JSON form: the `AnchorProofFile` Struct,
published as docs/schemas/anchor-proof.json, which `AnchorProof` (the bytes verification
works on) is written as and read from. A checkpoint is anchored by
the earliest final anchor committing to a checkpoint of the same chain at its size or beyond:
a consistency proof (RFC 9162 2.1.4) links it to that anchored checkpoint, whose note is a
leaf of the anchor root (RFC 9162 2.1.3), which the transaction carries in its calldata.

Verification computes, then compares; every step returns None or raises a VerificationError
subclass (MalformedError for bytes that do not parse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Protocol

import msgspec

from anchoring.anchor_check import Finding, RecordedAnchor, check_anchor_tx
from anchoring.calldata import anchor_root
from anchoring.onchain import TxLookup
from attestcore.errors import (
    AnchorMismatchError,
    AnchorNotFoundError,
    AnchorReorgedError,
    AnchorUnconfirmedError,
    MalformedError,
    RootMismatchError,
    UsageError,
    VerificationError,
)
from attestcore.records import StoredAnchor, StoredCheckpoint
from ledger.evidence import (
    Base64Bytes,
    Count,
    EvidenceFormat,
    EvmAddress,
    EvmHash,
    HashHex,
    HashList,
    decode_evidence,
)
from ledger.merkle import (
    MemoryNodeStore,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.node_keys import ChainNodes, NodeStore
from ledger.note import Checkpoint

PROOF_FORMAT: Final = "attestream-anchor-proof/1"


class AnchorProofFile(EvidenceFormat, kw_only=True, frozen=True):
    """An anchor proof as JSON (docs/ledger-format.md, "Anchor proofs"): a checkpoint, its
    consistency with the anchored checkpoint, that note's inclusion in the anchor root, and
    the EVM transaction carrying the root."""

    KIND: ClassVar[str] = "anchor proof"
    format: Literal["attestream-anchor-proof/1"]
    chain: Count
    size: Count
    anchored_size: Count
    consistency_proof: HashList
    anchored_checkpoint: Base64Bytes
    anchor_index: Count
    anchor_size: Count
    anchor_inclusion_proof: HashList
    anchor_root: HashHex
    network_chain_id: Count
    tx_hash: EvmHash
    block_number: Count
    block_hash: EvmHash
    sender: EvmAddress


@dataclass(frozen=True)
class AnchorProof:
    chain: int
    size: int
    """The checkpoint proven: its chain and tree size."""
    anchored_size: int
    consistency_proof: tuple[bytes, ...]
    """From tree size `size` to `anchored_size` (empty when they are equal)."""
    anchored_checkpoint: bytes
    """The signed checkpoint note the anchor commits to (whole note bytes)."""
    anchor_index: int
    anchor_size: int
    anchor_inclusion_proof: tuple[bytes, ...]
    anchor_root: bytes
    network_chain_id: int
    tx_hash: str
    block_number: int
    block_hash: str
    sender: str

    def to_file(self) -> AnchorProofFile:
        return AnchorProofFile(
            format=PROOF_FORMAT, chain=self.chain, size=self.size,
            anchored_size=self.anchored_size,
            consistency_proof=[h.hex() for h in self.consistency_proof],
            anchored_checkpoint=self.anchored_checkpoint, anchor_index=self.anchor_index,
            anchor_size=self.anchor_size,
            anchor_inclusion_proof=[h.hex() for h in self.anchor_inclusion_proof],
            anchor_root=self.anchor_root.hex(), network_chain_id=self.network_chain_id,
            tx_hash=self.tx_hash, block_number=self.block_number, block_hash=self.block_hash,
            sender=self.sender,
        )  # fmt: skip

    @classmethod
    def from_file(cls, proof: AnchorProofFile) -> AnchorProof:
        """The proof a decoded (hence validated) anchor proof file holds."""
        return cls(
            chain=proof.chain, size=proof.size, anchored_size=proof.anchored_size,
            consistency_proof=tuple(bytes.fromhex(h) for h in proof.consistency_proof),
            anchored_checkpoint=proof.anchored_checkpoint, anchor_index=proof.anchor_index,
            anchor_size=proof.anchor_size,
            anchor_inclusion_proof=tuple(bytes.fromhex(h) for h in proof.anchor_inclusion_proof),
            anchor_root=bytes.fromhex(proof.anchor_root),
            network_chain_id=proof.network_chain_id, tx_hash=proof.tx_hash,
            block_number=proof.block_number, block_hash=proof.block_hash, sender=proof.sender,
        )  # fmt: skip

    def recorded(self) -> RecordedAnchor:
        """The anchor transaction as the proof records it."""
        return RecordedAnchor(self.network_chain_id, self.tx_hash, self.anchor_root,
                              self.sender, self.block_number, self.block_hash)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self.to_file())
        return result

    @classmethod
    def from_json(cls, data: object) -> AnchorProof:
        """Parse the JSON form; MalformedError naming any member missing, mistyped or not hex."""
        return cls.from_file(decode_evidence(data, AnchorProofFile))


class AnchorProofStore(NodeStore, Protocol):
    """What an anchor proof is built from: the anchors, the checkpoints and the tree nodes
    (the ClickHouse store, or an in-memory ledger in tests)."""

    def anchors(self) -> list[StoredAnchor]: ...
    def checkpoint_at(self, chain: int, size: int) -> list[StoredCheckpoint]: ...


def anchor_proof(
    store: AnchorProofStore, chain: int, size: int, network_chain_id: int | None = None
) -> AnchorProof:
    """The proof that checkpoint (chain, size) is anchored, from the earliest final anchor
    (on `network_chain_id`, or any network) committing to that chain at `size` or beyond.
    AnchorNotFoundError while no final anchor covers it."""
    if size < 1:
        raise UsageError("only a checkpoint of a non-empty tree can be anchored")
    anchor = _earliest_covering(store.anchors(), chain, size, network_chain_id)
    notes = [_note(store, c, s) for c, s in anchor.checkpoints]
    index = [c for c, _ in anchor.checkpoints].index(chain)
    anchored_size = anchor.checkpoints[index][1]
    tree = MerkleTree()
    nodes = MemoryNodeStore()
    nodes.add_runs(tree.extend(notes))
    if tree.root() != anchor.root:
        raise RootMismatchError(anchor.root, tree.root(), f"anchor {anchor.tx_hash}")
    consistency = (consistency_proof(size, anchored_size, ChainNodes(store, chain))
                   if size < anchored_size else [])  # fmt: skip
    return AnchorProof(
        chain=chain, size=size, anchored_size=anchored_size,
        consistency_proof=tuple(consistency), anchored_checkpoint=notes[index],
        anchor_index=index, anchor_size=len(notes),
        anchor_inclusion_proof=tuple(inclusion_proof(index, len(notes), nodes)),
        anchor_root=anchor.root, network_chain_id=anchor.network_chain_id,
        tx_hash=anchor.tx_hash, block_number=anchor.block_number,
        block_hash=anchor.block_hash, sender=anchor.sender,
    )  # fmt: skip


def _earliest_covering(
    anchors: Sequence[StoredAnchor], chain: int, size: int, network_chain_id: int | None
) -> StoredAnchor:
    candidates = [
        a for a in anchors
        if (network_chain_id is None or a.network_chain_id == network_chain_id)
        and dict(a.checkpoints).get(chain, -1) >= size
    ]  # fmt: skip
    if not candidates:
        raise AnchorNotFoundError(f"no final anchor covers checkpoint {size} of chain {chain} yet")
    return min(candidates, key=lambda a: (a.block_number, a.event_ns))


def _note(store: AnchorProofStore, chain: int, size: int) -> bytes:
    found = store.checkpoint_at(chain, size)
    if not found:
        raise AnchorMismatchError(f"the anchored checkpoint {size} of chain {chain} is not stored")
    return bytes(found[0].note)


def checkpoint_of(note: bytes) -> Checkpoint:
    """The checkpoint a signed note carries (its text before the blank line). Signatures are
    not checked here: callers open the note with their trusted keys first."""
    split = note.rfind(b"\n\n")
    if split < 0:
        raise MalformedError("a signed note is text, a blank line, then signature lines")
    return Checkpoint.parse(note[: split + 1])


def verify_anchor_proof(
    proof: AnchorProof, note_bytes: bytes, tx_lookup: TxLookup, min_confirmations: int
) -> None:
    """Check that the checkpoint `note_bytes` is anchored as `proof` says, in order:

    1. the note is a checkpoint of tree size `proof.size`;
    2. the anchored checkpoint is of the same log, and the consistency proof shows the
       note's tree is a prefix of it (RFC 9162 2.1.4.2; equal sizes need equal roots);
    3. the anchored note's leaf hash and the inclusion proof yield the anchor root
       (RFC 9162 2.1.3.2);
    4. the transaction on the chain carries that root and is final (`require_anchor_tx`).
    """
    verify_anchor_proof_offline(proof, note_bytes)  # 1-3
    require_anchor_tx(tx_lookup, proof.recorded(), min_confirmations)  # 4


def verify_anchor_proof_offline(proof: AnchorProof, note_bytes: bytes) -> None:
    """Steps 1-3 of `verify_anchor_proof`: everything but the look-up on the chain."""
    checkpoint = checkpoint_of(note_bytes)  # 1
    if checkpoint.size != proof.size:
        raise AnchorMismatchError(
            f"the checkpoint has tree size {checkpoint.size}, the proof is for {proof.size}"
        )
    anchored = checkpoint_of(proof.anchored_checkpoint)  # 2
    if anchored.origin != checkpoint.origin:
        raise AnchorMismatchError(
            f"the anchored checkpoint is of log {anchored.origin!r}, not {checkpoint.origin!r}"
        )
    if anchored.size != proof.anchored_size:
        raise AnchorMismatchError(
            f"the anchored checkpoint has size {anchored.size}, the proof says"
            f" {proof.anchored_size}"
        )
    verify_consistency(checkpoint.size, anchored.size, proof.consistency_proof,
                       checkpoint.root, anchored.root)  # fmt: skip
    verify_inclusion(proof.anchor_index, proof.anchor_size,  # 3
                     leaf_hash(proof.anchored_checkpoint), proof.anchor_inclusion_proof,
                     proof.anchor_root)  # fmt: skip


def verify_stored_anchor(
    anchor: StoredAnchor,
    tx_lookup: TxLookup,
    min_confirmations: int,
    notes: Sequence[bytes] | None = None,
) -> None:
    """Check a stored anchor against the chain; with `notes` (the checkpoint notes it names,
    in its order), first recompute its root from them."""
    if notes is not None:
        root = anchor_root(notes)
        if root != anchor.root:
            raise RootMismatchError(anchor.root, root, f"anchor {anchor.tx_hash}")
    require_anchor_tx(tx_lookup, RecordedAnchor.of(anchor), min_confirmations)


ERRORS: Final[dict[Finding, type[VerificationError]]] = {
    Finding.NOT_FOUND: AnchorNotFoundError,
    Finding.REORGED: AnchorReorgedError,
    Finding.UNCONFIRMED: AnchorUnconfirmedError,
}
"""The error each finding raises; any other is an AnchorMismatchError."""


def require_anchor_tx(
    tx_lookup: TxLookup, recorded: RecordedAnchor, min_confirmations: int
) -> None:
    """The transaction is on the anchor's network, in its block, sent by its sender,
    succeeded, carries its root in the calldata, and has at least `min_confirmations`
    (`anchoring.anchor_check`); else the error of the first finding."""
    check = check_anchor_tx(tx_lookup, recorded, min_confirmations)
    if check.ok:
        return
    first = check.findings[0]
    error = ERRORS.get(first.kind, AnchorMismatchError)
    if first.kind == Finding.OTHER_NETWORK:
        raise error(first.detail)
    if first.kind == Finding.UNCONFIRMED:
        raise error(f"anchor transaction {recorded.tx_hash} has {check.confirmations}"
                    f" confirmation(s), {min_confirmations} required")  # fmt: skip
    raise error(f"anchor transaction {recorded.tx_hash}: {first.detail}")
