"""`anchor run` waits out an outage of its JSON-RPC node (anvil stopped and started on the same
port) while checkpoints keep coming, anchors them once the node is back, and exits promptly
on SIGTERM while the node is down."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from anvil_node import LedgerFeed
from outage_drills import DrillStack, family_prefixes, try_scrape
from sequencer_procs import wait_until

from anchoring.store import AnchoredStore, AnchorRecords
from attestcore import processes
from attestream.settings import Settings
from attestream.wiring import ledger_signer, open_store

# Fast pacing for the test: an anchor a second, backoff from 0.2 s up to 2 s.
FAST_ANCHOR_ENV = {
    "ATTESTREAM_ANCHOR_INTERVAL_S": "1",
    "ATTESTREAM_ANCHOR_POLL_S": "0.3",
    "ATTESTREAM_ANCHOR_RETRY_INITIAL_S": "0.2",
    "ATTESTREAM_ANCHOR_RETRY_MAX_S": "2",
}
# From start to a final anchor: interpreter start, chain check, one transaction, one block.
ANCHOR_TIMEOUT_S = 30.0
OUTAGE_S = 5.0
# One line per backoff step (0.2, 0.4, 0.8, 1.6, 2, 2... s): a 5 s outage is a handful.
MAX_OUTAGE_LINES = 10
SHUTDOWN_BOUND_S = 10.0


def covered(store: AnchoredStore, settings: Settings, chain: int, size: int) -> bool:
    records = AnchorRecords(store, settings.chain_id or 0)
    return any(dict(a.checkpoints).get(chain, -1) >= size for a in records.final())


def test_anchor_run_waits_out_an_rpc_outage(
    drill: DrillStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = drill.settings(monkeypatch, **FAST_ANCHOR_ENV)
    store = open_store(settings, create=True)
    feed = LedgerFeed(store, ledger_signer(settings), settings.log_origin)
    first = feed.append(0, 5)
    log_path = tmp_path / "anchor.log"
    port = settings.anchor_metrics_port
    proc = processes.start(
        [sys.executable, "-m", "attestream.cli", "anchor", "run"], log=log_path, env=os.environ
    )
    try:
        wait_until(
            "a first final anchor",
            lambda: covered(store, settings, 0, first.size),
            ANCHOR_TIMEOUT_S,
        )
        assert family_prefixes(port) == {"attestream_anchor"}
        drill.manager.stop_service("anvil")
        second = feed.append(0, 7)
        wait_until(
            "the anchor to report the node down",
            lambda: (
                try_scrape(port).get(("attestream_anchor_dependency_up", (("dependency", "rpc"),)))
                == 0
            ),
            ANCHOR_TIMEOUT_S,
        )
        assert try_scrape(port)[("attestream_anchor_ready", ())] == 0
        time.sleep(OUTAGE_S)
        assert proc.poll() is None, log_path.read_text()[-2000:]
        failed = [line for line in log_path.read_text().splitlines() if "round failed" in line]
        assert 1 <= len(failed) <= MAX_OUTAGE_LINES, failed
        drill.restart()
        wait_until(
            "the backlog anchored",
            lambda: covered(store, settings, 0, second.size),
            ANCHOR_TIMEOUT_S,
        )
        assert try_scrape(port)[("attestream_anchor_ready", ())] == 1
        drill.manager.stop_service("anvil")
        wait_until(
            "the anchor to notice",
            lambda: (
                len([line for line in log_path.read_text().splitlines() if "round failed" in line])
                > len(failed)
            ),
            ANCHOR_TIMEOUT_S,
        )
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SHUTDOWN_BOUND_S) == 0
        assert time.monotonic() - started < SHUTDOWN_BOUND_S
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drill.restart()
        store.close()
