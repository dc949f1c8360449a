"""Case bundles: built from an in-memory ledger of two chains, verified with the verifier key
alone, and every tampering named by its kind, chain and entry."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

import pytest
from case_bundles import (
    EXPORTER,
    POSITIONS,
    TX,
    Json,
    as_json,
    by_ids,
    two_chains,
)
from memory_ledger import COL, SIGNER, STRANGER

from attestcore.errors import MalformedError, UsageError
from attestream.published_schemas import json_schema
from forensics.case_bundle import (
    CaseBundleFile,
    Selection,
    build_case_bundle,
    load_case_bundle,
)
from forensics.verify_bundle import BundleReport, verify_case_bundle
from ledger.entry_filter import parse_query
from ledger.merkle import inclusion_proof_ids
from ledger.note import sign_note


def verified(data: Json) -> BundleReport:
    """Verify a bundle as its file holds it, with the log's verifier key only."""
    return verify_case_bundle(load_case_bundle(json.dumps(data).encode()), [SIGNER.verifier()])


def test_a_bundle_of_entries_on_two_chains_verifies_with_the_key_alone() -> None:
    ledger = two_chains()
    bundle = by_ids(ledger)
    report = verified(as_json(bundle))
    assert report.ok, report.failures
    assert (report.entries, report.events) == (8, 8)
    assert [(c.chain, c.tree_size, c.anchor_tx) for c in report.chains] == [(0, 9, TX), (1, 7, TX)]
    assert all(c.signed_by == ["attestream.test/ledger"] for c in report.chains)
    manifest = bundle.manifest
    assert (manifest.exported_by, manifest.note, manifest.tool) == (
        "investigator",
        "case 17: chargebacks",
        "attestream 0.1.0",
    )
    counts = {"entries": 8, "chains": 2, "events": 8, "anchored_chains": 2}
    assert msgspec_counts(bundle) == {**counts, "nodes": manifest.counts.nodes}
    assert [(e.chain, e.seq) for e in bundle.entries] == POSITIONS
    assert bundle.entries[0].entry == ledger.row(1, 0)[COL["entry"]]


def msgspec_counts(bundle: CaseBundleFile) -> dict[str, int]:
    counts = bundle.manifest.counts
    return {name: getattr(counts, name) for name in counts.__struct_fields__}


def test_entries_past_the_anchored_checkpoint_are_proven_against_the_latest_one() -> None:
    ledger = two_chains()
    bundle = by_ids(ledger, [(0, 2), (0, 11), (1, 3)])
    chains = {c.chain: c for c in bundle.chains}
    assert (chains[0].tree_size, chains[0].anchor) == (13, None)
    assert chains[1].tree_size == 7 and chains[1].anchor is not None
    report = verified(as_json(bundle))
    assert report.ok, report.failures


def test_tree_nodes_shared_by_several_proofs_are_stored_once() -> None:
    bundle = by_ids(two_chains())
    per_entry = 0
    for chain in bundle.chains:
        seqs = [e.seq for e in bundle.entries if e.chain == chain.chain]
        per_entry += sum(len(inclusion_proof_ids(seq, chain.tree_size)) for seq in seqs)
        ids = [(n.level, n.index) for n in chain.nodes]
        assert len(ids) == len(set(ids))
    assert bundle.manifest.counts.nodes < per_entry


def test_the_events_of_a_bundle_are_read_in_one_look_up() -> None:
    """One query for all the bundle's archived events, not one per decision (a bundle of
    100 decisions made 100 queries, most of its time on a large ledger)."""
    ledger = two_chains()
    bundle = by_ids(ledger)
    looked_up = [read for read in ledger.reads if read[0] == "archived_events_by_digest"]
    assert looked_up == [("archived_events_by_digest", len(POSITIONS))]
    assert len(bundle.events) == len(POSITIONS)


def test_an_event_id_selects_its_decisions_and_a_query_its_matches() -> None:
    ledger = two_chains()
    by_event = build_case_bundle(ledger, Selection(ids=["ev-104"]), EXPORTER)
    assert [(e.chain, e.seq) for e in by_event.entries] == [(1, 4)]
    query = "outcome=review"
    selected = build_case_bundle(
        ledger, Selection(query=query, filter=parse_query(query)), EXPORTER
    )
    # decision i is flagged for review when i % 10 >= 8: 8 and 9 (chain 0), 108 absent
    assert [(e.chain, e.seq) for e in selected.entries] == [(0, 8), (0, 9)]
    report = verified(as_json(selected))
    assert report.ok, report.failures
    assert report.manifest["selection"]["filter"]["outcome"] == "review"


def test_a_store_without_an_event_archive_gives_a_bundle_without_events() -> None:
    ledger = two_chains()
    ledger.events.clear()
    report = verified(as_json(by_ids(ledger)))
    assert report.ok and report.events == 0


def test_selections_that_cannot_be_bundled_are_refused() -> None:
    ledger = two_chains()
    with pytest.raises(UsageError, match="more than 3 entries"):
        build_case_bundle(ledger, Selection(ids=["ev-1", "ev-2", "ev-3", "ev-4"]), EXPORTER, 3)
    with pytest.raises(UsageError, match="1 id\\(s\\) match no logged decision: nobody"):
        build_case_bundle(ledger, Selection(ids=["ev-1", "nobody"]), EXPORTER)
    with pytest.raises(UsageError, match="matches no logged decision"):
        build_case_bundle(
            ledger, Selection(query="entity=X", filter=parse_query("entity=X")), EXPORTER
        )


# --- tampering: each fails with its kind, naming the chain and entry ---------------------------


def change_entry(data: Json) -> None:
    entry = base64.b64decode(data["entries"][2]["entry"])  # chain 0 seq 3
    data["entries"][2]["entry"] = base64.b64encode(entry.replace(b"C3", b"C4", 1)).decode()


def change_event(data: Json) -> None:
    event = data["events"][1]  # the event of chain 0 seq 2 (digests sort as the entries do not)
    event["event"] = base64.b64encode(base64.b64decode(event["event"]) + b" ").decode()


def remove_node(data: Json) -> None:
    data["chains"][1]["nodes"].pop(0)
    data["manifest"]["counts"]["nodes"] -= 1


def resign_checkpoint(data: Json) -> None:
    note = data["chains"][1]["checkpoint"].encode()
    body = note[: note.rfind(b"\n\n") + 1]
    data["chains"][1]["checkpoint"] = sign_note(body, STRANGER).decode()


def change_anchor_root(data: Json) -> None:
    data["chains"][0]["anchor"]["anchor_root"] = "00" * 32


def drop_entry(data: Json) -> None:
    data["entries"].pop()
    data["manifest"]["counts"]["entries"] -= 1


@pytest.mark.parametrize(
    ("tamper", "kind", "where"),
    [
        (change_entry, "root_mismatch", (0, 3)),
        (change_event, "bad_event", None),
        (remove_node, "bad_proof", None),
        (resign_checkpoint, "bad_signature", (1, None)),
        (change_anchor_root, "anchor_mismatch", (0, None)),
        (drop_entry, "missing_id", (None, None)),
    ],
)
def test_each_tampering_fails_with_its_kind(
    tamper: Callable[[Json], None], kind: str, where: tuple[int | None, int | None] | None
) -> None:
    ledger = two_chains()
    data = as_json(by_ids(ledger))
    tamper(data)
    report = verified(data)
    assert not report.ok
    found = {(f.kind, f.chain, f.seq) for f in report.failures}
    assert kind in {f.kind for f in report.failures}, report.failures
    if where is not None:
        assert (kind, *where) in found, report.failures


def test_a_changed_event_names_the_entry_that_logged_it() -> None:
    ledger = two_chains()
    data = as_json(by_ids(ledger))
    digests = {ledger.row(seq, chain)[COL["entry"]]: (chain, seq) for chain, seq in POSITIONS}
    event = data["events"][0]
    event["event"] = base64.b64encode(b"another event").decode()
    logged_by = [pos for entry, pos in digests.items() if event["event_sha256"].encode() in entry]
    report = verified(data)
    assert [(f.kind, f.chain, f.seq) for f in report.failures] == [("bad_event", *logged_by[0])]
    assert hashlib.sha256(b"another event").hexdigest() in report.failures[0].detail


def test_a_removed_node_fails_the_entries_whose_proofs_need_it() -> None:
    ledger = two_chains()
    data = as_json(by_ids(ledger))
    removed = data["chains"][1]["nodes"].pop(0)
    data["manifest"]["counts"]["nodes"] -= 1
    report = verified(data)
    needing = {
        seq
        for chain, seq in POSITIONS
        if chain == 1 and (removed["level"], removed["index"]) in inclusion_proof_ids(seq, 7)
    }
    assert needing
    assert {(f.kind, f.chain, f.seq) for f in report.failures} == {
        ("bad_proof", 1, seq) for seq in needing
    }
    assert "missing from the bundle" in report.failures[0].detail


def test_entries_outside_the_recorded_selection_are_named() -> None:
    ledger = two_chains()
    data = as_json(by_ids(ledger))
    data["manifest"]["selection"]["ids"] = data["manifest"]["selection"]["ids"][1:]
    report = verified(data)
    assert [(f.kind, f.chain, f.seq) for f in report.failures] == [("outside_selection", 0, 1)]


def test_the_manifest_counts_must_match_the_content() -> None:
    data = as_json(by_ids(two_chains()))
    data["manifest"]["counts"]["events"] = 99
    report = verified(data)
    assert [(f.kind, f.detail) for f in report.failures] == [
        ("malformed", "the manifest counts 99 events, the bundle holds 8")
    ]


# --- the file format ---------------------------------------------------------------------------


def test_the_schema_names_every_member_the_bundle_has() -> None:
    data = as_json(by_ids(two_chains()))
    schema = json_schema("case-bundle")
    defs = schema["$defs"]
    members = [
        ("CaseBundleFile", data),
        ("Manifest", data["manifest"]),
        ("Selection", data["manifest"]["selection"]),
        ("Counts", data["manifest"]["counts"]),
        ("ChainEvidence", data["chains"][0]),
        ("BundledNode", data["chains"][0]["nodes"][0]),
        ("BundledEntry", data["entries"][0]),
        ("BundledEvent", data["events"][0]),
        ("AnchorProofFile", data["chains"][0]["anchor"]),
    ]
    for definition, obj in members:
        assert set(defs[definition].get("required", [])) <= set(obj), definition
        assert set(obj) <= set(defs[definition]["properties"]), definition
    assert defs["CaseBundleFile"]["properties"]["format"]["enum"] == [data["format"]]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.update(format="attestream-proof/1"), "not an attestream-bundle/1"),
        (
            lambda d: d["chains"][0]["nodes"][0].update(hash="zz"),
            r"'chains\[0\].nodes\[0\].hash' must be a string of 64 hex digits",
        ),
        (lambda d: d["entries"][0].update(entry="***"), r"'entries\[0\].entry' must be a string"),
        (lambda d: d.pop("manifest"), "lacks the field 'manifest'"),
    ],
)
def test_a_malformed_bundle_is_rejected_naming_the_member(
    change: Callable[[Json], object], match: str
) -> None:
    data = as_json(by_ids(two_chains()))
    change(data)
    with pytest.raises(MalformedError, match=match):
        load_case_bundle(json.dumps(data).encode())


def test_bytes_that_are_no_bundle_are_rejected() -> None:
    with pytest.raises(MalformedError, match="not JSON"):
        load_case_bundle(b"{nope")
    with pytest.raises(MalformedError, match="not UTF-8"):
        load_case_bundle(b"\xff{}")
