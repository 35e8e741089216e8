"""Turn user-given table names into (database, table) pairs checked against the catalogue."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.ident import check_name

# Never synced (docs/corrections.md, item 6): copying mysql.user & co. between environments would copy
# accounts and passwords; the others are views of the server itself.
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


def check_not_system(database: str) -> str:
    if database.lower() in SYSTEM_SCHEMAS:
        raise InvalidInput(f"database {database!r} is a system schema: only application data is synced")
    return database


def resolve_tables(conn: Any, names: Iterable[object], databases: Sequence[str]) -> list[tuple[str, str]]:
    """`names` are "table" (looked up in `databases`) or "database.table".

    Every name is checked for shape before any SQL runs, then looked up as a base table
    on `conn` (normally the source). A bare name found in several databases is ambiguous.
    """
    if isinstance(names, str | bytes):
        raise InvalidInput("tables must be a list of names, not a single string")
    dbs = [check_not_system(check_name(d, "database name")) for d in databases]
    wanted: list[tuple[str | None, str]] = []
    for name in names:
        if not isinstance(name, str):
            raise InvalidInput(f"invalid table name {name!r}: expected a string")
        db, dot, table = name.partition(".")
        if dot:
            wanted.append((check_not_system(check_name(db, "database name")), check_name(table, "table name")))
        else:
            wanted.append((None, check_name(name, "table name")))
    if not wanted:
        return []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
            " WHERE TABLE_TYPE='BASE TABLE' AND TABLE_NAME IN ("
            + ",".join(["%s"] * len(wanted)) + ")",
            [t for _, t in wanted],
        )
        present = {(r[0], r[1]) for r in cur.fetchall()}
    out: list[tuple[str, str]] = []
    for given_db, table in wanted:
        if given_db is not None:
            if (given_db, table) not in present:
                raise InvalidInput(f"table {given_db}.{table} does not exist on the source")
            out.append((given_db, table))
            continue
        hits = [d for d in dbs if (d, table) in present]
        if not hits:
            where = ", ".join(dbs) or "no configured database"
            raise InvalidInput(f"table {table} does not exist in {where} on the source")
        if len(hits) > 1:
            raise InvalidInput(
                f"table {table} exists in several databases ({', '.join(hits)}): "
                "name it as database.table"
            )
        out.append((hits[0], table))
    return list(dict.fromkeys(out))
