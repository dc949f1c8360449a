"""The attack of a database administrator on the real stack, and the sequencer refusing to sign
it: the chain rebuilt with one decision changed (plain INSERTs, every hash recomputed), the
checkpoints and anchors deleted, then a routine restart of the sequencer. Each outside record
of what it signed catches it on its own: the signer state file, the newest anchor on the EVM
chain (anvil), and without either the decisions topic itself. Nothing is signed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anchor_account import funded_anchor_key
from ledger_helpers import (
    fresh_database_url,
    rebuild_chain,
    run_sequencer,
    sequenced_ledger,
)
from outage_drills import try_scrape
from pydantic import SecretStr
from sequencer_procs import wait_until

from anchoring.rpc import ChainClient
from anchoring.runner import anchor_once
from anchoring.service import AnchorService
from anchoring.store import AnchoredStore
from attestcore.errors import SigningRefusedError
from attestcore.ports import unused_port
from attestcore.records import StoredCheckpoint
from attestcore.schemas import Decision
from attestream.settings import Settings
from ledger.merkle import tree_root
from ledger.node_keys import ChainNodes

ENTRIES = 24
BATCH = 5
FORGED = 18
"""The decision the administrator turns from review to approve."""
# A refused `ledger run` refuses right after the group join and recovery: well within this.
CLI_TIMEOUT_S = 120
# Longer than any wait of the test: the test ends the linger itself with SIGTERM.
LINGER_S = 600


@dataclass
class Ledger:
    settings: Settings
    store: AnchoredStore
    stack: Any

    def checkpoints(self) -> list[StoredCheckpoint]:
        return self.store.checkpoints(0)

    def attack(self) -> None:
        """The consistent rewrite, then the evidence of what was signed deleted."""
        rebuild_chain(self.store, 0, approve(FORGED))
        for table in ("checkpoints", "anchors"):
            self.store.execute(f"TRUNCATE TABLE {{db}}.{table}")

    def refusal(self, anchors: bool = False) -> SigningRefusedError:
        with pytest.raises(SigningRefusedError) as refused:
            run_sequencer(self.settings, self.store, batch_max=BATCH, anchors=anchors)
        return refused.value


def approve(seq: int) -> Any:
    def forge(at: int, decision: Decision) -> Decision:
        if at == seq:
            assert decision.outcome != "approve"
            decision.outcome = "approve"
        return decision

    return forge


@pytest.fixture
def ledger(stack: Any, tmp_path: Path) -> Iterator[Ledger]:
    """24 decisions from the real broker, logged and signed by the real sequencer, with a
    home, key, topic and database of this test's own (and no anchor account yet)."""
    suffix = os.urandom(5).hex()
    settings = Settings(
        home=tmp_path / "home",
        kafka_bootstrap=stack.kafka_bootstrap,
        clickhouse_url=fresh_database_url(stack.clickhouse_url),
        topic_decisions=f"decisions-{suffix}",
        topic_dead_letter=f"dead-{suffix}",
        ledger_group=f"ledger-{suffix}",
        ledger_key=None,
        trusted_keys="",
    )
    store = sequenced_ledger(settings, ENTRIES, BATCH)
    latest = store.latest_checkpoint(0)
    assert latest is not None and latest.size == ENTRIES
    yield Ledger(settings, store, stack)
    store.execute("DROP DATABASE IF EXISTS {db}")
    store.close()


def test_the_signer_state_file_catches_a_rebuilt_chain(ledger: Ledger) -> None:
    state = ledger.settings.ledger_state_path
    assert state.parent == ledger.settings.ledger_key_path.parent and state.exists()
    ledger.attack()
    refused = ledger.refusal()
    assert (refused.kind, refused.chain, refused.seq) == ("rewritten", 0, ENTRIES - 1)
    assert str(state) in str(refused)
    assert ledger.checkpoints() == [], "nothing signed"


def test_the_newest_anchor_catches_a_rebuilt_chain(ledger: Ledger, tmp_path: Path) -> None:
    anchor(ledger, tmp_path)
    ledger.settings.ledger_state_path.unlink()
    run_sequencer(ledger.settings, ledger.store, anchors=True)  # untouched: the anchor agrees
    signed = len(ledger.checkpoints())
    assert ledger.checkpoints()[-1].size == ENTRIES
    ledger.settings.ledger_state_path.unlink()
    ledger.attack()
    refused = ledger.refusal(anchors=True)
    assert (refused.kind, refused.chain) == ("anchor_missing", 0), refused
    assert "has no anchor row" in str(refused)
    assert ledger.checkpoints() == [] and signed > 0


def test_without_outside_records_the_decisions_topic_catches_a_rebuilt_chain(
    ledger: Ledger,
) -> None:
    ledger.settings.ledger_state_path.unlink()
    ledger.attack()
    refused = ledger.refusal()
    assert (refused.kind, refused.chain, refused.seq) == ("rederive_mismatch", 0, FORGED)
    assert "carries another decision" in str(refused)
    assert ledger.checkpoints() == []


def test_a_checkpoint_row_with_a_forged_root_column_is_refused(ledger: Ledger) -> None:
    """The rebuilt chain with a checkpoint row over it: the genuine signed note of that size,
    and the forged tree's root in the root column (recovery checks the nodes against it)."""
    genuine = ledger.store.latest_checkpoint(0)
    assert genuine is not None
    ledger.attack()
    forged_root = bytes(tree_root(ENTRIES, ChainNodes(ledger.store, 0)))
    row = StoredCheckpoint(
        0, ENTRIES, forged_root, genuine.note, genuine.source_cluster, genuine.source_offset
    )
    ledger.store.insert_checkpoint(row)
    refused = ledger.refusal()
    assert (refused.kind, refused.chain, refused.seq) == ("untrusted_checkpoint", 0, ENTRIES - 1)
    assert [cp.root for cp in ledger.checkpoints()] == [forged_root], "nothing signed"


def test_ledger_run_refuses_a_rebuilt_chain_by_name(ledger: Ledger, tmp_path: Path) -> None:
    """A rebuild followed by a routine restart of `ledger run`: it serves the refusal gauge
    while it lingers, then (here told to stop) exits 1 naming chain, seq and kind."""
    ledger.attack()
    s, port = ledger.settings, unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTREAM_")}
    env.update(
        {
            "ATTESTREAM_HOME": str(s.home),
            "ATTESTREAM_KAFKA_BOOTSTRAP": s.require_kafka(),
            "ATTESTREAM_CLICKHOUSE_URL": s.require_clickhouse(),
            "ATTESTREAM_TOPIC_DECISIONS": s.topic_decisions,
            "ATTESTREAM_TOPIC_DEAD_LETTER": s.topic_dead_letter,
            "ATTESTREAM_LEDGER_GROUP": s.ledger_group,
            "ATTESTREAM_LEDGER_METRICS_PORT": str(port),
            "ATTESTREAM_LEDGER_REFUSAL_LINGER_S": str(LINGER_S),
        }
    )
    output = tmp_path / "ledger.log"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "attestream.cli", "ledger", "run", "--max-idle", "5"],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
        )
    try:
        refused = ("attestream_ledger_signing_refused", (("chain", "0"), ("kind", "rewritten")))
        wait_until(
            "the refusal gauge served", lambda: try_scrape(port).get(refused) == 1.0, CLI_TIMEOUT_S
        )
        proc.send_signal(signal.SIGTERM)  # ends the linger early
        _, stderr = proc.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stderr.decode()
    assert proc.returncode == 1, text
    error = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(error) == 1, text
    assert f"refusing to sign chain 0, seq {ENTRIES - 1} (rewritten)" in error[0]
    assert "Traceback" not in text + output.read_text(encoding="utf-8")
    assert ledger.checkpoints() == []


def anchor(ledger: Ledger, tmp_path: Path) -> None:
    """Anchor the ledger's latest checkpoint from an account of its own, which the ledger's
    settings then name (with the stack's RPC)."""
    key_file = tmp_path / "anchor.key"
    funded_anchor_key(ledger.stack.rpc_url, key_file)
    ledger.settings = ledger.settings.model_copy(
        update={
            "rpc_url": SecretStr(ledger.stack.rpc_url),
            "chain_id": ledger.stack.chain_id,
            "anchor_key_file": key_file,
        }
    )
    client = ChainClient(ledger.stack.rpc_url, ledger.stack.chain_id)
    service = AnchorService(ledger.store, client, key_file.read_text().strip())
    assert anchor_once(service) is not None
