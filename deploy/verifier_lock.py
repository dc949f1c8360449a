"""Writes verifier/requirements.txt: the offline bundle verifier's dependencies at the versions
and SHA-256 hashes of the project's lock (requirements.txt), so an auditor installs exactly
what the project tests the verifier with (`pip install --require-hashes -r`).

The verifier needs `cryptography` and what it requires; `VERIFIER_REQUIRES` names that tree
with each package's environment marker (the verifier runs on Python 3.10 or later, on any
platform: every hash the lock pins for a version is kept, not only this machine's wheel).
`tests/unit/attestream/test_lock.py` checks the tree against the installed packages'
metadata and the file against this script's output. Run by `make lock`; stdlib only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.txt"
OUT = ROOT / "verifier" / "requirements.txt"
VERIFIER_REQUIRES = {
    "cryptography": "",
    "cffi": "platform_python_implementation != 'PyPy'",
    "pycparser": "implementation_name != 'PyPy'",
    "typing-extensions": "python_full_version < '3.11'",
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")
_HASH = re.compile(r"^\s+(--hash=sha256:[0-9a-f]{64})")


def pinned_blocks(lock_text: str) -> dict[str, tuple[str, list[str]]]:
    """Package name (lower case) -> (pinned version, its hash options), from a lock."""
    blocks: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in lock_text.splitlines():
        pin = _PIN.match(line)
        if pin:
            current = []
            blocks[pin.group(1).lower()] = (pin.group(2), current)
            continue
        found = _HASH.match(line)
        if found and current is not None:
            current.append(found.group(1))
        else:
            current = None
    return blocks


def verifier_requirements(lock_text: str) -> str:
    blocks = pinned_blocks(lock_text)
    lines = [
        "# The offline bundle verifier's dependencies, at the versions and hashes of the",
        "# project's lock. Written by `make lock` (deploy/verifier_lock.py): do not edit.",
        "#   pip install --require-hashes -r requirements.txt",
    ]
    for name, marker in VERIFIER_REQUIRES.items():
        if name not in blocks:
            raise SystemExit(f"{LOCK.name} pins no {name}: the verifier needs it")
        version, hashes = blocks[name]
        pin = f"{name}=={version}" + (f" ; {marker}" if marker else "")
        body = [pin, *(f"    {h}" for h in hashes)]
        lines.append(" \\\n".join(body))
    return "\n".join(lines) + "\n"


def main() -> int:
    OUT.write_text(verifier_requirements(LOCK.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
