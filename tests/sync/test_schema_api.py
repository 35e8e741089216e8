"""The schema-sync API beyond the corpus: databases, names, ordering, refusal, dry run, verify."""

from __future__ import annotations

import pytest

from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.schema import (
    DestructiveChangeRefused,
    RowsPreventChange,
    SchemaNotConverged,
    SchemaPlan,
    apply_schema,
    parse_renames,
    plan_schema,
    sync_schema,
)
from dbrepl.sync.schema.classify import column_loss, type_loss
from dbrepl.sync.schema.model import Column, UnsupportedSchema
from tests.sync.test_schema_corpus import run, snapshot


class SpyConnection:
    """Records every statement; proves bad input is refused before any SQL."""

    def __init__(self):
        self.executed: list[str] = []

    def cursor(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        self.executed.append(sql)


@pytest.mark.parametrize("databases", [
    ["app`; DROP DATABASE mysql; --"], ["a'b"], ['a"b'], ["a;b"], ["a b"], [""], ["x" * 65],
    ["mysql"], ["information_schema"], ["performance_schema"], ["sys"], "app", [], [None], [("a", "b;c")],
])
def test_bad_database_names_run_no_sql(databases):
    src, dst = SpyConnection(), SpyConnection()
    with pytest.raises(InvalidInput):
        plan_schema(src, dst, databases)
    assert src.executed == [] and dst.executed == []


@pytest.mark.parametrize("hint", ["app.t", "app.t.c.d=x", "app.`t`=x", "app.t=x;y", "app.t='x'", "a=b=c", 7])
def test_bad_rename_hints_run_no_sql(hint):
    src, dst = SpyConnection(), SpyConnection()
    with pytest.raises(InvalidInput):
        plan_schema(src, dst, ["app"], renames=[hint])
    assert src.executed == [] and dst.executed == []


def test_rename_hint_for_a_database_not_synced_is_refused():
    with pytest.raises(InvalidInput, match="not being synced"):
        plan_schema(SpyConnection(), SpyConnection(), ["app"], renames=["other.a=b"])
    assert parse_renames(["app.a=b", "app.t.c=d"]).columns == {("app", "t", "c"): "d"}


@pytest.mark.mariadb
def test_source_database_must_exist(mariadb):
    with pytest.raises(InvalidInput, match="does not exist on the source"):
        plan_schema(mariadb.connect(ssl_disabled=True), mariadb.connect(ssl_disabled=True), ["no_such_db_here"])


@pytest.mark.mariadb
def test_missing_target_database_created_with_source_defaults(mariadb):
    conn = mariadb.connect(ssl_disabled=True)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS api_src")
        cur.execute("DROP DATABASE IF EXISTS api_new")
        cur.execute("CREATE DATABASE api_src CHARACTER SET latin1 COLLATE latin1_german1_ci")
        cur.execute("CREATE TABLE api_src.t (id INT PRIMARY KEY, name VARCHAR(10))")
    try:
        plan = plan_schema(conn, conn, [("api_src", "api_new")])
        assert plan.statements[0].sql == "CREATE DATABASE `api_new` CHARACTER SET latin1 COLLATE latin1_german1_ci"
        assert apply_schema(conn, plan).converged
        with conn.cursor() as cur:
            cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME='api_new'")
            assert cur.fetchone() == ("latin1", "latin1_german1_ci")
        assert snapshot(conn, "api_new") == snapshot(conn, "api_src")
        # An existing database with other defaults is altered to match (no rows involved).
        with conn.cursor() as cur:
            cur.execute("ALTER DATABASE api_new CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        plan = plan_schema(conn, conn, [("api_src", "api_new")])
        assert [s.sql for s in plan.statements] == [
            "ALTER DATABASE `api_new` CHARACTER SET latin1 COLLATE latin1_german1_ci"]
        assert apply_schema(conn, plan).converged
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS api_src")
            cur.execute("DROP DATABASE IF EXISTS api_new")


@pytest.mark.mariadb
def test_order_fks_dropped_first_added_last_parents_created_first(mariadb, db_pair):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    # Alphabetical order would create the child before its parent.
    run(conn, src_db, [
        "CREATE TABLE z_parent (id INT PRIMARY KEY)",
        "CREATE TABLE m_middle (id INT PRIMARY KEY, p INT, KEY (p), FOREIGN KEY (p) REFERENCES z_parent (id))",
        "CREATE TABLE a_child (id INT PRIMARY KEY, m INT, KEY (m), FOREIGN KEY (m) REFERENCES m_middle (id))",
        "CREATE TABLE kept (id BIGINT PRIMARY KEY, p INT, KEY (p),"
        " CONSTRAINT kept_p FOREIGN KEY (p) REFERENCES z_parent (id))",
    ])
    run(conn, dst_db, [
        "CREATE TABLE z_parent (id INT PRIMARY KEY)",
        "CREATE TABLE kept (id INT PRIMARY KEY, p INT, KEY (p),"
        " CONSTRAINT kept_p FOREIGN KEY (p) REFERENCES z_parent (id) ON DELETE CASCADE)",
    ])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    phases = [s.phase for s in plan.statements]
    # "finish tables" re-creates `kept`'s index on `p` explicitly before `kept_p` is re-added.
    assert phases == sorted(phases, key=["drop foreign keys", "create tables", "alter tables",
                                         "finish tables", "add foreign keys"].index)
    assert phases[0] == "drop foreign keys" and phases[-1] == "add foreign keys"
    created = [s.sql.split("`")[3] for s in plan.statements if s.phase == "create tables"]
    assert created == ["m_middle", "a_child"]
    assert all("FOREIGN KEY" not in s.sql for s in plan.statements if s.phase == "create tables")
    result = apply_schema(conn, plan)
    assert result.converged and snapshot(conn, dst_db) == snapshot(conn, src_db)


@pytest.mark.mariadb
def test_two_databases_with_a_cross_database_foreign_key(mariadb):
    conn = mariadb.connect(ssl_disabled=True)
    names = ["x_src_a", "x_src_b", "x_dst_a", "x_dst_b"]
    with conn.cursor() as cur:
        for n in names:
            cur.execute(f"DROP DATABASE IF EXISTS {n}")
        cur.execute("CREATE DATABASE x_src_a")
        cur.execute("CREATE DATABASE x_src_b")
        cur.execute("CREATE TABLE x_src_b.parent (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE x_src_a.child (id INT PRIMARY KEY, p INT, KEY (p), "
                    "CONSTRAINT c_p FOREIGN KEY (p) REFERENCES x_src_b.parent (id))")
        cur.execute("CREATE VIEW x_src_a.v AS SELECT c.id, p.id AS pid"
                    " FROM x_src_a.child c JOIN x_src_b.parent p ON c.p = p.id")
    try:
        pairs = [("x_src_a", "x_dst_a"), ("x_src_b", "x_dst_b")]
        result = sync_schema(conn, conn, pairs)
        assert result.converged
        with conn.cursor() as cur:
            cur.execute("SHOW CREATE TABLE x_dst_a.child")
            assert "REFERENCES `x_dst_b`.`parent`" in cur.fetchone()[1]
            cur.execute("SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA='x_dst_a'")
            definition = cur.fetchone()[0]
            assert "x_dst_b" in definition and "x_src" not in definition
        assert plan_schema(conn, conn, pairs).statements == []
    finally:
        with conn.cursor() as cur:
            for n in names:
                cur.execute(f"DROP DATABASE IF EXISTS {n}")


@pytest.mark.mariadb
def test_refusal_names_every_destructive_clause_and_runs_nothing(mariadb, db_pair):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, ["CREATE TABLE t (id INT PRIMARY KEY, a SMALLINT, b VARCHAR(5) NOT NULL, n INT)"])
    run(conn, dst_db, ["CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(50), c INT)",
                       "CREATE TABLE gone (id INT PRIMARY KEY)", "INSERT INTO t (id, a, b) VALUES (1, 2, 'x')"])
    before = snapshot(conn, dst_db)
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    assert snapshot(conn, dst_db) == before, "planning writes nothing"
    labels = sorted(c.label() for c in plan.destructive_clauses())
    assert labels == sorted([
        f"drop column `{dst_db}`.`t`.`c` (its values are lost; if column `c` was renamed to `n`, "
        f"pass --rename {src_db}.t.c=n)",
        f"modify column `{dst_db}`.`t`.`a` (type int(11) -> smallint(6) may lose data)",
        f"modify column `{dst_db}`.`t`.`b` (type varchar(50) -> varchar(5) may lose data; "
        "NULL -> NOT NULL replaces or refuses existing NULLs)",
        f"drop table `{dst_db}`.`gone` (its rows are lost)",
    ])
    with pytest.raises(DestructiveChangeRefused) as refused:
        apply_schema(conn, plan)
    for label in labels:
        assert label in str(refused.value)
    assert "no DDL was run" in str(refused.value)
    assert snapshot(conn, dst_db) == before
    # A safe clause in the same plan (add column n) did not run either.
    assert "`n`" not in snapshot(conn, dst_db)["t"]

    dry = apply_schema(conn, plan, dry_run=True)
    assert dry.dry_run and dry.executed == [] and dry.converged is None
    assert dry.to_dict()["refused"] == [c.label() for c in plan.destructive_clauses()]
    assert "DROP TABLE" in plan.sql() and snapshot(conn, dst_db) == before

    assert apply_schema(conn, plan, allow_destructive=True).converged
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)


@pytest.mark.mariadb
def test_duplicates_under_a_new_unique_key_are_refused_before_any_ddl(mariadb, db_pair):
    # Once this failed half-way (SchemaApplyFailed); the preflight now finds the rows first.
    # A statement failing after others ran: tests/sync/test_schema_failures.py.
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, ["CREATE TABLE t (id INT PRIMARY KEY, a INT, UNIQUE KEY ua (a))"])
    run(conn, dst_db, ["CREATE TABLE t (id INT PRIMARY KEY, a INT)", "INSERT INTO t VALUES (1, 5), (2, 5)"])
    before = snapshot(conn, dst_db)
    with pytest.raises(RowsPreventChange, match=r"`t`: add UNIQUE KEY `ua` \(`a`\) \(2 row\(s\) in the way"):
        sync_schema(conn, conn, [(src_db, dst_db)])
    assert snapshot(conn, dst_db) == before


@pytest.mark.mariadb
def test_verification_catches_an_incomplete_apply(mariadb, db_pair):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, ["CREATE TABLE t (id INT PRIMARY KEY, a INT)", "CREATE TABLE u (id INT PRIMARY KEY)"])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    partial = SchemaPlan(statements=plan.statements[:1], databases=plan.databases, source=plan.source)
    with pytest.raises(SchemaNotConverged, match="create table"):
        apply_schema(conn, partial)


@pytest.mark.mariadb
def test_unused_rename_hint_is_noted_and_rename_is_idempotent(mariadb, db_pair):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, ["CREATE TABLE new_t (id INT PRIMARY KEY, b INT)"])
    run(conn, dst_db, ["CREATE TABLE old_t (id INT PRIMARY KEY, a INT)", "INSERT INTO old_t VALUES (1, 7)"])
    hints = [f"{src_db}.old_t=new_t", f"{src_db}.new_t.a=b"]
    plan = plan_schema(conn, conn, [(src_db, dst_db)], renames=hints)
    assert [s.phase for s in plan.statements] == ["rename tables", "alter tables"]
    assert not plan.destructive_clauses()
    assert apply_schema(conn, plan).converged
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, b FROM `{dst_db}`.new_t")
        assert cur.fetchall() == ((1, 7),), "renames keep the rows and values"
    again = plan_schema(conn, conn, [(src_db, dst_db)], renames=hints)
    assert again.statements == [] and any("not used" in n for n in again.notes)


def _col(column_type: str, charset: str | None = None, nullable: bool = True, generated: str | None = None):
    return Column("c", column_type, charset, None, column_type, nullable, generated)


@pytest.mark.parametrize("old, new, safe", [
    ("int(11)", "bigint(20)", True), ("bigint(20)", "int(11)", False), ("int(11)", "int(10) unsigned", False),
    ("int(10) unsigned", "bigint(20)", True), ("int(10) unsigned", "int(11)", False),
    ("varchar(10)", "varchar(11)", True), ("varchar(10)", "varchar(9)", False), ("char(5)", "varchar(5)", True),
    ("varchar(5)", "char(5)", False), ("varchar(100)", "text", True), ("varchar(20000)", "text", False),
    ("text", "mediumtext", True), ("longtext", "text", False), ("decimal(5,2)", "decimal(6,2)", True),
    ("decimal(5,2)", "decimal(5,3)", False), ("enum('a','b')", "enum('a','b','c')", True),
    ("enum('a','b')", "enum('b','a')", False), ("datetime", "datetime(3)", True), ("datetime(3)", "datetime", False),
    ("date", "datetime", True), ("datetime", "date", False), ("float", "double", True), ("double", "float", False),
    ("varbinary(4)", "blob", True), ("blob", "tinyblob", False), ("int(11)", "varchar(20)", False),
])
def test_type_changes_classed(old, new, safe):
    assert (type_loss(_col(old, "utf8mb4"), _col(new, "utf8mb4")) is None) == safe


def test_charset_nullability_and_generated_classed():
    assert column_loss(_col("varchar(5)", "latin1"), _col("varchar(5)", "utf8mb4")) == []
    assert column_loss(_col("varchar(5)", "utf8mb4"), _col("varchar(5)", "latin1"))
    assert column_loss(_col("int(11)"), _col("int(11)", nullable=False))
    assert column_loss(_col("int(11)", nullable=False), _col("int(11)")) == []
    assert column_loss(_col("int(11)"), _col("int(11)", generated="VIRTUAL"))
    assert column_loss(_col("int(11)", generated="VIRTUAL"), _col("int(11)", generated="STORED")) == []


@pytest.mark.mariadb
def test_unsupported_objects_are_named_not_silently_dropped(mariadb, db_pair):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, ["CREATE SEQUENCE seq_orders", "CREATE TABLE t (id INT PRIMARY KEY)"])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    assert plan.notes == [f"sequence {src_db}.seq_orders is not synced (create it in a migration)"]
    assert [s.description for s in plan.statements] == [f"create table `{dst_db}`.`t`"]
    run(conn, src_db, ["CREATE TABLE audit (id INT PRIMARY KEY) WITH SYSTEM VERSIONING"])
    with pytest.raises(UnsupportedSchema, match="table audit: .*WITH SYSTEM VERSIONING"):
        plan_schema(conn, conn, [(src_db, dst_db)])


@pytest.mark.mariadb
def test_dsn_to_a_database_that_does_not_exist_yet(mariadb):
    from dbrepl.sync.connection import connect, parse_dsn

    conn = mariadb.connect(ssl_disabled=True)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS dsn_src")
        cur.execute("DROP DATABASE IF EXISTS dsn_new")
        cur.execute("CREATE DATABASE dsn_src")
        cur.execute("CREATE TABLE dsn_src.t (id INT PRIMARY KEY)")
    try:
        src_ep = parse_dsn(f"mysql://root@127.0.0.1:{mariadb.port}/dsn_src", environ={})
        dst_ep = parse_dsn(f"mysql://root@127.0.0.1:{mariadb.port}/dsn_new", environ={})
        src, dst = connect(src_ep), connect(dst_ep, select_database=False)
        seen = []
        plan = plan_schema(src, dst, [(src_ep.database, dst_ep.database)])
        result = apply_schema(dst, plan, progress=lambda i, st: seen.append((i, st.phase)))
        assert result.converged and seen == [(0, "databases"), (1, "create tables")]
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS dsn_src")
            cur.execute("DROP DATABASE IF EXISTS dsn_new")
