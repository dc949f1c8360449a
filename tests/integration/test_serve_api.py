"""`attestream serve` with FastAPI's TestClient on a ledger written by the real sequencer in
the real ClickHouse: tokens and roles, answers equal to the CLI's implementation, and every
request (allowed or denied) an entry of the access chain that `forensic verify` checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from factories import make_decision
from fastapi.testclient import TestClient
from ledger_helpers import publish_decisions, run_sequencer

from anchoring.store import AnchoredStore
from attestcore.errors import AttestreamError
from attestream.access_tokens import AccessTokens, Role
from attestream.cli import run
from attestream.commands.search import page_json
from attestream.serve_metrics import ServeMetrics
from attestream.server import ServerContext, create_app
from attestream.settings import Settings
from attestream.wiring import ledger_signer, open_service, open_store, trusted_verifiers
from forensics.case_bundle import Exporter, Selection, dump_case_bundle, load_case_bundle
from forensics.explain import explain_logged, find_decision
from forensics.proofs import dump_bundle, prove_verified
from forensics.search import SearchCriteria, search
from forensics.timeline import timeline, timeline_json
from forensics.verify import verify_ledger
from forensics.verify_bundle import export_case_bundle, verify_case_bundle
from ledger.access_entry import ACCESS_CHAIN, AccessRecord, decode_access_entry
from ledger.access_log import AccessLog
from ledger.archive import EntityKind
from ledger.archive_store import ArchiveStore
from ledger.entry_filter import parse_query
from streams.topics import ensure_topics

ENTRIES = 30
ENDPOINTS = ("decision", "explain", "prove", "bundle", "search", "timeline")


@dataclass
class Api:
    client: TestClient
    store: AnchoredStore
    settings: Settings
    investigator: str
    auditor: str
    metrics: ServeMetrics

    def get(self, path: str, token: str | None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.get(f"/v1/{path}", params=params, headers=headers)

    def access_records(self) -> list[AccessRecord]:
        rows = self.store.entry_rows(ACCESS_CHAIN)
        return [decode_access_entry(bytes(row[4])).access for row in rows]


@pytest.fixture
def api(isolated: Settings, tmp_path: Path) -> Iterator[Api]:
    # `ledger_helpers.sequenced_ledger` without its key creation: `isolated` made the key.
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=1)
    store = open_store(isolated, create=True)
    publish_decisions(isolated, [make_decision(i) for i in range(ENTRIES)])
    run_sequencer(isolated, store, batch_max=10, records=ENTRIES)
    assert store.count_entries() == ENTRIES
    tokens = AccessTokens(tmp_path / "access-tokens.json")
    investigator = tokens.grant("ines", Role.INVESTIGATOR)
    auditor = tokens.grant("audrey", Role.AUDITOR)
    access_log = AccessLog(store, ledger_signer(isolated), isolated.log_origin)
    access_log.open()
    ctx = ServerContext(store, access_log, tokens, trusted_verifiers(isolated), tmp_path / "models")
    try:
        with TestClient(create_app(ctx)) as client:
            yield Api(client, store, isolated, investigator, auditor, ctx.metrics)
    finally:
        store.close()


def verified(api: Api) -> None:
    report = verify_ledger(api.store, trusted_verifiers(api.settings))
    assert report.ok, [(f.kind, f.chain, f.seq, f.detail) for f in report.failures]
    assert ACCESS_CHAIN in report.chains


def test_tokens_roles_and_bad_parameters_each_recorded(api: Api) -> None:
    target = make_decision(3).decision_id
    calls: list[tuple[str, str | None, dict[str, Any], int, str, str]] = [
        # (path, token, params, status, principal, outcome)
        ("decision", None, {"id": target}, 401, "", "denied"),
        ("prove", "ast_not-a-token", {"decision_id": target}, 401, "", "denied"),
        ("decision", api.auditor, {"id": target}, 403, "audrey", "denied"),
        ("explain", api.auditor, {"decision_id": target}, 403, "audrey", "denied"),
        ("search", api.auditor, {"query": "entity=C3"}, 403, "audrey", "denied"),
        ("prove", api.auditor, {"decision_id": target}, 200, "audrey", "allowed"),
        (
            "prove",
            api.investigator,
            {"decision_id": target, "since_size": 0},
            422,
            "ines",
            "failed",
        ),
        ("search", api.investigator, {"limit": 0}, 422, "ines", "failed"),
        ("bundle", api.investigator, {}, 422, "ines", "failed"),
        ("decision", api.investigator, {"id": "no-such-id"}, 404, "ines", "failed"),
    ]
    for path, token, params, status, _, _ in calls:
        answer = api.get(path, token, **params)
        assert answer.status_code == status, (path, params, answer.text)
    fields = api.get("prove", api.investigator, decision_id=target, since_size=0).json()
    assert fields["error"]["fields"] == ["since_size"]
    fields = api.get("search", api.investigator, limit=0).json()
    assert fields["error"]["fields"] == ["limit"]
    assert "exactly one of query and ids" in api.get("bundle", api.investigator).text

    schema = api.client.get("/openapi.json").json()
    assert sorted(schema["paths"]) == sorted(f"/v1/{e}" for e in ENDPOINTS)
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"

    records = api.access_records()
    assert len(records) == len(calls) + 3
    for record, (path, _, params, status, principal, outcome) in zip(records, calls, strict=False):
        assert (record.operation, record.status, record.principal, record.outcome) == (
            path,
            status,
            principal,
            outcome,
        )
        assert record.filters == {k: str(v) for k, v in params.items()}
    assert records[5].results == 1 and records[2].results == 0
    assert len({r.request_id for r in records}) == len(records)
    verified(api)


def test_answers_equal_the_cli_implementation(api: Api, tmp_path: Path) -> None:
    store, verifiers = api.store, trusted_verifiers(api.settings)
    target = make_decision(17)

    by_id = api.get("decision", api.investigator, id=target.decision_id).json()
    logged = find_decision(store, target.decision_id)
    assert (by_id["chain"], by_id["seq"], by_id["leaf_hash"]) == (0, 17, logged.leaf_hash.hex())
    assert by_id["decision"]["decision_id"] == target.decision_id
    assert api.get("decision", api.investigator, id=target.event_id).json() == by_id

    proof = api.get("prove", api.auditor, decision_id=target.decision_id)
    assert proof.status_code == 200
    assert proof.text == dump_bundle(prove_verified(store, target.decision_id, verifiers))
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(proof.text)
    assert run(["forensic", "verify-proof", str(proof_file), "--no-state"]) == 0

    with pytest.raises(AttestreamError) as refused:
        explain_logged(store, target.decision_id, tmp_path / "models")
    explained = api.get("explain", api.investigator, decision_id=target.decision_id)
    assert explained.json()["error"] == {"kind": refused.value.kind, "message": str(refused.value)}

    ids = [make_decision(i).decision_id for i in (2, 25)] + [make_decision(9).event_id]
    case = api.get("bundle", api.auditor, ids=ids, note="case 7").json()
    report = verify_case_bundle(load_case_bundle(json.dumps(case).encode()), verifiers)
    assert report.ok and report.entries == 3
    exported_at = datetime.fromisoformat(case["manifest"]["exported_at"])
    exporter = Exporter("audrey", exported_at, case["manifest"]["tool"], "case 7")
    expected = export_case_bundle(store, Selection(ids=ids), exporter, verifiers)
    assert case == json.loads(dump_case_bundle(expected))
    assert case["manifest"]["exported_by"] == "audrey"

    found = api.get("search", api.investigator, query="entity=C3 outcome=approve").json()
    criteria = SearchCriteria(where=parse_query("entity=C3 outcome=approve"))
    assert found == page_json(search(ArchiveStore(store), criteria))
    rows = store.entries_matching(parse_query("entity=C3 outcome=approve"), 100)
    assert [d["seq"] for d in found["results"]] == [int(r[1]) for r in rows]
    by_query = api.get("bundle", api.investigator, query="entity=C3 outcome=approve").json()
    assert by_query["manifest"]["counts"]["entries"] == len(rows)
    event = make_decision(1).event_id
    line = api.get("timeline", api.investigator, kind="event_id", value=event).json()
    assert line == timeline_json(timeline(ArchiveStore(store), EntityKind.EVENT_ID, event))
    assert [step["event_id"] for step in line["events"]] == [event]

    records = api.access_records()
    assert [r.operation for r in records] == [
        "decision",
        "decision",
        "prove",
        "explain",
        "bundle",
        "search",
        "bundle",
        "timeline",
    ]
    assert [r.results for r in records] == [1, 1, 1, 0, 3, len(rows), len(rows), 1]
    verified(api)


INJECTIONS = (
    "'",
    '"',
    "ev-1' OR '1'='1",
    "' OR 1=1 --",
    "x'; DROP TABLE entries; --",
    'x"; DROP TABLE entries; --',
    "%(d)s",
    "{db}",
    "\\'",
    "évé\u202e😀",
    "C3\x00",
    "C3' OR '1'='1",
    "C3') OR (1=1",
)


def test_injection_attempts_change_no_result_and_no_table(api: Api) -> None:
    store = api.store
    tables = sorted(store.execute("SHOW TABLES FROM {db}"))
    before = store.execute(
        "SELECT chain, seq, leaf_hash FROM {db}.entries"
        f" WHERE chain != {ACCESS_CHAIN} ORDER BY chain, seq"
    )
    token = api.investigator
    for text in INJECTIONS:
        answers = [
            api.get("decision", token, id=text),
            api.get("explain", token, decision_id=text),
            api.get("prove", token, decision_id=text),
            api.get("bundle", token, ids=[text]),
            api.get("bundle", token, query=f"entity={json.dumps(text)}"),
            api.get("search", token, query=f"entity={json.dumps(text)}"),
            api.get("search", token, query=text),
        ]
        for answer in answers:
            if answer.status_code == 200:  # a search that matches nothing, as it should
                assert answer.json()["results"] == [], (text, answer.request.url)
                continue
            assert answer.status_code in (404, 422), (text, answer.request.url, answer.text)
            assert answer.json()["ok"] is False
    assert sorted(store.execute("SHOW TABLES FROM {db}")) == tables
    after = store.execute(
        "SELECT chain, seq, leaf_hash FROM {db}.entries"
        f" WHERE chain != {ACCESS_CHAIN} ORDER BY chain, seq"
    )
    assert after == before and len(after) == ENTRIES
    records = api.access_records()
    assert len(records) == 7 * len(INJECTIONS)
    assert records[0].filters == {"id": "'"}
    verified(api)


def test_a_second_access_log_fences_the_first(api: Api) -> None:
    assert api.get("search", api.investigator, query="entity=C1").status_code == 200
    other = AccessLog(api.store, ledger_signer(api.settings), api.settings.log_origin)
    other.open()  # another server takes the access chain over (its R4 checkpoint)
    answer = api.get("search", api.investigator, query="entity=C1")
    assert answer.status_code == 503
    assert "another process" in answer.json()["error"]["message"]
    assert api.get("decision", api.investigator, id="x").status_code == 503
    assert len(api.access_records()) == 1  # nothing was answered unrecorded
    other.append(
        AccessRecord(
            request_id="ab" * 16,
            at=datetime.now(UTC).replace(microsecond=0),
            principal="ines",
            role="investigator",
            operation="search",
            filters={},
            status=200,
            results=0,
            outcome="allowed",
        )
    )
    assert len(api.access_records()) == 2
    verified(api)


def test_the_access_chain_is_anchored_with_the_decision_chains(api: Api) -> None:
    for entity in ("C1", "C2"):
        assert api.get("search", api.investigator, query=f"entity={entity}").status_code == 200
    service = open_service(api.settings, api.store)
    sent = service.step()
    assert sent is not None
    assert dict(sent.checkpoints) == {0: ENTRIES, ACCESS_CHAIN: 2}
    verified(api)  # the anchor's root recomputed from both chains' checkpoint notes


def test_a_token_file_that_cannot_be_read_is_answered_and_recorded(
    api: Api, tmp_path: Path
) -> None:
    tokens = tmp_path / "access-tokens.json"
    kept = tokens.read_bytes()
    tokens.write_text("{not json", encoding="utf-8")  # an operator's bad edit
    answer = api.get("search", api.investigator, customer="C1")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["kind"] == "config" and "access token file" in error["message"]
    assert api.investigator not in answer.text
    tokens.write_bytes(kept)
    assert api.get("search", api.investigator, customer="C1").status_code == 200

    records = api.access_records()
    assert [(r.operation, r.principal, r.role, r.status, r.outcome) for r in records] == [
        ("search", "", "", 500, "failed"),
        ("search", "ines", "investigator", 200, "allowed"),
    ]
    assert records[0].filters == {"customer": "C1"} and records[0].results == 0
    verified(api)


def test_requests_denials_and_durations_are_counted(api: Api) -> None:
    target = make_decision(3).decision_id
    assert api.get("decision", None, id=target).status_code == 401
    assert api.get("prove", "ast_not-a-token", decision_id=target).status_code == 401
    assert api.get("explain", api.auditor, decision_id=target).status_code == 403
    assert api.get("decision", api.investigator, id=target).status_code == 200
    assert api.get("decision", api.investigator, id="no-such-id").status_code == 404
    assert api.client.get("/").status_code == 200  # the page: not an API request

    def value(name: str, **labels: str) -> float | None:
        return api.metrics.registry.get_sample_value(name, labels)

    requests = "attestream_serve_requests_total"
    assert value(requests, operation="decision", status="401") == 1
    assert value(requests, operation="prove", status="401") == 1
    assert value(requests, operation="explain", status="403") == 1
    assert value(requests, operation="decision", status="200") == 1
    assert value(requests, operation="decision", status="404") == 1
    assert value("attestream_serve_denied_total", reason="unauthenticated") == 2
    assert value("attestream_serve_denied_total", reason="forbidden") == 1
    duration = "attestream_serve_request_duration_seconds_count"
    assert value(duration, operation="decision") == 3
    counted = sum(
        s.value
        for metric in api.metrics.registry.collect()
        for s in metric.samples
        if s.name == requests
    )
    assert counted == 5 == len(api.access_records())
