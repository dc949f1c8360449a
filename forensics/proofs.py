"""Proofs an investigator can hand over: one decision's inclusion, and log consistency.

A proof file ("evidence bundle", format `attestream-proof/1`) holds the entry's exact bytes,
its inclusion proof against a signed checkpoint, that checkpoint note and, once the checkpoint
is anchored, the anchor proof (the note's inclusion in the anchor root and the transaction's
coordinates). Anyone holding the log's verifier key checks it offline with `verify_bundle`: no
database, no network; `verify_bundle_on_chain` adds the look-up of the anchor transaction.
The format is specified in docs/ledger-format.md, "Proof files"; the `ProofFile` Struct is its
one definition (schema docs/schemas/proof-file.json), decoded with the shared field types of
ledger/evidence.py, and `ProofBundle` holds the bytes verification works on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Protocol

import msgspec
from msgspec import UNSET, UnsetType

from anchoring.onchain import TxLookup
from anchoring.proofs import (
    AnchorProof,
    AnchorProofFile,
    AnchorProofStore,
    anchor_proof,
    require_anchor_tx,
    verify_anchor_proof_offline,
)
from attestcore.errors import AnchorNotFoundError, MalformedError, UsageError, VerificationError
from attestcore.records import ENTRY_COLUMNS, StoredCheckpoint
from ledger.entry import decode_entry
from ledger.evidence import (
    Base64Bytes,
    Count,
    EvidenceFormat,
    HashHex,
    HashList,
    PositiveCount,
    decode_evidence,
)
from ledger.keys import NoteVerifier
from ledger.merkle import (
    RootHash,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from ledger.node_keys import ChainNodes
from ledger.note import Checkpoint, open_note

BUNDLE_FORMAT: Final = "attestream-proof/1"
COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}


class ConsistencyMember(msgspec.Struct, kw_only=True, frozen=True):
    """The RFC 9162 2.1.4.1 consistency proof from `since_size` to the file's `tree_size`."""

    since_size: PositiveCount
    proof: HashList


class ProofFile(EvidenceFormat, kw_only=True, frozen=True):
    """A proof file as JSON (docs/ledger-format.md, "Proof files"): one ledger entry, its
    inclusion proof against a signed checkpoint, and that checkpoint's anchor proof."""

    KIND: ClassVar[str] = "proof file"
    format: Literal["attestream-proof/1"]
    chain: Count
    seq: Count
    entry: Base64Bytes
    leaf_hash: HashHex | UnsetType = UNSET
    """Written for reading convenience; verifiers recompute it from `entry`."""
    tree_size: Count
    inclusion_proof: HashList
    checkpoint: str
    """The signed checkpoint note, UTF-8 text."""
    anchor: AnchorProofFile | None = None
    consistency: ConsistencyMember | None | UnsetType = UNSET
    """Optional (`prove --since-size`): files without it keep their old form."""


@dataclass(frozen=True)
class ProofBundle:
    chain: int
    seq: int
    entry: bytes
    tree_size: int
    inclusion: list[bytes]
    checkpoint: bytes
    anchor: AnchorProof | None = None
    since_size: int | None = None
    """With `consistency`: the earlier tree size the consistency proof starts from."""
    consistency: list[bytes] | None = None
    """RFC 9162 2.1.4.1 proof from `since_size` to `tree_size` (`prove --since-size`), so a
    verifier who remembers the checkpoint of `since_size` can check this one extends it."""

    def to_file(self) -> ProofFile:
        consistency: ConsistencyMember | UnsetType = UNSET
        if self.consistency is not None and self.since_size is not None:
            consistency = ConsistencyMember(
                since_size=self.since_size, proof=[h.hex() for h in self.consistency]
            )
        return ProofFile(
            format=BUNDLE_FORMAT,
            chain=self.chain,
            seq=self.seq,
            entry=self.entry,
            leaf_hash=leaf_hash(self.entry).hex(),
            tree_size=self.tree_size,
            inclusion_proof=[h.hex() for h in self.inclusion],
            checkpoint=self.checkpoint.decode("utf-8"),
            anchor=self.anchor.to_file() if self.anchor else None,
            consistency=consistency,
        )

    @classmethod
    def from_file(cls, proof: ProofFile) -> ProofBundle:
        """The bundle a decoded (hence validated) proof file holds. A checkpoint note that is
        not valid UTF-8 is kept as it came, for verification to reject."""
        consistency = proof.consistency or None
        return cls(
            chain=proof.chain,
            seq=proof.seq,
            entry=proof.entry,
            tree_size=proof.tree_size,
            inclusion=[bytes.fromhex(h) for h in proof.inclusion_proof],
            checkpoint=proof.checkpoint.encode("utf-8", "surrogatepass"),
            anchor=AnchorProof.from_file(proof.anchor) if proof.anchor else None,
            since_size=consistency.since_size if consistency else None,
            consistency=[bytes.fromhex(h) for h in consistency.proof] if consistency else None,
        )

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self.to_file())
        return result

    @classmethod
    def from_json(cls, data: object) -> ProofBundle:
        """Parse a proof file; anything malformed raises MalformedError naming the field."""
        return cls.from_file(decode_evidence(data, ProofFile))


class ProofStore(AnchorProofStore, Protocol):
    """What a proof file is built from (the ClickHouse store, or an in-memory ledger)."""

    def entry_by_decision_id(self, decision_id: str) -> Sequence[Any] | None:
        """The first entry logging `decision_id` (ENTRY_COLUMNS order), or None."""
        ...

    def latest_checkpoint(self, chain: int) -> StoredCheckpoint | None: ...


def prove_decision(store: ProofStore, decision_id: str) -> ProofBundle:
    """The entry logging `decision_id`, proven against the largest anchored checkpoint of its
    chain that covers it (with the anchor proof), else against the latest checkpoint."""
    row = store.entry_by_decision_id(decision_id)
    if row is None:
        raise UsageError(f"no logged decision has the id {decision_id}")
    chain, seq = int(row[COL["chain"]]), int(row[COL["seq"]])
    anchored = max((dict(a.checkpoints).get(chain, 0) for a in store.anchors()), default=0)
    found = store.checkpoint_at(chain, anchored) if anchored > seq else []
    checkpoint = found[0] if found else store.latest_checkpoint(chain)
    if checkpoint is None or checkpoint.size <= seq:
        raise VerificationError(
            f"entry {chain}/{seq} is not covered by a signed checkpoint yet; try again shortly"
        )
    proof = inclusion_proof(seq, checkpoint.size, ChainNodes(store, chain))
    anchor = anchor_proof(store, chain, checkpoint.size) if found else None
    return ProofBundle(
        chain, seq, bytes(row[COL["entry"]]), checkpoint.size, proof, bytes(checkpoint.note), anchor
    )


def prove_verified(
    store: ProofStore,
    decision_id: str,
    verifiers: Sequence[NoteVerifier],
    since_size: int | None = None,
) -> ProofBundle:
    """`prove_decision`, then the proof checked as an auditor will check it (`verify_bundle`:
    the stored checkpoint's signature, the entry, the inclusion proof, the anchor proof). A
    proof that would fail at the auditor's end is never handed out: VerificationError. With
    `since_size`, the bundle also carries the consistency proof from that size."""
    bundle = prove_decision(store, decision_id)
    if since_size is not None:
        if not 0 < since_size <= bundle.tree_size:
            raise UsageError(
                f"--since-size must be between 1 and the proof's tree size {bundle.tree_size},"
                f" got {since_size}"
            )
        proof = consistency_proof(since_size, bundle.tree_size, ChainNodes(store, bundle.chain))
        bundle = dataclasses.replace(bundle, since_size=since_size, consistency=proof)
    try:
        verify_bundle(bundle, verifiers)
    except (VerificationError, MalformedError) as exc:
        raise VerificationError(
            f"entry {bundle.chain}/{bundle.seq} (decision {decision_id}) does not verify"
            f" against the stored checkpoint of size {bundle.tree_size}: {exc}. The stored"
            " ledger may have been altered: run `attestream forensic verify`"
        ) from None
    return bundle


@dataclass(frozen=True)
class BundleVerdict:
    decision_id: str
    chain: int
    seq: int
    tree_size: int
    origin: str
    signed_by: list[str]
    anchor_tx: str | None = None
    """The anchor transaction the proof names (None: not anchored when proven)."""
    anchor_checked_on_chain: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, **self.__dict__}


def verify_bundle(bundle: ProofBundle, verifiers: Sequence[NoteVerifier]) -> BundleVerdict:
    """Offline: signature, checkpoint, entry position and inclusion. Raises on any failure.

    1. The checkpoint note carries a signature of a trusted key (SignatureError otherwise).
    2. The checkpoint is for the bundle's tree size.
    3. The entry bytes name the bundle's chain and position.
    4. The entry's leaf hash with the inclusion proof gives the signed root.
    5. With an anchor proof: the anchored note is signed by a trusted key, extends this
       checkpoint (consistency), and is included in the anchor root.
    """
    opened = open_note(bundle.checkpoint, verifiers)  # step 1
    checkpoint = Checkpoint.parse(opened.body)
    if checkpoint.size != bundle.tree_size:  # step 2
        raise VerificationError(
            f"proof is for tree size {bundle.tree_size}, the checkpoint for {checkpoint.size}"
        )
    entry = decode_entry(bundle.entry)  # step 3
    if (entry.chain, entry.seq) != (bundle.chain, bundle.seq):
        raise VerificationError(
            f"entry bytes are chain {entry.chain} seq {entry.seq}, the proof claims"
            f" chain {bundle.chain} seq {bundle.seq}"
        )
    # step 4
    leaf = leaf_hash(bundle.entry)
    verify_inclusion(bundle.seq, bundle.tree_size, leaf, bundle.inclusion, checkpoint.root)
    # step 5: the anchor proof, as far as it goes without the chain
    if bundle.anchor is not None:
        open_note(bundle.anchor.anchored_checkpoint, verifiers)
        verify_anchor_proof_offline(bundle.anchor, bundle.checkpoint)
    return BundleVerdict(
        entry.decision.decision_id,
        bundle.chain,
        bundle.seq,
        bundle.tree_size,
        checkpoint.origin,
        opened.signed_by,
        bundle.anchor.tx_hash if bundle.anchor else None,
    )


def verify_bundle_on_chain(
    bundle: ProofBundle,
    verifiers: Sequence[NoteVerifier],
    tx_lookup: TxLookup,
    min_confirmations: int,
) -> BundleVerdict:
    """`verify_bundle`, then the anchor transaction on the chain: network, calldata, status,
    sender, block and confirmations (`anchoring.anchor_check`). A bundle without an anchor
    proof fails here."""
    verdict = verify_bundle(bundle, verifiers)
    if bundle.anchor is None:
        raise AnchorNotFoundError("the proof file holds no anchor proof (not anchored yet?)")
    require_anchor_tx(tx_lookup, bundle.anchor.recorded(), min_confirmations)
    return dataclasses.replace(verdict, anchor_checked_on_chain=True)


def dump_bundle(bundle: ProofBundle) -> str:
    """The text of a proof file as `forensic prove` writes it: the members in the order of
    docs/ledger-format.md, indented, one final newline."""
    return json.dumps(bundle.to_json(), indent=2) + "\n"


def load_bundle(content: bytes | str) -> ProofBundle:
    """Parse a proof file's bytes; anything but a well-formed proof raises MalformedError."""
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        raise MalformedError(f"proof file is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedError(f"proof file is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedError("proof file must hold a JSON object")
    return ProofBundle.from_json(data)


@dataclass(frozen=True)
class ConsistencyResult:
    chain: int
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    proof: list[bytes]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "chain": self.chain,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root.hex(),
            "new_root": self.new_root.hex(),
            "proof": [h.hex() for h in self.proof],
        }


def prove_consistency(
    store: ProofStore,
    chain: int,
    old_size: int,
    new_size: int,
    verifiers: Sequence[NoteVerifier],
) -> ConsistencyResult:
    """A consistency proof between two tree sizes, checked against the signed checkpoints.

    Each root comes from a signed checkpoint of that size when one exists (and its signature
    must verify); otherwise it is recomputed from the stored nodes.
    """
    if not 0 < old_size <= new_size:
        raise UsageError(f"need 0 < OLD_SIZE <= NEW_SIZE, got {old_size} and {new_size}")
    nodes = ChainNodes(store, chain)
    old_root = _signed_root(store, chain, old_size, verifiers) or tree_root(old_size, nodes)
    new_root = _signed_root(store, chain, new_size, verifiers) or tree_root(new_size, nodes)
    proof = consistency_proof(old_size, new_size, nodes)
    verify_consistency(old_size, new_size, proof, old_root, new_root)
    return ConsistencyResult(chain, old_size, new_size, old_root, new_root, proof)


def _signed_root(
    store: ProofStore, chain: int, size: int, verifiers: Sequence[NoteVerifier]
) -> RootHash | None:
    found: list[StoredCheckpoint] = store.checkpoint_at(chain, size)
    if not found:
        return None
    return Checkpoint.parse(open_note(found[0].note, verifiers).body).root
