"""The standalone verifier (verifier/attestream_verify_bundle.py) against
`forensics.verify_bundle`: the same verdict, counts, chains and failures (kind, chain, seq,
detail) on valid bundles (entries of format 1 and 2, anchored and not) and on each tampering."""

from __future__ import annotations

import ast
import base64
import json
import sys
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from case_bundles import EXPORTER, Json, as_json, by_ids, two_chains
from memory_ledger import SIGNER, STRANGER, MemoryLedger, checkpoint, rows_of
from search_ledger import payment
from standalone_verifier import VERIFIER, load_verifier

from attestcore.errors import MalformedError
from forensics.case_bundle import Selection, build_case_bundle, load_case_bundle
from forensics.verify_bundle import verify_case_bundle
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource, decode_entry
from ledger.entry_filter import parse_query
from ledger.keys import verifier_key_string
from ledger.merkle import (
    MemoryNodeStore,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
)
from ledger.note import sign_note

standalone = load_verifier()
KEY = verifier_key_string(SIGNER)
V2_CHAIN = 2


def with_v2_chain(ledger: MemoryLedger) -> MemoryLedger:
    """Chain 2: six payments whose decisions carry investigation fields (entries of format 2),
    their events archived; checkpoints at 4 and 6, not anchored."""
    writer = ChainWriter(chain=V2_CHAIN, tree=MerkleTree(), prev=None)
    done = 0
    for size in (4, 6):
        batch = []
        for i in range(done, size):
            decision, event = payment(i, f"cust-{i % 2}", f"term-{i}", score=i / 6)
            ledger.events[decision.event_sha256] = event
            source = EntrySource(cluster="k1", topic="decisions", partition=0, offset=i)
            batch.append(Incoming(decision, source, event))
        result = writer.append(batch)
        done = size
        ledger.rows.setdefault(V2_CHAIN, []).extend(rows_of(result.entries))
        nodes = ledger.node_rows.setdefault(V2_CHAIN, [])
        nodes.extend(zip(result.node_keys, result.node_hashes, strict=True))
        ledger.cps.setdefault(V2_CHAIN, []).append(checkpoint(V2_CHAIN, size, result.root))
    return ledger


def both_formats() -> Json:
    ledger = with_v2_chain(two_chains())
    return as_json(by_ids(ledger, [(0, 1), (0, 7), (1, 4), (2, 0), (2, 3), (2, 5)]))


def by_query() -> Json:
    query = "outcome=review"
    ledger = two_chains()
    return as_json(
        build_case_bundle(ledger, Selection(query=query, filter=parse_query(query)), EXPORTER)
    )


def reference(data: Json) -> dict[str, Any]:
    report = verify_case_bundle(load_case_bundle(json.dumps(data).encode()), [SIGNER.verifier()])
    return report.to_json()


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report but the manifest; of a `bad_entry` failure the detail's start only (which
    member is wrong is said in each JSON parser's own words)."""
    failures = [
        (f["kind"], f["chain"], f["seq"], f["detail"][: 20 if f["kind"] == "bad_entry" else None])
        for f in report["failures"]
    ]
    kept = ("ok", "entries", "events", "chains")
    return {**{k: report[k] for k in kept}, "failures": failures}


def agree(data: Json) -> dict[str, Any]:
    """Both verifiers' reports of `data`, asserted equal; returns the standalone one."""
    mine = standalone.verify(json.loads(json.dumps(data)), [standalone.parse_key(KEY)])
    assert comparable(mine) == comparable(reference(data))
    return dict(mine)


def test_valid_bundles_verify_alike() -> None:
    mixed = both_formats()
    versions = {decode_entry(base64.b64decode(e["entry"])).v for e in mixed["entries"]}
    assert versions == {1, 2}
    report = agree(mixed)
    assert report["ok"] and (report["entries"], report["events"]) == (6, 6)
    assert [c["anchor_tx"] is not None for c in report["chains"]] == [True, True, False]
    assert agree(by_query())["ok"]
    assert agree(as_json(by_ids(two_chains())))["ok"]


def flip(text: str, at: int) -> str:
    """A base64 member with one byte of its decoded bytes changed (bit 0 flipped)."""
    raw = bytearray(base64.b64decode(text))
    raw[at] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def entry_text(data: Json) -> None:  # "C3" -> "C2" in chain 0's first entry: still JSON
    entry = base64.b64decode(data["entries"][0]["entry"])
    data["entries"][0]["entry"] = base64.b64encode(entry.replace(b'"C1"', b'"C0"', 1)).decode()


def entry_syntax(data: Json) -> None:  # the opening brace of a format-2 entry
    data["entries"][3]["entry"] = flip(data["entries"][3]["entry"], 0)


def entry_not_object(data: Json) -> None:
    data["entries"][4]["entry"] = base64.b64encode(b"[2, 3]").decode()


def event_byte(data: Json) -> None:
    data["events"][-1]["event"] = flip(data["events"][-1]["event"], 3)


def signature_byte(data: Json) -> None:
    note = data["chains"][2]["checkpoint"]
    body, sigs = note[: note.rindex("\n\n") + 2], note[note.rindex("\n\n") + 2 :]
    name, encoded = sigs.rstrip("\n").rsplit(" ", 1)
    data["chains"][2]["checkpoint"] = f"{body}{name} {flip(encoded, 20)}\n"


def node_hash(data: Json) -> None:
    node = data["chains"][0]["nodes"][0]
    node["hash"] = f"{int(node['hash'][0], 16) ^ 1:x}{node['hash'][1:]}"


def stranger_signed(data: Json) -> None:
    note = data["chains"][1]["checkpoint"].encode()
    data["chains"][1]["checkpoint"] = sign_note(note[: note.rfind(b"\n\n") + 1], STRANGER).decode()


def consistency_hash(data: Json) -> None:
    proof = data["chains"][0]["anchor"]  # the bundle's checkpoint is the anchored one
    proof["consistency_proof"].append("00" * 32)


def anchored_note(data: Json) -> None:
    proof = data["chains"][1]["anchor"]
    proof["anchored_checkpoint"] = flip(proof["anchored_checkpoint"], 2)


def missing_node(data: Json) -> None:
    data["chains"][2]["nodes"].pop()
    data["manifest"]["counts"]["nodes"] -= 1


def wrong_tree_size(data: Json) -> None:
    data["chains"][1]["tree_size"] += 1


def moved_entry(data: Json) -> None:
    data["entries"][1]["seq"] = 2


def twice(data: Json) -> None:
    data["entries"].append(data["entries"][0])
    data["events"].append(data["events"][0])
    data["chains"][0]["nodes"].append(data["chains"][0]["nodes"][0])


def narrower_ids(data: Json) -> None:
    data["manifest"]["selection"]["ids"] = data["manifest"]["selection"]["ids"][1:] + ["ev-404"]


def unlogged_event(data: Json) -> None:
    data["entries"].pop(0)
    data["manifest"]["counts"]["entries"] = 99


TAMPERINGS: dict[str, tuple[Callable[[Json], None], str]] = {
    "entry_text": (entry_text, "root_mismatch"),
    "entry_syntax": (entry_syntax, "bad_entry"),
    "entry_not_object": (entry_not_object, "bad_entry"),
    "event_byte": (event_byte, "bad_event"),
    "signature_byte": (signature_byte, "bad_signature"),
    "node_hash": (node_hash, "root_mismatch"),
    "stranger_signed": (stranger_signed, "bad_signature"),
    "consistency_hash": (consistency_hash, "anchor_mismatch"),
    "anchored_note": (anchored_note, "anchor_mismatch"),
    "missing_node": (missing_node, "bad_proof"),
    "wrong_tree_size": (wrong_tree_size, "bad_checkpoint"),
    "moved_entry": (moved_entry, "bad_entry"),
    "twice": (twice, "malformed"),
    "narrower_ids": (narrower_ids, "missing_id"),
    "unlogged_event": (unlogged_event, "bad_event"),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_each_tampering_fails_alike(name: str) -> None:
    tamper, kind = TAMPERINGS[name]
    data = both_formats()
    tamper(data)
    report = agree(data)
    assert not report["ok"] and kind in {f["kind"] for f in report["failures"]}, report


def test_consistency_and_inclusion_proofs_are_checked_as_rfc_9162_says() -> None:
    """Every proof between trees of 1..12 leaves, and each proof with one hash changed, is
    accepted or refused by the standalone verifier as by `ledger.merkle`."""
    tree, roots, nodes = MerkleTree(), [b""], MemoryNodeStore()
    for i in range(12):
        nodes.add_runs(tree.extend([b"leaf %d" % i]))
        roots.append(tree.root())
    for size2 in range(1, 13):
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(size1, size2, nodes)
            standalone.verify_consistency(size1, size2, proof, roots[size1], roots[size2])
            for k in range(len(proof)):
                bad = [h if j != k else bytes(32) for j, h in enumerate(proof)]
                with pytest.raises(standalone.Failure):
                    standalone.verify_consistency(size1, size2, bad, roots[size1], roots[size2])
        for index in range(size2):
            path = inclusion_proof(index, size2, nodes)
            leaf = leaf_hash(b"leaf %d" % index)
            standalone.verify_inclusion(index, size2, leaf, path, roots[size2])
            with pytest.raises(standalone.Failure, match="root mismatch"):
                standalone.verify_inclusion(index, size2, leaf, path, bytes(32))


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(format="attestream-proof/1"),
        lambda d: d["chains"][0]["nodes"][0].update(hash="zz"),
        lambda d: d["entries"][0].update(entry="***"),
        lambda d: d["chains"][0]["anchor"].update(tx_hash="0x12"),
        lambda d: d.pop("manifest"),
        lambda d: d["manifest"]["counts"].update(events=-1),
    ],
)
def test_a_malformed_bundle_is_rejected_by_both(change: Callable[[Json], object]) -> None:
    data = both_formats()
    change(data)
    with pytest.raises(MalformedError):
        reference(data)
    with pytest.raises(standalone.Failure) as raised:
        standalone.verify(data, [standalone.parse_key(KEY)])
    assert raised.value.kind == "malformed"


def test_the_report_is_printed_as_verify_bundle_prints_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = both_formats()
    report = standalone.verify(data, [standalone.parse_key(KEY)])
    standalone.print_report(report)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "VERIFIED: 6 entries in 3 chain(s), 6 archived event(s); exported by investigator"
        " at 2026-01-02T03:04:05Z"
    )
    assert lines[3] == (
        "  chain 2: attestream.test/ledger/2 tree size 6, signed by attestream.test/ledger;"
        " not anchored when exported"
    )
    assert msgspec.json.decode(json.dumps(report)) == report


def test_the_verifier_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(VERIFIER.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    top = {name.split(".")[0] for name in imported}
    assert top - set(sys.stdlib_module_names) == {"cryptography"}
