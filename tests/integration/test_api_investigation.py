"""One investigation through `attestream serve`, run by the CLI on payments that `detect` and
`ledger run` logged (Kafka, ClickHouse, anvil): tokens granted with `attestream access grant`,
a blocked payment's event id searched, its customer's blocked payments and timeline, one
decision explained (exact TreeSHAP), the case bundle downloaded by an auditor and verified
with the public key alone by `forensic verify-bundle` and by the standalone verifier; then
every call, the denied one too, read back from the access chain in order, whose signed
checkpoint and anchor verify."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detect_helpers import background, child_env, copy_models
from standalone_verifier import run_verifier
from test_forensic_search import cli, detect_and_log

from attestcore.ports import unused_port
from attestcore.records import StoredCheckpoint
from attestcore.waiting import wait_until
from attestream.settings import Settings
from attestream.wiring import open_store
from detectors.training import train_detector
from ledger.access_entry import ACCESS_CHAIN, AccessRecord, decode_access_entry
from ledger.keys import parse_verifier_key
from ledger.merkle import MerkleTree
from ledger.note import open_checkpoint

SERVE_TIMEOUT_S = 60.0
"""The server opens the store and the access chain in a second or two; a minute is stuck."""
BLOCKING_TRAINING_EVENTS = 12_000
"""The session's fraud model (6,000 payments) never reaches the 9-in-10 precision a block
needs on its validation fifth, so its block threshold is 1.0 and it blocks nothing; trained
on 12,000 payments (seed 1, about ten seconds) it does, and it blocks payments of the search
test's payments (seed 7)."""
CALL_TIMEOUT_S = 60.0
"""A call reads a few hundred decisions (or replays one model): seconds; a minute is stuck."""


def page_is_served(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    token: str


def granted(name: str, role: str, env: dict[str, str]) -> Caller:
    """A token from `attestream access grant`, printed once on stdout."""
    done = cli("access", "grant", name, "--role", role, env=env)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("ast_") and token not in done.stderr
    return Caller(name, role, token)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Investigation:
    """The API over HTTP; each call also noted as the access record it must leave."""

    base: str
    expected: list[tuple[str, str, str, dict[str, str], int, str]] = field(default_factory=list)

    def get(self, caller: Caller, operation: str, **params: Any) -> Answer:
        query = urllib.parse.urlencode(params, doseq=True)
        request = urllib.request.Request(
            f"{self.base}/v1/{operation}?{query}",
            headers={"Authorization": f"Bearer {caller.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as response:
                answer = Answer(response.status, response.read())
        except urllib.error.HTTPError as refused:
            answer = Answer(refused.code, refused.read())
        filters = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in params.items()}
        outcome = "denied" if answer.status in (401, 403) else "allowed"
        self.expected.append((operation, caller.name, caller.role, filters, answer.status, outcome))
        return answer

    def ok(self, caller: Caller, operation: str, **params: Any) -> Answer:
        answer = self.get(caller, operation, **params)
        assert answer.status == 200, (operation, params, answer.body[:2000])
        return answer


def customer_of(found: dict[str, Any]) -> str:
    """A payment decision's customer: its search result's entity is CUSTOMER@TERMINAL."""
    return str(found["entity"]).split("@")[0]


def access_records(
    settings: Settings,
) -> tuple[list[AccessRecord], list[bytes], StoredCheckpoint | None]:
    """The access chain's records, its entries' bytes and its latest stored checkpoint."""
    store = open_store(settings)
    try:
        rows = list(store.entry_rows(ACCESS_CHAIN))
        checkpoint = store.latest_checkpoint(ACCESS_CHAIN)
    finally:
        store.close()
    entries = [bytes(row[4]) for row in rows]
    return [decode_access_entry(e).access for e in entries], entries, checkpoint


def test_an_investigation_over_http_is_recorded_call_by_call(
    isolated: Settings, trained_models: Path, tmp_path: Path
) -> None:
    models = copy_models(trained_models, tmp_path / "models")
    train_detector("fraud", models, count=BLOCKING_TRAINING_EVENTS, seed=1)
    env = child_env(ATTESTREAM_MODELS_DIR=str(models))
    detect_and_log(isolated, env, tmp_path)
    suffix = uuid.uuid4().hex[:8]  # the token file is the session home's, shared by tests
    ines = granted(f"ines-{suffix}", "investigator", env)
    audrey = granted(f"audrey-{suffix}", "auditor", env)
    key = json.loads(cli("ledger", "keys", "--json", env=env).stdout)["verifier_key"]

    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    case_file = tmp_path / "case.json"
    with background(["serve", "--port", str(port)], env, tmp_path / "serve.log"):
        wait_until(
            lambda: page_is_served(base + "/"),
            SERVE_TIMEOUT_S,
            what="attestream serve",
            detail=lambda: (tmp_path / "serve.log").read_text()[-2000:],
        )
        api = Investigation(base)

        # Where the investigation starts: one blocked payment's event id.
        day = api.ok(ines, "search", query="detector=fraud outcome=block").json()
        blocked = day["results"]
        assert blocked and day["next_cursor"] is None, day
        start = blocked[0]

        # Its event id alone: the decision on it, and so the customer.
        on_event = api.ok(ines, "search", event_id=start["event_id"]).json()["results"]
        assert [r["decision_id"] for r in on_event] == [start["decision_id"]]
        customer = customer_of(on_event[0])

        # An auditor may not search: refused, and recorded as refused.
        denied = api.get(audrey, "search", customer=customer)
        assert denied.status == 403, denied.body

        # The customer's blocked payments.
        theirs = api.ok(ines, "search", customer=customer, query="outcome=block").json()
        assert theirs["by_index"] and theirs["next_cursor"] is None
        ids = [r["decision_id"] for r in theirs["results"]]
        assert start["decision_id"] in ids
        assert {r["outcome"] for r in theirs["results"]} == {"block"}
        assert {customer_of(r) for r in theirs["results"]} == {customer}
        assert ids == [r["decision_id"] for r in blocked if customer_of(r) == customer]

        # The customer's timeline: every payment in event time order, the blocked ones in it.
        line = api.ok(ines, "timeline", kind="customer", value=customer).json()["events"]
        assert {step["customer_id"] for step in line} == {customer}
        assert [s["event_time"] for s in line] == sorted(s["event_time"] for s in line)
        assert set(ids) <= {step["decision_id"] for step in line}

        # One decision explained: the replayed score is the logged one, by exact TreeSHAP.
        why = api.ok(ines, "explain", decision_id=start["decision_id"]).json()
        assert why["decision_id"] == start["decision_id"] and why["method"].startswith("exact")
        assert why["replayed"]["outcome"] == why["logged"]["outcome"] == "block"
        assert why["replayed"]["score"] == why["logged"]["score"] == start["score"]
        total = why["bias"] + sum(c["contribution"] for c in why["contributions"])
        assert abs(total - why["margin"]) < 1e-4

        # The case bundle of the customer's blocked payments, downloaded by the auditor.
        case = api.ok(audrey, "bundle", ids=ids, note=f"blocked payments of {customer}")
        case_file.write_bytes(case.body)

    # The bundle verified by a separate process with the public key alone.
    offline = {"PATH": "/usr/bin:/bin", "ATTESTREAM_HOME": str(tmp_path / "nowhere")}
    checked = cli("forensic", "verify-bundle", str(case_file), "--key", key, env=offline)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"VERIFIED: {len(ids)} entries in 1 chain(s)")
    assert f"exported by {audrey.name}" in checked.stdout
    # And by the standalone verifier, a file of its own run by Python in isolated mode with
    # nothing of attestream imported: the auditor's verdict, word for word.
    standalone = run_verifier(case_file, key)
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    assert standalone.stdout == checked.stdout

    # Every call above, in order, once each, in the access chain; nothing else is in it.
    records, entries, checkpoint = access_records(isolated)
    counts = [len(blocked), 1, 0, len(ids), len(line), 1, len(ids)]
    assert [
        (r.operation, r.principal, r.role, r.filters, r.status, r.outcome) for r in records
    ] == api.expected
    assert [r.results for r in records] == counts
    assert records[2].filters == {"customer": customer} and records[2].outcome == "denied"
    assert len({r.request_id for r in records}) == len(records)

    # Its latest checkpoint: signed with the ledger key, over exactly these entries.
    assert checkpoint is not None
    opened = open_checkpoint(
        checkpoint.note, [parse_verifier_key(key)], f"{isolated.log_origin}/{ACCESS_CHAIN}"
    )
    tree = MerkleTree()
    tree.extend(entries)
    assert (opened.size, opened.root) == (len(records), tree.root())
    ranged = cli(
        "forensic",
        "verify",
        "--chain",
        str(ACCESS_CHAIN),
        "--from",
        "0",
        "--to",
        str(len(records) - 1),
        "--json",
        env=env,
    )
    assert ranged.returncode == 0 and json.loads(ranged.stdout)["ok"], ranged.stdout

    # Anchored with the decision chains, and `forensic verify` passes on the whole ledger.
    anchored = cli("anchor", "run", "--once", env=env)
    assert anchored.returncode == 0, anchored.stderr
    report = json.loads(cli("forensic", "verify", "--json", env=env).stdout)
    assert report["ok"], report
    assert report["anchors"] >= 1 and ACCESS_CHAIN in report["chains"]
