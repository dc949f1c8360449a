"""No message, log line or crash log ever holds a secret: recognisable test secrets (a
ClickHouse password in the URL, the ledger signing key, the anchor key, a JSON-RPC URL token)
are configured, commands that fail and succeed run against the real stack, and everything
they printed or logged is searched for the secrets."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from factories import make_decision
from ledger_helpers import publish_decisions

from attestcore.ports import unused_port
from attestream.settings import Settings
from attestream.stack_services import reader_password, reader_url
from ledger.keys import signer_from_seed, signer_key_string
from streams.topics import ensure_topics

CLICKHOUSE_PASSWORD = "chPW-s3cr3t-7781"
RPC_TOKEN = "rpcTOKEN-s3cr3t-4417"
ANCHOR_KEY = "0x" + "5ec7e7a1" * 8
LEDGER_SEED = b"\x5e" * 32


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attestream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_no_output_or_log_holds_a_secret(isolated: Settings, tmp_path: Path) -> None:
    signer = signer_from_seed(isolated.log_origin, LEDGER_SEED)
    ledger_key = signer_key_string(signer)
    url = isolated.require_clickhouse()
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    anvil = isolated.require_rpc()[0]
    home = tmp_path / "home"
    base = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTREAM_")}
    base.update(
        {
            "ATTESTREAM_HOME": str(home),
            "ATTESTREAM_KAFKA_BOOTSTRAP": isolated.require_kafka(),
            "ATTESTREAM_TOPIC_DECISIONS": isolated.topic_decisions,
            "ATTESTREAM_TOPIC_DEAD_LETTER": isolated.topic_dead_letter,
            "ATTESTREAM_LEDGER_GROUP": isolated.ledger_group,
            "ATTESTREAM_LOG_ORIGIN": isolated.log_origin,
            "ATTESTREAM_LEDGER_KEY": ledger_key,
            "ATTESTREAM_ANCHOR_KEY": ANCHOR_KEY,
            "ATTESTREAM_CHAIN_ID": str(isolated.require_rpc()[1]),
            "ATTESTREAM_RPC_URL": f"{anvil}/?apikey={RPC_TOKEN}",
            "ATTESTREAM_CLICKHOUSE_URL": url,
            "ATTESTREAM_LEDGER_METRICS_PORT": "0",
        }
    )
    reader = reader_url(url, isolated.home)
    wrong_password = f"clickhouse://attestream_reader:{CLICKHOUSE_PASSWORD}@{host_port}/x"
    dead_rpc = f"http://127.0.0.1:{unused_port()}/v3/{RPC_TOKEN}"
    not_found_rpc = f"{anvil}/v3/{RPC_TOKEN}"  # anvil answers 404 on a path
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=1)
    publish_decisions(isolated, [make_decision(i) for i in range(12)])

    runs = [  # (environment changes, command, expected exit code)
        ({}, ["ledger", "run", "--max-idle", "3", "--verbose"], 0),
        ({}, ["ledger", "keys", "--json"], 0),
        ({"ATTESTREAM_CLICKHOUSE_URL": reader}, ["forensic", "verify", "--offline"], 0),
        ({"ATTESTREAM_CLICKHOUSE_URL": reader}, ["forensic", "verify", "--json"], 0),
        ({"ATTESTREAM_CLICKHOUSE_URL": reader}, ["anchor", "status", "--json"], 0),
        ({"ATTESTREAM_CLICKHOUSE_URL": wrong_password}, ["forensic", "verify", "--offline"], 2),
        (
            {"ATTESTREAM_CLICKHOUSE_URL": f"postgres://u:{CLICKHOUSE_PASSWORD}@h/x"},
            ["forensic", "verify", "--offline"],
            2,
        ),
        (
            {"ATTESTREAM_CLICKHOUSE_URL": f"clickhouse://u:{CLICKHOUSE_PASSWORD}@h:port/x"},
            ["forensic", "verify", "--offline"],
            2,
        ),
        (
            {
                "ATTESTREAM_CLICKHOUSE_URL": f"clickhouse://u:{CLICKHOUSE_PASSWORD}@127.0.0.1:"
                f"{unused_port()}/x"
            },
            ["forensic", "explain", "00" * 32, "--json"],
            3,
        ),
        ({"ATTESTREAM_RPC_URL": dead_rpc}, ["forensic", "verify"], 3),
        ({"ATTESTREAM_RPC_URL": not_found_rpc}, ["forensic", "verify", "--json"], 3),
        ({"ATTESTREAM_RPC_URL": not_found_rpc}, ["anchor", "status"], 0),
        ({"ATTESTREAM_ANCHOR_KEY": ANCHOR_KEY[:-3] + "zzz"}, ["anchor", "status"], 0),
        ({"ATTESTREAM_LEDGER_KEY": ledger_key[:-4] + "!!!!"}, ["ledger", "keys"], 2),
        ({"ATTESTREAM_TOPIC_PARTITIONS": "0"}, ["forensic", "verify"], 2),
    ]
    printed = []
    for changes, argv, code in runs:
        done = run({**base, **changes}, *argv)
        assert done.returncode == code, (argv, changes, done.stdout[-1500:], done.stderr[-1500:])
        assert "Traceback" not in done.stderr, (argv, done.stderr[-3000:])
        printed.append(f"$ {' '.join(argv)}\n{done.stdout}\n{done.stderr}")
    logs = [
        p.read_text(errors="replace")
        for p in home.rglob("*")
        if p.is_file() and "keys" not in p.parts
    ]

    seed = base64.b64encode(bytes([1]) + LEDGER_SEED).decode()
    secrets = {
        "ClickHouse password": CLICKHOUSE_PASSWORD,
        "ClickHouse reader password": reader_password(isolated.home),
        "RPC token": RPC_TOKEN,
        "anchor key": ANCHOR_KEY.removeprefix("0x"),
        "ledger key seed": seed,
        "ledger key seed (bad)": seed[:-4],
    }
    everything = "\n".join(printed + logs)
    assert "ledger run" in everything and "VERIFIED" in everything  # the runs did run
    for name, secret in secrets.items():
        assert secret not in everything, f"the {name} was printed or logged"
