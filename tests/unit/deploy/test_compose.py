"""deploy/compose.yaml and the Dockerfile. No container runtime runs here (docs/operations.md,
"One machine: deploy/compose.yaml"): the compose file is validated against the Compose
Specification's JSON Schema (vendored, offline), its mounts and its Prometheus configuration
against the repository, and the Dockerfile against what the chart and the lock expect."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from attestream.cli import app

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SPEC_DIR = Path(__file__).resolve().parent / "compose-spec"
# promtool checks a small configuration in milliseconds; this bounds a hung binary.
PROMTOOL_TIMEOUT_S = 60
ATTESTREAM_SERVICES = {"ledger-keys", "detect", "sequencer", "anchor", "forensic-watch", "serve"}


def compose() -> dict[str, Any]:
    """The compose file as compose reads it (YAML merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SPEC_DIR / "compose-spec.json").read_text())
    return schema


def test_vendored_schema_is_the_one_its_readme_names() -> None:
    readme = (SPEC_DIR / "README.md").read_text(encoding="utf-8")
    match = re.search(r"sha256 ([0-9a-f]{64})", readme)
    assert match
    digest = hashlib.sha256((SPEC_DIR / "compose-spec.json").read_bytes()).hexdigest()
    assert digest == match.group(1)
    assert "Apache License" in (SPEC_DIR / "LICENSE").read_text(encoding="utf-8")


def test_compose_file_follows_the_compose_specification() -> None:
    schema = spec_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose())


def test_schema_rejects_a_misspelt_service_field() -> None:
    """The validation has teeth: the schema refuses what compose would refuse."""
    document = compose()
    document["services"]["anchor"]["restart_policy"] = (
        "always"  # `restart`, or deploy.restart_policy
    )
    with pytest.raises(jsonschema.ValidationError, match="restart_policy"):
        jsonschema.Draft7Validator(spec_schema()).validate(document)


def test_one_machine_runs_the_whole_product() -> None:
    services = compose()["services"]
    assert {"kafka", "clickhouse", "prometheus", "grafana"} | ATTESTREAM_SERVICES == set(services)
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft: no ZooKeeper
    commands = {name: services[name]["command"] for name in ATTESTREAM_SERVICES}
    assert commands["sequencer"] == ["ledger", "run"]
    assert commands["anchor"] == ["anchor", "run"]
    for name in ATTESTREAM_SERVICES:
        service = services[name]
        assert service["user"] == "10001:10001"
        assert service["read_only"] is True
        assert "deploy" not in service  # one replica each; the anchor and server must be one


def registered(command: list[str]) -> bool:
    group: Any = app
    for word in command:
        names = {c.name or c.callback.__name__ for c in group.registered_commands if c.callback}
        groups = {g.name: g.typer_instance for g in group.registered_groups}
        if word in groups:
            group = groups[word]
        else:
            return word in names
    return False


@pytest.mark.parametrize("service", sorted(ATTESTREAM_SERVICES))
def test_every_process_is_an_attestream_command(service: str) -> None:
    command = [w for w in compose()["services"][service]["command"] if not w.startswith("-")]
    if command == ["forensic", "watch"] and not registered(command):
        pytest.skip("`attestream forensic watch` is not in this tree yet")
    assert registered(command), f"`attestream {' '.join(command)}` is no command"


def test_no_secret_is_written_into_the_compose_file() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    services = compose()["services"]
    env = services["sequencer"]["environment"]
    # Secrets come from deploy/.env or a secret file, never a literal.
    assert "${CLICKHOUSE_PASSWORD:?" in env["ATTESTREAM_CLICKHOUSE_URL"]
    assert env["ATTESTREAM_RPC_URL"].startswith("${ATTESTREAM_RPC_URL:?")
    assert "ATTESTREAM_ANCHOR_KEY" not in text.replace("ATTESTREAM_ANCHOR_KEY_FILE", "")
    assert (
        services["anchor"]["environment"]["ATTESTREAM_ANCHOR_KEY_FILE"] == "/run/secrets/anchor_key"
    )
    assert [n for n, s in services.items() if "secrets" in s] == ["anchor"]
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "deploy/.env" in ignored and "deploy/secrets/" in ignored


def bind_mounts() -> list[tuple[str, Path, str]]:
    """(service, source on this machine, target) of every bind mount."""
    mounts = []
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                mounts.append((name, (DEPLOY / source).resolve(), target))
    return mounts


def test_bind_mounts_exist_in_the_repository() -> None:
    mounts = bind_mounts()
    assert mounts
    for service, source, _ in mounts:
        if source == DEPLOY / "grafana" / "dashboards" and not source.parent.exists():
            continue  # deploy/grafana is not in this tree yet
        assert source.exists(), f"{service} mounts {source}, which does not exist"


def test_prometheus_loads_the_alerts_and_scrapes_every_process(tmp_path: Path) -> None:
    """promtool (installed by `make setup`) checks the compose Prometheus configuration with
    its rules directory pointed where compose mounts deploy/prometheus/alerts.yml from."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `make setup`"
    (rules,) = [(s, t) for n, s, t in bind_mounts() if n == "prometheus" and "/rules/" in t]
    assert rules[0] == DEPLOY / "prometheus" / "alerts.yml"
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text(encoding="utf-8"))
    (pattern,) = config["rule_files"]
    assert Path(pattern).parent == Path(rules[1]).parent
    (tmp_path / "rules").mkdir()
    shutil.copy(rules[0], tmp_path / "rules" / Path(rules[1]).name)
    config["rule_files"] = [str(tmp_path / "rules" / Path(pattern).name)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = yaml.safe_load(rules[0].read_text(encoding="utf-8"))
    count = sum(len(group["rules"]) for group in alerts["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout
    targets = {
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    }
    assert targets == {
        *("detect:9464", "sequencer:9465", "anchor:9466", "serve:9467", "forensic-watch:9468")
    }


def test_grafana_provisions_the_dashboards_folder() -> None:
    provider = yaml.safe_load((DEPLOY / "compose" / "grafana" / "dashboards.yaml").read_text())
    (dashboards,) = [t for n, s, t in bind_mounts() if s == DEPLOY / "grafana" / "dashboards"]
    assert provider["providers"][0]["options"]["path"] == dashboards


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split into stages."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_image_installs_the_lock_with_hashes_and_runs_unprivileged() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "a multi-stage build: nothing of the build stage ships"
    build, runtime = stages[0], stages[-1]
    installs = [line for line in build if "pip install" in line and "-r " in line]
    assert installs and all("--require-hashes" in line for line in installs)
    assert not [line for line in runtime if "pip install" in line]
    (user,) = [line for line in runtime if line.startswith("USER ")]
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    # The chart's pods and the compose services run as that user.
    values = yaml.safe_load((ROOT / "helm" / "attestream" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert compose()["services"]["detect"]["user"].split(":")[0] == uid
    assert 'ENTRYPOINT ["attestream"]' in runtime


def test_prometheus_scrapes_every_process_under_its_own_job_name() -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {c["job_name"] for c in config["scrape_configs"]}
    assert jobs == {"detect", "ledger", "anchor", "watch", "serve"}  # as `up{job="serve"}` reads
