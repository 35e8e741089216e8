"""SQL text for comparing and copying rows of one table (pure: builds strings, runs nothing).

Values inside statements are always literals the servers rendered (see Column.literal);
row statements are bytes so binary data never passes through a Python text codec.

No statement here names anything a user's identifier could capture: no select aliases (a
column of the same name wins in GROUP BY/ORDER BY/HAVING, MariaDB warning 1052), grouping
and ordering by position or by quoted catalogue names, tables always qualified with their
database. docs/data-sync.md ("Writing SQL that names cannot capture") has the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dbrepl.sync.data.shape import _BINARY as _EXACT_BYTES
from dbrepl.sync.data.shape import Column, TableShape
from dbrepl.sync.ident import quote

Key = tuple[bytes, ...]  # one literal per key column, as rendered by the server


def _cmp(shape: TableShape, key: Key, last_op: str) -> str:
    """Key tuple comparison `(k1, k2, ...) <op> key`, flattened so range scans are used."""
    cols = shape.key
    lits = [c.compare_literal(v).decode() for c, v in zip(cols, key, strict=True)]
    strict = last_op.rstrip("=")
    ors = []
    for i in range(len(cols)):
        eqs = [f"{cols[j].q}={lits[j]}" for j in range(i)]
        op = last_op if i == len(cols) - 1 else strict
        ors.append(" AND ".join([*eqs, f"{cols[i].q}{op}{lits[i]}"]))
    lead = f"{cols[0].q}{strict}={lits[0]}"  # lets the optimiser bound the first column
    return f"({lead} AND ({' OR '.join(f'({o})' for o in ors)}))"


def key_range(shape: TableShape, lo: Key | None, hi: Key | None) -> str:
    """WHERE clause for keys in (lo, hi]; None means unbounded. Compared by collation."""
    conds = []
    if lo is not None:
        conds.append(_cmp(shape, lo, ">"))
    if hi is not None:
        conds.append(_cmp(shape, hi, "<="))
    return " AND ".join(conds) or "TRUE"


def _order(shape: TableShape) -> str:
    return ", ".join(c.q for c in shape.key)


def _force(shape: TableShape) -> str:
    # Keeps every chunk query on the key's own index, so chunks are range scans.
    return f"FORCE INDEX ({quote(shape.key_index)})"


def key_literals(shape: TableShape) -> str:
    return ", ".join(f"CAST({c.literal()} AS BINARY)" for c in shape.key)


def _encoding(columns: Sequence[Column]) -> str:
    """CONCAT_WS(',', NULL bitmap, value tokens...): which columns are NULL comes first, so
    the skipped NULLs are accounted for and the whole string decodes one way only."""
    collations = {c.collation for c in columns if c.is_text}
    cast_text = len(collations) > 1
    tokens = []
    nullable = [c for c in columns if c.nullable]
    if nullable:
        tokens.append(f"CONCAT({', '.join(f'ISNULL({c.q})' for c in nullable)})")
    tokens += [t for c in columns for t in c.hash_tokens(cast_text)]
    return f"CONCAT_WS(',', {', '.join(tokens)})"


def row_hash(shape: TableShape) -> str:
    """SHA1 over every copied column's exact encoding: not linear like CRC32, so two rows
    swapping a value change the XOR of their hashes. (SHA1, not MD5: measured faster on
    MariaDB; collisions are not an adversarial concern here.)"""
    return f"SHA1({_encoding(shape.written)})"


def bucket(shape: TableShape, buckets: int) -> str:
    """Bucket of a row from its key's exact bytes: the same row lands in the same bucket
    on both sides whatever else was inserted or deleted around it."""
    return f"CRC32({_encoding(shape.key)}) % {int(buckets)}"


def row_literal(shape: TableShape) -> str:
    parts = ", ',', ".join(c.literal() for c in shape.written)
    return f"CAST(CONCAT('(', {parts}, ')') AS BINARY)"


def next_boundary(shape: TableShape, lo: Key | None, rows: int) -> str:
    """The key `rows` rows after `lo`: walks the key index, reading keys only."""
    return (
        f"SELECT {key_literals(shape)} FROM {shape.qname} {_force(shape)}"
        f" WHERE {key_range(shape, lo, None)} ORDER BY {_order(shape)}"
        f" LIMIT 1 OFFSET {int(rows) - 1}"
    )


def chunk_digest(shape: TableShape, lo: Key | None, hi: Key | None) -> str:
    """Row count and XOR of 64 bits of each row's hash over a whole chunk (no grouping:
    the cheap check for chunks that are equal, the common case)."""
    return (
        f"SELECT COUNT(*), BIT_XOR(CONV(LEFT({row_hash(shape)}, 16), 16, 10))"
        f" FROM {shape.qname} {_force(shape)} WHERE {key_range(shape, lo, hi)}"
    )


def literal_digest(shape: TableShape, lo: Key | None, hi: Key | None) -> str:
    """chunk_digest() from another encoding: each row as the VALUES literal the sync would
    insert (row_literal), hashed with MD5. Shares no code with row_hash(), so `--verify full`
    is a second pass that a fault in the comparison's encoding cannot also blind."""
    return (
        f"SELECT COUNT(*), BIT_XOR(CONV(LEFT(MD5({row_literal(shape)}), 16), 16, 10))"
        f" FROM {shape.qname} {_force(shape)} WHERE {key_range(shape, lo, hi)}"
    )


def row_count(shape: TableShape) -> str:
    return f"SELECT COUNT(*) FROM {shape.qname}"


def bucket_digests(shape: TableShape, lo: Key | None, hi: Key | None, buckets: int) -> str:
    """Per bucket of the chunk: row count and XOR of 64 bits of each row's hash."""
    return (
        f"SELECT {bucket(shape, buckets)}, COUNT(*),"
        f" BIT_XOR(CONV(LEFT({row_hash(shape)}, 16), 16, 10))"
        f" FROM {shape.qname} {_force(shape)} WHERE {key_range(shape, lo, hi)} GROUP BY 1"
    )


def bucket_rows(
    shape: TableShape, lo: Key | None, hi: Key | None, buckets: int,
    which: Sequence[int] | None, with_rows: bool,
) -> str:
    """Key literals and row hashes (and row literals for the source) in some buckets."""
    where = key_range(shape, lo, hi)
    if which is not None:
        where += f" AND {bucket(shape, buckets)} IN ({', '.join(str(int(b)) for b in which)})"
    extra = f", {row_literal(shape)}" if with_rows else ""
    return (
        f"SELECT {key_literals(shape)}, {row_hash(shape)}{extra}"
        f" FROM {shape.qname} {_force(shape)} WHERE {where}"
    )


def bucket_rows_joined(
    shape: TableShape, lo: Key | None, hi: Key | None, buckets: int,
    which: Sequence[int] | None, with_rows: bool,
) -> str:
    """bucket_rows() as one value: row count and every row's fields joined by one NUL
    byte, rows by two.

    No field can hold a raw NUL: hashes are hex, literals escape NUL (QUOTE) or are hex,
    and none is empty (`''`, `X''`), so two NULs in a row only ever separate rows. The
    client splits the value back with bytes.split() instead of parsing a result row per
    table row (the client's per-row cost dominates otherwise), and compares whole rows as
    single bytes values.
    """
    where = key_range(shape, lo, hi)
    if which is not None:
        where += f" AND {bucket(shape, buckets)} IN ({', '.join(str(int(b)) for b in which)})"
    fields = [f"LEFT({row_hash(shape)}, 16)", *(f"CAST({c.literal()} AS BINARY)" for c in shape.key)]
    if with_rows:
        fields.append(row_literal(shape))
    return (
        f"SELECT COUNT(*), GROUP_CONCAT(CONCAT_WS(X'00', {', '.join(fields)}) SEPARATOR X'0000')"
        f" FROM {shape.qname} {_force(shape)} WHERE {where}"
    )


def range_rows(shape: TableShape, lo: Key | None, hi: Key | None) -> str:
    return f"SELECT {row_literal(shape)} FROM {shape.qname} {_force(shape)} WHERE {key_range(shape, lo, hi)}"


def range_values(shape: TableShape, lo: Key | None, hi: Key | None) -> str:
    """Row count and the whole VALUES list of a key range, joined by the server: the client
    then handles one value per range instead of one per row."""
    return (
        f"SELECT COUNT(*), GROUP_CONCAT({row_literal(shape)} SEPARATOR ',')"
        f" FROM {shape.qname} {_force(shape)} WHERE {key_range(shape, lo, hi)}"
    )


def column_list(shape: TableShape) -> str:
    return ", ".join(c.q for c in shape.written)


def insert_head(shape: TableShape, into: str | None = None) -> bytes:
    return f"INSERT INTO {into or shape.qname} ({column_list(shape)}) VALUES ".encode()


def batches(items: Iterable[bytes], budget: int) -> Iterable[list[bytes]]:
    """Group items so each group's total length stays under `budget` bytes (at least one)."""
    group: list[bytes] = []
    size = 0
    for item in items:
        if group and size + len(item) > budget:
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item) + 1
    if group:
        yield group


def delete_keys(shape: TableShape, keys: Sequence[Key]) -> bytes:
    """DELETE of exactly these keys. Under a _ci collation `k IN ('A')` matches the one
    target row equal to 'A' by collation, which is the row the key was read from: a
    unique key cannot hold two collation-equal values."""
    return b"DELETE FROM " + shape.qname.encode() + b" WHERE " + keys_where(shape, keys)


def rows_for_keys(shape: TableShape, keys: Sequence[Key]) -> bytes:
    """The row literals (row_literal) of exactly these keys."""
    return (f"SELECT {row_literal(shape)} FROM {shape.qname} {_force(shape)} WHERE ".encode()
            + keys_where(shape, keys))


def keys_where(shape: TableShape, keys: Sequence[Key]) -> bytes:
    """`k IN (...)`, or `(k1=.. AND k2=..) OR ...` for a composite key: exactly these keys."""
    cols = shape.key
    if len(cols) == 1:
        c = cols[0]
        where = c.q.encode() + b" IN (" + b",".join(c.compare_literal(k[0]) for k in keys) + b")"
    else:
        where = b" OR ".join(
            b"(" + b" AND ".join(
                c.q.encode() + b"=" + c.compare_literal(v) for c, v in zip(cols, k, strict=True)
            ) + b")"
            for k in keys
        )
    return where


def correct_rows(shape: TableShape, values_table: str) -> str:
    """Set the target's rows back to the values held in `values_table` (a temporary table
    of the same columns, matched on the key) where any copied column differs byte for byte:
    what a target trigger rewrote on insert. Only differing rows are updated, so the
    statement's row count is the number of rows corrected and UPDATE triggers fire on
    those alone. `t` and `s` qualify every column, so no column name can capture them."""
    join = " AND ".join(f"t.{c.q} = s.{c.q}" for c in shape.key)
    sets = ", ".join(f"t.{c.q} = s.{c.q}" for c in shape.written)

    def same(c: Column) -> str:
        if c.is_text or c.data_type in _EXACT_BYTES:
            return f"CAST(t.{c.q} AS BINARY) <=> CAST(s.{c.q} AS BINARY)"
        return f"t.{c.q} <=> s.{c.q}"

    differs = " OR ".join(f"NOT ({same(c)})" for c in shape.written)
    return f"UPDATE {shape.qname} AS t JOIN {values_table} AS s ON {join} SET {sets} WHERE {differs}"
