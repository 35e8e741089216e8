"""Where a database lives and how to open a connection to it (pymysql only)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import unquote, urlsplit

import pymysql

from dbrepl.sync.errors import DatabaseError, InvalidInput
from dbrepl.sync.ident import check_plain_name

DEFAULT_PORT = 3306
CONNECT_TIMEOUT = 10
# Lambda stops at 300 s; a statement must fail well before that so the handler can still
# write its SSM record.
READ_TIMEOUT = 240
WRITE_TIMEOUT = 240


@dataclass(frozen=True)
class Endpoint:
    """Host, port and credentials of one MySQL/MariaDB server; `database` is optional."""

    host: str
    port: int = DEFAULT_PORT
    user: str = ""
    # repr=False: an Endpoint ends up in logs, tracebacks and test output.
    password: str = field(default="", repr=False)
    database: str | None = None

    def with_database(self, database: str | None) -> Endpoint:
        return replace(self, database=database)

    def display(self) -> str:
        """A DSN for messages, never with the password."""
        db = f"/{self.database}" if self.database else ""
        return f"mysql://{self.user}@{self.host}:{self.port}{db}"


def parse_dsn(dsn: str, environ: Mapping[str, str] | None = None) -> Endpoint:
    """Parse `mysql://user[:password]@host[:port]/database`; password may come from MYSQL_PWD."""
    environ = os.environ if environ is None else environ
    if not isinstance(dsn, str) or not dsn.startswith("mysql://"):
        raise InvalidInput("a DSN must look like mysql://user[:password]@host[:port]/database")
    parts = urlsplit(dsn)
    if not parts.hostname:
        raise InvalidInput(f"DSN {_redact(dsn)} has no host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InvalidInput(f"DSN {_redact(dsn)} has an invalid port") from None
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise InvalidInput(f"DSN {_redact(dsn)} names no database (mysql://user@host:port/database)")
    check_plain_name(database, "database")
    if parts.query or parts.fragment or "/" in database:
        raise InvalidInput(f"DSN {_redact(dsn)}: only one database name may follow the host")
    password = unquote(parts.password) if parts.password is not None else environ.get("MYSQL_PWD", "")
    return Endpoint(
        host=parts.hostname, port=port, user=unquote(parts.username or ""),
        password=password, database=database,
    )


def _redact(dsn: str) -> str:
    """The DSN with any password replaced, for error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def connect(
    endpoint: Endpoint, database: str | None = None, *, autocommit: bool = True,
    select_database: bool = True,
) -> pymysql.connections.Connection:
    """Open a utf8mb4 connection with bounded timeouts; failures raise DatabaseError.

    `select_database=False` connects without a current database: a schema sync qualifies
    every name and may have to create the DSN's database first.
    """
    db = (database if database is not None else endpoint.database) if select_database else None
    try:
        return pymysql.connect(
            host=endpoint.host, port=endpoint.port, user=endpoint.user,
            password=endpoint.password, database=db, charset="utf8mb4",
            autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT, write_timeout=WRITE_TIMEOUT,
        )
    except pymysql.err.MySQLError as exc:
        # The pymysql message never contains the password; the endpoint display neither.
        raise DatabaseError(f"Failed to connect to {endpoint.with_database(db).display()}: {exc}") from exc
