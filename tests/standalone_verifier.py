"""Where the standalone case-bundle verifier lives, and how tests run it: loaded from its
file (it is no package of the project), or as a separate Python process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

VERIFIER = Path(__file__).resolve().parents[1] / "verifier" / "attestream_verify_bundle.py"


def module_from_file(name: str, path: Path) -> ModuleType:
    """The module `name` imported from `path`, a script outside the installed packages."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_verifier() -> ModuleType:
    """The verifier module, imported from its file."""
    return module_from_file("attestream_verify_bundle", VERIFIER)


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


AUDITOR_PACKAGES = ("cryptography", "cffi", "pycparser")
"""What the verifier needs: cryptography and what it requires (cffi, which needs pycparser)."""


def pinned(requirements: str, names: tuple[str, ...]) -> str:
    """The blocks of a hash-pinned requirements file (`pip-compile --generate-hashes`) that pin
    `names`: each `name==version \\` line with its `--hash` lines."""
    kept: list[str] = []
    keep = False
    for line in requirements.splitlines():
        if line and not line[0].isspace():
            keep = line.split("==")[0].lower() in names
        if keep and not line.lstrip().startswith("#"):
            kept.append(line)
    return "\n".join(kept) + "\n"


def bare_python(directory: Path) -> str:
    """A new virtual environment holding only `AUDITOR_PACKAGES`, installed from the
    project's lock file (same versions, same hashes, same index as `make setup`), as an
    auditor without attestream would have it. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True, timeout=120)
    python = str(directory / "bin" / "python")
    lock = VERIFIER.parents[1] / "requirements.txt"
    wanted = directory / "requirements.txt"
    wanted.write_text(pinned(lock.read_text(), AUDITOR_PACKAGES))
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    installed = subprocess.run(
        [*pip, "install", "--require-hashes", "--no-deps", "-r", str(wanted)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout
    return python
