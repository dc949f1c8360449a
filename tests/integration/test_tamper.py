"""Tampering with a real ledger through plain SQL on the real ClickHouse, and what
`forensic verify` names: one test per kind of tampering, then range verification.

Each test tampers with its own copy (`ledger`, see conftest.py) of a small ledger the real
sequencer wrote. Attacks on the ledger's history (consistent rebuilds, forged tails, cuts at
checkpoints, crash windows) are in test_tamper_history.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from factories import make_decision
from ledger_helpers import (
    delete_nodes_from_leaf,
    entry_row,
    overwrite_entry,
    set_node,
    tamper,
)
from tamper_ledger import BATCH, ENTRIES, Ledger, anchor_with_own_account, cli_env, found

from anchoring.rpc import ChainClient
from anchoring.runner import anchor_once
from anchoring.service import AnchorService
from anchoring.store import AnchoredStore
from attestcore.records import ENTRY_COLUMNS
from forensics.verify import verify_ledger
from forensics.verify_range import verify_range
from forensics.verify_tail import TailCheck
from ledger.chain import ChainWriter, Incoming
from ledger.entry import EntrySource
from ledger.keys import signer_from_seed
from ledger.merkle import MerkleTree, compact_range_ids
from ledger.node_keys import node_key
from ledger.note import sign_note

# --- one test per kind of tampering ----------------------------------------------------------


def test_changed_entry_bytes(ledger: Ledger) -> None:
    tamper(
        ledger.store,
        "ALTER TABLE {db}.entries UPDATE entry = replaceOne(entry, '\"review\"', '\"approve\"')"
        " WHERE seq = 8",
    )
    faults = ledger.verify()
    assert {("bad_leaf", 0, 8), ("column_mismatch", 0, 8), ("broken_link", 0, 9)} <= faults
    # The tree nodes still hold the original leaf: the entry is blamed, not the nodes.
    assert {kind for kind, _, _ in faults} == {
        "bad_leaf",
        "column_mismatch",
        "broken_link",
        "root_mismatch",
    }


def test_changed_column_with_bytes_kept(ledger: Ledger) -> None:
    tamper(ledger.store, "ALTER TABLE {db}.entries UPDATE outcome = 'block' WHERE seq = 5")
    assert ledger.verify() == {("column_mismatch", 0, 5)}


def test_deleted_entry_is_a_gap(ledger: Ledger) -> None:
    tamper(ledger.store, "ALTER TABLE {db}.entries DELETE WHERE seq = 6")
    assert ledger.verify() == {("gap", 0, 6)}


def test_forged_entry_with_a_taken_seq_is_a_fork(ledger: Ledger) -> None:
    forged = {"entry": "replaceOne(entry, '\"approve\"', '\"review\"')", "outcome": "'review'"}
    select = ", ".join(forged.get(name, name) for name in ENTRY_COLUMNS)
    ledger.store.execute(
        f"INSERT INTO {{db}}.entries ({', '.join(ENTRY_COLUMNS)})"
        f" SELECT {select} FROM {{db}}.entries WHERE chain = 0 AND seq = 7"
    )
    assert ("fork", 0, 7) in ledger.verify()


def test_forged_entry_from_another_source_past_the_head_is_an_unexplained_tail(
    ledger: Ledger,
) -> None:
    """A forger with our code: the next entry, correctly linked and hashed, but no checkpoint
    can be signed without the key. This used to be reported as `unsigned_tail`, the kind that
    names a benign crash window, which let forged rows pass for one. It is named
    `unexplained_tail` now: no crash leaves an entry read from another Kafka cluster than the
    one the last checkpoint records, at an offset nobody logged."""
    ids = compact_range_ids(ENTRIES)
    nodes = ledger.store.read_nodes(0, ids)
    tree = MerkleTree.from_compact_range(ENTRIES, [nodes[i] for i in ids])
    last = bytes.fromhex(entry_row(ledger.store, 0, ENTRIES - 1)["leaf_hash"])
    writer = ChainWriter(chain=0, tree=tree, prev=last)
    source = EntrySource(cluster="forged", topic="decisions", partition=0, offset=999)
    ledger.store.insert_entries(writer.append([Incoming(make_decision(999), source)]).entries)
    report = verify_ledger(ledger.store, ledger.verifiers, tail_check=TailCheck(BATCH))
    assert found(report) == {("unexplained_tail", 0, ENTRIES)}
    assert "read from Kafka cluster 'forged'" in report.failures[0].detail


def test_reordered_entries(ledger: Ledger) -> None:
    third, fourth = entry_row(ledger.store, 0, 3), entry_row(ledger.store, 0, 4)
    overwrite_entry(ledger.store, 0, 3, fourth)
    overwrite_entry(ledger.store, 0, 4, third)
    roots = {("root_mismatch", 0, size - 1) for size in ledger.sizes() if size > 3}
    assert ledger.verify() == roots | {
        ("bad_entry", 0, 3),
        ("bad_entry", 0, 4),
        ("broken_link", 0, 3),
        ("broken_link", 0, 4),
        ("broken_link", 0, 5),
        ("bad_node", 0, 3),
        ("bad_node", 0, 4),
    }


def test_truncated_tail(ledger: Ledger) -> None:
    rpc_url, chain_id = ledger.settings.require_rpc()
    service = AnchorService(
        ledger.store, ChainClient(rpc_url, chain_id), ledger.settings.anchor_private_key()
    )
    assert anchor_once(service) is not None
    cut = ledger.sizes()[-2]
    tamper(ledger.store, "ALTER TABLE {db}.entries DELETE WHERE seq >= %(n)s", {"n": cut})
    assert ledger.verify() == {("truncated", 0, cut)}
    # Cover the tracks in the checkpoints and the tree nodes too: the anchor still shows it.
    tamper(ledger.store, "ALTER TABLE {db}.checkpoints DELETE WHERE size > %(n)s", {"n": cut})
    delete_nodes_from_leaf(ledger.store, 0, cut)
    assert ledger.verify() == {("truncated", 0, cut), ("anchor_mismatch", 0, ENTRIES)}


def test_deleted_anchor_rows_are_missing_on_the_chain(ledger: Ledger, tmp_path: Any) -> None:
    account, reader = anchor_with_own_account(ledger, tmp_path)
    assert found(verify_ledger(ledger.store, ledger.verifiers, reader, 1, account)) == set()
    tamper(ledger.store, "ALTER TABLE {db}.anchors DELETE WHERE 1 = 1")
    assert ledger.verify() == set(), "the store alone cannot tell"
    report = verify_ledger(ledger.store, ledger.verifiers, reader, 1, account)
    assert found(report) == {("anchor_missing", None, None)}
    assert report.failures[0].detail.startswith("nonce 0: anchor transaction 0x")
    env = {
        **cli_env(ledger),
        "ATTESTREAM_RPC_URL": ledger.settings.require_rpc()[0],
        "ATTESTREAM_CHAIN_ID": str(ledger.settings.require_rpc()[1]),
        "ATTESTREAM_ANCHOR_ADDRESS": account,
    }
    command = [sys.executable, "-m", "attestream.cli", "forensic", "verify", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert [f["kind"] for f in json.loads(done.stdout)["failures"]] == ["anchor_missing"]
    offline = subprocess.run(
        [*command, "--offline"], env=env, capture_output=True, text=True, timeout=120
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert json.loads(offline.stdout)["anchor_account_checked"] is False


def test_a_tail_deleted_with_its_anchor_row_is_missing_on_the_chain(
    ledger: Ledger, tmp_path: Any
) -> None:
    account, reader = anchor_with_own_account(ledger, tmp_path)
    cut = ledger.sizes()[-2]
    tamper(ledger.store, "ALTER TABLE {db}.entries DELETE WHERE seq >= %(n)s", {"n": cut})
    tamper(ledger.store, "ALTER TABLE {db}.checkpoints DELETE WHERE size > %(n)s", {"n": cut})
    delete_nodes_from_leaf(ledger.store, 0, cut)
    tamper(ledger.store, "ALTER TABLE {db}.anchors DELETE WHERE 1 = 1")
    assert ledger.verify() == set(), "a shorter chain, consistent in every way"
    report = verify_ledger(ledger.store, ledger.verifiers, reader, 1, account)
    assert found(report) == {("anchor_missing", None, None)}
    assert "nonce 0" in report.failures[0].detail


def test_checkpoint_by_an_untrusted_key_or_with_an_edited_note(ledger: Ledger) -> None:
    first, last = ledger.sizes()[0], ledger.sizes()[-1]
    good = ledger.store.checkpoint_at(0, last)[0]
    stranger = signer_from_seed(ledger.settings.log_origin, b"\x02" * 32)
    body = good.note.split(b"\n\n")[0] + b"\n"
    forged = sign_note(body, stranger).decode()
    tamper(
        ledger.store,
        "ALTER TABLE {db}.checkpoints UPDATE note = %(n)s WHERE size = %(s)s",
        {"n": forged, "s": last},
    )
    tamper(
        ledger.store,
        "ALTER TABLE {db}.checkpoints UPDATE note = replaceOne(note, %(a)s, %(b)s)"
        " WHERE size = %(s)s",
        {"a": f"\n{first}\n", "b": f"\n{first + 1}\n", "s": first},
    )
    assert ledger.verify() == {("bad_signature", 0, first), ("bad_signature", 0, last)}


def test_altered_tree_nodes(ledger: Ledger) -> None:
    set_node(ledger.store, 0, 2, 1, "11" * 32)  # covers leaves 4..7
    rows = ledger.store.execute(
        "SELECT chain, node, hash FROM {db}.nodes WHERE node IN %(k)s",
        {"k": (node_key(0, 0), node_key(1, 3))},
    )
    copies = [(c, k, h if k == node_key(0, 0) else "33" * 32) for c, k, h in rows]
    ledger.store.execute("INSERT INTO {db}.nodes (chain, node, hash) VALUES", copies)
    report = verify_ledger(ledger.store, ledger.verifiers)
    # (0, 0) stored twice alike is fine; (1, 3) stored twice differently is not.
    assert found(report) == {("bad_node", 0, 4), ("bad_node", 0, 6)}
    details = " ".join(f.detail for f in report.failures)
    assert "level 2, index 1" in details and "level 1, index 3" in details


# --- range verification ----------------------------------------------------------------------


class Recording:
    """The store, recording which ranges of entries, checkpoints and nodes were read."""

    def __init__(self, store: AnchoredStore) -> None:
        self.store = store
        self.reads: list[tuple[Any, ...]] = []

    def entry_rows(self, chain: int, start: int = 0, stop: int | None = None) -> Any:
        self.reads.append(("entries", start, stop))
        return self.store.entry_rows(chain, start, stop)

    def chain_extent(self, chain: int) -> int:
        return self.store.chain_extent(chain)

    def checkpoints_in(self, chain: int, first_size: int, last_size: int) -> Any:
        self.reads.append(("checkpoints", first_size, last_size))
        return self.store.checkpoints_in(chain, first_size, last_size)

    def nodes_in(self, chain: int, level: int, first: int, stop: int) -> Any:
        self.reads.append(("nodes", level, first, stop))
        return self.store.nodes_in(chain, level, first, stop)


def test_range_finds_a_tamper_inside_it(ledger: Ledger) -> None:
    tamper(
        ledger.store,
        "ALTER TABLE {db}.entries UPDATE entry = replaceOne(entry, '\"approve\"', '\"review\"')"
        " WHERE seq = 12",
    )
    report = verify_range(ledger.store, ledger.verifiers, 0, 8, 17)
    assert {("bad_leaf", 0, 12), ("broken_link", 0, 13)} <= found(report)
    assert report.range is not None and report.entries == 10


def test_range_reads_nothing_outside_it(ledger: Ledger) -> None:
    for seq in (2, 22):
        tamper(
            ledger.store,
            "ALTER TABLE {db}.entries UPDATE outcome = 'block' WHERE seq = %(s)s",
            {"s": seq},
        )
    set_node(ledger.store, 0, 0, 21, "55" * 32)
    tamper(ledger.store, "ALTER TABLE {db}.checkpoints DELETE WHERE size > 18")
    assert {("column_mismatch", 0, 2), ("bad_node", 0, 21)} <= ledger.verify()
    recording = Recording(ledger.store)
    report = verify_range(recording, ledger.verifiers, 0, 8, 17)
    assert report.ok, report.failures
    assert [r for r in recording.reads if r[0] == "entries"] == [
        ("entries", 7, 8),
        ("entries", 8, 18),
    ]
    assert [r for r in recording.reads if r[0] == "checkpoints"] == [("checkpoints", 9, 18)]
    for _, level, _, stop in (r for r in recording.reads if r[0] == "nodes"):
        assert stop << level <= 18


def test_range_verify_from_the_cli(ledger: Ledger) -> None:
    env = cli_env(ledger)
    command = [
        sys.executable,
        "-m",
        "attestream.cli",
        "forensic",
        "verify",
        "--chain",
        "0",
        "--from",
        "8",
        "--to",
        "17",
        "--json",
    ]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["range"]["from"] == 8 and "trusted" in data["range"]["trust"]
    tamper(ledger.store, "ALTER TABLE {db}.entries UPDATE outcome = 'block' WHERE seq = 9")
    bad = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1, bad.stderr
    assert json.loads(bad.stdout)["failures"][0]["kind"] == "column_mismatch"


def test_a_range_or_chain_that_does_not_exist_is_a_usage_error(ledger: Ledger) -> None:
    verify = [sys.executable, "-m", "attestream.cli", "forensic", "verify", "--json"]
    for span, message in (
        (["--chain", "7", "--from", "0", "--to", "5"], "chain 7 does not exist"),
        (["--chain", "0", "--from", "0", "--to", str(ENTRIES)], f"has entries 0..{ENTRIES - 1}"),
    ):
        done = subprocess.run(
            [*verify, *span], env=cli_env(ledger), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert message in done.stderr and "VERIFIED" not in done.stdout
        error = json.loads(done.stdout)["error"]
        assert (error["kind"], error["exit_code"]) == ("usage", 2) and message in error["message"]


def test_prove_refuses_an_entry_that_no_longer_matches_the_stored_tree(
    ledger: Ledger, tmp_path: Any
) -> None:
    target = make_decision(9).decision_id
    tamper(
        ledger.store,
        "ALTER TABLE {db}.entries UPDATE entry = concat(entry, ' ') WHERE seq = 9",
    )
    proof_file = tmp_path / "proof.json"
    command = [
        sys.executable,
        "-m",
        "attestream.cli",
        "forensic",
        "prove",
        target,
        "-o",
        str(proof_file),
    ]
    done = subprocess.run(command, env=cli_env(ledger), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "entry 0/9" in done.stderr and "does not verify against the stored checkpoint" in (
        done.stderr
    )
    assert not proof_file.exists()
    assert "Traceback" not in done.stderr
