"""Test helpers for anchoring: a dedicated anvil process, and a ledger fed without Kafka.

The session stack's anvil is shared by every test; fault tests (stop, restart, reorg, block
production switched off) run on their own anvil, started here on a free port with its own
state file, so stopping and restarting it on the same port disturbs nobody.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from factories import incoming

from attestcore import processes
from attestcore.ports import unused_port
from attestcore.records import StoredCheckpoint
from attestcore.waiting import WaitTimeout, wait_until
from attestream.stack_services import probe_anvil, resolve_binaries
from ledger.chain import ChainWriter
from ledger.keys import NoteSigner
from ledger.merkle import MerkleTree, RootHash
from ledger.note import Checkpoint, sign_note
from ledger.store import ClickHouseStore

CHAIN_ID = 31337
# anvil answers within ~50 ms of starting (with an empty or small state file); 30 s leaves
# room for a loaded 2-core machine.
START_TIMEOUT_S = 30.0
# On SIGTERM anvil dumps its state file and exits in milliseconds.
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05
RPC_TIMEOUT_S = 10.0


class AnvilNode:
    """One anvil process with a state file: its chain survives stop() then start()."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.binary = resolve_binaries(home)["anvil"]
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: processes.Child | None = None

    def start(self) -> None:
        self.process = processes.start(
            [
                str(self.binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--chain-id",
                str(CHAIN_ID),
                "--state",
                str(self.home / "state.json"),
                "--silent",
            ],
            log=self.home / "anvil.log",
        )
        process = self.process

        def answers() -> bool:
            problem = probe_anvil(self.url, CHAIN_ID)
            if problem is not None and process.poll() is not None:
                raise RuntimeError(f"anvil did not start on {self.url}: {problem}")
            return problem is None

        try:
            wait_until(answers, START_TIMEOUT_S, interval_s=POLL_S, what=f"anvil on {self.url}")
        except WaitTimeout as exc:
            raise RuntimeError(f"anvil did not start on {self.url}: {exc}") from exc

    def stop(self) -> None:
        if self.process is None:
            return
        processes.stop(self.process, STOP_TIMEOUT_S, STOP_TIMEOUT_S)
        self.process = None

    def rpc(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result")

    def fund(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", address, hex(wei))

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", on)

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)


class LedgerFeed:
    """Appends decisions to chains of a store as the sequencer would (entries, nodes, signed
    checkpoint), without a broker: anchoring tests need checkpoints, not Kafka."""

    def __init__(self, store: ClickHouseStore, signer: NoteSigner, origin: str) -> None:
        self.store, self.signer, self.origin = store, signer, origin
        self.writers: dict[int, ChainWriter] = {}
        self.next_decision = 0

    def append(self, chain: int, count: int) -> StoredCheckpoint:
        writer = self.writers.setdefault(chain, ChainWriter(chain, MerkleTree(), None))
        batch = [incoming(self.next_decision + i) for i in range(count)]
        self.next_decision += count
        result = writer.append(batch)
        self.store.insert_entries(result.entries)
        self.store.insert_nodes(chain, result.node_keys, result.node_hashes)
        body = Checkpoint(f"{self.origin}/{chain}", result.size, RootHash(result.root)).body()
        checkpoint = StoredCheckpoint(
            chain, result.size, result.root, sign_note(body, self.signer), "k1", -1
        )
        self.store.insert_checkpoint(checkpoint)
        return checkpoint
