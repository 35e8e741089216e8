"""Data sync that cannot be silently wrong (issue 10, points 1-3).

- A column named like the aliases and words of the generated SQL (the `GROUP BY b` capture
  once made a sync report success with rows still differing).
- Faults injected into the comparison: the verification before COMMIT catches them, the
  run fails (exit 1 in the CLI) and the target is exactly as it was.
- A property test over adversarial identifiers: table and column names drawn from the
  generated SQL's own words, reserved words, spaces, backticks, quotes, non-ASCII, mixed
  case; keys whose column order differs from the table's; chunk/bucket sizes small enough
  that every comparison mode runs. After a sync both sides are identical byte for byte and
  a second sync changes nothing.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbrepl.sync.data import VerificationFailed, sync_data
from dbrepl.sync.data import statements as sql
from dbrepl.sync.data import sync as data_sync
from dbrepl.sync.errors import DatabaseError
from dbrepl.sync.ident import qualified, quote
from tests.sync.test_data_sync import run

pytestmark = pytest.mark.mariadb

# Every alias, function and keyword the data sync's statements use, and names it makes up.
GENERATED_WORDS = [
    "b", "n", "x", "k", "v", "lo", "hi", "id", "dbrepl_pending", "dbrepl_pending_2",
    "COUNT", "BIT_XOR", "CONV", "LEFT", "SHA1", "MD5", "CRC32", "CONCAT_WS", "CONCAT",
    "ISNULL", "LENGTH", "CAST", "BINARY", "QUOTE", "IFNULL", "HEX", "NULL", "FORCE", "INDEX",
    "PRIMARY", "WHERE", "AND", "OR", "TRUE", "LIMIT", "OFFSET", "GROUP", "ORDER", "BY",
    "SELECT", "FROM", "IN", "SEPARATOR", "INSERT", "INTO", "VALUES", "DELETE", "TEMPORARY",
    "LIKE", "CONVERT", "USING", "utf8mb4", "AS", "SET", "SESSION",
]
RESERVED = ["key", "desc", "table", "int", "check", "default", "range", "row", "rows", "match"]
ODD = ["with space", "back`tick", "it's", 'dq"x', "ünïcødé", "表", "MiXeD", " lead", "a,b", "a)b",
       "0", "x' OR '1'='1", "t; DROP TABLE t", "--c", "/*c*/", "`", "``"]
COLUMN_NAMES = GENERATED_WORDS + RESERVED + ODD
TABLE_NAMES = ["b", "dbrepl_pending", "select", "Order Details", "tab`le", "it's", 'say "hi"',
               "Ünïcødé_表", "MiXeD", "t; DROP TABLE x", "GROUP"]

# (column type, values); key-able types first.
TYPES = {
    "int": ("INT", st.integers(-3, 12)),
    "bigint": ("BIGINT UNSIGNED", st.integers(0, 2**64 - 1) | st.integers(0, 5)),
    "ci": ("VARCHAR(12) COLLATE utf8mb4_general_ci",
           st.sampled_from(["a", "A", "a ", "b", "é", "E", "ß", "ss", "x,y", "'", "\\", "`", ""])),
    "bin": ("VARBINARY(6)", st.binary(max_size=3)),
    "dec": ("DECIMAL(9,3)", st.decimals(min_value=Decimal("-999"), max_value=Decimal("999"), places=3)),
    "dt": ("DATETIME(3)", st.sampled_from(["2020-01-01 00:00:00.000", "2020-01-01 00:00:00.001",
                                           "1999-12-31 23:59:59.999"])),
    "double": ("DOUBLE", st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False)),
    "text": ("TEXT", st.text(max_size=8)),
}
KEYABLE = ["int", "bigint", "ci", "bin", "dec", "dt"]


@st.composite
def table_def(draw):
    """(table name, [(column, type kind)], key columns in key order, second unique column)."""
    n = draw(st.integers(2, 6))
    # Column names are case-insensitive: draw them distinct in lower case.
    names = draw(st.lists(st.sampled_from(COLUMN_NAMES), min_size=n, max_size=n,
                          unique_by=lambda c: c.lower()))
    kinds = [draw(st.sampled_from(list(TYPES))) for _ in names]
    keyable = [c for c, k in zip(names, kinds, strict=True) if k in KEYABLE]
    if not keyable:
        kinds[0] = draw(st.sampled_from(KEYABLE))
        keyable = [names[0]]
    key = draw(st.lists(st.sampled_from(keyable), min_size=1, max_size=min(3, len(keyable)),
                        unique=True))
    if len(key) > 1 and draw(st.booleans()):
        key = list(reversed(key))  # the key's order differs from the table's
    others = [c for c in keyable if c not in key]
    second = draw(st.sampled_from(others)) if others and draw(st.booleans()) else None
    return draw(st.sampled_from(TABLE_NAMES)), list(zip(names, kinds, strict=True)), key, second


@st.composite
def scenario(draw):
    name, cols, key, second = draw(table_def())
    not_null = set(key) | ({second} if second else set())
    value = {c: TYPES[k][1] if c in not_null else st.none() | TYPES[k][1] for c, k in cols}
    row = st.fixed_dictionaries(value)
    rows = draw(st.lists(row, max_size=30))
    edits = draw(st.lists(st.tuples(st.sampled_from(["delete", "update", "insert", "rekey"]),
                                    st.integers(0, 29), row), max_size=8))
    empty_target = draw(st.integers(0, 5)) == 0
    return name, cols, key, second, rows, edits, empty_target, draw(st.integers(1, 7)), draw(st.integers(1, 6))


def create_sql(db: str, name: str, cols, key, second, primary: bool) -> str:
    defs = [f"{quote(c)} {TYPES[k][0]}{' NOT NULL' if c in key or c == second else ''}"
            for c, k in cols]
    kw = "PRIMARY KEY" if primary else "UNIQUE KEY"
    defs.append(f"{kw} ({', '.join(quote(c) for c in key)})")
    if second:
        defs.append(f"UNIQUE KEY ({quote(second)})")
    return f"CREATE TABLE {qualified(db, name)} ({', '.join(defs)})"


def insert(conn, db: str, name: str, values: dict) -> None:
    cols = list(values)
    run(conn, f"INSERT IGNORE INTO {qualified(db, name)} ({', '.join(quote(c) for c in cols)})"
              f" VALUES ({', '.join(['%s'] * len(cols))})", args=[values[c] for c in cols])


def exact_rows(conn, db: str, name: str) -> list[tuple]:
    """Every row as the exact bytes stored (HEX), sorted: identical means byte for byte."""
    cols = [r[0] for r in run(conn, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE"
                                    " TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
                              args=(db, name))]
    exprs = ", ".join(f"HEX(CAST({quote(c)} AS BINARY)), ISNULL({quote(c)})" for c in cols)
    return sorted(run(conn, f"SELECT {exprs} FROM {qualified(db, name)}"), key=repr)


def checksum(conn, db: str, name: str) -> int:
    return run(conn, f"CHECKSUM TABLE {qualified(db, name)} EXTENDED")[0][1]


@pytest.fixture(scope="module")
def dbs(mariadb):
    tag = uuid.uuid4().hex[:8]
    # Database names with a space and a backtick too.
    src, dst = f"trust src`{tag}", f"trust dst {tag}"
    conn = mariadb.connect()
    run(conn, "SET SESSION time_zone='+00:00'")
    for db in (src, dst):
        run(conn, f"CREATE DATABASE {quote(db)}")
    yield conn, src, dst
    for db in (src, dst):
        run(conn, f"DROP DATABASE {quote(db)}")
    conn.close()


def fresh(conn, db: str) -> None:
    for (t,) in run(conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                    args=(db,)):
        run(conn, f"DROP TABLE {qualified(db, t)}")


def connect2(mariadb):
    return mariadb.connect(), mariadb.connect()


# -- a column named like every alias -----------------------------------------------------


def _alias_table(conn, src: str, dst: str) -> str:
    cols = [c for c in GENERATED_WORDS if c.lower() != "id"]
    defs = ", ".join(f"{quote(c)} INT NOT NULL" for c in cols)
    for db in (src, dst):
        run(conn, f"CREATE TABLE {qualified(db, 'b')} (`id` INT NOT NULL PRIMARY KEY, {defs})")
    # Every column holds the same small value: grouping by the column `b` instead of the
    # bucket collapses all buckets into one, where the differences cancel out or vanish.
    values = ", ".join("1" for _ in cols)
    run(conn, f"INSERT INTO {qualified(src, 'b')} SELECT seq, {values} FROM {qualified(src, 'seq_1_to_3000')}")
    run(conn, f"INSERT INTO {qualified(dst, 'b')} SELECT * FROM {qualified(src, 'b')}")
    # 400 rows differ on the target, spread over every chunk and many buckets.
    run(conn, f"UPDATE {qualified(dst, 'b')} SET `v` = 2 WHERE `id` % 7 = 0 AND `id` <= 2800")
    return "b"


def test_columns_named_like_every_alias_sync_exactly(mariadb, dbs):
    conn, src, dst = dbs
    fresh(conn, src)
    fresh(conn, dst)
    table = _alias_table(conn, src, dst)
    assert exact_rows(conn, src, table) != exact_rows(conn, dst, table)
    s, t = connect2(mariadb)
    try:
        # Chunks of 1000 rows and 64 buckets: the run goes chunk -> bucket -> rows.
        result = sync_data(s, t, [(src, table)], target_databases={src: dst}, chunk_rows=1000, buckets=64)
        assert result.tables[0].updated == 400
        assert exact_rows(conn, dst, table) == exact_rows(conn, src, table)
        assert checksum(conn, dst, table) == checksum(conn, src, table)
        assert sync_data(s, t, [(src, table)], target_databases={src: dst}, chunk_rows=1000,
                         buckets=64).rows_synced == 0
    finally:
        s.close()
        t.close()


# -- faults injected into the comparison are caught before COMMIT --------------------------


def _captured_bucket_digests(shape, lo, hi, buckets):
    """The bug that shipped: the bucket named `b` and grouped by `b` (a column wins)."""
    return (
        f"SELECT {sql.bucket(shape, buckets)} AS b, COUNT(*),"
        f" BIT_XOR(CONV(LEFT({sql.row_hash(shape)}, 16), 16, 10))"
        f" FROM {shape.qname} WHERE {sql.key_range(shape, lo, hi)} GROUP BY b"
    )


def _fault_drops_one_row(monkeypatch):
    """The drill-down forgets to delete the first extra row it found."""
    original = data_sync._Table._delete
    monkeypatch.setattr(data_sync._Table, "_delete",
                        lambda self, extra, changed: original(self, extra[1:], changed))


@pytest.mark.parametrize("fault", ["captured alias", "dropped row"])
@pytest.mark.parametrize("verify", ["changed", "full"])
def test_a_comparison_fault_is_caught_and_rolled_back(mariadb, dbs, monkeypatch, fault, verify):
    conn, src, dst = dbs
    fresh(conn, src)
    fresh(conn, dst)
    table = _alias_table(conn, src, dst)
    run(conn, f"INSERT INTO {qualified(dst, table)} SELECT seq, "
              + ", ".join("1" for c in GENERATED_WORDS if c.lower() != "id")
              + f" FROM {qualified(src, 'seq_5001_to_5003')}")  # extra rows on the target, to be deleted
    before = exact_rows(conn, dst, table)
    if fault == "captured alias":
        # The first differing chunk goes through bucket digests (by default it reads rows).
        monkeypatch.setattr(data_sync, "_FIRST_DRILL", "bucket")
        monkeypatch.setattr(sql, "bucket_digests", _captured_bucket_digests)
    else:
        _fault_drops_one_row(monkeypatch)
    s, t = connect2(mariadb)
    try:
        with pytest.raises(VerificationFailed, match=r"verification failed for .*b.*rolled back") as e:
            sync_data(s, t, [(src, table)], target_databases={src: dst}, chunk_rows=1000,
                      buckets=64, verify=verify)
        assert isinstance(e.value, DatabaseError)  # the CLI's exit 1
    finally:
        s.close()
        t.close()
    assert exact_rows(conn, dst, table) == before


def test_the_verification_names_the_key_range(mariadb, dbs, monkeypatch):
    conn, src, dst = dbs
    fresh(conn, src)
    fresh(conn, dst)
    table = _alias_table(conn, src, dst)
    monkeypatch.setattr(data_sync, "_FIRST_DRILL", "bucket")
    monkeypatch.setattr(sql, "bucket_digests", _captured_bucket_digests)
    s, t = connect2(mariadb)
    try:
        # The comparison's first chunk is an eighth of chunk_rows: ids 1 to 125.
        with pytest.raises(VerificationFailed, match=r"key range `id` <= 125 still differs"):
            sync_data(s, t, [(src, table)], target_databases={src: dst}, chunk_rows=1000, buckets=64)
    finally:
        s.close()
        t.close()


def test_full_verification_sees_what_a_blind_row_hash_hides(mariadb, dbs, monkeypatch):
    """A fault in the row hash blinds the comparison AND the default verification (they
    share it); --verify full digests the rows' literals instead and catches it."""
    conn, src, dst = dbs
    fresh(conn, src)
    fresh(conn, dst)
    table = _alias_table(conn, src, dst)
    monkeypatch.setattr(sql, "row_hash", lambda shape: "SHA1('same for every row')")
    s, t = connect2(mariadb)
    try:
        with pytest.raises(VerificationFailed):
            sync_data(s, t, [(src, table)], target_databases={src: dst}, chunk_rows=1000, verify="full")
    finally:
        s.close()
        t.close()
    assert exact_rows(conn, src, table) != exact_rows(conn, dst, table)


def test_verify_none_and_dry_run_check_nothing(mariadb, dbs):
    conn, src, dst = dbs
    fresh(conn, src)
    fresh(conn, dst)
    table = _alias_table(conn, src, dst)
    s, t = connect2(mariadb)
    try:
        dry = sync_data(s, t, [(src, table)], target_databases={src: dst}, dry_run=True)
        assert dry.tables[0].verified_rows is None and dry.verified.startswith("nothing (dry run")
        done = sync_data(s, t, [(src, table)], target_databases={src: dst}, verify="none")
        assert done.tables[0].updated == 400 and done.tables[0].verified_rows is None
        assert done.to_dict()["verified"] == "nothing (--verify none)"
        full = sync_data(s, t, [(src, table)], target_databases={src: dst}, verify="full", chunk_rows=700)
        # A fresh walk of 3000 keys in ranges of 700: 5 ranges, and the counts.
        assert (full.tables[0].verified_ranges, full.tables[0].verified_rows) == (5, 3000)
    finally:
        s.close()
        t.close()


def test_a_user_table_named_like_the_pending_table_is_left_alone(mariadb, dbs):
    """Inserts wait in a temporary table when a second unique key exists; a user table
    named `dbrepl_pending` (even the synced one) must not be hidden by it."""
    conn, src, dst = dbs
    fresh(conn, src)
    fresh(conn, dst)
    for db in (src, dst):
        for name in ("dbrepl_pending", "other"):
            run(conn, f"CREATE TABLE {qualified(db, name)} (id INT PRIMARY KEY, u INT NOT NULL,"
                      " UNIQUE KEY (u))")
    for name in ("dbrepl_pending", "other"):
        run(conn, f"INSERT INTO {qualified(src, name)} SELECT seq, seq FROM {qualified(src, 'seq_1_to_50')}")
        run(conn, f"INSERT INTO {qualified(dst, name)} SELECT seq, 100 - seq FROM {qualified(src, 'seq_1_to_40')}")
    s, t = connect2(mariadb)
    try:
        result = sync_data(s, t, [(src, "other"), (src, "dbrepl_pending")], target_databases={src: dst},
                           chunk_rows=7, buckets=3)
        assert result.rows_synced > 0
    finally:
        s.close()
        t.close()
    for name in ("dbrepl_pending", "other"):
        assert exact_rows(conn, dst, name) == exact_rows(conn, src, name)


# -- the property test over adversarial identifiers ---------------------------------------


MODES_SEEN: set[str] = set()


@pytest.fixture
def spy_modes(monkeypatch):
    original = data_sync._Table.sync

    def sync(self):
        original(self)
        MODES_SEEN.update(self.modes)
        if self.copied:
            MODES_SEEN.add("copy")
    monkeypatch.setattr(data_sync._Table, "sync", sync)


def _apply_edits(conn, db, name, cols, key, rows, edits) -> None:
    where_cols = key
    for kind, index, new in edits:
        if kind == "insert" or not rows:
            insert(conn, db, name, new)
            continue
        old = rows[index % len(rows)]
        where = " AND ".join(f"{quote(c)} <=> %s" for c in where_cols)
        keyvals = [old[c] for c in where_cols]
        if kind == "delete":
            run(conn, f"DELETE FROM {qualified(db, name)} WHERE {where}", args=keyvals)
        else:
            changed = [c for c, _ in cols if (kind == "rekey") == (c in key)]
            if not changed:
                continue
            sets = ", ".join(f"{quote(c)} = %s" for c in changed)
            run(conn, f"UPDATE IGNORE {qualified(db, name)} SET {sets} WHERE {where}",
                args=[*(new[c] for c in changed), *keyvals])


_settings = settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.data_too_large])


def test_adversarial_identifiers_sync_exactly(mariadb, dbs, spy_modes, monkeypatch):
    conn, src, dst = dbs
    s, t = connect2(mariadb)
    MODES_SEEN.clear()

    @_settings
    @given(case=scenario())
    def check(case):
        name, cols, key, second, rows, edits, empty_target, chunk_rows, buckets = case
        # Both drill-downs of a differing chunk on these names: bucket digests first (odd
        # bucket counts) or the chunk's rows first (even), whichever the data would not pick.
        monkeypatch.setattr(data_sync, "_FIRST_DRILL", "bucket" if buckets % 2 else "rows")
        fresh(conn, src)
        fresh(conn, dst)
        primary = not second or len(key) > 1
        for db in (src, dst):
            run(conn, create_sql(db, name, cols, key, second, primary))
        for values in rows:
            insert(conn, src, name, values)
        if not empty_target:
            run(conn, f"INSERT INTO {qualified(dst, name)} SELECT * FROM {qualified(src, name)}")
            _apply_edits(conn, dst, name, cols, key, rows, edits)
        kw = dict(target_databases={src: dst}, chunk_rows=chunk_rows, buckets=buckets)
        result = sync_data(s, t, [(src, name)], **kw)
        assert result.tables[0].verified_rows == len(exact_rows(conn, src, name))
        assert exact_rows(conn, dst, name) == exact_rows(conn, src, name)
        assert checksum(conn, dst, name) == checksum(conn, src, name)
        assert sync_data(s, t, [(src, name)], **kw).rows_synced == 0

    try:
        check()
    finally:
        s.close()
        t.close()
    # Every comparison mode ran on these names: whole-chunk, bucket, all-rows and the copy.
    assert {"chunk", "bucket", "rows", "copy"} <= MODES_SEEN, MODES_SEEN
