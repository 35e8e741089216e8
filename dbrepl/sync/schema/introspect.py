"""Read a database's schema from a live server (information_schema + SHOW CREATE TABLE)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pymysql

from dbrepl.sync.errors import DatabaseError, InvalidInput
from dbrepl.sync.ident import check_plain_name, qualified
from dbrepl.sync.schema.model import (
    HISTORY_TABLE,
    SYSTEM_SCHEMAS,
    Database,
    Table,
    UnsupportedSchema,
    View,
    parse_create_table,
)
from dbrepl.sync.schema.objects import read_objects

# Charset and collation names go into DDL unquoted: accept only what servers name them.
_PLAIN = re.compile(r"^[A-Za-z0-9_]+$")


def prepare_session(conn: Any) -> None:
    """Make SHOW CREATE output canonical: backtick quoting, no ANSI_QUOTES."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_quote_show_create = 1")
        cur.execute("SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'ANSI_QUOTES', '')")


def check_database_name(name: object) -> str:
    """A configured database name: a plain identifier and never a system schema."""
    name = check_plain_name(name, "database")
    if name.lower() in SYSTEM_SCHEMAS:
        raise InvalidInput(f"database {name!r} is a system schema; dbrepl never syncs it")
    return name


def database_exists(conn: Any, name: str) -> tuple[str, str] | None:
    """(default charset, default collation) of database `name`, or None when it is absent."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        row = cur.fetchone()
    return (row[0], row[1]) if row else None


def read_database(conn: Any, name: str, on_table: Callable[[str, Table], None] | None = None) -> Database:
    """The normalised schema of database `name`; an absent database reads as empty.

    `on_table(name, table)` is called with each table as soon as it is read."""
    try:
        return _read(conn, name, on_table)
    except pymysql.err.MySQLError as exc:
        raise DatabaseError(f"Failed to read the schema of database {name}: {exc}") from exc


def _read(conn: Any, name: str, on_table: Callable[[str, Table], None] | None = None) -> Database:
    defaults = database_exists(conn, name)
    if defaults is None:
        return Database(name=name, charset="", collation="", exists=False)
    if not all(_PLAIN.match(v or "") for v in defaults):
        raise UnsupportedSchema(f"database {name}: unexpected default charset/collation {defaults!r}")
    db = Database(name=name, charset=defaults[0], collation=defaults[1])
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME", (name,))
        kinds = dict(cur.fetchall())
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, "
            "IS_NULLABLE, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s", (name,))
        columns: dict[str, dict[str, dict[str, Any]]] = {}
        for table, column, ctype, charset, collation, nullable, extra in cur.fetchall():
            extra = (extra or "").upper()
            generated = "STORED" if ("STORED" in extra or "PERSISTENT" in extra) else (
                "VIRTUAL" if "VIRTUAL" in extra else None)
            columns.setdefault(table, {})[column] = {
                "column_type": ctype, "charset": charset, "collation": collation,
                "nullable": nullable == "YES", "generated": generated,
            }
        for table, kind in kinds.items():
            if kind == "SEQUENCE":
                db.skipped.append(f"sequence {name}.{table} is not synced (create it in a migration)")
            if kind not in ("BASE TABLE", "SYSTEM VERSIONED") or table == HISTORY_TABLE:
                continue
            cur.execute(f"SHOW CREATE TABLE {qualified(name, table)}")
            create_sql = cur.fetchone()[1]
            db.tables[table] = parse_create_table(create_sql, columns.get(table, {}))
            if on_table is not None:
                on_table(table, db.tables[table])
        cur.execute(
            "SELECT TABLE_NAME, VIEW_DEFINITION, ALGORITHM, SECURITY_TYPE, CHECK_OPTION "
            "FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", (name,))
        for table, definition, algorithm, security, check_option in cur.fetchall():
            db.views[table] = View(
                name=table, definition=definition, algorithm=algorithm or "UNDEFINED",
                security=security or "DEFINER", check_option=check_option or "NONE")
        objects, skipped = read_objects(cur, name)
        db.objects.update(objects)
        db.skipped.extend(skipped)
    return db
