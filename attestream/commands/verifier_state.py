"""The `--state FILE` / `--no-state` options of `forensic verify` and `verify-proof`."""

from __future__ import annotations

from pathlib import Path

import typer

from attestream.settings import Settings, load_settings

STATE_HELP = (
    "The verifier's trusted-state file: the last checkpoint verified per log origin, key and"
    " chain (default: <home>/verifier/state.json)."
)
NO_STATE_HELP = (
    "Neither read nor write the trusted state (even with --state): trust what is shown now."
)

StateOption = typer.Option(None, "--state", envvar="ATTESTREAM_VERIFY_STATE", help=STATE_HELP)
NoStateOption = typer.Option(
    False, "--no-state", envvar="ATTESTREAM_VERIFY_NO_STATE", help=NO_STATE_HELP
)


def default_state_path(settings: Settings) -> Path:
    return settings.home / "verifier" / "state.json"


def state_path(state: Path | None, no_state: bool, settings: Settings | None = None) -> Path | None:
    """The state file to use, or None with --no-state (which wins over --state, so that a
    state file set in the environment can be left out for one run)."""
    if no_state:
        return None
    if state is not None:
        return state
    return default_state_path(settings if settings is not None else load_settings())
