"""The schema-change corpus (issue 3 acceptance), each case run in both directions.

A case holds two schemas, `before` and `after`. Forward: the source has `after`, the target
`before` (the change travels to the target). Backward: the source has `before`, the target
`after`. In each direction: a non-empty plan; destructive clauses refused (and no DDL run)
unless allowed; after the sync every SHOW CREATE TABLE matches (AUTO_INCREMENT counter
aside) and views match; a second plan is empty; rows present before a safe change remain.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import pytest

from dbrepl.sync.ident import qualified, quote
from dbrepl.sync.schema import DestructiveChangeRefused, apply_schema, plan_schema
from dbrepl.sync.schema.diff import map_databases


@dataclass
class Case:
    name: str
    before: list[str]
    after: list[str]
    forward_destructive: bool = False
    backward_destructive: bool = False
    before_rows: list[str] = field(default_factory=list)
    after_rows: list[str] = field(default_factory=list)
    forward_renames: list[str] = field(default_factory=list)  # "{db}" is the source database
    backward_renames: list[str] = field(default_factory=list)


T = "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, {cols})"


def t(cols: str, tail: str = "") -> str:
    return T.format(cols=cols) + (" " + tail if tail else "")


ROWS_T = ["INSERT INTO t (id) VALUES (1),(2),(3)"]
PARENT = "CREATE TABLE parent (id INT NOT NULL PRIMARY KEY, name VARCHAR(20))"
CHILD = "CREATE TABLE child (id INT NOT NULL PRIMARY KEY, parent_id INT, KEY k_parent (parent_id){fk})"
FK = ", CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id)"
FK_ROWS = ["INSERT INTO parent VALUES (1,'a'),(2,'b')", "INSERT INTO child VALUES (10,1),(11,2),(12,NULL)"]

CASES = [
    # ---- tables
    Case("create_table", [], [t("name VARCHAR(20)")], backward_destructive=True),
    Case("create_tables_in_dependency_order", [], [PARENT, CHILD.format(fk=FK)], backward_destructive=True),
    Case("foreign_key_cycle", [], [
        "CREATE TABLE a (id INT PRIMARY KEY, b_id INT, KEY (b_id))",
        "CREATE TABLE b (id INT PRIMARY KEY, a_id INT, KEY (a_id), FOREIGN KEY (a_id) REFERENCES a (id))",
        "ALTER TABLE a ADD CONSTRAINT a_b FOREIGN KEY (b_id) REFERENCES b (id)",
    ], backward_destructive=True),
    Case("one_of_several_tables", [t("x INT"), "CREATE TABLE u (id INT PRIMARY KEY)"],
         [t("x INT")], forward_destructive=True, before_rows=ROWS_T, after_rows=ROWS_T),
    # ---- columns
    Case("add_column", [t("a INT")], [t("a INT, b VARCHAR(10) DEFAULT 'x'")],
         backward_destructive=True, before_rows=ROWS_T, after_rows=ROWS_T),
    # NOT NULL without DEFAULT over rows: each row gets the type's implicit default, as on the
    # server (issue 17); the plan names the value and the row count (test_schema_implicit_defaults.py).
    Case("add_not_null_int_without_default", [t("a INT")], [t("a INT, n INT NOT NULL")],
         backward_destructive=True, before_rows=ROWS_T, after_rows=["INSERT INTO t VALUES (1, 1, 7), (2, 2, 0)"]),
    Case("add_not_null_varchar_without_default", [t("a INT")], [t("a INT, s VARCHAR(10) NOT NULL")],
         backward_destructive=True, before_rows=ROWS_T, after_rows=["INSERT INTO t VALUES (1, 1, 'x'), (2, 2, '')"]),
    Case("add_not_null_datetime_without_default", [t("a INT")], [t("a INT, dt DATETIME(3) NOT NULL")],
         backward_destructive=True, before_rows=ROWS_T,
         after_rows=["INSERT INTO t VALUES (1, 1, '2024-02-29 10:11:12.345')"]),
    Case("add_not_null_enum_without_default", [t("a INT")], [t("a INT, e ENUM('new','it''s') NOT NULL")],
         backward_destructive=True, before_rows=ROWS_T, after_rows=["INSERT INTO t VALUES (1, 1, 'it''s')"]),
    Case("add_not_null_decimal_without_default", [t("a INT")], [t("a INT, d DECIMAL(9,3) UNSIGNED NOT NULL")],
         backward_destructive=True, before_rows=ROWS_T, after_rows=["INSERT INTO t VALUES (1, 1, 12.5)"]),
    Case("add_not_null_columns_with_index_and_check", [t("a INT, KEY ka (a)")],
         [t("n BIGINT NOT NULL, a INT, d DATE NOT NULL, j JSON NOT NULL DEFAULT '{}', KEY ka (a), KEY kn (n, d), "
            "CONSTRAINT cn CHECK (n >= 0)")],
         backward_destructive=True, before_rows=ROWS_T,
         after_rows=["INSERT INTO t VALUES (1, 4, 1, '2020-01-01', '[]')"]),
    Case("widen_int", [t("a INT")], [t("a BIGINT")], backward_destructive=True,
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("widen_varchar", [t("a VARCHAR(10)")], [t("a VARCHAR(50)")], backward_destructive=True,
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("varchar_to_text", [t("a VARCHAR(100)")], [t("a TEXT")], backward_destructive=True,
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("nullability", [t("a INT NOT NULL DEFAULT 0")], [t("a INT NULL")],
         backward_destructive=True, before_rows=ROWS_T, after_rows=["INSERT INTO t VALUES (1,5),(2,6)"]),
    Case("default_literal", [t("a INT DEFAULT 1")], [t("a INT DEFAULT 2")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("default_expression", [t("d DATETIME")],
         [t("d DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("default_function_expression", [t("u VARCHAR(40) DEFAULT 'x'")],
         [t("u VARCHAR(40) DEFAULT (concat('id-', 1 + 1))")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("auto_increment", ["CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a INT)"],
         ["CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, a INT) AUTO_INCREMENT=100"],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("column_charset", [t("a VARCHAR(10) CHARACTER SET latin1")], [t("a VARCHAR(10) CHARACTER SET utf8mb4")],
         backward_destructive=True, before_rows=ROWS_T, after_rows=ROWS_T),
    Case("column_collation", [t("a VARCHAR(10) COLLATE utf8mb4_general_ci")], [t("a VARCHAR(10) COLLATE utf8mb4_bin")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("column_comment", [t("a INT COMMENT 'old'")], [t("a INT COMMENT 'new, with ''quotes'' and ;'")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("generated_expression", [t("a INT, g INT AS (a * 2) VIRTUAL")], [t("a INT, g INT AS (a * 3) VIRTUAL")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("generated_virtual_to_stored", [t("a INT, g INT AS (a + 1) VIRTUAL")],
         [t("a INT, g INT AS (a + 1) STORED")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("invisible_column", [t("a INT")], [t("a INT INVISIBLE")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("column_order", [t("a INT, b INT, c INT")], [t("c INT, a INT, b INT")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("column_order_and_add", [t("a INT, b INT, c INT")], [t("x INT, c INT, b INT, y INT, a INT")],
         backward_destructive=True, before_rows=ROWS_T, after_rows=ROWS_T),
    Case("enum_append", [t("e ENUM('a','b')")], [t("e ENUM('a','b','c')")], backward_destructive=True,
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("decimal_widen", [t("d DECIMAL(5,2)")], [t("d DECIMAL(8,3)")], backward_destructive=True,
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("signedness", [t("a INT")], [t("a INT UNSIGNED")], forward_destructive=True, backward_destructive=True),
    Case("json_column", [t("a INT")], [t("a INT, j JSON")], backward_destructive=True,
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("column_rename_hint", [t("old_name VARCHAR(10), KEY k (old_name)")],
         [t("new_name VARCHAR(10), KEY k (new_name)")],
         before_rows=["INSERT INTO t VALUES (1,'a'),(2,'b')"], after_rows=["INSERT INTO t VALUES (1,'a'),(2,'b')"],
         forward_renames=["{db}.t.old_name=new_name"], backward_renames=["{db}.t.new_name=old_name"]),
    Case("column_rename_hint_with_dependents",
         [t("a INT, b INT AS (a + 1) VIRTUAL, KEY ka (a), CONSTRAINT ca CHECK (a > 0)")],
         [t("z INT, b INT AS (z + 1) VIRTUAL, KEY ka (z), CONSTRAINT ca CHECK (z > 0)")],
         before_rows=["INSERT INTO t (id, a) VALUES (1, 5)"], after_rows=["INSERT INTO t (id, z) VALUES (1, 5)"],
         forward_renames=["{db}.t.a=z"], backward_renames=["{db}.t.z=a"]),
    Case("table_rename_hint", [PARENT, CHILD.format(fk=FK.replace("parent (id)", "parent (id)"))],
         [PARENT.replace("parent", "owner"), CHILD.format(fk=FK.replace("parent (id)", "owner (id)"))],
         before_rows=FK_ROWS, after_rows=[FK_ROWS[0].replace("parent", "owner"), FK_ROWS[1]],
         forward_renames=["{db}.parent=owner"], backward_renames=["{db}.owner=parent"]),
    # ---- indexes
    Case("add_index", [t("a INT")], [t("a INT, KEY ka (a)")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("primary_key_change", ["CREATE TABLE t (id INT NOT NULL, k INT NOT NULL DEFAULT 0, PRIMARY KEY (id))"],
         ["CREATE TABLE t (id INT NOT NULL, k INT NOT NULL DEFAULT 0, PRIMARY KEY (id, k))"],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("unique_key", [t("a INT")], [t("a INT, UNIQUE KEY ua (a)")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("fulltext_key", [t("body TEXT")], [t("body TEXT, FULLTEXT KEY ft (body)")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("spatial_key", [t("pt POINT NOT NULL")], [t("pt POINT NOT NULL, SPATIAL KEY sp (pt)")]),
    Case("prefix_length", [t("s VARCHAR(100), KEY ks (s(10))")], [t("s VARCHAR(100), KEY ks (s(20))")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("index_column_order", [t("a INT, b INT, KEY kab (a, b)")], [t("a INT, b INT, KEY kab (b, a)")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("descending_index", [t("a INT, KEY ka (a)")], [t("a INT, KEY ka (a DESC)")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("index_order_in_table", [t("a INT, b INT, KEY ka (a), KEY kb (b)")],
         [t("a INT, b INT, KEY kb (b), KEY ka (a)")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("index_inserted_in_middle", [t("a INT, b INT, c INT, KEY ka (a), KEY kc (c)")],
         [t("a INT, b INT, c INT, KEY ka (a), KEY kb (b), KEY kc (c)")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("index_comment", [t("a INT, KEY ka (a)")], [t("a INT, KEY ka (a) COMMENT 'lookup'")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    # ---- foreign keys
    Case("add_foreign_key", [PARENT, CHILD.format(fk="")], [PARENT, CHILD.format(fk=FK)],
         before_rows=FK_ROWS, after_rows=FK_ROWS),
    Case("foreign_key_action", [PARENT, CHILD.format(fk=FK + " ON DELETE CASCADE")],
         [PARENT, CHILD.format(fk=FK + " ON DELETE SET NULL")], before_rows=FK_ROWS, after_rows=FK_ROWS),
    Case("foreign_key_column_widen", [PARENT, CHILD.format(fk=FK)],
         [PARENT.replace("id INT", "id BIGINT"), CHILD.format(fk=FK).replace("parent_id INT", "parent_id BIGINT")],
         backward_destructive=True, before_rows=FK_ROWS, after_rows=FK_ROWS),
    Case("drop_referenced_table", [PARENT, CHILD.format(fk=FK)], [CHILD.format(fk="")],
         forward_destructive=True, before_rows=FK_ROWS, after_rows=["INSERT INTO child VALUES (10,NULL)"]),
    # ---- CHECK constraints
    Case("table_check", [t("a INT, b INT")], [t("a INT, b INT, CONSTRAINT ab CHECK (a <= b)")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("table_check_change", [t("a INT, CONSTRAINT ca CHECK (a > 0)")], [t("a INT, CONSTRAINT ca CHECK (a > 1)")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("column_check", [t("a INT")], [t("a INT CHECK (a >= 0)")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("check_order", [t("a INT, CONSTRAINT c1 CHECK (a > 0), CONSTRAINT c2 CHECK (a < 9)")],
         [t("a INT, CONSTRAINT c2 CHECK (a < 9), CONSTRAINT c1 CHECK (a > 0)")]),
    # ---- table options
    Case("engine", [t("a INT", "ENGINE=InnoDB")], [t("a INT", "ENGINE=Aria")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("engine_memory", [t("a INT", "ENGINE=InnoDB")], [t("a INT", "ENGINE=MEMORY")], forward_destructive=True),
    Case("row_format", [t("a INT", "ROW_FORMAT=DYNAMIC")], [t("a INT", "ROW_FORMAT=COMPACT")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("row_format_default", [t("a INT")], [t("a INT", "ROW_FORMAT=REDUNDANT")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("table_default_charset_only", [t("v VARCHAR(10)", "DEFAULT CHARSET=latin1")],
         [t("v VARCHAR(10) CHARACTER SET latin1", "DEFAULT CHARSET=utf8mb4")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("table_charset_convert", [t("v VARCHAR(10)", "DEFAULT CHARSET=latin1")],
         [t("v VARCHAR(10)", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")], backward_destructive=True,
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("table_collation", [t("v VARCHAR(10)", "COLLATE=utf8mb4_general_ci")],
         [t("v VARCHAR(10)", "COLLATE=utf8mb4_bin")], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("table_comment", [t("a INT")], [t("a INT", "COMMENT='reference data'")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    # ---- partitioning
    Case("partition_range", [t("a INT")], [t("a INT", "PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), "
                                                      "PARTITION p1 VALUES LESS THAN MAXVALUE)")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("partition_list_change",
         [t("a INT", "PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), "
                     "PARTITION p1 VALUES LESS THAN MAXVALUE)")],
         [t("a INT", "PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), "
                     "PARTITION p1 VALUES LESS THAN (100), PARTITION p2 VALUES LESS THAN MAXVALUE)")],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("partition_hash_count", [t("a INT", "PARTITION BY HASH (id) PARTITIONS 2")],
         [t("a INT", "PARTITION BY HASH (id) PARTITIONS 4")], before_rows=ROWS_T, after_rows=ROWS_T),
    # ---- views
    Case("create_view", [t("a INT")], [t("a INT"), "CREATE VIEW v AS SELECT id, a FROM t WHERE a > 0"],
         before_rows=ROWS_T, after_rows=ROWS_T),
    Case("view_definition", [t("a INT"), "CREATE VIEW v AS SELECT id FROM t"],
         [t("a INT"), "CREATE VIEW v AS SELECT id, a FROM t"], before_rows=ROWS_T, after_rows=ROWS_T),
    Case("view_on_view", [t("a INT")], [t("a INT"), "CREATE VIEW v1 AS SELECT id, a FROM t",
                                       "CREATE VIEW v2 AS SELECT id FROM v1 WHERE a IS NULL"]),
    Case("view_options", [t("a INT"), "CREATE VIEW v AS SELECT id, a FROM t WHERE a > 0"],
         [t("a INT"), "CREATE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW v AS SELECT id, a FROM t WHERE a > 0 "
                      "WITH CASCADED CHECK OPTION"]),
    Case("unique_not_null_sorts_first", [t("a INT NULL, b INT NOT NULL DEFAULT 0, UNIQUE KEY ua (a)")],
         [t("a INT NULL, b INT NOT NULL DEFAULT 0, UNIQUE KEY ua (a), UNIQUE KEY ub (b)")],
         before_rows=["INSERT INTO t VALUES (1, 1, 1), (2, 2, 2)"], after_rows=["INSERT INTO t VALUES (1, 1, 1)"]),
    Case("drop_indexed_column", [t("a INT, b INT, KEY kb (b), KEY kab (a, b)")], [t("a INT, KEY ka (a)")],
         forward_destructive=True, before_rows=ROWS_T, after_rows=ROWS_T),
    # ---- names that need quoting (they come from the catalogue, never from input)
    Case("awkward_identifiers", ["CREATE TABLE `we``ird; t` (id INT PRIMARY KEY, `co'l` INT)"],
         ["CREATE TABLE `we``ird; t` (id INT PRIMARY KEY, `co'l` BIGINT, `new \"c\"` INT, KEY `k-1` (`co'l`))",
          "CREATE VIEW `v; x` AS SELECT `co'l` FROM `we``ird; t`"],
         backward_destructive=True),
    Case("table_becomes_view", [t("a INT"), "CREATE TABLE v (id INT PRIMARY KEY)"],
         [t("a INT"), "CREATE VIEW v AS SELECT id FROM t"], forward_destructive=True),
    # ---- several changes at once
    Case("many_changes_one_table",
         [t("a INT, b VARCHAR(10), c INT, KEY kb (b), CONSTRAINT ca CHECK (a > 0)")],
         [t("b VARCHAR(20), a BIGINT, d DATE, KEY kd (d), KEY kab (a, b)", "COMMENT='v2'")],
         backward_destructive=True, forward_destructive=True, before_rows=ROWS_T, after_rows=ROWS_T),
]


# ---- helpers shared with the other schema tests ----------------------------------------------

AUTO_INC = re.compile(r" AUTO_INCREMENT=\d+")
# Connections here pass ssl_disabled=True: PyMySQL >= 1.2 otherwise builds a TLS context for
# every connection (about 0.1 s each) and the test server offers no TLS anyway.


def run(conn, db: str, statements: list[str]) -> None:
    conn.select_db(db)
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def snapshot(conn, db: str) -> dict[str, str]:
    """Every table's SHOW CREATE TABLE (counter aside) and every view's definition."""
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (db,))
        kinds = dict(cur.fetchall())
        out = {}
        for name, kind in kinds.items():
            if kind == "VIEW":
                cur.execute("SELECT VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE, ALGORITHM "
                            "FROM information_schema.VIEWS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s", (db, name))
                definition, *rest = cur.fetchone()
                out[name] = "VIEW " + map_databases(definition, {db: "DB"}) + " " + " ".join(rest)
            else:
                cur.execute(f"SHOW CREATE TABLE {qualified(db, name)}")
                out[name] = AUTO_INC.sub("", cur.fetchone()[1])
    return out


def row_ids(conn, db: str) -> dict[str, list]:
    """Per base table: its rows as sorted tuples of (column, type, value) strings."""
    out = {}
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA=%s AND IS_GENERATED='NEVER'", (db,))
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column, ctype in cur.fetchall():
            columns.setdefault(table, []).append((column, ctype))
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE'", (db,))
        for (name,) in cur.fetchall():
            cols = columns[name]
            cur.execute("SELECT " + ", ".join(quote(c) for c, _ in cols) + f" FROM {qualified(db, name)}")
            # Column order is schema, not data: each row's values sorted by column name.
            out[name] = sorted(tuple(sorted(f"{c}:{t}={v!s}" for (c, t), v in zip(cols, row, strict=True)))
                               for row in cur.fetchall())
    return out


def same_rows(before: list[tuple], after: list[tuple] | None) -> bool:
    """Same number of rows, and every value of a column kept with the same type unchanged."""
    if after is None or len(before) != len(after):
        return False
    for b, a in zip(before, after, strict=True):
        kept = {x.split("=", 1)[0] for x in b} & {x.split("=", 1)[0] for x in a}
        if [x for x in b if x.split("=", 1)[0] in kept] != [x for x in a if x.split("=", 1)[0] in kept]:
            return False
    return True


@pytest.fixture
def fresh_dbs(mariadb):
    """A factory of fresh (source, target) database pairs, all dropped afterwards."""
    made: list[str] = []
    conn = mariadb.connect(ssl_disabled=True)

    def make() -> tuple[str, str]:
        tag = uuid.uuid4().hex[:8]
        pair = (f"cs_{tag}", f"ct_{tag}")
        with conn.cursor() as cur:
            for db in pair:
                cur.execute(f"CREATE DATABASE `{db}`")
        made.extend(pair)
        return pair

    yield make
    with conn.cursor() as cur:
        for db in made:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
    conn.close()


def _sync_one_direction(mariadb, fresh_dbs, source_sql, target_sql, target_rows, destructive, hints):
    src_db, dst_db = fresh_dbs()
    src, dst = mariadb.connect(ssl_disabled=True), mariadb.connect(ssl_disabled=True)
    run(src, src_db, source_sql)
    run(dst, dst_db, target_sql)
    run(dst, dst_db, target_rows)
    rows_before = row_ids(dst, dst_db)
    target_before = snapshot(dst, dst_db)
    renames = [h.format(db=src_db) for h in hints]

    plan = plan_schema(src, dst, [(src_db, dst_db)], renames=renames)
    assert plan.statements, "a differing schema must give a non-empty plan"
    assert plan.notes == [], plan.notes
    assert bool(plan.destructive_clauses()) == destructive, plan.sql()
    if destructive:
        with pytest.raises(DestructiveChangeRefused) as refused:
            apply_schema(dst, plan)
        for clause in plan.destructive_clauses():
            assert clause.description in str(refused.value)
        assert snapshot(dst, dst_db) == target_before, "a refused plan must run no DDL"
    result = apply_schema(dst, plan, allow_destructive=destructive)
    assert result.converged is True
    assert len(result.executed) == len(plan.statements)

    assert snapshot(dst, dst_db) == snapshot(src, src_db)
    again = plan_schema(src, dst, [(src_db, dst_db)], renames=renames)
    assert again.statements == [], again.sql()
    if not destructive:
        rows_after = row_ids(dst, dst_db)
        table_renames = {h.split("=")[0].split(".")[1]: h.split("=")[1] for h in renames if h.count(".") == 1}
        column_renames = {tuple(h.split("=")[0].split(".")[1:]): h.split("=")[1] for h in renames if h.count(".") == 2}
        for table, rows in rows_before.items():
            table = table_renames.get(table, table)
            for (t, old), new in column_renames.items():  # a renamed column keeps its values
                if t == table:
                    rows = [tuple(sorted(new + x[len(old):] if x.startswith(old + ":") else x for x in r))
                            for r in rows]
            assert same_rows(rows, rows_after.get(table)), f"rows of {table} changed"
    src.close()
    dst.close()


@pytest.mark.mariadb
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_forward(mariadb, fresh_dbs, case: Case):
    _sync_one_direction(mariadb, fresh_dbs, case.after, case.before, case.before_rows,
                        case.forward_destructive, case.forward_renames)


@pytest.mark.mariadb
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_backward(mariadb, fresh_dbs, case: Case):
    _sync_one_direction(mariadb, fresh_dbs, case.before, case.after, case.after_rows,
                        case.backward_destructive, case.backward_renames)


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
