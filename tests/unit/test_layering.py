"""The package layering of docs/architecture.md, checked against the code.

Two checks: the verifiable core (Merkle trees, entries, notes, chain writer, recovery and the
offline verifier) imports in a fresh interpreter without any client of a service, and the
packages import each other only downwards, so no import cycle joins them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS: dict[str, int] = {
    "attestcore": 0,
    "ledger": 1,
    "detectors": 1,
    "streams": 2,
    "anchoring": 2,
    "forensics": 3,
    "attestream": 4,
    "bench": 5,
}
"""Each package may import only packages of a lower layer (and itself)."""

CORE_MODULES = (
    "ledger.merkle",
    "ledger.entry",
    "ledger.note",
    "ledger.chain",
    "ledger.recovery",
    "forensics.verify",
    "forensics.proofs",
    "forensics.case_bundle",
    "forensics.verify_bundle",
    "ledger.entry_filter",
)
SERVICE_CLIENTS = ("clickhouse_driver", "confluent_kafka", "faust", "web3")


def test_the_verifiable_core_loads_no_service_client() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {CORE_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert loaded.isdisjoint(SERVICE_CLIENTS), sorted(loaded & set(SERVICE_CLIENTS))


def package_imports() -> dict[str, set[str]]:
    """For each package, the other project packages its modules import (at any depth of the
    module, lazy imports included)."""
    graph: dict[str, set[str]] = {package: set() for package in LAYERS}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in LAYERS and top != package:
                        graph[package].add(top)
    return graph


def test_packages_import_only_packages_below_them() -> None:
    upward = {
        f"{package} -> {imported}"
        for package, imports in package_imports().items()
        for imported in imports
        if LAYERS[imported] >= LAYERS[package]
    }
    assert not upward, sorted(upward)


def test_no_import_cycle_between_packages() -> None:
    graph = package_imports()
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, " -> ".join((*path, package))
        if package in done:
            return
        for imported in sorted(graph[package]):
            visit(imported, (*path, package))
        done.add(package)

    for package in sorted(graph):
        visit(package, ())
