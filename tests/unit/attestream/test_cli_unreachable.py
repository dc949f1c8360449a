"""With ClickHouse and the JSON-RPC down, the readers print one clear message and exit 3: no
driver traceback, and under --json the JSON error object on stdout. The endpoints are closed
loopback ports: no service is started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attestcore.ports import unused_port
from ledger.keys import signer_from_seed, verifier_key_string

VERIFIER = verifier_key_string(signer_from_seed("attestream.local/ledger", b"\x07" * 32))
# A CLI process starts in about a second; a minute means it hangs on a dead socket.
CLI_TIMEOUT_S = 60

READERS = [
    ["forensic", "explain", "0" * 64, "--json"],
    ["forensic", "replay", "0" * 64, "--json"],
    ["forensic", "prove", "0" * 64],  # prints the proof itself: no --json
    ["forensic", "verify", "--offline", "--json"],
    ["forensic", "verify", "--chain", "0", "--from", "0", "--to", "3", "--json"],
    ["forensic", "consistency", "1", "2", "--json"],
    ["forensic", "bundle", "--query", "entity=C1", "-o", "case.bundle"],  # no --json
    ["anchor", "status", "--json"],
]


@pytest.fixture(scope="module")
def down_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTREAM_")}
    env.update(
        {
            "ATTESTREAM_HOME": str(tmp_path_factory.mktemp("home")),
            "ATTESTREAM_CLICKHOUSE_URL": f"clickhouse://default:@127.0.0.1:{unused_port()}/attestream",
            "ATTESTREAM_RPC_URL": f"http://127.0.0.1:{unused_port()}",
            "ATTESTREAM_CHAIN_ID": "31337",
            "ATTESTREAM_TRUSTED_KEYS": VERIFIER,
        }
    )
    return env


@pytest.mark.parametrize(
    "argv", READERS, ids=[" ".join(a[:2]) + f" {i}" for i, a in enumerate(READERS)]
)
def test_clickhouse_down_is_one_message_and_exit_3(
    argv: list[str], down_env: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "attestream.cli", *argv],
        env=down_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Failed to connect" not in done.stderr
    assert done.stderr.startswith("error: ClickHouse at 127.0.0.1:") and (
        "could not be reached" in done.stderr.splitlines()[0]
    )
    if "--json" in argv:
        error = json.loads(done.stdout)["error"]
        assert (error["kind"], error["exit_code"]) == ("service_unavailable", 3)
    else:
        assert done.stdout == ""
