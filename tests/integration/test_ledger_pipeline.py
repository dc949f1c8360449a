"""Decisions on the real broker -> sequencer -> real ClickHouse -> anchor on anvil -> verify."""

from __future__ import annotations

from factories import make_decision
from hexbytes import HexBytes
from ledger_helpers import publish_decisions, run_sequencer, wait_for_mutations

from anchoring.calldata import decode_calldata
from anchoring.rpc import ChainClient
from anchoring.runner import anchor_once
from anchoring.service import AnchorService
from attestream.settings import Settings
from attestream.wiring import open_store, trusted_verifiers
from forensics.verify import verify_ledger
from streams.topics import ensure_topics


def test_decisions_are_logged_once_anchored_and_verified(isolated: Settings) -> None:
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=2)
    store = open_store(isolated, create=True)
    rejected: list[str] = []
    first = [make_decision(i) for i in range(300)]
    publish_decisions(isolated, first, garbage=2)
    run_sequencer(isolated, store, rejected, records=302)

    assert store.count_entries() == 300
    assert store.chains() == [0, 1]
    assert len(rejected) == 2 and "not a decision" in rejected[0]
    report = verify_ledger(store, trusted_verifiers(isolated))
    assert report.ok, report.failures
    assert report.entries == 300

    # A detector replay re-emits the same decisions: they are logged once. New ones append.
    publish_decisions(isolated, first[:50] + [make_decision(i) for i in range(300, 305)])
    run_sequencer(isolated, store, rejected, records=302 + 55)
    assert store.count_entries() == 305

    rpc_url, chain_id = isolated.require_rpc()
    chain = ChainClient(rpc_url, chain_id)
    w3 = chain.w3
    service = AnchorService(store, chain, isolated.anchor_private_key())
    anchor = anchor_once(service)
    assert anchor is not None and anchor.status == "success" and anchor.state == "final"
    assert anchor.checkpoints == tuple(
        (cp.chain, cp.size) for cp in (store.latest_checkpoint(c) for c in (0, 1)) if cp
    )
    assert anchor_once(service) is None, "nothing new since the last anchor"
    tx = w3.eth.get_transaction(HexBytes(anchor.tx_hash))
    assert decode_calldata(bytes(tx["input"])) == anchor.root

    report = verify_ledger(store, trusted_verifiers(isolated), chain)
    assert report.ok, report.failures
    assert (report.entries, report.anchors) == (305, 1)


def test_verification_names_a_changed_entry(isolated: Settings) -> None:
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=1)
    store = open_store(isolated, create=True)
    publish_decisions(isolated, [make_decision(i) for i in range(20)])
    run_sequencer(isolated, store, [], records=20)
    store.execute(
        "ALTER TABLE {db}.entries UPDATE entry = replaceOne(entry, '\"review\"', '\"approve\"')"
        " WHERE seq = 8"
    )
    wait_for_mutations(store)
    report = verify_ledger(store, trusted_verifiers(isolated))
    kinds = {(f.kind, f.chain, f.seq) for f in report.failures}
    assert ("bad_leaf", 0, 8) in kinds
    assert ("column_mismatch", 0, 8) in kinds
