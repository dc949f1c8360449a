"""deploy/prometheus/alerts.yml: Prometheus's own promtool (installed by `make setup`) parses
it; the ledger's refusal alert fires on the metric `ledger run` sets when it refuses; every
alert fires and stays quiet in deploy/prometheus/alerts_test.yml; and every alert links a
runbook section of docs/operations.md that exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from attestream.commands.ledger import SIGNING_REFUSED

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = RULES.with_name("alerts_test.yml")
GUIDE = RULES.parents[2] / "docs" / "operations.md"
# promtool checks a file of a few rules in milliseconds; this bounds a hung binary.
PROMTOOL_TIMEOUT_S = 60

RULE_TEST = """\
rule_files: [{rules}]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: '{metric}{{chain="2", kind="rewritten", instance="ledger-1"}}'
        values: '1 1 1 _ _ _'
      - series: '{metric}{{chain="0", kind="none", instance="ledger-2"}}'
        values: '0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 1m
        alertname: LedgerRefusedToSign
        exp_alerts:
          - exp_labels: {{severity: critical, chain: "2", kind: rewritten, instance: ledger-1}}
            exp_annotations:
              summary: "Ledger sequencer refused to sign chain 2 (rewritten)"
              runbook_url: "docs/operations.md#the-sequencer-refuses-to-sign"
              description: "The ledger sequencer on ledger-1 found that chain 2 in ClickHouse\
 is not one it can re-derive (rewritten): the stored entries contradict a checkpoint it signed,\
 or differ from their decisions on the topic. It signed nothing and exits; decisions are not\
 being logged. Treat it as possible tampering with the database until `attestream forensic\
 verify` says otherwise."
"""


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool missing: `make setup` installs Prometheus"
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S
    )


def alert_names() -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(encoding="utf-8"), re.MULTILINE)


def test_the_alert_rules_parse() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = alert_names()
    assert f"SUCCESS: {len(names)} rules found" in checked.stdout + checked.stderr
    assert "attestream_ledger_signing_refused" in RULES.read_text(encoding="utf-8")
    expected = {
        "LedgerRefusedToSign",
        "VerificationFailed",
        "VerificationStale",
        "AnchoringStalled",
        "AnchorRunwayLow",
        "CheckpointAgeHigh",
        "DetectionLagGrowing",
        "LedgerLagGrowing",
        "DeadLetterRateHigh",
        "DetectionInvariantBroken",
        "ScoreDriftHigh",
        "ProcessDown",
    }
    assert set(names) == expected and len(names) == len(expected)


def test_every_alert_fires_and_stays_quiet_in_its_promtool_tests() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Each case of the test file: the alert it evaluates and whether it expects it to fire.
    cases = re.findall(
        r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", RULE_TESTS.read_text(encoding="utf-8")
    )
    firing = {name for name, quiet in cases if not quiet}
    quiet = {name for name, quiet in cases if quiet}
    assert firing == set(alert_names()), "an alert without a case that fires it"
    assert quiet == set(alert_names()), "an alert without a case where it stays quiet"


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the operations guide's headings (lower case, punctuation dropped,
    spaces to hyphens)."""
    headings = re.findall(r"^#{2,4} (.+)$", GUIDE.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_a_summary_a_description_and_a_runbook_section() -> None:
    text = RULES.read_text(encoding="utf-8")
    rules = re.split(r"^\s*- alert: ", text, flags=re.MULTILINE)[1:]
    anchors = runbook_anchors()
    assert len(rules) == len(alert_names())
    for rule in rules:
        name = rule.split("\n", 1)[0]
        for annotation in ("summary:", "description:", "runbook_url:"):
            assert f"\n          {annotation}" in rule, f"{name} lacks {annotation}"
        url = re.search(r'runbook_url: "docs/operations\.md#([\w-]+)"', rule)
        assert url is not None, f"{name}'s runbook_url is not a section of docs/operations.md"
        assert url.group(1) in anchors, f"{name}: no heading of docs/operations.md has #{url[1]}"


def test_a_refusal_fires_the_alert_with_its_runbook(tmp_path: Path) -> None:
    metric = SIGNING_REFUSED._name
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(RULE_TEST.format(rules=RULES, metric=metric), encoding="utf-8")
    tested = promtool("test", "rules", str(test_file))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # The runbook's anchor is a real heading of the operations guide.
    assert "the-sequencer-refuses-to-sign" in runbook_anchors()
