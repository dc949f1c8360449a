"""The standalone verifier (verifier/attestream_verify_bundle.py) run as an auditor runs it:
in a virtual environment holding only `cryptography`, on a case bundle that the real
sequencer logged, the real anchor service anchored on anvil and `forensic bundle` wrote.
It says what `forensic verify-bundle` says, and rejects each tampering with exit 1 naming it."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from factories import make_decision
from ledger_helpers import run_sequencer
from search_ledger import payment
from standalone_verifier import bare_python, run_verifier
from test_bundle_cli import offline_env
from test_demo import cli

from attestcore.schemas import EVENT_HEADER, encode
from attestream.settings import Settings
from attestream.wiring import open_store
from streams.producer import EventProducer
from streams.topics import ensure_topics

OLD_FORMAT = 10
"""Decisions 0..9 without investigation fields: entries of format 1."""
PAYMENTS = 20
"""Then payments whose decisions carry them (format 2), each with its event's bytes."""


@pytest.fixture(scope="module")
def auditor_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python with `cryptography` and nothing of attestream's (not even its packages)."""
    python = bare_python(tmp_path_factory.mktemp("auditor") / "venv")
    for package in ("attestream", "forensics", "ledger", "msgspec", "web3"):
        probe = [python, "-I", "-c", f"import {package}"]
        missing = subprocess.run(probe, capture_output=True, text=True, check=False)
        assert "ModuleNotFoundError" in missing.stderr, package
    return python


def log_and_anchor(settings: Settings) -> list[str]:
    """Both entry formats logged by the real sequencer, events archived, then anchored.
    Returns the ids a case names: three old decisions and five payments' event ids."""
    ensure_topics(settings.require_kafka(), [settings.topic_decisions], partitions=1)
    with EventProducer(settings.require_kafka()) as producer:
        for i in range(OLD_FORMAT):
            d = make_decision(i)
            producer.send(settings.topic_decisions, d.entity_id.encode(), encode(d))
        for i in range(PAYMENTS):
            d, event = payment(i, f"cust-{i % 3}", f"term-{i % 4}", score=(i % 10) / 10)
            headers = [(EVENT_HEADER, event)]
            producer.send(settings.topic_decisions, d.entity_id.encode(), encode(d), headers)
    store = open_store(settings, create=True)
    try:
        run_sequencer(settings, store, batch_max=12, records=OLD_FORMAT + PAYMENTS)
        assert store.count_entries() == OLD_FORMAT + PAYMENTS
    finally:
        store.close()
    anchored = cli("anchor", "run", "--once", timeout=180)
    assert anchored.returncode == 0, anchored.stderr[-2000:]
    return [make_decision(i).decision_id for i in (1, 4, 8)] + [f"tx-{i}" for i in range(0, 20, 4)]


def tampered(path: Path, change: Any, name: str) -> Path:
    data = json.loads(path.read_text())
    change(data)
    copy = path.with_name(name)
    copy.write_text(json.dumps(data))
    return copy


def flip_base64(text: str, at: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def entry_byte(data: Any) -> None:  # a digit of the first entry's decided_at: still JSON
    raw = base64.b64decode(data["entries"][0]["entry"])
    at = raw.index(b'"decided_at":"') + len(b'"decided_at":"') + 3
    data["entries"][0]["entry"] = flip_base64(data["entries"][0]["entry"], at)


def event_byte(data: Any) -> None:
    data["events"][0]["event"] = flip_base64(data["events"][0]["event"], 5)


def signature_byte(data: Any) -> None:
    body, signatures = data["chains"][0]["checkpoint"].rsplit("\n\n", 1)
    name, encoded = signatures.rstrip("\n").rsplit(" ", 1)
    data["chains"][0]["checkpoint"] = f"{body}\n\n{name} {flip_base64(encoded, 10)}\n"


def proof_node(data: Any) -> None:
    node = data["chains"][0]["nodes"][0]
    node["hash"] = ("0" if node["hash"][0] != "0" else "1") + node["hash"][1:]


def test_an_auditor_verifies_a_real_bundle_with_the_standalone_verifier(
    isolated: Settings, auditor_python: str, tmp_path: Path
) -> None:
    ids = log_and_anchor(isolated)
    key = json.loads(cli("ledger", "keys", "--json").stdout)["verifier_key"]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    case = tmp_path / "case.bundle"
    made = cli("forensic", "bundle", "--ids", str(ids_file), "-o", str(case), "--by", "ines")
    assert made.returncode == 0, made.stderr
    data = json.loads(case.read_text())
    versions = {json.loads(base64.b64decode(e["entry"]))["v"] for e in data["entries"]}
    assert versions == {1, 2} and len(data["events"]) == 5 and data["chains"][0]["anchor"]

    rpc_url = isolated.require_rpc()[0]
    checked = run_verifier(case, key, "--rpc-url", rpc_url, python=auditor_python)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("VERIFIED: 8 entries in 1 chain(s), 5 archived event(s)")
    assert "(checked on chain)" in checked.stdout

    # The same report as `forensic verify-bundle --json`, the anchor looked up on anvil too.
    mine = json.loads(run_verifier(case, key, "--rpc-url", rpc_url, "--json").stdout)
    theirs = cli(
        "forensic", "verify-bundle", str(case), "--key", key, "--rpc-url", rpc_url, "--json",
        env=offline_env(tmp_path),
    )  # fmt: skip
    assert theirs.returncode == 0, theirs.stderr
    reference = json.loads(theirs.stdout)
    for member in ("ok", "entries", "events", "chains", "failures", "manifest"):
        assert mine[member] == reference[member], member

    for name, change, kind in (
        ("entry", entry_byte, "root_mismatch chain 0 seq"),
        ("event", event_byte, "bad_event chain 0 seq"),
        ("signature", signature_byte, "bad_signature chain 0: checkpoint: signature by"),
        ("node", proof_node, "root_mismatch chain 0 seq"),
    ):
        forged = run_verifier(tampered(case, change, f"{name}.bundle"), key, python=auditor_python)
        assert forged.returncode == 1, (name, forged.stdout, forged.stderr)
        assert forged.stdout.startswith("FAILED: "), (name, forged.stdout)
        assert f"  {kind}" in forged.stdout, (name, forged.stdout)

    # On the chain: a transaction that is not there, a block that is not the recorded one.
    for name, member, value, kind in (
        ("tx", "tx_hash", "0x" + "12" * 32, "unanchored"),
        ("block", "block_hash", "0x" + "34" * 32, "anchor_reorged"),
    ):
        recorded = {member: value}
        moved = tampered(case, lambda d, r=recorded: d["chains"][0]["anchor"].update(r), name)
        mine = run_verifier(moved, key, "--rpc-url", rpc_url, "--json", python=auditor_python)
        theirs = cli(
            "forensic", "verify-bundle", str(moved), "--key", key, "--rpc-url", rpc_url, "--json",
            env=offline_env(tmp_path),
        )  # fmt: skip
        assert mine.returncode == theirs.returncode == 1, (mine.stderr, theirs.stderr)
        failures = json.loads(mine.stdout)["failures"]
        assert failures == json.loads(theirs.stdout)["failures"]
        assert [(f["kind"], f["chain"]) for f in failures] == [(kind, 0)]

    unreachable = run_verifier(case, key, "--rpc-url", "http://127.0.0.1:9", python=auditor_python)
    assert unreachable.returncode == 3 and "could not be reached" in unreachable.stderr
    assert run_verifier(case, "nobody+00000000+AAAA", python=auditor_python).returncode == 2
