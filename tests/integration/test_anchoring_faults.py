"""The anchor lifecycle on a real anvil over JSON-RPC, with faults injected through anvil's
extras (reorg, dropped transaction, base fee raised, account emptied, node stopped).

The tests drive the service round by round (`step`) and produce blocks explicitly
(`anvil_mine`), so nothing depends on timing; the replacement timeout is crossed by advancing
the service's clock. Each test has its own ClickHouse database (`isolated`) and its own funded
account on this module's anvil.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from anvil_node import CHAIN_ID, AnvilNode, LedgerFeed
from eth_account import Account
from eth_typing import HexStr
from typer.testing import CliRunner
from web3 import Web3

from anchoring.calldata import encode_calldata
from anchoring.fees import GWEI, intrinsic_gas
from anchoring.lifecycle import TxState
from anchoring.metrics import REGISTRY
from anchoring.proofs import anchor_proof, verify_anchor_proof, verify_stored_anchor
from anchoring.rpc import ChainClient
from anchoring.runner import Pacing, run_round, run_service
from anchoring.service import AnchorPolicy, AnchorService
from anchoring.status import collect_status
from anchoring.store import AnchoredStore, AnchorRecords
from attestcore.errors import (
    AnchorKeyError,
    FeeCapError,
    InsufficientFundsError,
    NoLedgerError,
    WrongChainError,
)
from attestcore.records import StoredAnchor
from attestream.cli import app
from attestream.settings import Settings
from attestream.wiring import ledger_signer, open_store, trusted_verifiers
from forensics.verify import verify_ledger

ETH = 10**18
POLICY = AnchorPolicy(
    confirmations=2,
    reorg_watch_blocks=64,
    fee_cap_wei=100 * GWEI,
    min_tip_wei=GWEI // 100,
    replace_after_s=60.0,
    bump_percent=20,
    min_balance_anchors=20,
)
# Rounds a test may take to reach a state; each round is a few RPC and ClickHouse calls.
MAX_ROUNDS = 10
# The run-loop test's bound on one checkpoint reaching a final anchor: at one block a second
# and two confirmations it takes about 2 s; the bound only keeps a broken loop from hanging.
LOOP_DEADLINE_S = 30.0


class Clock:
    """Wall time plus an offset a test can advance (to pass the replacement timeout)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Rig:
    anvil: AnvilNode
    store: AnchoredStore
    feed: LedgerFeed
    service: AnchorService
    clock: Clock
    key: str
    settings: Settings

    def restart_service(self) -> AnchorService:
        """A new service object: what a restarted process sees is only what ClickHouse has."""
        self.service = AnchorService(
            self.store,
            ChainClient(self.anvil.url, CHAIN_ID),
            self.key,
            self.service.policy,
            self.clock,
        )
        return self.service

    def history(self, tx_hash: str) -> list[str]:
        return [row.state for row in self.service.records.history(tx_hash)]

    def until_final(self) -> StoredAnchor:
        """Rounds, mining a block between them, until the latest checkpoints are final."""
        target = {cp.chain: cp.size for cp in self.service.latest_checkpoints()}
        for _ in range(MAX_ROUNDS):
            self.service.step()
            for anchor in self.service.records.final():
                if all(dict(anchor.checkpoints).get(c, -1) >= s for c, s in target.items()):
                    return anchor
            self.anvil.mine()
        raise AssertionError(f"no final anchor covers {target} after {MAX_ROUNDS} rounds")


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    node = AnvilNode(Path(tmp_path_factory.mktemp("anvil")))
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def rig(isolated: Settings, anvil: AnvilNode) -> Iterator[Rig]:
    anvil.automine(True)
    store = open_store(isolated, create=True)
    account = Account.create()
    anvil.fund(account.address, 10 * ETH)
    key = account.key.hex()
    clock = Clock()
    service = AnchorService(store, ChainClient(anvil.url, CHAIN_ID), key, POLICY, clock)
    feed = LedgerFeed(store, ledger_signer(isolated), isolated.log_origin)
    yield Rig(anvil, store, feed, service, clock, key, isolated)
    anvil.automine(True)
    store.close()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def check_every_checkpoint_proves(rig: Rig) -> None:
    """Every stored checkpoint has an anchor proof that verifies against the chain."""
    chain = ChainClient(rig.anvil.url, CHAIN_ID)
    for c in rig.store.chains():
        for cp in rig.store.checkpoints(c):
            proof = anchor_proof(rig.store, c, cp.size, CHAIN_ID)
            verify_anchor_proof(proof, cp.note, chain, min_confirmations=POLICY.confirmations)


def test_normal_path_pending_mined_final_then_verified(rig: Rig) -> None:
    rig.feed.append(0, 5)
    rig.feed.append(0, 4)  # two checkpoints in one interval: only the latest is anchored
    rig.feed.append(1, 3)
    sent = rig.service.step()
    assert sent is not None and sent.checkpoints == ((0, 9), (1, 3))
    assert rig.service.step() is None  # mined (automine), one confirmation of two
    assert rig.history(sent.tx_hash) == ["pending", "mined"]
    rig.anvil.mine()
    rig.service.step()
    assert rig.history(sent.tx_hash) == ["pending", "mined", "final"]
    final = rig.service.records.final()[0]
    assert final.gas_used == intrinsic_gas(encode_calldata(final.root)), "22,480 - 30/zero byte"
    assert rig.service.step() is None, "an interval with no new checkpoint sends nothing"

    chain = ChainClient(rig.anvil.url, CHAIN_ID)
    notes = [rig.store.checkpoint_at(c, s)[0].note for c, s in final.checkpoints]
    verify_stored_anchor(final, chain, POLICY.confirmations, notes)
    check_every_checkpoint_proves(rig)  # (0, 5) through a consistency proof to (0, 9)
    report = verify_ledger(rig.store, trusted_verifiers(rig.settings), chain)
    assert report.ok, report.failures


def test_the_fee_of_every_mined_anchor_is_counted_in_wei(rig: Rig) -> None:
    spent = sample("attestream_anchor_spent_wei_total")
    w3, sender = rig.service.chain.w3, Web3.to_checksum_address(rig.service.sender)
    balance = w3.eth.get_balance(sender)
    rig.feed.append(0, 3)
    sent = rig.service.step()
    assert sent is not None
    rig.service.step()  # mined
    receipt = w3.eth.get_transaction_receipt(HexStr(sent.tx_hash))
    fee = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert fee > 0
    assert sample("attestream_anchor_spent_wei_total") == spent + fee
    # What the account lost is exactly that fee: the anchor transfers no value.
    assert balance - w3.eth.get_balance(sender) == fee


def test_reorg_removing_the_anchor_block_is_detected_and_reanchored(rig: Rig) -> None:
    rig.feed.append(0, 6)
    first = rig.until_final()
    depth = rig.anvil.head() - first.block_number + 1
    rig.anvil.rpc("anvil_reorg", depth, [])  # replaces those blocks with empty ones

    rig.service.step()  # detects the reorg, re-anchors the same checkpoints
    assert rig.history(first.tx_hash)[:4] == ["pending", "mined", "final", "reorged"]
    assert not rig.service.records.final(), "a reorged anchor no longer counts"
    again = rig.until_final()
    assert again.checkpoints == first.checkpoints and again.root == first.root
    assert again.block_hash != first.block_hash
    check_every_checkpoint_proves(rig)
    chain = ChainClient(rig.anvil.url, CHAIN_ID)
    report = verify_ledger(rig.store, trusted_verifiers(rig.settings), chain)
    assert report.ok, report.failures
    assert report.anchors == 1


def test_dropped_transaction_is_replaced(rig: Rig) -> None:
    rig.anvil.automine(False)
    rig.feed.append(0, 4)
    sent = rig.service.step()
    assert sent is not None
    rig.anvil.rpc("anvil_dropTransaction", sent.tx_hash)

    rig.service.step()  # gone from the pool: replaced at once, with bumped fees
    assert rig.history(sent.tx_hash) == ["pending", "replaced"]
    (replacement,) = [
        tx for tx in rig.service.records.open_transactions(0) if tx.state == TxState.PENDING.value
    ]
    assert replacement.nonce == sent.nonce and replacement.attempt == sent.attempt
    assert replacement.max_fee >= sent.max_fee * 1.2
    rig.anvil.mine(2)
    rig.service.step()
    assert rig.history(replacement.tx_hash) == ["pending", "mined", "final"]
    check_every_checkpoint_proves(rig)


def test_stuck_below_base_fee_is_replaced_within_the_cap(rig: Rig) -> None:
    rig.anvil.automine(False)
    rig.feed.append(1, 7)
    sent = rig.service.step()
    assert sent is not None
    # The next block's base fee is now above the transaction's max fee: it waits in the pool.
    # (No block is mined while it is stuck: anvil, unlike geth, evicts such a transaction
    # when it builds a block, which the service handles as a dropped one.)
    rig.anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(5 * GWEI))
    assert sent.max_fee < 5 * GWEI
    rig.service.step()
    assert rig.history(sent.tx_hash) == ["pending"], "not replaced before the timeout"

    rig.clock.advance(POLICY.replace_after_s + 1)
    rig.service.policy = dataclasses.replace(POLICY, fee_cap_wei=sent.max_fee * 105 // 100)
    with pytest.raises(FeeCapError, match="would exceed the fee cap"):
        rig.service.step()  # no room under this cap for the 10% minimum raise
    assert run_round(rig.service).error == "fee_cap"
    assert sample("attestream_anchor_blocked_bool", reason="fee_cap") == 1

    rig.service.policy = POLICY
    rig.service.step()
    assert rig.history(sent.tx_hash) == ["pending", "replaced"]
    rig.anvil.mine(2)
    final = rig.until_final()
    assert final.tx_hash != sent.tx_hash and final.nonce == sent.nonce
    assert 5 * GWEI <= final.max_fee <= POLICY.fee_cap_wei


def test_insufficient_funds_is_a_clear_error_then_anchors_once_funded(rig: Rig) -> None:
    sender = rig.service.sender
    rig.anvil.fund(sender, 1000)
    rig.feed.append(0, 3)
    with pytest.raises(InsufficientFundsError, match=f"{sender} holds 0.000000 ETH.*Fund it"):
        rig.service.step()
    before = sample("attestream_anchor_errors_total", kind="insufficient_funds")
    assert run_round(rig.service).error == "insufficient_funds"
    assert sample("attestream_anchor_errors_total", kind="insufficient_funds") == before + 1
    assert sample("attestream_anchor_blocked_bool", reason="insufficient_funds") == 1
    assert rig.service.records.open_transactions(0) == [], "nothing was sent"

    rig.anvil.fund(sender, 10 * ETH)
    assert run_round(rig.service).sent is not None
    assert sample("attestream_anchor_blocked_bool", reason="insufficient_funds") == 0
    rig.until_final()


def test_node_outage_and_restart_on_the_same_port_lose_nothing(rig: Rig) -> None:
    rig.feed.append(0, 5)
    first = rig.until_final()
    rig.anvil.automine(False)
    rig.feed.append(0, 4)
    pending = rig.service.step()  # in the node's pool when it stops
    assert pending is not None

    rig.anvil.stop()
    rig.feed.append(1, 3)  # the ledger keeps logging while the chain is unreachable
    before = sample("attestream_anchor_errors_total", kind="rpc")
    assert run_round(rig.service).error == "rpc"
    assert sample("attestream_anchor_errors_total", kind="rpc") == before + 1
    status = collect_status(rig.service.records, rig.service.chain, rig.service.sender, time.time())
    assert status.problems and "could not be reached" in status.problems[0]
    assert {b.chain: b.unanchored_checkpoints for b in status.chains} == {0: 1, 1: 1}
    assert status.oldest_unanchored_age_s is not None

    rig.anvil.start()  # same port, same chain state; its pool is empty again
    service = rig.restart_service()  # and a new process: it resumes from ClickHouse
    service.step()  # the pending transaction is gone: replaced, same nonce
    assert rig.history(pending.tx_hash) == ["pending", "replaced"]
    rig.until_final()
    assert rig.service.records.final()[0].tx_hash == first.tx_hash, "still final after restart"
    status = collect_status(service.records, service.chain, service.sender, time.time())
    assert all(b.unanchored_checkpoints == 0 for b in status.chains)
    assert status.oldest_unanchored_age_s is None
    check_every_checkpoint_proves(rig)


def test_wrong_chain_id_is_a_clear_error(anvil: AnvilNode) -> None:
    with pytest.raises(WrongChainError, match="serves chain id 31337, settings say 11155111"):
        ChainClient(anvil.url, 11155111).check_chain()


def test_run_loop_takes_a_checkpoint_to_a_final_anchor(rig: Rig) -> None:
    """The loop `anchor run` runs, on a chain making a block a second: the time from a
    checkpoint to its final anchor is measured and printed, not asserted."""
    rig.anvil.automine(False)
    rig.anvil.rpc("evm_setIntervalMining", 1)
    stop = threading.Event()
    # The loop gets its own store: a ClickHouse connection is not shared between threads.
    loop_store = open_store(rig.settings)
    service = AnchorService(loop_store, ChainClient(rig.anvil.url, CHAIN_ID), rig.key, POLICY)
    pacing = Pacing(interval_s=1.0, poll_s=0.2, retry_initial_s=0.2, retry_max_s=1.0)
    loop = threading.Thread(target=run_service, args=(service, pacing, stop.is_set), daemon=True)
    latency_count = sample("attestream_anchor_latency_seconds_count")
    loop.start()
    latencies = []
    try:
        for n in range(3):
            checkpoint = rig.feed.append(n % 2, 3)
            started = time.monotonic()
            while not any(
                dict(a.checkpoints).get(checkpoint.chain) == checkpoint.size
                for a in rig.service.records.final()
            ):
                assert time.monotonic() - started < LOOP_DEADLINE_S, "the loop is stuck"
                time.sleep(0.05)
            latencies.append(round(time.monotonic() - started, 2))
    finally:
        stop.set()
        loop.join(LOOP_DEADLINE_S)
        rig.anvil.rpc("evm_setIntervalMining", 0)
        loop_store.close()
    print(f"checkpoint -> final anchor (1 s blocks, 2 confirmations): {latencies} s")
    assert not loop.is_alive()
    assert len(rig.service.records.final()) == 3, "one anchor per new checkpoint"
    assert sample("attestream_anchor_latency_seconds_count") >= latency_count + 3


def test_cli_status_and_run_once_never_show_the_key(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, value in {
        "ATTESTREAM_RPC_URL": rig.anvil.url,
        "ATTESTREAM_CHAIN_ID": "31337",
        "ATTESTREAM_ANCHOR_KEY": rig.key,
        "ATTESTREAM_ANCHOR_CONFIRMATIONS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    rig.feed.append(0, 4)
    cli = CliRunner()
    before = json.loads(cli.invoke(app, ["anchor", "status", "--json"]).output)
    assert before["sender"] == rig.service.sender and before["balance_eth"] == 10
    assert before["last_anchor"] is None and before["pending"] == []
    assert before["chains"][0]["unanchored_checkpoints"] == 1
    assert before["oldest_unanchored_decision_age_s"] is not None

    once = cli.invoke(app, ["anchor", "run", "--once"])
    assert once.exit_code == 0, once.output
    assert "anchored 1 checkpoint(s) in 0x" in once.output
    assert "nothing new" in cli.invoke(app, ["anchor", "run", "--once"]).output
    after = json.loads(cli.invoke(app, ["anchor", "status", "--json"]).output)
    assert after["last_anchor"]["checkpoints"] == [{"chain": 0, "size": 4}]
    assert after["chains"][0]["unanchored_checkpoints"] == 0
    text = cli.invoke(app, ["anchor", "status"]).output
    assert rig.service.sender in text and "last anchor: 0x" in text

    monkeypatch.delenv("ATTESTREAM_ANCHOR_KEY")
    monkeypatch.setenv("ATTESTREAM_ANCHOR_KEY_FILE", "/nonexistent/anchor.key")
    missing = cli.invoke(app, ["anchor", "run", "--once"])
    assert isinstance(missing.exception, AnchorKeyError)
    status = json.loads(cli.invoke(app, ["anchor", "status", "--json"]).output)
    assert status["sender"] is None and "cannot read anchor key file" in status["problems"][0]
    for output in (once.output, text, caplog.text, json.dumps([before, after, status])):
        assert rig.key.removeprefix("0x") not in output


# The anchors table as created before the lifecycle columns existed (commit 5b08d82).
OLD_ANCHORS_DDL = """
    CREATE TABLE {db}.anchors (
        anchored_at DateTime, root String, network_chain_id UInt64, tx_hash String,
        block_number UInt64, block_hash String, sender String, status String,
        gas_used UInt64, cp_chains Array(UInt32), cp_sizes Array(UInt64)
    ) ENGINE = MergeTree() ORDER BY (anchored_at, tx_hash)"""


def test_an_anchors_table_from_before_the_lifecycle_is_migrated(isolated: Settings) -> None:
    store = open_store(isolated)
    store.execute("CREATE DATABASE IF NOT EXISTS {db}")
    store.execute(OLD_ANCHORS_DDL)
    at = datetime(2025, 3, 4, 12, 0, 0)
    store.execute(
        "INSERT INTO {db}.anchors VALUES",
        [
            (at, "11" * 32, CHAIN_ID, "0xaa", 7, "0xbb", "0xS", "success", 22_480, [0], [5]),
            (at, "22" * 32, CHAIN_ID, "0xcc", 8, "0xdd", "0xS", "reverted", 22_480, [0], [9]),
        ],
    )
    store.create_schema()  # the table exists: CREATE ... IF NOT EXISTS leaves it as it was
    # Readers never migrate: they name the command that does.
    with pytest.raises(NoLedgerError, match="older schema .* `attestream ledger migrate`"):
        store.anchors()
    records = AnchorRecords(store, CHAIN_ID)
    records.migrate()
    records.migrate()  # a second time finds nothing to add
    (final,) = store.anchors()
    assert (final.tx_hash, final.state, final.attempt) == ("0xaa", "final", "0xaa")
    assert final.event_ns == int(at.replace(tzinfo=UTC).timestamp()) * 10**9
    assert records.covered_sizes() == {0: 5} and records.claimed_sizes() == {0: 5}
    store.close()
