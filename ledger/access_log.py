"""The access chain's writer: each request to the forensic API made durable before it is answered.

One server process writes the access chain (docs/operations.md, "The forensic API"). Order of
durability for every access record (never reordered, as in ledger/sequencer.py):
  0. fence: the store still ends where this writer last wrote (no checkpoint or entry of the
     access chain has appeared at or beyond its size since), else `AccessChainFencedError`
     and nothing is written: another server writes the access chain;
  1. the entry, then its tree nodes, are inserted;
  2. the signed checkpoint over the new tree size is inserted.
On start (`open`):
  R1, R2. the writer is rebuilt from ClickHouse (`ledger.recovery`: head, checkpointed tree,
     re-hashed unsigned tail);
  R4. a checkpoint over the head is signed: it completes a step 2 a crash interrupted, or
     claims the chain for this process, which the fence of any other writer sees.
Records are appended one at a time under a lock: the server answers a request only once its
record is signed (step 2), so a request is never answered without its trace.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from attestcore.errors import AttestreamError, ExitCode
from attestcore.records import OwnershipMarks, StoredCheckpoint
from ledger.access_entry import ACCESS_CHAIN, AccessRecord
from ledger.chain import ChainWriter
from ledger.keys import NoteSigner
from ledger.merkle import RootHash
from ledger.note import Checkpoint, sign_note
from ledger.recovery import RecoveryStore, recover_chain


class AccessChainFencedError(AttestreamError):
    """Another process has written the access chain since this one last did (two servers
    on one ledger): this one writes no more access records."""

    exit_code = ExitCode.USAGE
    kind = "access_chain_fenced"


_FENCED = (
    "the access chain was written by another process since this server last did: run one"
    " `attestream serve` per ledger, and restart this one"
)


class AccessLogStore(RecoveryStore, Protocol):
    """The store as the access log uses it (ClickHouseStore)."""

    def insert_entries(self, columns: Mapping[str, Sequence[Any]]) -> None: ...
    def insert_checkpoint(self, cp: StoredCheckpoint) -> None: ...
    def ownership_marks(self, chain: int, size: int) -> OwnershipMarks: ...


class AccessLog:
    """Appends access records to the access chain, in the order written in the module doc."""

    def __init__(
        self,
        store: AccessLogStore,
        signer: NoteSigner,
        origin_prefix: str,
        chain: int = ACCESS_CHAIN,
    ) -> None:
        self.store = store
        self.signer = signer
        self.chain = chain
        self.origin = f"{origin_prefix}/{chain}"
        self._lock = threading.Lock()
        self._writer: ChainWriter | None = None
        self._marks = OwnershipMarks(0, 0, 0)
        self._fenced = False

    def open(self) -> None:
        """Steps R1, R2 and R4: take over the access chain from the store."""
        with self._lock:
            self._open()

    def _open(self) -> None:
        recovered = recover_chain(self.store, self.chain)  # R1, R2
        writer = recovered.writer
        if writer.size:  # R4
            self._sign(writer.size, writer.tree.root())
        marks = self.store.ownership_marks(self.chain, writer.size)
        self._marks = OwnershipMarks(marks.checkpoints, writer.size, 0)
        self._writer = writer

    @property
    def size(self) -> int:
        return self._writer.size if self._writer is not None else 0

    def append(self, record: AccessRecord) -> int:
        """Steps 0-2 for one record; returns its seq in the access chain."""
        with self._lock:
            if self._fenced:
                raise AccessChainFencedError(_FENCED)
            if self._writer is None:  # not opened, or a write failed half-way: as a restart
                self._open()
            writer = self._writer
            assert writer is not None
            # Step 0: still the access chain's only writer?
            if self.store.ownership_marks(self.chain, self._marks.max_size) != self._marks:
                self._fenced = True
                raise AccessChainFencedError(_FENCED)
            seq = writer.size
            result = writer.append_access([record])
            try:
                # Step 1: the entry and its tree nodes durable.
                self.store.insert_entries(result.entries)
                self.store.insert_nodes(self.chain, result.node_keys, result.node_hashes)
                # Step 2: the checkpoint over the new size durable.
                self._sign(result.size, result.root)
            except BaseException:
                self._writer = None  # the next record rebuilds the chain from the store first
                raise
            self._marks = OwnershipMarks(1, result.size, 0)
            return seq

    def _sign(self, size: int, root: bytes) -> None:
        body = Checkpoint(self.origin, size, RootHash(root)).body()
        self.store.insert_checkpoint(
            StoredCheckpoint(
                chain=self.chain,
                size=size,
                root=root,
                note=sign_note(body, self.signer),
                source_cluster="",
                source_offset=-1,
            )
        )
