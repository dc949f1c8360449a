"""How a command's failure reaches the operator: one message on stderr, the JSON error object
on stdout under --json, and for a bug a crash log holding the traceback.

An expected condition (a missing setting, a service down, a proof that fails) never shows a
traceback: the operator gets the diagnostics and the exit code. An unexpected exception is a
bug: one line says so and names the crash log, whose traceback goes into a bug report.
Everything written here passes through `attestcore.redaction.redact` first.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from attestcore.errors import ExitCode, error_json
from attestcore.redaction import redact

JSON_FLAG = "--json"
JSON_ENV = "ATTESTREAM_JSON"
DEFAULT_HOME = ".attestream"


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asked for JSON output (its errors then come as JSON too)."""
    return JSON_FLAG in argv or os.environ.get(JSON_ENV, "").lower() in ("1", "true", "yes")


def report_error(kind: str, message: str, exit_code: int, as_json: bool) -> int:
    """Print an expected error: `error: ...` on stderr and, under --json, the JSON error
    object on stdout. Returns the exit code."""
    text = redact(message)
    print(f"error: {text}", file=sys.stderr)
    if as_json:
        report_json(kind, text, exit_code)
    return int(exit_code)


def report_json(kind: str, message: str, exit_code: int) -> None:
    """The JSON error object on stdout."""
    print(json.dumps(error_json(kind, redact(message), int(exit_code)), indent=2))


def report_internal_error(exc: BaseException, as_json: bool) -> int:
    """Report a bug: one line naming the exception and the crash log with its traceback."""
    trace = "".join(traceback.format_exception(exc))
    log = write_crash_log(redact(trace))
    where = f"traceback in {log}" if log else "no crash log could be written"
    message = (
        f"internal error (a bug in attestream, please report it): {type(exc).__name__}:"
        f" {exc}; {where}"
    )
    return report_error("internal", message, ExitCode.INTERNAL, as_json)


def write_crash_log(text: str) -> Path | None:
    """Write `text` under <home>/logs (or the temp directory when the home is unusable)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"crash-{stamp}-{os.getpid()}.log"
    home = Path(os.environ.get("ATTESTREAM_HOME") or DEFAULT_HOME)
    for directory in (home / "logs", Path(tempfile.gettempdir()) / "attestream"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / name
            path.write_text(text, encoding="utf-8")
        except OSError:
            continue
        return path.resolve()
    return None
