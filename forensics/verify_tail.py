"""A chain's tail past its last checkpoint: a crash window (`unsigned_tail`) or not.

The sequencer writes a batch in one INSERT (every row of it has one `logged_at`, at most
`ledger_batch_max` rows, read in offset order from the chain's partition, after the records
the last checkpoint covered) and signs a checkpoint over it before it reads the next batch;
recovery signs one over the head before anything else. So a crash leaves at most ONE batch
unsigned, directly after the last checkpoint. A tail of any other shape was not left by a
crash: it is `unexplained_tail` (docs/ledger-format.md, "Verification").

The shape is checked first, from the store alone:
1. at most `batch_max` entries (the verifier's own setting, never read from the store);
2. one `logged_at` (one INSERT);
3. one source cluster, topic and partition, the partition the chain's own, offsets strictly
   increasing;
4. the source of the last checkpoint's entries: the cluster its stored `source_cluster` names,
   the topic and partition of the last signed entry, offsets beyond both the checkpoint's
   `source_offset` and that entry's offset.
Then, given Kafka (`Rederiver`), each entry of a tail of that shape is re-derived from the
record at its source offset (`ledger.rederive`): an entry the topic does not back is
`unexplained_tail` at its seq. Only a tail that passes everything is `unsigned_tail`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from attestcore.errors import MalformedError
from attestcore.records import StoredCheckpoint
from forensics.report import FaultKind, Report
from forensics.verify_chain import COL
from ledger.access_entry import ACCESS_CHAIN
from ledger.entry import Entry, decode_entry
from ledger.rederive import Rederiver

K = FaultKind


class TailSource(Protocol):
    def entry_rows(self, chain: int, start: int = 0, stop: int | None = None) -> Iterable[Any]: ...


@dataclass(frozen=True)
class TailCheck:
    """What a tail is checked against: the verifier's batch size and, optionally, Kafka."""

    batch_max: int
    rederiver: Rederiver | None = None


@dataclass(frozen=True)
class _Tail:
    chain: int
    start: int
    """The first unsigned seq: the size of the last checkpoint (0: none)."""
    stop: int
    """The chain's size."""


def check_tail(
    source: TailSource,
    chain: int,
    size: int,
    checkpoints: Sequence[StoredCheckpoint],
    policy: TailCheck,
    report: Report,
) -> None:
    """Name the entries beyond every stored checkpoint (the caller has ruled out a batch
    signed while it walked): `unsigned_tail` or `unexplained_tail`."""
    covered = max((cp.size for cp in checkpoints), default=0)
    if chain == ACCESS_CHAIN:
        _check_access_tail(chain, covered, size, report)
        return
    tail = _Tail(chain, covered, size)
    last_signed, entries, reasons = _read(source, tail, policy.batch_max)
    if not reasons:
        covering = [cp for cp in checkpoints if cp.size == covered]
        reasons = _shape(tail, entries, last_signed, covering)
    span = f"entries {covered}..{size - 1} are covered by no checkpoint"
    if reasons:
        report.fail(
            K.UNEXPLAINED_TAIL,
            chain,
            covered,
            f"{span} and are not a crash window: {'; '.join(reasons)}",
        )
        return
    if policy.rederiver is None:
        report.fail(
            K.UNSIGNED_TAIL, chain, covered, f"{span}; one batch, not re-derived from Kafka"
        )
        return
    mismatches = policy.rederiver.rederive([entry for entry, _ in entries])
    for m in mismatches:
        detail = f"{span}; re-derived from Kafka, entry {m.seq} differs: {m.reason}"
        report.fail(K.UNEXPLAINED_TAIL, chain, m.seq, detail)
    if not mismatches:
        report.fail(
            K.UNSIGNED_TAIL, chain, covered, f"{span}; one batch, every entry re-derived from Kafka"
        )


def _check_access_tail(chain: int, covered: int, size: int, report: Report) -> None:
    """The access chain's server signs each record before it answers (ledger/access_log.py),
    so a crash leaves at most one record unsigned; nothing there comes from Kafka."""
    span = f"entries {covered}..{size - 1} are covered by no checkpoint"
    if size - covered == 1:
        report.fail(
            K.UNSIGNED_TAIL,
            chain,
            covered,
            f"{span}; one access record, its server stopped before signing it",
        )
    else:
        reason = "the access log signs every record"
        report.fail(K.UNEXPLAINED_TAIL, chain, covered, f"{span}, not a crash window: {reason}")


def _read(
    source: TailSource, tail: _Tail, batch_max: int
) -> tuple[Entry | None, list[tuple[Entry, Any]], list[str]]:
    """Step 1, then the last signed entry and the tail's entries with their `logged_at`. A
    tail longer than a batch is not read (it may be a whole forged chain)."""
    length = tail.stop - tail.start
    if length > batch_max:
        return None, [], [f"{length} entries, more than one batch (ledger_batch_max {batch_max})"]
    last_signed: Entry | None = None
    entries: list[tuple[Entry, Any]] = []
    reasons: list[str] = []
    seen: set[int] = set()
    for row in source.entry_rows(tail.chain, max(tail.start - 1, 0), tail.stop):
        seq = row[COL["seq"]]
        if seq in seen:  # a second row of one seq: the walk names it (`fork`)
            continue
        seen.add(seq)
        try:
            entry = decode_entry(bytes(row[COL["entry"]]))
        except MalformedError:
            reasons.append(f"entry {seq} does not parse")
            continue
        if seq < tail.start:
            last_signed = entry
        else:
            entries.append((entry, row[COL["logged_at"]]))
    return last_signed, entries, reasons


def _shape(
    tail: _Tail,
    entries: Sequence[tuple[Entry, Any]],
    last_signed: Entry | None,
    covering: Sequence[StoredCheckpoint],
) -> list[str]:
    """Steps 2-4: why these entries cannot be one batch after the last checkpoint."""
    reasons = []
    times = {logged_at for _, logged_at in entries}
    if len(times) > 1:
        reasons.append(f"written at {len(times)} different times (a batch is one INSERT)")
    sources = {(e.source.cluster, e.source.topic, e.source.partition) for e, _ in entries}
    if len(sources) > 1:
        reasons.append(f"read from {len(sources)} different sources (a batch has one)")
    wrong = sorted({e.source.partition for e, _ in entries} - {tail.chain})
    if wrong:
        reasons.append(
            f"read from partition {wrong[0]}, chain {tail.chain} reads partition {tail.chain}"
        )
    for (before, _), (after, _) in zip(entries, entries[1:], strict=False):
        if after.source.offset <= before.source.offset:
            reasons.append(
                f"the source offset does not increase from {before.source.offset} to"
                f" {after.source.offset} at entry {after.seq}"
            )
            break
    if entries:
        reasons += _after_checkpoint(entries[0][0], last_signed, covering)
    return reasons


def _after_checkpoint(
    first: Entry, last_signed: Entry | None, covering: Sequence[StoredCheckpoint]
) -> list[str]:
    """Step 4: the first unsigned entry comes right after what the checkpoint covered."""
    reasons = []
    src = first.source
    for cp in covering:
        if cp.source_cluster != src.cluster:
            reasons.append(
                f"read from Kafka cluster {src.cluster!r}, the checkpoint of size"
                f" {cp.size} from {cp.source_cluster!r}"
            )
        elif src.offset <= cp.source_offset:
            reasons.append(
                f"source offset {src.offset} of entry {first.seq} is not beyond the"
                f" checkpoint's source offset {cp.source_offset}"
            )
    if last_signed is not None:
        signed = last_signed.source
        if (signed.topic, signed.partition) != (src.topic, src.partition):
            reasons.append(
                f"read from {src.topic}/{src.partition}, the signed entries from"
                f" {signed.topic}/{signed.partition}"
            )
        elif signed.cluster == src.cluster and src.offset <= signed.offset:
            reasons.append(
                f"source offset {src.offset} of entry {first.seq} is not beyond the"
                f" last signed entry's offset {signed.offset}"
            )
    return list(dict.fromkeys(reasons))
