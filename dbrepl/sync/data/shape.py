"""What the data sync needs to know about a table, read from the catalogue.

Every SQL fragment the sync runs is built here from catalogue names (quoted) and from
values the servers rendered themselves: nothing from the caller reaches SQL unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from dbrepl.sync.errors import InvalidInput, SyncError
from dbrepl.sync.ident import check_name, qualified, quote


class SchemaMismatch(SyncError):
    """The table is missing or differs between source and target; schema sync fixes it."""


class NoUsableKey(SyncError):
    """The table has no primary key and no unique key on NOT NULL columns."""


# Types whose bytes are copied as hex literals (no charset conversion may touch them).
_BINARY = {
    "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection",
}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
# Rendered as bare numbers, exactly (DECIMAL as text is exact; integers trivially).
_NUMBER = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric"}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    column_type: str
    charset: str | None
    collation: str | None
    generated: bool
    nullable: bool

    @property
    def q(self) -> str:
        return quote(self.name)

    def hash_tokens(self, cast_text: bool) -> list[str]:
        """Tokens for CONCAT_WS(',') that encode the non-NULL value unambiguously.

        (NULLs are skipped by CONCAT_WS; statements.encoding() prefixes a NULL bitmap.)
        Strings, binaries, JSON, ENUM/SET carry their byte length before their bytes, so a
        ',' inside them is unambiguous; the bytes are hashed as stored, so case and
        trailing spaces stay visible under _ci collations. `cast_text` turns text into
        binary when the table mixes collations, which CONCAT_WS would otherwise refuse.
        Numbers and temporals render without ','.
        """
        q, t = self.q, self.data_type
        if t in _BINARY:
            return [f"LENGTH({q})", q]
        if t in _TEXT:
            return [f"LENGTH({q})", f"CAST({q} AS BINARY)" if cast_text else q]
        if t == "float":
            # FLOAT displays with 6 significant digits, so two different floats can print
            # the same; widened to DOUBLE (exact) it prints its shortest round-trip form.
            return [f"({q} + 0e0)"]
        if t == "bit":
            return [f"({q} + 0)"]  # raw BIT bytes could contain ','
        return [q]

    @property
    def is_text(self) -> bool:
        return self.data_type in _TEXT

    def literal(self) -> str:
        """Expression the server renders as an SQL literal that re-creates the value."""
        q, t = self.q, self.data_type
        if t in _BINARY:
            value = f"CONCAT('X''',HEX({q}),'''')"
        elif t == "float":
            value = f"({q} + 0e0)"
        elif t == "double" or t == "real" or t in _NUMBER:
            value = q  # CONCAT renders numbers as their exact text
        elif t == "bit":
            value = f"({q} + 0)"
        elif t in _TEXT and self.charset not in (None, "utf8mb4"):
            # Sent on a utf8mb4 connection, so re-encode; the target converts it back.
            return f"QUOTE(CONVERT({q} USING utf8mb4))"  # QUOTE(NULL) is the word NULL
        else:  # utf8mb4 text, temporal and anything else the server can quote as text
            return f"QUOTE({q})"
        # Rendering is the source's whole share of an empty-target copy: no NULL test
        # where the column cannot be NULL.
        return f"IFNULL({value},'NULL')" if self.nullable else value

    def compare_literal(self, lit: bytes) -> bytes:
        """`lit` as an operand compared with this column (index-friendly charset)."""
        if self.data_type in _TEXT and self.charset is not None and self.charset != "utf8mb4":
            # A utf8mb4 literal would convert the column side and lose the index.
            return b"CONVERT(" + lit + b" USING " + self.charset.encode() + b")"
        return lit


@dataclass(frozen=True)
class TableShape:
    database: str
    table: str
    columns: tuple[Column, ...]
    key: tuple[Column, ...]
    key_index: str
    # Unique keys besides `key`: updates could collide on them mid-run, so inserts wait
    # until every delete of the table is done (see sync.py).
    other_unique: bool

    @property
    def name(self) -> str:
        return f"{self.database}.{self.table}"

    @property
    def qname(self) -> str:
        return qualified(self.database, self.table)

    @property
    def written(self) -> tuple[Column, ...]:
        """Columns that are copied: generated columns are computed by the target."""
        return tuple(c for c in self.columns if not c.generated)


def _rows(conn: Any, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def read_shape(conn: Any, database: str, table: str) -> TableShape | None:
    """The table's columns and chosen key, or None when it does not exist (as a base table)."""
    check_name(database, "database name")
    check_name(table, "table name")
    found = _rows(
        conn,
        "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
        (database, table),
    )
    if not found or found[0][0] != "BASE TABLE":
        return None
    cols = [
        Column(
            name=r[0], data_type=r[1].lower(), column_type=r[2], charset=r[3], collation=r[4],
            generated=r[5] in ("VIRTUAL GENERATED", "STORED GENERATED", "PERSISTENT GENERATED"),
            nullable=r[6] == "YES",
        )
        for r in _rows(
            conn,
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA,"
            " IS_NULLABLE"
            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s"
            " ORDER BY ORDINAL_POSITION",
            (database, table),
        )
    ]
    by_name = {c.name: c for c in cols}
    indexes: dict[str, list[tuple[int, str, bool, object]]] = {}
    for name, seq, col, sub_part, nullable in _rows(
        conn,
        "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, NULLABLE"
        " FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s AND NON_UNIQUE=0",
        (database, table),
    ):
        indexes.setdefault(name, []).append((seq, col, nullable == "YES", sub_part))
    usable: list[tuple[str, tuple[Column, ...]]] = []
    for name, parts in indexes.items():
        parts.sort()
        # A prefix or nullable column cannot identify a row on its own.
        if any(p[2] or p[3] is not None or p[1] not in by_name for p in parts):
            continue
        usable.append((name, tuple(by_name[p[1]] for p in parts)))
    if not usable:
        raise NoUsableKey(
            f"table {database}.{table} has no primary key and no unique key on NOT NULL "
            "columns: rows cannot be matched between environments; add a primary key"
        )
    # The primary key first; otherwise the narrowest unique key, by name for stability.
    usable.sort(key=lambda u: (u[0] != "PRIMARY", len(u[1]), u[0]))
    key_index, key = usable[0]
    return TableShape(
        database=database, table=table, columns=tuple(cols), key=key, key_index=key_index,
        other_unique=len(indexes) > 1,
    )


def matching_shapes(
    source: Any, target: Any, database: str, table: str, target_database: str | None = None
) -> tuple[TableShape, TableShape]:
    """(source shape, target shape), after checking the table exists on both sides with the
    same columns and key. The target's may live in another database (`target_database`)."""
    check_name(database, "database name")
    check_name(table, "table name")
    target_database = check_name(target_database or database, "database name")
    hint = "run `dbrepl sync schema` first"
    src = read_shape(source, database, table)
    if src is None:
        raise InvalidInput(f"table {database}.{table} does not exist on the source")
    dst = read_shape(target, target_database, table)
    if dst is None:
        raise SchemaMismatch(
            f"table {target_database}.{table} does not exist on the target: {hint}"
        )

    def sig(shape: TableShape) -> dict[str, tuple[Any, ...]]:
        return {
            c.name: (c.column_type, c.collation, c.generated, c.nullable) for c in shape.columns
        }

    s, d = sig(src), sig(dst)
    if s != d:
        # Also compares collations: chunk ranges compare keys by collation on each side.
        diffs = sorted(
            n for n in s.keys() | d.keys() if s.get(n) != d.get(n)
        )
        raise SchemaMismatch(
            f"table {database}.{table} has different columns on source and target "
            f"({', '.join(diffs)}): {hint}"
        )
    if [c.name for c in src.key] != [c.name for c in dst.key]:
        raise SchemaMismatch(
            f"table {database}.{table} is keyed differently on source and target: {hint}"
        )
    # Same columns and key on both sides: the source's shape serves for both, renamed.
    # Unique keys that exist only on the target also make updates collide mid-run.
    other_unique = src.other_unique or dst.other_unique
    return (
        replace(src, other_unique=other_unique),
        replace(src, database=target_database, other_unique=other_unique),
    )
