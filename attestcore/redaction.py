"""Keeping secrets out of what attestream prints and logs.

Settings hold secrets as `SecretStr` and messages are written without them; this module is
the net under that: every error message, crash log and log line goes through `redact`, which
masks URL passwords, signed-note private keys and the secret values configured in the
environment (a JSON-RPC URL's path and query, where hosted providers put the API key).
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import urlsplit

MASK = "***"

# scheme://user:password@host -> the password masked, whatever the scheme.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s@/]+@")
# c2sp.org/signed-note signer keys: PRIVATE+KEY+<name>+<id>+<base64 seed>.
_SIGNER_KEY = re.compile(r"PRIVATE\+KEY\+[^\s'\"]+")

# Settings whose whole value is secret, and URL settings whose path and query are.
SECRET_ENV = ("ATTESTREAM_ANCHOR_KEY", "ATTESTREAM_LEDGER_KEY")
URL_ENV = ("ATTESTREAM_CLICKHOUSE_URL", "ATTESTREAM_RPC_URL", "ATTESTREAM_VERIFY_RPC_URL")
# Shorter values are not masked: they would mask ordinary words and numbers in messages.
MIN_SECRET_CHARS = 6


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***: safe to print."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", url)


def configured_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """The secret values configured in the environment, longest first."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name in SECRET_ENV:
        value = env.get(name, "").strip()
        found.update({value, value.removeprefix("0x")})
    for name in URL_ENV:
        found.update(_url_secrets(env.get(name, "")))
    return sorted((s for s in found if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True)


def _url_secrets(url: str) -> set[str]:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return {url.strip()}
    secrets = {parts.password or ""}
    if parts.scheme.startswith("http"):
        # Hosted JSON-RPC providers put the API key in the path or the query.
        path = parts.path.strip("/")
        secrets.update({path, parts.query, *path.split("/")})
    return secrets


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with URL passwords, private keys and configured secrets masked."""
    for secret in configured_secrets() if secrets is None else secrets:
        text = text.replace(secret, MASK)
    return _SIGNER_KEY.sub("PRIVATE+KEY+" + MASK, mask_url(text))


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler emits (message, arguments and traceback)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = configured_secrets()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


def redact_logs() -> None:
    """Install `RedactingFilter` on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
