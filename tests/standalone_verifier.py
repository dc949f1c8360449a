"""Where the standalone case-bundle verifier lives, and how tests run it: loaded from its
file (it is no package of the project), or as a separate Python process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

VERIFIER = Path(__file__).resolve().parents[1] / "verifier" / "attestream_verify_bundle.py"


def load_verifier() -> ModuleType:
    """The verifier module, imported from its file."""
    spec = importlib.util.spec_from_file_location("attestream_verify_bundle", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_verifier(
    bundle: Path, key: str, *extra: str, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    """`python attestream_verify_bundle.py BUNDLE --key KEY ...` in a process of its own, with
    an environment that names no attestream setting and no project path."""
    return subprocess.run(
        [python, "-I", str(VERIFIER), str(bundle), "--key", key, *extra],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
