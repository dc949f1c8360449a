"""Case bundles: many logged decisions and their evidence in one self-contained file.

`attestream forensic bundle` selects entries (by a query over the searchable columns, or by a
list of decision and event ids) and writes one JSON file (format `attestream-bundle/1`,
schema docs/schemas/case-bundle.json, specified in docs/ledger-format.md, "Case bundles"):
every selected entry's exact bytes, the archived event bytes where the store has them, one
signed checkpoint per chain with the anchor proof of that checkpoint once it is anchored, the
tree nodes from which a verifier rebuilds the inclusion proof of every entry (each node once,
however many proofs share it) and a manifest saying who exported what, when, why and how.
`forensics.verify_bundle` checks a bundle with the log's verifier key alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Literal, Protocol

import msgspec

from anchoring.proofs import AnchorProofFile, AnchorProofStore, anchor_proof
from attestcore.errors import MalformedError, UsageError, VerificationError
from attestcore.records import ENTRY_COLUMNS, StoredCheckpoint
from ledger.entry import decode_entry
from ledger.entry_filter import EntryFilter
from ledger.evidence import Base64Bytes, Count, EvidenceFormat, HashHex, decode_evidence
from ledger.merkle import NodeId, inclusion_proof_ids
from ledger.node_keys import ChainNodes

CASE_BUNDLE_FORMAT: Final = "attestream-bundle/1"
DEFAULT_MAX_ENTRIES: Final = 10_000
COL = {name: i for i, name in enumerate(ENTRY_COLUMNS)}
_NODE_BATCH = 4096
"""Tree nodes read per query: a large bundle's node ids would make one huge IN list."""


# --- the format -------------------------------------------------------------------------------


class Selection(msgspec.Struct, kw_only=True, frozen=True):
    """How the entries were chosen: a query (its text and the filter it resolved to, with
    absolute times) or a list of decision and event ids."""

    query: str | None = None
    filter: EntryFilter | None = None
    ids: list[str] | None = None


class Counts(msgspec.Struct, kw_only=True, frozen=True):
    entries: Count
    chains: Count
    events: Count
    nodes: Count
    anchored_chains: Count


class Manifest(msgspec.Struct, kw_only=True, frozen=True):
    """Who exported the bundle, when (UTC), why, what was asked for, by which tool."""

    exported_by: str
    exported_at: datetime
    note: str | None = None
    selection: Selection
    tool: str
    counts: Counts


class BundledNode(msgspec.Struct, kw_only=True, frozen=True):
    """One stored tree node, the perfect subtree (level, index) (docs/ledger-format.md,
    "Tree and node addressing")."""

    level: Count
    index: Count
    hash: HashHex


class ChainEvidence(msgspec.Struct, kw_only=True, frozen=True):
    """One chain's signed checkpoint, the nodes the bundled entries' proofs need, and the
    checkpoint's anchor proof (null: not anchored when exported)."""

    chain: Count
    tree_size: Count
    checkpoint: str
    """The signed checkpoint note, UTF-8 text."""
    nodes: list[BundledNode]
    anchor: AnchorProofFile | None = None


class BundledEntry(msgspec.Struct, kw_only=True, frozen=True):
    chain: Count
    seq: Count
    entry: Base64Bytes
    """The entry's exact stored bytes."""


class BundledEvent(msgspec.Struct, kw_only=True, frozen=True):
    """An archived event's exact bytes, whose SHA-256 a bundled decision logged."""

    event_sha256: HashHex
    event: Base64Bytes


class CaseBundleFile(EvidenceFormat, kw_only=True, frozen=True):
    """A case bundle as JSON (docs/ledger-format.md, "Case bundles")."""

    KIND: ClassVar[str] = "case bundle"
    format: Literal["attestream-bundle/1"]
    manifest: Manifest
    chains: list[ChainEvidence]
    entries: list[BundledEntry]
    events: list[BundledEvent]


def dump_case_bundle(bundle: CaseBundleFile) -> bytes:
    """The bundle's file bytes: JSON, indented, one final newline."""
    return msgspec.json.format(msgspec.json.encode(bundle), indent=1) + b"\n"


def load_case_bundle(content: bytes) -> CaseBundleFile:
    """Parse a bundle file; anything but a well-formed bundle raises MalformedError naming
    the member."""
    try:
        data = json.loads(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedError(f"case bundle is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise MalformedError(f"case bundle is not JSON: {exc}") from None
    return decode_evidence(data, CaseBundleFile)


# --- building one ----------------------------------------------------------------------------


class EventArchive(Protocol):
    """Where the exact bytes of the events behind decisions are kept, by their SHA-256."""

    def archived_event(self, event_sha256: str) -> bytes | None:
        """The event's bytes, or None when they are not archived."""
        ...

    def archived_events_by_digest(self, digests: Sequence[str]) -> Mapping[str, bytes]:
        """The bytes of those of the events that are archived, by digest (one look-up for
        many: a bundle of a thousand decisions must not make a thousand queries)."""
        ...


class BundleStore(AnchorProofStore, EventArchive, Protocol):
    """What a case bundle is built from (the ClickHouse store, or an in-memory ledger)."""

    def entries_matching(self, where: EntryFilter, limit: int) -> Sequence[Sequence[Any]]: ...
    def entries_with_ids(self, ids: Sequence[str], limit: int) -> Sequence[Sequence[Any]]: ...
    def latest_checkpoint(self, chain: int) -> StoredCheckpoint | None: ...


@dataclass(frozen=True)
class Exporter:
    """The manifest's account of the export, apart from what the bundle holds."""

    by: str
    at: datetime
    tool: str
    note: str | None = None


def select_entries(
    store: BundleStore, selection: Selection, max_entries: int = DEFAULT_MAX_ENTRIES
) -> list[Sequence[Any]]:
    """The entries a selection names, by (chain, seq), one row per position. UsageError when
    it names none, more than `max_entries`, or ids that no logged decision has."""
    if selection.filter is not None:
        rows = store.entries_matching(selection.filter, max_entries + 1)
    elif selection.ids:
        rows = store.entries_with_ids(selection.ids, max_entries + 1)
    else:
        raise UsageError("select entries with a query or a list of ids")
    if len(rows) > max_entries:
        raise UsageError(
            f"the selection holds more than {max_entries} entries: narrow it, or"
            " raise the limit with --max"
        )
    unique = list({(int(r[COL["chain"]]), int(r[COL["seq"]])): r for r in reversed(rows)}.values())
    unique.sort(key=lambda r: (int(r[COL["chain"]]), int(r[COL["seq"]])))
    if selection.ids:
        found = {bytes(r[COL[c]]).decode() for r in unique for c in ("decision_id", "event_id")}
        missing = [i for i in selection.ids if i not in found]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise UsageError(f"{len(missing)} id(s) match no logged decision: {shown}")
    if not unique:
        raise UsageError("the selection matches no logged decision")
    return unique


def build_case_bundle(
    store: BundleStore,
    selection: Selection,
    exporter: Exporter,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> CaseBundleFile:
    """The bundle of the selected entries: per chain the largest anchored checkpoint covering
    all of them (with its anchor proof), else the latest checkpoint; the nodes of every
    inclusion proof against it, each once; the archived events the store has."""
    rows = select_entries(store, selection, max_entries)
    by_chain: dict[int, list[int]] = {}
    for row in rows:
        by_chain.setdefault(int(row[COL["chain"]]), []).append(int(row[COL["seq"]]))
    anchors = store.anchors()
    chains = []
    for chain, seqs in sorted(by_chain.items()):
        anchored = max((dict(a.checkpoints).get(chain, 0) for a in anchors), default=0)
        chains.append(_chain_evidence(store, chain, seqs, anchored))
    entries = [
        BundledEntry(
            chain=int(r[COL["chain"]]), seq=int(r[COL["seq"]]), entry=bytes(r[COL["entry"]])
        )
        for r in rows
    ]
    events = _archived_events(store, rows)
    counts = Counts(
        entries=len(entries),
        chains=len(chains),
        events=len(events),
        nodes=sum(len(c.nodes) for c in chains),
        anchored_chains=sum(1 for c in chains if c.anchor),
    )
    manifest = Manifest(
        exported_by=exporter.by,
        exported_at=exporter.at,
        note=exporter.note,
        selection=selection,
        tool=exporter.tool,
        counts=counts,
    )
    return CaseBundleFile(
        format=CASE_BUNDLE_FORMAT, manifest=manifest, chains=chains, entries=entries, events=events
    )


def _chain_evidence(
    store: BundleStore, chain: int, seqs: list[int], anchored: int
) -> ChainEvidence:
    last = max(seqs)
    found = store.checkpoint_at(chain, anchored) if anchored > last else []
    checkpoint = found[0] if found else store.latest_checkpoint(chain)
    if checkpoint is None or checkpoint.size <= last:
        raise VerificationError(
            f"entry {chain}/{last} is not covered by a signed checkpoint yet; try again shortly"
        )
    wanted = list(
        dict.fromkeys(i for seq in seqs for i in inclusion_proof_ids(seq, checkpoint.size))
    )
    hashes = _read_nodes(ChainNodes(store, chain), wanted)
    missing = [i for i in wanted if i not in hashes]
    if missing:
        raise VerificationError(
            f"chain {chain}: tree nodes (level, index) missing from the store: {missing[:10]}"
        )
    nodes = [
        BundledNode(level=level, index=index, hash=hashes[(level, index)].hex())
        for level, index in sorted(wanted)
    ]
    anchor = anchor_proof(store, chain, checkpoint.size).to_file() if found else None
    return ChainEvidence(
        chain=chain,
        tree_size=checkpoint.size,
        checkpoint=bytes(checkpoint.note).decode("utf-8"),
        nodes=nodes,
        anchor=anchor,
    )


def _read_nodes(nodes: ChainNodes, wanted: list[NodeId]) -> dict[NodeId, bytes]:
    found: dict[NodeId, bytes] = {}
    for start in range(0, len(wanted), _NODE_BATCH):
        found.update(nodes.read_nodes(wanted[start : start + _NODE_BATCH]))
    return found


def _archived_events(store: EventArchive, rows: list[Sequence[Any]]) -> list[BundledEvent]:
    """The archived bytes of each distinct event the entries' decisions logged, by digest."""
    digests = sorted({decode_entry(bytes(r[COL["entry"]])).decision.event_sha256 for r in rows})
    found = store.archived_events_by_digest(digests)
    return [BundledEvent(event_sha256=d, event=bytes(found[d])) for d in digests if d in found]
