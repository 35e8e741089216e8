"""Data sync against a real MariaDB server: the cases pt-table-sync gets wrong, atomicity,
foreign keys, refusals. Source and target are two databases of one server (`db_pair`)."""

from __future__ import annotations

import threading

import pytest

from dbrepl.sync.data import NoUsableKey, Progress, SchemaMismatch, resolve_tables, sync_data
from dbrepl.sync.errors import DatabaseError, InvalidInput

pytestmark = pytest.mark.mariadb


# -- helpers shared with the other test_data_* modules ------------------------------------


def run(conn, *statements, args=None):
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s, args)
        return cur.fetchall()


def checksum(conn, db: str, table: str) -> int:
    return run(conn, f"CHECKSUM TABLE `{db}`.`{table}` EXTENDED")[0][1]


def snapshot(conn, db: str, table: str) -> list[tuple]:
    """Every row, every column as exact bytes (HEX of the stored value), in binary key order."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION", (db, table))
        cols = cur.fetchall()
        exprs = []
        for name, dtype in cols:
            if dtype == "float":
                exprs.append(f"HEX(CAST(`{name}` + 0e0 AS CHAR))")
            elif dtype in ("bit",):
                exprs.append(f"`{name}` + 0")
            else:
                exprs.append(f"HEX(CAST(`{name}` AS BINARY))")
        cur.execute(f"SELECT {', '.join(exprs)} FROM `{db}`.`{table}`")
        return sorted(cur.fetchall(), key=repr)


def assert_same(conn, src: str, dst: str, table: str) -> None:
    assert snapshot(conn, dst, table) == snapshot(conn, src, table)
    assert checksum(conn, dst, table) == checksum(conn, src, table)


def both(conn, src: str, dst: str, *statements: str) -> None:
    for db in (src, dst):
        run(conn, f"USE `{db}`", *statements)


def sync(conns, src, dst, tables, **kw):
    _, s, t = conns
    return sync_data(s, t, [(src, x) for x in tables], target_databases={src: dst}, **kw)


# -- the cases pt-table-sync gets wrong -----------------------------------------------------


def test_values_swapped_between_rows(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), b INT)")
    rows = "(1,'x',10),(2,'y',20),(3,'z',30)"
    run(admin, f"INSERT INTO `{src}`.t VALUES {rows}", f"INSERT INTO `{dst}`.t VALUES {rows}")
    # Same multiset of values, swapped between rows: BIT_XOR(CRC32()) cannot see it.
    run(admin, f"UPDATE `{dst}`.t SET a = IF(id=1,'y','x') WHERE id IN (1,2)",
        f"UPDATE `{dst}`.t SET b = IF(id=2,30,20) WHERE id IN (2,3)")
    result = sync(conns, src, dst, ["t"])
    assert (result.tables[0].updated, result.tables[0].inserted, result.tables[0].deleted) == (3, 0, 0)
    assert_same(admin, src, dst, "t")
    assert sync(conns, src, dst, ["t"]).rows_synced == 0


def test_null_versus_empty_string_and_zero(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(5), b VARBINARY(5), c INT, d VARCHAR(5))")
    run(admin, f"INSERT INTO `{src}`.t VALUES (1,NULL,'',0,'NULL'),(2,'',NULL,NULL,NULL)",
        f"INSERT INTO `{dst}`.t VALUES (1,'',NULL,NULL,NULL),(2,NULL,'',0,'NULL')")
    assert sync(conns, src, dst, ["t"]).tables[0].updated == 2
    assert_same(admin, src, dst, "t")
    assert run(admin, f"SELECT a IS NULL, b IS NULL, d FROM `{dst}`.t WHERE id=1")[0] == (1, 0, "NULL")


def test_case_and_trailing_spaces_under_ci_collation_including_the_key(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE t (k VARCHAR(10) COLLATE utf8mb4_general_ci PRIMARY KEY,"
         " v VARCHAR(10) COLLATE utf8mb4_general_ci, l VARCHAR(10) CHARACTER SET latin1)")
    run(admin, f"INSERT INTO `{src}`.t VALUES ('abc','Value','é'),('b ','x ','a'),('c','same','b')",
        f"INSERT INTO `{dst}`.t VALUES ('ABC','value','É'),('b','x','a'),('c','same','b')")
    result = sync(conns, src, dst, ["t"])
    # 'ABC' and 'b' are other rows than 'abc' and 'b ': deleted, and the source's inserted.
    assert (result.tables[0].inserted, result.tables[0].deleted, result.tables[0].updated) == (2, 2, 0)
    assert_same(admin, src, dst, "t")
    assert run(admin, f"SELECT HEX(k) FROM `{dst}`.t ORDER BY BINARY k") == (("616263",), ("6220",), ("63",))
    assert sync(conns, src, dst, ["t"]).rows_synced == 0


def test_generated_columns_are_never_written(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE t (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL,"
         " s VARCHAR(20) AS (CONCAT('n', a)) STORED, UNIQUE KEY (s))")
    run(admin, f"INSERT INTO `{src}`.t (id, a) VALUES (1,1),(2,2),(3,3)",
        f"INSERT INTO `{dst}`.t (id, a) VALUES (1,1),(2,3),(4,4)")
    result = sync(conns, src, dst, ["t"], dry_run=True, statements=True)
    assert result.tables[0].statements and all(
        "`v`" not in s and "`s`" not in s for s in result.tables[0].statements)
    sync(conns, src, dst, ["t"])
    assert_same(admin, src, dst, "t")


def test_binary_blob_utf8mb4_decimal_float_temporal_json_bit(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE t (id INT PRIMARY KEY, bin BINARY(4), vb VARBINARY(10), bl BLOB,"
         " emoji VARCHAR(10), dec1 DECIMAL(30,10), f FLOAT, d DOUBLE, dt DATETIME(6), dd DATE,"
         " tm TIME(3), ts TIMESTAMP(2) NULL, y YEAR, j JSON, b BIT(12), e ENUM('a','b'), st SET('x','y'))")
    run(admin,
        f"INSERT INTO `{src}`.t VALUES (1, x'00010203', x'00ff', x'00272c5c00', '😀x',"
        " 12345678901234567890.0123456789, 1.0000001, 0.1, '2020-02-29 23:59:59.999999',"
        " '0000-00-00', '-838:59:59.999', '2038-01-19 03:14:07.99', 1901, '{\"a\": [1, 2.5]}',"
        " b'101010101010', 'b', 'x,y')",
        f"INSERT INTO `{dst}`.t VALUES (1, x'00010204', x'00fe', x'00272c5c01', '😁x',"
        " 12345678901234567890.0123456788, 1.0000002, 0.1000000001, '2020-02-29 23:59:59.999998',"
        " '0000-00-01', '-838:59:59.998', '2038-01-19 03:14:07.98', 1902, '{\"a\": [1, 2.6]}',"
        " b'101010101011', 'a', 'y')")
    # Each column differs on its own: every one must be seen.
    cols = ["bin", "vb", "bl", "emoji", "dec1", "f", "d", "dt", "dd", "tm", "ts", "y", "j", "b", "e", "st"]
    for col in cols:
        run(admin, f"UPDATE `{dst}`.t d JOIN `{src}`.t s USING (id) SET d.{col} = s.{col}")
        before = checksum(admin, dst, "t")
        if col != cols[-1]:
            assert before != checksum(admin, src, "t")
    run(admin, f"DELETE FROM `{dst}`.t")
    run(admin, f"INSERT INTO `{dst}`.t SELECT * FROM `{src}`.t")
    run(admin, f"UPDATE `{dst}`.t SET f = 1.0000002")  # same display ('1'), other float
    assert sync(conns, src, dst, ["t"]).tables[0].updated == 1
    assert_same(admin, src, dst, "t")
    for col in cols:
        run(admin, f"UPDATE `{dst}`.t SET {col} = NULL")
        assert sync(conns, src, dst, ["t"]).tables[0].updated == 1, col
    assert_same(admin, src, dst, "t")
    run(admin, f"DELETE FROM `{dst}`.t")  # empty target: the copy path
    assert sync(conns, src, dst, ["t"]).tables[0].inserted == 1
    assert_same(admin, src, dst, "t")


def test_composite_and_unique_keys(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE c (a INT, b VARCHAR(5), v INT, PRIMARY KEY (a, b))",
         "CREATE TABLE u (code VARCHAR(5) NOT NULL, v INT, UNIQUE KEY (code))")
    run(admin, f"INSERT INTO `{src}`.c VALUES (1,'a',1),(1,'b',2),(2,'a',3)",
        f"INSERT INTO `{dst}`.c VALUES (1,'a',9),(1,'c',2),(2,'A',3)",
        f"INSERT INTO `{src}`.u VALUES ('x',1),('y',2)",
        f"INSERT INTO `{dst}`.u VALUES ('x',2),('z',2)")
    result = sync(conns, src, dst, ["c", "u"], chunk_rows=1)
    assert [t.changed for t in result.tables] == [5, 3]
    assert_same(admin, src, dst, "c")
    assert_same(admin, src, dst, "u")


def test_unique_values_swapped_across_chunks(conns, db_pair):
    """Row 1 takes a unique value row 500 still holds in a later chunk: inserts wait."""
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, u INT NOT NULL, UNIQUE KEY (u))")
    run(admin, f"INSERT INTO `{src}`.t SELECT seq, seq FROM seq_1_to_500",
        f"INSERT INTO `{dst}`.t SELECT seq, IF(seq=1, 500, IF(seq=500, 1, seq)) FROM seq_1_to_500")
    assert sync(conns, src, dst, ["t"], chunk_rows=50).tables[0].updated == 2
    assert_same(admin, src, dst, "t")


def test_chunks_buckets_and_many_differences(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(20), n INT)")
    run(admin, f"INSERT INTO `{src}`.t SELECT seq, CONCAT('r', seq), seq FROM seq_1_to_3000",
        f"INSERT INTO `{dst}`.t SELECT seq, CONCAT('r', seq), seq FROM seq_1_to_3000 WHERE seq % 7 <> 0",
        f"UPDATE `{dst}`.t SET n = n + 1 WHERE id % 11 = 0",
        f"INSERT INTO `{dst}`.t SELECT seq, 'extra', 0 FROM seq_3001_to_3100",
        f"DELETE FROM `{src}`.t WHERE id BETWEEN 1000 AND 1100")
    events: list[Progress] = []
    result = sync(conns, src, dst, ["t"], chunk_rows=128, buckets=16, progress=events.append)
    t = result.tables[0]
    assert t.inserted == len([i for i in range(1, 3001) if i % 7 == 0 and not 1000 <= i <= 1100])
    assert t.deleted == 100 + len([i for i in range(1000, 1101) if i % 7])
    assert t.updated == len([i for i in range(1, 3001) if i % 11 == 0 and i % 7 and not 1000 <= i <= 1100])
    assert_same(admin, src, dst, "t")
    compares = [e for e in events if e.phase == "compare"]
    assert len(compares) >= 3000 // 128 and compares[-1].rows_compared == 3000 - 101
    assert events[-1].phase == "done"


def test_dry_run_counts_and_statements_change_nothing(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10))")
    run(admin, f"INSERT INTO `{src}`.t VALUES (1,'a'),(2,'b'),(3,'c')",
        f"INSERT INTO `{dst}`.t VALUES (1,'a'),(2,'B'),(4,'d')")
    before = snapshot(admin, dst, "t")
    result = sync(conns, src, dst, ["t"], dry_run=True, statements=True)
    t = result.tables[0]
    assert (result.dry_run, t.inserted, t.updated, t.deleted, result.rows_synced) == (True, 1, 1, 1, 3)
    assert t.statements == [
        f"DELETE FROM `{dst}`.`t` WHERE `id` IN (4,2)",
        f"INSERT INTO `{dst}`.`t` (`id`, `a`) VALUES (2,'b'),(3,'c')",
    ]
    assert snapshot(admin, dst, "t") == before
    assert result.to_dict()["tables"][0]["target_database"] == dst


# -- one transaction, foreign keys ------------------------------------------------------------


def test_related_tables_sync_together_with_foreign_keys(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(10))",
         "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT,"
         " FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)")
    run(admin, f"INSERT INTO `{src}`.parent VALUES (1,'one'),(2,'two'),(3,'three')",
        f"INSERT INTO `{src}`.child VALUES (10,1),(20,2),(30,3)",
        f"INSERT INTO `{dst}`.parent VALUES (1,'ONE'),(2,'two'),(9,'nine')",
        f"INSERT INTO `{dst}`.child VALUES (10,1),(20,2),(90,9)")
    # Children first: a new child's parent is only inserted later in the same transaction;
    # parent 1 is rewritten (delete + insert) and must not cascade to child 10.
    result = sync(conns, src, dst, ["child", "parent"])
    assert result.rows_synced == 2 + 3
    for t in ("parent", "child"):
        assert_same(admin, src, dst, t)
    assert run(admin, "SELECT @@foreign_key_checks")[0][0] == 1


def test_error_injected_mid_apply_leaves_target_as_before(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE a (id INT PRIMARY KEY, v INT)", "CREATE TABLE b (id INT PRIMARY KEY, v INT)")
    run(admin, f"INSERT INTO `{src}`.a SELECT seq, seq FROM seq_1_to_2000",
        f"INSERT INTO `{src}`.b SELECT seq, seq FROM seq_1_to_2000",
        f"INSERT INTO `{dst}`.a SELECT seq, seq + (seq % 3 = 0) FROM seq_1_to_2000",
        f"INSERT INTO `{dst}`.b SELECT seq, seq + (seq % 5 = 0) FROM seq_501_to_3000")
    before = {t: (snapshot(admin, dst, t), checksum(admin, dst, t)) for t in ("a", "b")}
    applied = []

    def fail_after_some(event: Progress) -> None:
        if event.phase == "apply":
            applied.append(event)
            if sum(e.table == "b" for e in applied) == 3:  # table a done, b partly applied
                raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        sync(conns, src, dst, ["a", "b"], chunk_rows=200, progress=fail_after_some)
    assert sum(e.table == "a" for e in applied) >= 10 and applied[-1].table == "b"
    after = {t: (snapshot(admin, dst, t), checksum(admin, dst, t)) for t in ("a", "b")}
    assert after == before
    # The same connections still work and then converge.
    assert sync(conns, src, dst, ["a", "b"]).rows_synced > 0
    assert_same(admin, src, dst, "a")


def test_connection_killed_mid_apply_leaves_target_as_before(conns, db_pair, mariadb):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
    run(admin, f"INSERT INTO `{src}`.t SELECT seq, CONCAT('v', seq) FROM seq_1_to_5000",
        f"INSERT INTO `{dst}`.t SELECT seq, CONCAT('old', seq) FROM seq_1_to_5000 WHERE seq % 2 = 0")
    before = (snapshot(admin, dst, "t"), checksum(admin, dst, "t"))
    source, target = mariadb.connect(), mariadb.connect()
    victim = target.thread_id()
    killer = mariadb.connect()
    seen = []

    def kill_target(event: Progress) -> None:
        if event.phase == "apply":
            seen.append(event)
            if len(seen) == 3:
                run(killer, f"KILL {int(victim)}")

    with pytest.raises(DatabaseError, match="Failed to sync data"):
        sync_data(source, target, [(src, "t")], target_databases={src: dst},
                  chunk_rows=500, progress=kill_target)
    assert len(seen) >= 3
    assert (snapshot(admin, dst, "t"), checksum(admin, dst, "t")) == before
    for c in (source, target, killer):
        c.close()


def test_failure_midway_through_an_empty_target_copy_leaves_it_empty(conns, db_pair, monkeypatch):
    """The empty-target copy (no hashing, many INSERTs) is part of the run's one transaction:
    a failure after some of its statements leaves the table empty and the other tables as
    they were."""
    import dbrepl.sync.data.sync as data_sync

    monkeypatch.setattr(data_sync, "_COPY_MAX_RANGE", 500)  # many statements for 5,000 rows
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE a (id INT PRIMARY KEY, v INT)",
         "CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(20), UNIQUE KEY uv (v))")
    run(admin, f"INSERT INTO `{src}`.a SELECT seq, seq FROM seq_1_to_1000",
        f"INSERT INTO `{dst}`.a SELECT seq, seq + (seq % 3 = 0) FROM seq_1_to_1000",
        f"INSERT INTO `{src}`.b SELECT seq, CONCAT('v', seq) FROM seq_1_to_5000")
    before = (snapshot(admin, dst, "a"), checksum(admin, dst, "a"))
    seen: list[Progress] = []

    def fail_midway(event: Progress) -> None:
        seen.append(event)
        if event.table == "b" and event.phase == "apply" and event.inserted >= 2000:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        sync(conns, src, dst, ["a", "b"], progress=fail_midway)
    b_events = [e for e in seen if e.table == "b"]
    assert b_events and {e.phase for e in b_events} == {"apply"}  # copied, never compared
    assert 2000 <= b_events[-1].inserted < 5000
    assert (snapshot(admin, dst, "a"), checksum(admin, dst, "a")) == before
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.b")[0][0] == 0
    assert sync(conns, src, dst, ["a", "b"]).tables[1].inserted == 5000
    assert_same(admin, src, dst, "b")


def test_duplicate_on_a_target_only_unique_key_fails_the_copy_even_without_unique_checks(conns, db_pair):
    """A unique key only the target has may refuse the source's rows. The run sets
    unique_checks=1 whatever the caller's session says (with 0, MariaDB's bulk insert into an
    empty table and MySQL's change buffer defer or skip that check), reports the duplicate,
    leaves the target empty and gives the session its own value back."""
    admin, _, t = conns
    src, dst = db_pair
    run(admin, f"CREATE TABLE `{src}`.t (id INT PRIMARY KEY, u INT NOT NULL)",
        f"CREATE TABLE `{dst}`.t (id INT PRIMARY KEY, u INT NOT NULL, UNIQUE KEY uu (u))",
        f"INSERT INTO `{src}`.t SELECT seq, seq % 1000 FROM `{src}`.seq_1_to_3000")
    run(t, "SET SESSION unique_checks=0")
    with pytest.raises(DatabaseError, match="Duplicate entry"):
        sync(conns, src, dst, ["t"])
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.t")[0][0] == 0
    assert run(t, "SELECT @@unique_checks, @@foreign_key_checks")[0] == (0, 1)
    # Without the duplicates the same table copies.
    run(admin, f"UPDATE `{src}`.t SET u = id")
    assert sync(conns, src, dst, ["t"]).tables[0].inserted == 3000
    assert_same(admin, src, dst, "t")


# -- refusals: nothing runs -----------------------------------------------------------------


class Untouchable:
    """A connection that fails the test if the sync touches it at all."""

    def __getattr__(self, name):
        raise AssertionError(f"the sync used the connection ({name}) before refusing")


# Names with quotes, backticks or `;` are valid (quoted, they are only names: the
# adversarial property test syncs such tables); these are names no server can hold.
@pytest.mark.parametrize("tables", [
    [("app", "t\n; DROP TABLE x")], [("app.x", "t")], [("app", "")], [("app", None)],
    [("app", "t", "extra")], "app.t", [("app", "a" * 65)], [("app", "t ")], [("app", "t\x00")],
    [("app", "\U0001F600")],
    [("mysql", "user")], [("MySQL", "user")], [("information_schema", "TABLES")], [("sys", "x")],
])
def test_bad_names_are_refused_before_any_sql(tables):
    with pytest.raises(InvalidInput):
        sync_data(Untouchable(), Untouchable(), tables)


def test_system_schema_as_target_database_is_refused():
    with pytest.raises(InvalidInput, match="system schema"):
        sync_data(Untouchable(), Untouchable(), [("app", "t")], target_databases={"app": "mysql"})


def test_resolve_tables_checks_the_catalogue(conns, db_pair):
    admin, s, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY)")
    run(admin, f"CREATE VIEW `{src}`.v AS SELECT 1 AS x")
    assert resolve_tables(s, ["t", f"{src}.t"], [src]) == [(src, "t")]
    with pytest.raises(InvalidInput, match="several databases"):
        resolve_tables(s, ["t"], [src, dst])
    for bad in (["missing"], ["v"], [f"{src}.missing"], ["x;y"], "t", [1], ["mysql.user"]):
        with pytest.raises(InvalidInput):
            resolve_tables(s, bad, [src])


def test_table_without_usable_key_is_refused(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (a INT, b INT NULL, UNIQUE KEY (b), KEY (a))")
    run(admin, f"INSERT INTO `{src}`.t VALUES (1, 1)")
    with pytest.raises(NoUsableKey, match="no primary key and no unique key on NOT NULL"):
        sync(conns, src, dst, ["t"])
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.t")[0][0] == 0


@pytest.mark.parametrize("target_ddl", [
    None,
    "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), extra INT)",
    "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(11))",
    "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10) COLLATE utf8mb4_bin)",
    "CREATE TABLE t (id INT NOT NULL, a VARCHAR(10) NOT NULL, PRIMARY KEY (a))",
])
def test_schema_differences_point_to_schema_sync(conns, db_pair, target_ddl):
    admin, _, _ = conns
    src, dst = db_pair
    run(admin, f"CREATE TABLE `{src}`.t (id INT PRIMARY KEY, a VARCHAR(10))",
        f"INSERT INTO `{src}`.t VALUES (1, 'a')")
    if target_ddl:
        run(admin, f"USE `{dst}`", target_ddl)
    with pytest.raises(SchemaMismatch, match="dbrepl sync schema"):
        sync(conns, src, dst, ["t"])


def test_missing_source_table_is_invalid_input(conns, db_pair):
    src, dst = db_pair
    with pytest.raises(InvalidInput, match="does not exist on the source"):
        sync(conns, src, dst, ["nope"])


def test_session_settings_are_restored(conns, db_pair):
    admin, s, t = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY)")
    run(t, "SET SESSION sql_mode='ANSI_QUOTES', time_zone='+05:00'")
    sync(conns, src, dst, ["t"])
    assert run(t, "SELECT @@sql_mode, @@time_zone, @@foreign_key_checks, @@unique_checks, @@autocommit")[0] == (
        "ANSI_QUOTES", "+05:00", 1, 1, 1)


def test_concurrent_progress_hook_runs_on_caller_thread(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY)")
    run(admin, f"INSERT INTO `{src}`.t SELECT seq FROM seq_1_to_100")
    threads = set()
    sync(conns, src, dst, ["t"], progress=lambda e: threads.add(threading.get_ident()))
    assert threads == {threading.get_ident()}


def test_pymysql_errors_become_database_errors(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(3))")
    run(admin, f"INSERT INTO `{src}`.t VALUES (1, 'abc')")
    # A trigger that fails on insert stands in for any server-side refusal (allowed to
    # fire: by default a SIGNAL trigger is refused before any change, see test_data_triggers).
    run(admin, f"CREATE TRIGGER `{dst}`.boom BEFORE INSERT ON `{dst}`.t FOR EACH ROW"
        " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by trigger'")
    with pytest.raises(DatabaseError, match="refused by trigger"):
        sync(conns, src, dst, ["t"], triggers="allow")
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.t")[0][0] == 0


def test_rows_longer_than_group_concat_allows_are_read_row_by_row(conns, db_pair, monkeypatch):
    """Wide rows: the joined value would be cut at GROUP_CONCAT's limit, so the chunk is
    read row by row instead (drill-down and empty-target copy alike)."""
    import dbrepl.sync.data.sync as data_sync

    monkeypatch.setattr(data_sync, "_CONCAT_BYTES", 300)
    used = {"range_rows": 0, "bucket_rows": 0}

    def counting(name):
        real = getattr(data_sync.sql, name)

        def counted(*a, **k):
            used[name] += 1
            return real(*a, **k)
        return counted

    for name in used:
        monkeypatch.setattr(data_sync.sql, name, counting(name))
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, b BLOB)")
    run(admin, f"INSERT INTO `{src}`.t SELECT seq, REPEAT(CHAR(seq % 256), 200) FROM `{src}`.seq_1_to_300")
    assert sync(conns, src, dst, ["t"]).tables[0].inserted == 300  # empty target: copy
    assert_same(admin, src, dst, "t")
    run(admin, f"UPDATE `{dst}`.t SET b = REVERSE(CONCAT(b, 'x')) WHERE id % 3 = 0",
        f"DELETE FROM `{dst}`.t WHERE id % 7 = 0")
    result = sync(conns, src, dst, ["t"], chunk_rows=40)
    assert result.tables[0].updated == 100 - 14 and result.tables[0].inserted == 42
    assert_same(admin, src, dst, "t")
    assert used["range_rows"] > 0 and used["bucket_rows"] > 0  # the row-by-row paths ran
