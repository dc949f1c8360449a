"""deploy/prometheus/alerts.yml: Prometheus's own promtool (installed by `make setup`) parses
it, and the ledger's refusal alert fires on the metric `ledger run` sets when it refuses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from attestream.commands.ledger import SIGNING_REFUSED

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yml"
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
              runbook: "docs/operations.md#the-sequencer-refuses-to-sign"
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


def test_the_alert_rules_parse() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rules found" in checked.stdout + checked.stderr
    assert "attestream_ledger_signing_refused" in RULES.read_text(encoding="utf-8")


def test_a_refusal_fires_the_alert_with_its_runbook(tmp_path: Path) -> None:
    metric = SIGNING_REFUSED._name
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(RULE_TEST.format(rules=RULES, metric=metric), encoding="utf-8")
    tested = promtool("test", "rules", str(test_file))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # The runbook's anchor is a real heading of the operations guide.
    guide = (RULES.parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "\n## The sequencer refuses to sign\n" in guide or (
        "\n### The sequencer refuses to sign\n" in guide
    )
