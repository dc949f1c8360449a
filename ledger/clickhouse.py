"""Connecting to ClickHouse: the URL's parameters, the connection every storage module queries
through, and failures as attestream errors (what the operator can act on, and its exit code).

Every query of the ledger's tables goes through `ClickHouseConnection` (`execute`,
`execute_raw`, `iter_raw`), which maps what the driver raised with `server_error` (a failed
connection: exit code 3); nothing else talks to ClickHouse. The server's error codes are
those of ClickHouse's ErrorCodes.cpp (the same on 18.16 and current releases).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlparse

from clickhouse_driver import Client
from clickhouse_driver.errors import ErrorCodes, NetworkError, ServerException, SocketTimeoutError

from attestcore.errors import (
    AttestreamError,
    ConfigError,
    LedgerAbsentError,
    NoLedgerError,
    ServiceUnavailableError,
)
from attestcore.redaction import mask_url

# The driver logs every failed connection attempt as a warning with its traceback; the
# failure reaches the caller as ServiceUnavailableError, which is the one report it needs.
logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)

SERVICE = "ClickHouse"

CONNECT_TIMEOUT_S = 10.0
"""ClickHouse answers a local query in milliseconds; 10 s covers a cold start without hanging
a verifier forever on a dead socket."""

_DRIVER_FAILURES = (NetworkError, SocketTimeoutError, OSError, EOFError, ServerException)
MIGRATE_HINT = "`attestream ledger migrate` (or a writer: `ledger run`, `anchor run`)"

# The database or a table of the ledger does not exist: nothing was ever written here.
NO_LEDGER = frozenset({ErrorCodes.UNKNOWN_DATABASE, ErrorCodes.UNKNOWN_TABLE})
# A column the code reads is missing: the tables predate this version's schema.
OLD_SCHEMA = frozenset({ErrorCodes.UNKNOWN_IDENTIFIER, ErrorCodes.NO_SUCH_COLUMN_IN_TABLE})
# The server refused the user: a setting to fix, not a service to restart.
# 497 ACCESS_DENIED and 516 AUTHENTICATION_FAILED exist only on releases after 18.16.
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
REFUSED_USER = frozenset(
    {
        ErrorCodes.UNKNOWN_USER,
        ErrorCodes.WRONG_PASSWORD,
        ErrorCodes.REQUIRED_PASSWORD,
        ErrorCodes.IP_ADDRESS_NOT_ALLOWED,
        ACCESS_DENIED,
        AUTHENTICATION_FAILED,
    }
)
# The server is up but cannot answer now (overloaded, shutting down, a query timed out).
BUSY = frozenset(
    {
        ErrorCodes.TOO_MANY_SIMULTANEOUS_QUERIES,
        ErrorCodes.TIMEOUT_EXCEEDED,
        ErrorCodes.ABORTED,
        ErrorCodes.SOCKET_TIMEOUT,
        ErrorCodes.NETWORK_ERROR,
    }
)


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
        return LedgerAbsentError(
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


class ClickHouseConnection:
    """One ledger database over clickhouse-driver (synchronous, one connection per client).

    Queries name their tables `{db}.<table>`; the database comes from the URL. The typed
    stores (`ledger.store`, `anchoring.store`) and schemas (`ledger.schema`,
    `anchoring.schema`) hold the SQL; tests use `execute` to tamper with the tables.
    """

    def __init__(self, url: str) -> None:
        params = parse_url(url)
        self.database: str = params.pop("database")
        common = dict(params, connect_timeout=CONNECT_TIMEOUT_S)
        self._endpoint = f"{params['host']}:{params['port']}"
        self._client = Client(database="default", **common)
        # A second connection returns String columns as bytes: entry and note bytes are read
        # back exactly as stored, even when someone wrote invalid UTF-8 into them.
        self._raw = Client(database="default", settings={"strings_as_bytes": True}, **common)

    def execute(self, query: str, params: Any = None, **kwargs: Any) -> Any:
        return self._run(self._client, query, params, **kwargs)

    def execute_raw(self, query: str, params: Any = None, **kwargs: Any) -> Any:
        """`execute` on the connection that returns String columns as bytes."""
        return self._run(self._raw, query, params, **kwargs)

    def iter_raw(self, query: str, params: Any = None) -> Iterator[tuple[Any, ...]]:
        """Rows of `query` (strings as bytes) as they stream in the server's blocks
        (max_block_size, 65,536 rows by default), which bounds memory."""
        try:
            yield from self._raw.execute_iter(query.format(db=self.database), params)
        except _DRIVER_FAILURES as exc:
            mapped = self._mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def _run(self, client: Client, query: str, params: Any, **kwargs: Any) -> Any:
        try:
            return client.execute(query.format(db=self.database), params, **kwargs)
        except _DRIVER_FAILURES as exc:
            mapped = self._mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def _mapped(self, exc: Exception) -> AttestreamError | None:
        """What the driver raised, as the attestream error an operator can act on; None for
        an unexpected server error: a bug."""
        if isinstance(exc, ServerException):
            return server_error(exc, self._endpoint, self.database)
        cause = "connection closed" if isinstance(exc, EOFError) else str(exc)
        return ServiceUnavailableError(SERVICE, self._endpoint, cause)

    def ping(self) -> None:
        """Raise `ServiceUnavailableError` unless ClickHouse answers."""
        self.execute("SELECT 1")

    def server_version(self) -> str:
        return str(self.execute("SELECT version()")[0][0])

    def running_merges(self) -> int:
        """Background merges running now in this database (a benchmark waits them out)."""
        query = "SELECT count() FROM system.merges WHERE database = %(d)s"
        return int(self.execute(query, {"d": self.database})[0][0])

    def drop_database(self) -> None:
        """Delete the database and every table in it (scratch databases of benchmarks)."""
        self.execute("DROP DATABASE IF EXISTS {db}")

    def close(self) -> None:
        self._client.disconnect()
        self._raw.disconnect()
