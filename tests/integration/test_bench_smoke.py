"""`python -m bench --quick` runs end to end on the session's stack and writes what
docs/benchmarks.md and bench/results expect, so the harness cannot rot between full runs.
Nothing here is timed: quick figures are meaningless and only their shape is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from attestream.settings import Settings
from streams.stages import STAGES

REPO = Path(__file__).resolve().parents[2]
RESULTS_START, RESULTS_END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
FORENSIC_START, FORENSIC_END = "<!-- bench:forensic:start -->", "<!-- bench:forensic:end -->"
LEDGER_KEYS = [
    *("a", "b", "c1", "c2", "d", "e1", "e2", "e3", "e4", "e", "f", "f1", "g"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "h7", "q", "q1", "q2", "q3", "r1", "r2"),
    *("p", "p1", "p2", "p3", "p4", "p5", "s1", "s2", "s3", "s4", "t1", "t2", "t3", "t4"),
]
FORENSIC_KEYS = ["i1", "i2", "j", "k", "l"]
FIGURE_KEYS = LEDGER_KEYS + FORENSIC_KEYS
STREAM_EVENTS = 800
# A quick run on tiny sizes takes seconds; minutes would mean a hang.
BENCH_TIMEOUT_S = 300


def test_quick_run_writes_json_and_the_markdown_table(
    settings_env: Settings, tmp_path: Path
) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        f"# Benchmarks\n\nprose kept\n\n{RESULTS_START}\nold\n{RESULTS_END}\n\nmiddle\n\n"
        f"{FORENSIC_START}\nolder\n{FORENSIC_END}\n\ntail\n"
    )
    command = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--decisions",
        "600",
        "--batch-max",
        "200",
        "--stream-events",
        str(STREAM_EVENTS),
        "--results-dir",
        str(tmp_path / "results"),
        "--doc",
        str(doc),
        "--stack-home",
        str(settings_env.home),
    ]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr

    [result] = (tmp_path / "results").glob("*.json")
    data = json.loads(result.read_text(encoding="utf-8"))
    assert [f["key"] for f in data["figures"]] == FIGURE_KEYS
    for figure in data["figures"]:
        assert figure["value"] > 0 and len(figure["runs"]) == 1
        assert figure["met"] in (True, False, None)
    assert {"nproc", "cpu", "loadavg_at_start"} <= set(data["meta"]["machine"])
    assert [r["records"] for r in data["details"]["ledger_runs"]] == [600]
    details = data["details"]
    for name in ("stream_count_runs", "stream_decide_runs", "stream_kafka_runs"):
        [run] = details[name]
        assert run["records"] == STREAM_EVENTS and run["rate"] > 0 and run["cpu_seconds"] > 0
    for name in ("peer_worker_runs", "peer_kafka_runs", "peer_runs"):
        [run] = details[name]
        assert run["records"] == STREAM_EVENTS and run["rate"] > 0 and run["cpu_seconds"] > 0
    assert [len(details["scale_detect_runs"][n]) for n in ("1", "2")] == [1, 1]
    assert [r["records"] for r in details["scale_ledger_runs"]["2"]] == [1200]
    [end_to_end] = details["end_to_end_runs"]
    assert end_to_end["durable"] == end_to_end["events"] > 0 and end_to_end["checkpoints"] > 0
    [latency] = details["stream_latency_runs"]
    assert latency["decisions"] == latency["events"] > 0
    # Each engine decides only its own topic's paced payments, once each.
    [kafka_latency] = details["stream_kafka_latency_runs"]
    assert kafka_latency["decisions"] == kafka_latency["events"] > 0
    # The relay, the engine's latency ceiling, relays each of its paced payments once.
    [relay] = details["stream_relay_latency_runs"]
    assert relay["decisions"] == relay["events"] > 0 and relay["stages"] == {}
    [q2] = [f for f in data["figures"] if f["key"] == "q2"]
    assert q2["ceiling"] > 0 and q2["ratio"] == q2["ceiling"] / q2["value"]
    assert latency["received_ms"]["p50"] <= latency["received_ms"]["p99"]
    # Every paced payment's decision passed through each stage of the worker once.
    stages = latency["stages"]
    assert [stages[s]["decisions"] for s in STAGES] == [latency["events"]] * len(STAGES)
    assert [f for f in data["figures"] if f["key"] == "f"][0]["ceiling"] > 0
    assert f"results: {result}" in done.stdout
    [forensic] = details["forensic_runs"]
    assert forensic["searches"] > 0 and forensic["bundle_nodes"] > 0
    assert len(forensic["timeline_ms"]) == len(forensic["timeline_raw_ms"]) > 0

    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nprose kept\n") and text.endswith("\n\ntail\n")
    assert "old" not in text and "| figure | value | raw ceiling | ratio | target | met? |" in text
    ledger_part, forensic_part = text.split("\nmiddle\n")
    for part, keys in ((ledger_part, LEDGER_KEYS), (forensic_part, FORENSIC_KEYS)):
        rows = [
            line for line in part.splitlines() if line.startswith("| ") and "figure" not in line
        ]
        assert [row.split(".")[0].lstrip("| ") for row in rows] == keys
