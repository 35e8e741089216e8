"""Versioned migrations against a real MariaDB; scripts from a local list and from S3 (moto)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.migrations import (
    CHECKSUM_ALGORITHM,
    LocalScripts,
    MigrationChecksumChanged,
    MigrationFailed,
    MigrationOrderError,
    S3Scripts,
    Script,
    apply_migrations,
    migration_status,
    parse_script_name,
    push_scripts,
    read_history,
)

V1 = "CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(50));\n"
V2 = """-- orders reference customers
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, note VARCHAR(20) DEFAULT 'a;b',
  FOREIGN KEY (customer_id) REFERENCES customer (id));
INSERT INTO customer VALUES (1, 'it''s; fine');
"""
V3 = """DELIMITER $$
CREATE PROCEDURE count_orders() BEGIN SELECT COUNT(*) FROM orders; SELECT 1; END$$
DELIMITER ;
CREATE INDEX customer_name ON customer (name);
"""
SCRIPTS = {"V1__create_customer.sql": V1, "V2__orders.sql": V2, "V3__procedure_and_index.sql": V3}


def tables(conn, db):
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (db,))
        return {r[0] for r in cur.fetchall()}


def test_script_names():
    assert parse_script_name("V1__init.sql") == ((1,), "init")
    assert parse_script_name("migrations/V2.10__add_index.sql") == ((2, 10), "add index")
    assert parse_script_name("V2_1__x-y.sql")[0] == (2, 1)
    for bad in ["v1__x.sql", "V1_x.sql", "V__x.sql", "V1__x.txt", "V1__x;drop.sql", "V1__`x`.sql", "V1__'x'.sql"]:
        with pytest.raises(InvalidInput):
            parse_script_name(bad)


def test_checksum_ignores_comments_and_layout_but_not_code():
    a = Script("V1__a.sql", "CREATE TABLE t (a INT);\n")
    b = Script("V1__a.sql", "-- the first table\r\nCREATE TABLE t (\r\n   a INT\r\n)  ;")
    c = Script("V1__a.sql", "CREATE TABLE t (a BIGINT);")
    d = Script("V1__a.sql", "INSERT INTO t VALUES ('x  y');")
    e = Script("V1__a.sql", "INSERT INTO t VALUES ('x y');")
    assert a.checksum == b.checksum
    assert a.checksum != c.checksum
    assert d.checksum != e.checksum  # whitespace inside a string is content


@pytest.mark.mariadb
def test_apply_three_then_nothing_then_edit_refused(mariadb, db_pair):
    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    source = LocalScripts(SCRIPTS)

    dry = apply_migrations(conn, db, source, dry_run=True)
    assert dry.pending == list(SCRIPTS) and dry.applied == []
    assert tables(conn, db) == set(), "a dry run writes nothing, not even the history table"

    result = apply_migrations(conn, db, source)
    assert result.applied == list(SCRIPTS) and result.status == "success"
    history = read_history(conn, db)
    assert [(h.version, h.script, h.success) for h in history] == [
        ("1", "V1__create_customer.sql", True), ("2", "V2__orders.sql", True),
        ("3", "V3__procedure_and_index.sql", True)]
    assert all(h.checksum == Script(h.script, SCRIPTS[h.script]).checksum for h in history)
    assert all(h.checksum_algorithm == CHECKSUM_ALGORITHM and h.installed_by and h.installed_on
               and h.execution_ms >= 0 for h in history)
    assert {"customer", "orders"} <= tables(conn, db)
    with conn.cursor() as cur:
        cur.execute(f"SELECT name FROM `{db}`.customer")
        assert cur.fetchall() == (("it's; fine",),)
        cur.execute("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s", (db,))
        assert cur.fetchall() == (("count_orders",),)

    again = apply_migrations(conn, db, source)
    assert again.applied == [] and again.pending == []
    assert len(read_history(conn, db)) == 3
    assert {s.state for s in migration_status(conn, db, source)} == {"applied"}

    # Comments and layout do not count as an edit; code does.
    relaid = dict(SCRIPTS, **{"V1__create_customer.sql": "-- hello\n" + V1.replace(" ", "  ")})
    assert apply_migrations(conn, db, LocalScripts(relaid)).applied == []
    edited = dict(SCRIPTS, **{"V2__orders.sql": V2.replace("VARCHAR(20)", "VARCHAR(30)")})
    edited["V4__more.sql"] = "CREATE TABLE later (id INT PRIMARY KEY);"
    with pytest.raises(MigrationChecksumChanged, match="V2__orders.sql"):
        apply_migrations(conn, db, LocalScripts(edited))
    assert "later" not in tables(conn, db), "nothing runs after a checksum mismatch"
    assert [s.state for s in migration_status(conn, db, LocalScripts(edited))] == [
        "applied", "changed", "applied", "pending"]


@pytest.mark.mariadb
def test_failing_script_is_recorded_and_stops_the_run(mariadb, db_pair):
    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    scripts = {
        "V1__ok.sql": "CREATE TABLE a (id INT PRIMARY KEY);",
        "V2__broken.sql": "CREATE TABLE b (id INT PRIMARY KEY);\nCREATE TABLE a (id INT);",
        "V3__later.sql": "CREATE TABLE c (id INT PRIMARY KEY);",
    }
    with pytest.raises(MigrationFailed, match="V2__broken.sql") as failed:
        apply_migrations(conn, db, LocalScripts(scripts))
    assert failed.value.result.applied == ["V1__ok.sql"]
    assert failed.value.result.failed == "V2__broken.sql"
    assert "already exists" in failed.value.result.error
    history = read_history(conn, db)
    assert [(h.script, h.success) for h in history] == [("V1__ok.sql", True), ("V2__broken.sql", False)]
    assert "c" not in tables(conn, db), "later scripts are not applied"

    # The same failed script blocks every later run, with nothing run.
    with pytest.raises(MigrationOrderError, match="failed earlier"):
        apply_migrations(conn, db, LocalScripts(scripts))
    assert "c" not in tables(conn, db)
    # Fixed (changed) script: retried, then the rest applies.
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE `{db}`.b")
    fixed = dict(scripts, **{"V2__broken.sql": "CREATE TABLE b (id INT PRIMARY KEY);"})
    assert apply_migrations(conn, db, LocalScripts(fixed)).applied == ["V2__broken.sql", "V3__later.sql"]
    assert [(h.script, h.success) for h in read_history(conn, db)] == [
        ("V1__ok.sql", True), ("V2__broken.sql", True), ("V3__later.sql", True)]


@pytest.mark.mariadb
def test_older_pending_script_is_refused_and_up_to_limits(mariadb, db_pair):
    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    scripts = {"V1__a.sql": "CREATE TABLE a (id INT);", "V3__c.sql": "CREATE TABLE c (id INT);"}
    assert apply_migrations(conn, db, LocalScripts(scripts), up_to="V1__a.sql").applied == ["V1__a.sql"]
    assert apply_migrations(conn, db, LocalScripts(scripts)).applied == ["V3__c.sql"]
    with pytest.raises(MigrationOrderError, match="V2__b.sql"):
        apply_migrations(conn, db, LocalScripts(dict(scripts, **{"V2__b.sql": "CREATE TABLE b (id INT);"})))
    assert "b" not in tables(conn, db)


@pytest.mark.mariadb
def test_bad_database_names_run_nothing(mariadb):
    conn = mariadb.connect(ssl_disabled=True)
    for bad in ["x`; DROP DATABASE mysql; --", "a'b", "a;b", "mysql", ""]:
        with pytest.raises(InvalidInput):
            apply_migrations(conn, bad, LocalScripts({"V1__a.sql": "CREATE TABLE a (id INT);"}))
    with pytest.raises(InvalidInput, match="same version"):
        apply_migrations(conn, "anything", LocalScripts({"V1__a.sql": "", "V1.0__b.sql": ""}))


@pytest.mark.mariadb
def test_scripts_pushed_to_s3_apply(mariadb, db_pair, tmp_path, monkeypatch):
    _, db = db_pair
    monkeypatch.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)  # no IAM here; faster
    conn = mariadb.connect(ssl_disabled=True)
    paths = []
    for name, content in SCRIPTS.items():
        (tmp_path / name).write_text(content)
        paths.append(tmp_path / name)
    (tmp_path / "bad name.sql").write_text("SELECT 1;")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="migration-scripts-t1-123456789012")
        with pytest.raises(InvalidInput):
            push_scripts(s3, "migration-scripts-t1-123456789012", [*paths, tmp_path / "bad name.sql"])
        assert s3.list_objects_v2(Bucket="migration-scripts-t1-123456789012")["KeyCount"] == 0
        keys = push_scripts(s3, "migration-scripts-t1-123456789012", paths)
        assert keys == [f"migrations/{n}" for n in SCRIPTS]
        source = S3Scripts(s3, "migration-scripts-t1-123456789012")
        assert sorted(source.names()) == sorted(SCRIPTS)
        assert apply_migrations(conn, db, source).applied == list(SCRIPTS)
        assert apply_migrations(conn, db, source).applied == []
