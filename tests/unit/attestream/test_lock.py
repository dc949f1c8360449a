"""requirements.txt pins the whole tree that pyproject.toml asks for, and this venv is it.

The bootstrap installs from the lock alone (docs/operations.md, "Dependencies"): a dependency
added to pyproject.toml without `make lock` would be missing on a fresh clone, and a pin
outside pyproject.toml's range would be a lock resolved against another project file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from standalone_verifier import module_from_file

ROOT = Path(__file__).resolve().parents[3]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
VERIFIER_LOCK_SCRIPT = ROOT / "deploy" / "verifier_lock.py"


def locked() -> dict[str, tuple[Version, int]]:
    """Package name -> (pinned version, number of hashes pinned for it)."""
    pins: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match.group(1))
            pins[name] = (Version(match.group(2)), 0)
        elif name and HASH.search(line):
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def project_requirements() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project, build = pyproject["project"], pyproject["build-system"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(text) for text in [*wanted, *build["requires"]]]


def test_every_project_requirement_is_pinned_within_its_range() -> None:
    pins = locked()
    for requirement in project_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.txt: run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.txt pins {name}=={version}, outside pyproject.toml's"
            f" {requirement.specifier}: run `make lock`"
        )


def test_every_pin_carries_a_hash() -> None:
    pins = locked()
    assert len(pins) > 50  # the whole tree, not only the direct dependencies
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"pins without a hash (pip --require-hashes refuses them): {unhashed}"


def test_this_environment_is_the_locked_one() -> None:
    for name, (version, _) in locked().items():
        installed = Version(metadata.version(name))
        hint = "run `make setup`"
        assert installed == version, f"{name} {installed} installed, {version} pinned: {hint}"


def test_the_standard_lock_file_pins_the_same_tree_with_hashes() -> None:
    """pylock.toml (PEP 751), written by the same `make lock`, pins exactly what
    requirements.txt pins, every package with a hashed artifact."""
    pylock = tomllib.loads((ROOT / "pylock.toml").read_text(encoding="utf-8"))
    assert pylock["lock-version"] == "1.0"
    pinned = {canonicalize_name(p["name"]): Version(p["version"]) for p in pylock["packages"]}
    assert pinned == {name: version for name, (version, _) in locked().items()}
    for package in pylock["packages"]:
        artifacts = [
            *package.get("wheels", []),
            *([package["sdist"]] if "sdist" in package else []),
        ]
        assert artifacts and all(a["hashes"]["sha256"] for a in artifacts), package["name"]


def test_anvil_is_installed_from_its_npm_lock() -> None:
    """The bootstrap installs anvil with `npm ci` from deploy/npm/package-lock.json: the
    version it names and a sha512 integrity for it."""
    root = Path(__file__).resolve().parents[3]
    script = (root / "deploy" / "bootstrap.sh").read_text(encoding="utf-8")
    version = re.search(r'^ANVIL_NPM_VERSION="([^"]+)"', script, re.M)
    assert version is not None and "npm ci --prefix" in script
    lock = json.loads((root / "deploy" / "npm" / "package-lock.json").read_text(encoding="utf-8"))
    [pinned] = [
        entry
        for path, entry in lock["packages"].items()
        if path == "node_modules/@foundry-rs/anvil-linux-amd64"
    ]
    assert pinned["version"] == version.group(1)
    assert pinned["integrity"].startswith("sha512-")


def lock_python() -> str:
    script = (ROOT / "deploy" / "bootstrap.sh").read_text(encoding="utf-8")
    found = re.search(r'^LOCK_PYTHON="([0-9.]+)"', script, re.M)
    assert found, "deploy/bootstrap.sh names no LOCK_PYTHON"
    return found.group(1)


def test_the_lock_the_venv_and_the_bootstrap_name_one_python() -> None:
    """`make lock` resolves for the Python the bootstrap makes the venv with, and this venv
    runs it: wheels locked for one CPython do not install on another."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    flag = re.search(r"--python-version ([0-9.]+)", makefile)
    assert flag and flag.group(1) == lock_python()
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == lock_python()


def test_the_bootstrap_refuses_another_python(tmp_path: Path) -> None:
    """A fresh clone with another interpreter stops at the venv, naming both versions, before
    anything is installed."""
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "deploy" / "bootstrap.sh", tmp_path / "deploy" / "bootstrap.sh")
    other = tmp_path / "python-other"
    other.write_text("#!/bin/sh\necho cpython 3.13\n", encoding="utf-8")
    other.chmod(0o755)
    done = subprocess.run(
        ["bash", str(tmp_path / "deploy" / "bootstrap.sh")],
        env={**os.environ, "PYTHON": str(other)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"is cpython 3.13, but requirements.txt is locked for cpython {lock_python()}" in (
        done.stderr
    )
    assert not (tmp_path / ".venv").exists()


def _verifier_lock() -> Any:
    return module_from_file("verifier_lock", VERIFIER_LOCK_SCRIPT)


def test_the_verifier_lock_is_cut_from_the_project_lock() -> None:
    """verifier/requirements.txt is what `make lock` writes from requirements.txt: the same
    versions and every hash the project lock pins for them."""
    script = _verifier_lock()
    lock_text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    written = (ROOT / "verifier" / "requirements.txt").read_text(encoding="utf-8")
    assert written == script.verifier_requirements(lock_text), "run `make lock`"
    pins = locked()
    for name in script.VERIFIER_REQUIRES:
        version, hashes = pins[canonicalize_name(name)]
        assert f"{name}=={version}" in written
        assert hashes > 0


def test_the_verifier_lock_holds_cryptographys_whole_tree() -> None:
    """Every package the locked cryptography requires (extras aside), with its marker, and
    nothing else: a new requirement in a new version stops here until the script names it."""
    wanted: dict[str, str] = {}
    todo = ["cryptography"]
    while todo:
        name = todo.pop()
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            marker = str(requirement.marker or "")
            if "extra ==" in marker:
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in wanted:
                wanted[dependency] = marker
                todo.append(dependency)
    named = _verifier_lock().VERIFIER_REQUIRES
    assert {canonicalize_name(n) for n in named} == {"cryptography", *wanted}
    for name, marker in wanted.items():
        assert Marker(named[name]) == Marker(marker) if marker else not named[name], name
