"""The tamper suites' ledger: one small ledger per test module, written by the real sequencer
from the real broker, and each test's own copy of it in a fresh database (the `pristine` and
`ledger` fixtures in this directory's conftest), with what the tests verify it with."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from anchor_account import funded_anchor_key
from web3.types import RPCEndpoint

from anchoring.rpc import ChainClient
from anchoring.runner import anchor_once
from anchoring.service import AnchorService
from anchoring.store import AnchoredStore
from attestream.settings import Settings
from forensics.report import Report
from forensics.verify import verify_ledger
from forensics.verify_account import FINALITY_GRACE_BLOCKS
from forensics.verify_tail import TailCheck
from ledger.keys import NoteVerifier
from ledger.rederive import Rederiver

ENTRIES = 24
BATCH = 5
"""The sequencer's batch size for these ledgers, and the verifier's `ledger_batch_max`."""
Found = set[tuple[str, int | None, int | None]]


@dataclass
class Ledger:
    settings: Settings
    store: AnchoredStore
    verifiers: list[NoteVerifier]

    def verify(self, kafka: Rederiver | None = None, batch_max: int = BATCH) -> Found:
        return found(
            verify_ledger(self.store, self.verifiers, tail_check=TailCheck(batch_max, kafka))
        )

    def sizes(self) -> list[int]:
        return sorted({cp.size for cp in self.store.checkpoints(0) if cp.size > 0})


def found(report: Report) -> Found:
    return {(f.kind, f.chain, f.seq) for f in report.failures}


def anchor_with_own_account(ledger: Ledger, tmp_path: Any) -> tuple[str, ChainClient]:
    """Anchor the ledger's latest checkpoint from a new account (the chain must hold no
    other ledger's anchors from it), buried past the verifier's in-flight window."""
    rpc_url, chain_id = ledger.settings.require_rpc()
    key_file = tmp_path / "anchor.key"
    account = funded_anchor_key(rpc_url, key_file)
    client = ChainClient(rpc_url, chain_id)
    service = AnchorService(ledger.store, client, key_file.read_text().strip())
    assert anchor_once(service) is not None
    client.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(FINALITY_GRACE_BLOCKS + 1)])
    return account, client


def cli_env(ledger: Ledger) -> dict[str, str]:
    """The environment of a CLI subprocess that reads this test's ledger."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTREAM_")}
    env.update(
        {
            "ATTESTREAM_HOME": str(ledger.settings.home),
            "ATTESTREAM_CLICKHOUSE_URL": ledger.settings.require_clickhouse(),
            "ATTESTREAM_LEDGER_KEY_FILE": str(ledger.settings.ledger_key_path),
            "ATTESTREAM_LOG_ORIGIN": ledger.settings.log_origin,
            "ATTESTREAM_LEDGER_BATCH_MAX": str(BATCH),
            # A verifier of its own per ledger: every copy shares the origin and the key.
            "ATTESTREAM_VERIFY_STATE": str(
                ledger.settings.home / "verifier" / f"{ledger.store.database}.json"
            ),
        }
    )
    return env
