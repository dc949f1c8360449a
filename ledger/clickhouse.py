"""Connecting to ClickHouse: the URL's parameters, and failures as attestream errors (what the
operator can act on, and its exit code).

Every query of the ledger store goes through `ClickHouseStore._run` or `entry_rows`, which
map what the driver raised with `server_error` (a failed connection: exit code 3); nothing
else talks to ClickHouse. The server's error codes are those of ClickHouse's ErrorCodes.cpp
(the same on 18.16 and current releases).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from clickhouse_driver.errors import ErrorCodes, ServerException

from attestcore.errors import (
    AttestreamError,
    ConfigError,
    NoLedgerError,
    ServiceUnavailableError,
)
from attestcore.redaction import mask_url

SERVICE = "ClickHouse"
MIGRATE_HINT = "`attestream ledger migrate` (or a writer: `ledger run`, `anchor run`)"

# The database or a table of the ledger does not exist: nothing was ever written here.
NO_LEDGER = frozenset({ErrorCodes.UNKNOWN_DATABASE, ErrorCodes.UNKNOWN_TABLE})
# A column the code reads is missing: the tables predate this version's schema.
OLD_SCHEMA = frozenset({ErrorCodes.UNKNOWN_IDENTIFIER, ErrorCodes.NO_SUCH_COLUMN_IN_TABLE})
# The server refused the user: a setting to fix, not a service to restart.
# 497 ACCESS_DENIED and 516 AUTHENTICATION_FAILED exist only on releases after 18.16.
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
REFUSED_USER = frozenset({
    ErrorCodes.UNKNOWN_USER, ErrorCodes.WRONG_PASSWORD, ErrorCodes.REQUIRED_PASSWORD,
    ErrorCodes.IP_ADDRESS_NOT_ALLOWED, ACCESS_DENIED, AUTHENTICATION_FAILED,
})  # fmt: skip
# The server is up but cannot answer now (overloaded, shutting down, a query timed out).
BUSY = frozenset({
    ErrorCodes.TOO_MANY_SIMULTANEOUS_QUERIES, ErrorCodes.TIMEOUT_EXCEEDED,
    ErrorCodes.ABORTED, ErrorCodes.SOCKET_TIMEOUT, ErrorCodes.NETWORK_ERROR,
})  # fmt: skip


def parse_url(url: str) -> dict[str, Any]:
    """Connection parameters from clickhouse[s]://user:password@host:port/database. Errors
    show the URL with its password masked."""
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError as exc:
        raise ConfigError(f"ClickHouse URL {mask_url(url)!r} is malformed: {exc}") from None
    if parsed.scheme not in ("clickhouse", "clickhouses"):
        raise ConfigError(f"ClickHouse URL must start with clickhouse://, got {mask_url(url)!r}")
    database = parsed.path.lstrip("/") or "attestream"
    if not database.replace("_", "").isalnum():
        raise ConfigError(f"ClickHouse database name {database!r} must be alphanumeric")
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": port or 9000,
        "user": unquote(parsed.username or "default"),
        "password": unquote(parsed.password or ""),
        "database": database,
        "secure": parsed.scheme == "clickhouses",
    }


def server_error(exc: ServerException, endpoint: str, database: str) -> AttestreamError | None:
    """The attestream error for a ClickHouse server error; None when it is none we expect
    (then it is a bug in our SQL, and the CLI reports it as one)."""
    code = exc.code
    first = _first_line(exc)
    where = f"database {database!r} at {endpoint}"
    if code in NO_LEDGER:
        return NoLedgerError(
            f"no ledger in {where} ({first}); create it with {MIGRATE_HINT}, or point"
            " ATTESTREAM_CLICKHOUSE_URL at the database that holds the ledger"
        )
    if code in OLD_SCHEMA:
        return NoLedgerError(
            f"the ledger in {where} has an older schema than this version reads ({first});"
            f" upgrade it with {MIGRATE_HINT}"
        )
    if code == ErrorCodes.READONLY:
        return ConfigError(
            f"the ClickHouse user may only read {where} ({first}): writers and `ledger"
            " migrate` need a user that may write; verification works with a read-only one"
        )
    if code in REFUSED_USER:
        return ConfigError(
            f"ClickHouse at {endpoint} refused the user ({first}): check the user and"
            " password in ATTESTREAM_CLICKHOUSE_URL"
        )
    if code in BUSY:
        return ServiceUnavailableError(SERVICE, endpoint, first)
    return None


def _first_line(exc: ServerException) -> str:
    """The server's message without its stack trace (the first line, DB::Exception: ...)."""
    lines = str(exc.message).strip().splitlines()
    return f"code {exc.code}: {lines[0] if lines else 'no message'}"
