"""What the sequencer checks before it signs a chain it did not just build (step R3).

Recovery (R1, R2) rebuilds a chain from ClickHouse, and anyone who may write there can rebuild
it too: change a decision, recompute every hash and node with plain INSERTs, delete the
checkpoints and anchors. Signing the head of such a chain (R4) would vouch for the forgery.
So before anything is signed the sequencer demands that the stored chain be one it can
re-derive (docs/operations.md, "The sequencer refuses to sign"):

  a. the latest stored checkpoint counts only if its note is signed by the sequencer's own
     key for the chain's origin and its size and root columns are the ones signed (a row can
     be inserted with any root column);
  b. every signed claim from outside the database, a (chain, size, root) that this signer
     produced, must still be in the stored tree: not beyond its head (`truncated`) and with
     the root of the stored tree at that size (`rewritten`). The claims are the signer state
     file's last checkpoint (`ledger.signer_state`) and, when the composition root provides
     one, the newest anchor on the EVM chain (`OutsideClaims`);
  c. the entries that nothing above covers (beyond the larger of the trusted checkpoint and
     the largest matched claim) are re-derived from their recorded offsets of the decisions
     topic (`ledger.rederive`): a record that is not there or not on the current cluster is
     `underivable`, another decision is `rederive_mismatch`. After a crash between steps 1
     and 2 that is the one batch without a checkpoint.
Any failure raises `SigningRefusedError`, and nothing is signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from attestcore.errors import (
    AttestreamError,
    MalformedError,
    ProofError,
    ServiceUnavailableError,
    SigningRefusedError,
)
from attestcore.records import ENTRY_COLUMNS, StoredCheckpoint
from ledger.entry import Entry, decode_entry
from ledger.keys import NoteVerifier
from ledger.merkle import MerkleTree, NodeId, compact_range_ids, leaf_hash, tree_root
from ledger.note import open_checkpoint
from ledger.recovery import RecoveredChain
from ledger.signer_state import SignerStateFile
from ledger.topic_records import rederive

log = logging.getLogger("attestream.ledger")

REDERIVE_CHUNK = 10_000
"""Entries re-derived per read of the topic: bounds memory when a whole chain is uncovered
(no checkpoint, no claim: every entry is read back from Kafka)."""

_ENTRY = ENTRY_COLUMNS.index("entry")
_SEQ = ENTRY_COLUMNS.index("seq")


@dataclass(frozen=True)
class Source:
    """Where the sequencer reads the chain's decisions now."""

    cluster: str
    topic: str


@dataclass(frozen=True)
class SignedClaim:
    """A tree head this signer produced, known from outside the database."""

    chain: int
    size: int
    root: bytes
    source: str
    """Where it is known from, for messages (the state file, an anchor transaction)."""


class OutsideClaims(Protocol):
    """Signed claims about `chain` from outside the database (the newest anchor on the EVM
    chain). Raises `ServiceUnavailableError` when its source does not answer (the guard then
    goes on without it) and `SigningRefusedError` when that source contradicts the store."""

    def __call__(self, chain: int) -> Sequence[SignedClaim]: ...


class TrustStore(Protocol):
    """The reads the checks need (ClickHouseStore, or an in-memory store in tests)."""

    def read_nodes(self, chain: int, ids: Sequence[NodeId]) -> dict[NodeId, bytes]: ...
    def entry_rows(self, chain: int, start: int = 0) -> Iterable[Sequence[Any]]: ...


class _Nodes:
    def __init__(self, store: TrustStore, chain: int) -> None:
        self.store, self.chain = store, chain

    def read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return self.store.read_nodes(self.chain, ids)


@dataclass
class SigningGuard:
    """Step R3 for the sequencer: `check` returns or raises `SigningRefusedError`."""

    verifier: NoteVerifier
    """The sequencer's own key: only its signatures count."""
    state: SignerStateFile
    bootstrap: str
    """The decisions topic's brokers, to re-derive uncovered entries."""
    outside: OutsideClaims | None = None
    outside_unavailable: Callable[[str], None] = lambda cause: None
    """Told when the outside source did not answer (a metric)."""

    @property
    def key(self) -> str:
        return f"{self.verifier.name}+{self.verifier.key_id:08x}"

    def remember(self, origin: str, chain: int, size: int, root: bytes) -> None:
        """Record a checkpoint just stored (after step 2 and R4)."""
        self.state.record(origin, self.key, chain, size, root)

    def check(
        self, store: TrustStore, origin: str, recovered: RecoveredChain, source: Source
    ) -> int:
        """Steps a-c of the module doc for one recovered chain; returns how many entries are
        covered by what this signer produced (the rest were re-derived)."""
        chain, head = recovered.writer.chain, recovered.head.size
        covered = self._trusted_checkpoint(origin, chain, recovered.checkpoint)  # a
        for claim in self._claims(origin, chain, head):  # b
            check_claim(store, recovered, claim)
            covered = max(covered, claim.size)
        if covered < head:  # c
            log.info(
                "chain %d: entries %d..%d are covered by no checkpoint of this signer;"
                " re-deriving them from the decisions topic",
                chain,
                covered,
                head - 1,
            )
            check_derivable(store, recovered, covered, self.bootstrap, source)
        return covered

    def _trusted_checkpoint(self, origin: str, chain: int, cp: StoredCheckpoint | None) -> int:
        if cp is None:
            return 0
        seq = cp.size - 1 if cp.size else None
        try:
            signed = open_checkpoint(cp.note, [self.verifier], origin)
        except AttestreamError as exc:
            raise SigningRefusedError(
                "untrusted_checkpoint",
                chain,
                seq,
                f"the latest stored checkpoint (size {cp.size}) is not one this signer"
                f" ({self.key}) signed for {origin}: {exc}",
            ) from None
        if (signed.size, bytes(signed.root)) != (cp.size, cp.root):
            raise SigningRefusedError(
                "untrusted_checkpoint",
                chain,
                seq,
                f"the latest stored checkpoint row says size {cp.size}, root {cp.root.hex()};"
                f" its signed note says size {signed.size}, root {bytes(signed.root).hex()}",
            )
        return cp.size

    def _claims(self, origin: str, chain: int, head: int) -> list[SignedClaim]:
        claims = []
        last = self.state.last(origin, self.key)
        if last is not None and last.chain == chain:
            claims.append(
                SignedClaim(
                    chain, last.size, last.root_hash, f"the signer state file {self.state.path}"
                )
            )
        elif head:
            log.warning(
                "chain %d: the signer state file %s has no checkpoint of %s signed by"
                " %s: trust on first use of the stored chain",
                chain,
                self.state.path,
                origin,
                self.key,
            )
        if self.outside is not None:
            try:
                claims.extend(self.outside(chain))
            except (ServiceUnavailableError, MalformedError) as exc:
                # Availability over a second witness: the state file and the re-derivation
                # still guard the chain (docs/operations.md).
                log.warning(
                    "chain %d: anchors on the EVM chain could not be read, checking"
                    " against the signer state file only: %s",
                    chain,
                    exc,
                )
                self.outside_unavailable(str(exc))
        return claims


def check_claim(store: TrustStore, recovered: RecoveredChain, claim: SignedClaim) -> None:
    """The stored tree at the claim's size must have the claimed root."""
    chain, head = recovered.writer.chain, recovered.head.size
    if claim.size > head:
        raise SigningRefusedError(
            "truncated",
            chain,
            head,
            f"{claim.source} holds a checkpoint of size {claim.size} signed by this signer,"
            f" but the stored chain ends at {head} entries",
        )
    try:
        stored = stored_root(store, recovered, claim.size)
    except (ProofError, MalformedError) as exc:
        stored, why = None, str(exc)
    if stored != claim.root:
        detail = f"has root {stored.hex()}" if stored is not None else f"cannot be read ({why})"
        raise SigningRefusedError(
            "rewritten",
            chain,
            claim.size - 1,
            f"{claim.source} holds root {claim.root.hex()} at size {claim.size}, signed by this"
            f" signer; the stored tree of that size {detail}",
        )


def stored_root(store: TrustStore, recovered: RecoveredChain, size: int) -> bytes:
    """The root of the stored tree of `size` leaves: from the stored compact-range nodes when
    the trusted checkpoint covers `size`, else from that checkpoint's compact range extended
    with the leaves re-hashed from the stored tail (R2)."""
    chain, base = recovered.writer.chain, recovered.checkpointed
    if size <= base:
        return bytes(tree_root(size, _Nodes(store, chain)))
    if size == recovered.writer.size:
        return bytes(recovered.writer.tree.root())
    ids = compact_range_ids(base)
    nodes = store.read_nodes(chain, ids)  # present and checked against the root in R2
    tree = MerkleTree.from_compact_range(base, [nodes[node] for node in ids])
    tree.extend_leaf_hashes(recovered.tail[: size - base])
    return bytes(tree.root())


def check_derivable(
    store: TrustStore, recovered: RecoveredChain, start: int, bootstrap: str, source: Source
) -> None:
    """Entries `start`.. of the chain must carry the decisions at their recorded offsets of
    the chain's partition of the decisions topic, on the cluster the sequencer reads now."""
    chain = recovered.writer.chain
    chunk: list[Entry] = []
    for row in store.entry_rows(chain, start):
        chunk.append(_tail_entry(recovered, row[_SEQ], bytes(row[_ENTRY]), source.topic))
        if len(chunk) == REDERIVE_CHUNK:
            _rederive(chain, chunk, bootstrap, source.cluster)
            chunk = []
    _rederive(chain, chunk, bootstrap, source.cluster)


def _tail_entry(recovered: RecoveredChain, seq: int, data: bytes, topic: str) -> Entry:
    """The entry at `seq` of the tail, which must be the one recovery hashed (nobody wrote
    since) and come from the chain's partition of the decisions topic."""
    chain = recovered.writer.chain
    index = seq - recovered.checkpointed
    if not 0 <= index < len(recovered.tail) or recovered.tail[index] != leaf_hash(data):
        raise SigningRefusedError(
            "underivable", chain, seq, "the entry changed while the chain was being recovered"
        )
    try:
        entry = decode_entry(data)
    except MalformedError as exc:
        raise SigningRefusedError("underivable", chain, seq, str(exc)) from None
    if (entry.source.topic, entry.source.partition) != (topic, chain):
        raise SigningRefusedError(
            "underivable",
            chain,
            seq,
            f"read from {entry.source.topic}/{entry.source.partition},"
            f" not from this chain's partition {topic}/{chain}",
        )
    return entry


def _rederive(chain: int, entries: list[Entry], bootstrap: str, cluster_id: str) -> None:
    mismatches = rederive(bootstrap, cluster_id, entries)
    if mismatches:
        first = mismatches[0]
        kind = "underivable" if first.unreadable else "rederive_mismatch"
        more = f" (and {len(mismatches) - 1} more entries)" if len(mismatches) > 1 else ""
        raise SigningRefusedError(kind, chain, first.seq, first.reason + more)
