"""Proof commands through the real CLI on a ledger built by the real sequencer."""

from __future__ import annotations

import json
from pathlib import Path

from factories import make_decision
from test_demo import cli

from attestcore.schemas import encode
from attestream.settings import Settings
from attestream.wiring import open_store
from streams.producer import EventProducer
from streams.topics import ensure_topics


def build_ledger(settings: Settings, bursts: list[range]) -> None:
    """One `ledger run` per burst, so the chain gets one checkpoint per burst at least."""
    ensure_topics(settings.require_kafka(), [settings.topic_decisions], partitions=1)
    for burst in bursts:
        with EventProducer(settings.require_kafka()) as producer:
            for i in burst:
                d = make_decision(i)
                producer.send(settings.topic_decisions, d.entity_id.encode(), encode(d))
        result = cli("ledger", "run", "--max-idle", "3", timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]


def test_prove_then_verify_offline_and_check_consistency(
    isolated: Settings, tmp_path: Path
) -> None:
    build_ledger(isolated, [range(0, 40), range(40, 75)])
    keys = json.loads(cli("ledger", "keys", "--json").stdout)

    target = make_decision(57).decision_id
    proof_file = tmp_path / "proof.json"
    proved = cli("forensic", "prove", target, "-o", str(proof_file))
    assert proved.returncode == 0, proved.stderr

    # Offline: only the file and the verifier key; no stack endpoints at all.
    offline_env = {"PATH": "/usr/bin:/bin", "ATTESTREAM_HOME": str(tmp_path / "nowhere")}
    ok = cli(
        "forensic",
        "verify-proof",
        str(proof_file),
        "--key",
        keys["verifier_key"],
        "--json",
        env=offline_env,
    )
    assert ok.returncode == 0, ok.stderr
    verdict = json.loads(ok.stdout)
    assert (verdict["decision_id"], verdict["seq"], verdict["tree_size"]) == (target, 57, 75)

    data = json.loads(proof_file.read_text())
    data["entry"] = data["entry"][:-8] + "AAAAAAA="
    proof_file.write_text(json.dumps(data))
    bad = cli(
        "forensic", "verify-proof", str(proof_file), "--key", keys["verifier_key"], env=offline_env
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr

    store = open_store(isolated)
    sizes = [cp.size for cp in store.checkpoints(0)]
    store.close()
    assert sizes[0] == 40 and sizes[-1] == 75
    consistent = cli("forensic", "consistency", "--chain", "0", "40", "75", "--json")
    assert consistent.returncode == 0, consistent.stderr
    assert json.loads(consistent.stdout)["new_size"] == 75

    missing = cli("forensic", "prove", "00" * 32)
    assert missing.returncode == 2 and "no logged decision" in missing.stderr


def test_anchored_proof_carries_the_anchor_and_checks_it_on_chain(
    isolated: Settings, tmp_path: Path
) -> None:
    build_ledger(isolated, [range(0, 30)])
    anchored = cli("anchor", "run", "--once", timeout=180)
    assert anchored.returncode == 0, anchored.stderr[-2000:]
    keys = json.loads(cli("ledger", "keys", "--json").stdout)
    proof_file = tmp_path / "proof.json"
    proved = cli("forensic", "prove", make_decision(11).decision_id, "-o", str(proof_file))
    assert proved.returncode == 0, proved.stderr
    anchor = json.loads(proof_file.read_text())["anchor"]
    assert anchor["tx_hash"].startswith("0x") and anchor["anchored_size"] == 30

    offline_env = {"PATH": "/usr/bin:/bin", "ATTESTREAM_HOME": str(tmp_path / "nowhere")}
    offline = cli(
        "forensic",
        "verify-proof",
        str(proof_file),
        "--key",
        keys["verifier_key"],
        "--json",
        env=offline_env,
    )
    assert offline.returncode == 0, offline.stderr
    verdict = json.loads(offline.stdout)
    assert verdict["anchor_tx"] == anchor["tx_hash"] and not verdict["anchor_checked_on_chain"]

    online = cli(
        "forensic",
        "verify-proof",
        str(proof_file),
        "--key",
        keys["verifier_key"],
        "--rpc-url",
        isolated.require_rpc()[0],
        "--json",
        env=offline_env,
    )
    assert online.returncode == 0, online.stderr
    assert json.loads(online.stdout)["anchor_checked_on_chain"] is True

    data = json.loads(proof_file.read_text())
    data["anchor"]["anchor_root"] = "00" * 32
    proof_file.write_text(json.dumps(data))
    forged = cli(
        "forensic", "verify-proof", str(proof_file), "--key", keys["verifier_key"], env=offline_env
    )
    assert forged.returncode == 1, forged.stdout + forged.stderr
