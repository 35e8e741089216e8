"""Versioned migrations against a real MariaDB; scripts from a local list and from S3 (moto)."""

from __future__ import annotations

import boto3
import pymysql
import pytest
from moto import mock_aws

from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.migrations import (
    CHECKSUM_ALGORITHM,
    COMMITS,
    ENDS,
    MAY_COMMIT_BLOCK,
    MAY_COMMIT_CALL,
    NO_TRANSACTION,
    UNKNOWN,
    LocalScripts,
    MigrationChecksumChanged,
    MigrationFailed,
    MigrationHistoryConflict,
    MigrationOrderError,
    S3Scripts,
    Script,
    apply_migrations,
    migration_status,
    parse_script_name,
    push_scripts,
    read_history,
    statement_commits,
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


# ---- atomicity (issue 10, point 5) ---------------------------------------------------------

PROCEDURE_SCRIPT = """-- a procedure behind DELIMITER; its body holds ';' and a DELETE
INSERT INTO `select` (`from`) VALUES ('x');
DELIMITER $$
/* the body */ CREATE DEFINER=CURRENT_USER PROCEDURE `p;1`() BEGIN
  DELETE FROM `select` WHERE `from` = 'a;b'; SELECT 'END$$ not here';
END$$
DELIMITER ;
UPDATE `select` SET `from` = 'y';
"""

CLASSIFIED = [
    # Transactional: rows only, session variables, temporary tables.
    ("INSERT INTO `CREATE` (`DROP`) VALUES ('DROP TABLE x; -- ')", None),
    ("  (SELECT 'ALTER') UNION (SELECT `TRUNCATE` FROM `LOCK`)", None),
    ("WITH `commit` AS (SELECT 1 AS `begin`) DELETE FROM t WHERE id IN (SELECT `begin` FROM `commit`)", None),
    ("update `drop` set `alter` = \"CREATE TABLE\"", None),
    ("REPLACE INTO t VALUES (1)", None),
    ("SET @autocommit := 1, @@session.sql_mode = 'ANSI'", None),
    ("SET NAMES utf8mb4", None),
    ("/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE */", None),
    ("CREATE TEMPORARY TABLE tmp (a INT)", None),
    ("create or replace temporary table tmp (a INT)", None),
    ("DROP TEMPORARY TABLE IF EXISTS tmp", None),
    ("SAVEPOINT s", None),
    ("ROLLBACK WORK TO SAVEPOINT s", None),
    ("LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t", None),
    ("SET STATEMENT max_statement_time=5 FOR INSERT INTO t VALUES (1)", None),
    ("INSERT /*! IGNORE */ INTO t VALUES (1)", None),
    ("USE `app`", None),
    # Hidden behind comments and executable comments.
    ("/* x */ CREATE TABLE t (a INT)", COMMITS),
    ("-- c\nDROP TABLE t", COMMITS),
    ("# hash comment\n  TRUNCATE t", COMMITS),
    ("/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`a`@`%` */ /*!50001 VIEW v AS SELECT 1 */",
     COMMITS),
    ("/*!40000 ALTER TABLE t DISABLE KEYS */", COMMITS),
    ("/*M!100301 ALTER TABLE t FORCE */", COMMITS),
    ("/*!99999 SELECT 1 */ DROP TABLE t", COMMITS),  # an older server skips the comment
    ("CREATE /*!99999 TEMPORARY */ TABLE t (a INT)", COMMITS),
    ("/*!CREATE TABLE t (a INT)*/", COMMITS),
    # The families of the implicit-commit pages.
    ("ALTER TABLE t ADD COLUMN b INT", COMMITS),
    ("RENAME TABLE a TO b", COMMITS),
    ("CREATE INDEX i ON tmp (a)", COMMITS),
    ("CREATE PROCEDURE p() BEGIN SELECT 1; END", COMMITS),
    ("GRANT SELECT ON db.* TO u", COMMITS),
    ("CREATE USER u", COMMITS),
    ("SET PASSWORD FOR u = PASSWORD('x')", COMMITS),
    ("LOCK TABLES t WRITE", COMMITS),
    ("UNLOCK TABLES", COMMITS),
    ("START TRANSACTION", COMMITS),
    ("BEGIN", COMMITS),
    ("begin work", COMMITS),
    ("SET autocommit = 1", COMMITS),
    ("SET SESSION sql_mode = '', @@local.autocommit = 0", COMMITS),
    ("ANALYZE TABLE t", COMMITS),
    ("LOAD INDEX INTO CACHE t", COMMITS),
    ("FLUSH PRIVILEGES", COMMITS),
    ("START SLAVE", COMMITS),
    ("SET STATEMENT max_statement_time=5 FOR CREATE TABLE t (a INT)", COMMITS),
    ("COMMIT", ENDS),
    ("ROLLBACK", ENDS),
    ("CALL `CREATE`()", MAY_COMMIT_CALL),
    ("BEGIN NOT ATOMIC INSERT INTO t VALUES (1); END", MAY_COMMIT_BLOCK),
    ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", NO_TRANSACTION),
    ("HANDLER t OPEN", UNKNOWN),
]


@pytest.mark.parametrize(("statement", "reason"), CLASSIFIED)
def test_statements_are_classified_by_their_leading_keyword(statement, reason):
    assert statement_commits(statement) == reason


def test_script_atomicity_and_its_warning():
    assert Script("V1__dml.sql", "INSERT INTO t VALUES (1);\n-- CREATE TABLE x\nDELETE FROM t;").first_commit() is None
    assert Script("V1__dml.sql", "INSERT INTO t VALUES (1);").atomicity_warning() is None
    proc = Script("V2__proc.sql", PROCEDURE_SCRIPT)
    assert len(proc.statements()) == 3
    c = proc.first_commit()
    assert (c.number, c.reason) == (2, COMMITS)
    assert c.excerpt.startswith("CREATE DEFINER=CURRENT_USER PROCEDURE `p;1`()") and c.excerpt.endswith("...")
    assert proc.atomicity_warning() == (
        f"V2__proc.sql is not atomic: statement 2 ({c.excerpt}) commits implicitly; "
        "a failure part-way leaves earlier statements applied")
    ddl = Script("V3__x.sql", "/* first */ CREATE TABLE `a``b` (id INT);\nINSERT INTO `a``b` VALUES (1);")
    assert ddl.atomicity_warning() == (
        "V3__x.sql is not atomic: statement 1 (CREATE TABLE `a``b` (id INT)) commits implicitly; "
        "a failure part-way leaves earlier statements applied")


# Statements whose effect on an open transaction the server itself shows: the transaction
# ended (committed or rolled back) or not. Setup in _ground_truth_db.
GROUND_TRUTH = [
    "INSERT INTO t VALUES (100, 1)", "UPDATE t SET v = 2", "DELETE FROM t WHERE id = 1",
    "REPLACE INTO t VALUES (101, 1)", "SELECT * FROM t", "(SELECT 1) UNION (SELECT 2)",
    "WITH c AS (SELECT 1 AS x) SELECT x FROM c", "DO 1", "SET @x = 1", "SET NAMES utf8mb4",
    "/*!40101 SET @y = 2 */", "SAVEPOINT s2", "ROLLBACK TO SAVEPOINT sp",
    "CREATE TEMPORARY TABLE tmp_x (a INT)", "CREATE OR REPLACE TEMPORARY TABLE tmp_y (a INT)",
    "DROP TEMPORARY TABLE IF EXISTS tmp_y", "SHOW TABLES",
    "SET STATEMENT max_statement_time=10 FOR INSERT INTO t VALUES (102, 1)",
    "/* x */ CREATE TABLE c1 (a INT)", "-- c\nDROP TABLE c1", "# h\nTRUNCATE TABLE m2",
    "/*!50001 CREATE VIEW v1 AS SELECT 1 AS a */", "/*!40000 ALTER TABLE t DISABLE KEYS */",
    "/*M!100000 ALTER TABLE t FORCE */", "CREATE INDEX i1 ON t (v)", "RENAME TABLE m3 TO m4",
    "CREATE TABLE t (a INT)",  # fails (exists), and still commits
    "LOCK TABLES t WRITE", "CREATE USER 'u_gt'@'localhost'", "DROP USER 'u_gt'@'localhost'",
    "START TRANSACTION", "BEGIN", "COMMIT", "ROLLBACK", "ANALYZE TABLE t", "CHECK TABLE t",
    "CREATE PROCEDURE p1() BEGIN SELECT 1; END", "DROP PROCEDURE p1",
    "SET STATEMENT max_statement_time=10 FOR CREATE TABLE c4 (a INT)",
]


@pytest.mark.mariadb
def test_classification_agrees_with_the_server(mariadb, db_pair):
    """Each statement inside an open transaction: the server says whether it ended it."""
    _, db = db_pair
    conn = mariadb.connect(database=db, ssl_disabled=True)
    with conn.cursor() as cur:
        for ddl in ["CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)",
                    "CREATE TABLE marker (id INT PRIMARY KEY)", "CREATE TABLE m2 (a INT)",
                    "CREATE TABLE m3 (a INT)"]:
            cur.execute(ddl)
        seen = set()
        for n, statement in enumerate(GROUND_TRUTH):
            conn.begin()
            cur.execute("INSERT INTO marker VALUES (%s)", (n,))
            cur.execute("SAVEPOINT sp")
            try:
                cur.execute(statement)
                while cur.nextset():
                    pass
            except pymysql.err.MySQLError:
                assert statement == "CREATE TABLE t (a INT)", statement
            cur.execute("SELECT @@in_transaction")
            open_after = cur.fetchone()[0]
            conn.rollback()
            cur.execute("UNLOCK TABLES")
            cur.execute("SELECT COUNT(*) FROM marker WHERE id = %s", (n,))
            ended = cur.fetchone()[0] == 1 or open_after == 0
            assert (statement_commits(statement) is not None) == ended, (statement, ended)
            seen.add(ended)
        assert seen == {True, False}
        conn.begin()
        with pytest.raises(pymysql.err.MySQLError) as exc:  # why SET TRANSACTION is not atomic
            cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        assert exc.value.args[0] == 1568
        conn.rollback()


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


NASTY_TABLE = "CREATE TABLE `select` (`from` VARCHAR(20) PRIMARY KEY, `order` INT);"
DML_SCRIPT = """-- seed; quotes, comments and a ';' inside strings
INSERT INTO `select` (`from`, `order`) VALUES ('it''s;', 1), ("d\\"q", 2);
/* an update */ UPDATE `select` SET `order` = `order` + 10 WHERE `from` <> '-- not a comment';
DELETE FROM `select` WHERE `order` = 999;
INSERT INTO `select` (`from`, `order`) VALUES ('taken', 3);
"""


@pytest.mark.mariadb
@pytest.mark.parametrize("autocommit", [True, False])
def test_dml_script_failing_at_its_last_statement_leaves_no_row(mariadb, db_pair, autocommit):
    _, db = db_pair
    conn = mariadb.connect(database=db, ssl_disabled=True)
    conn.autocommit(autocommit)
    scripts = {"V1__table.sql": NASTY_TABLE, "V2__seed.sql": DML_SCRIPT}
    assert apply_migrations(conn, db, LocalScripts(scripts), up_to="V1__table.sql").applied == ["V1__table.sql"]
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{db}`.`select` VALUES ('taken', 0)")  # the last INSERT will clash
    conn.commit()
    assert Script("V2__seed.sql", DML_SCRIPT).first_commit() is None

    with pytest.raises(MigrationFailed) as failed:
        apply_migrations(conn, db, LocalScripts(scripts))
    result = failed.value.result
    assert (result.failed, result.atomic, result.failed_statement, result.statements_run) == (
        "V2__seed.sql", True, 4, 3)
    assert result.failed_excerpt == "INSERT INTO `select` (`from`, `order`) VALUES ('taken', 3)"
    assert result.error.startswith("Duplicate entry 'taken'")  # the server's message
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"{db}: V2__seed.sql failed at statement 4 of 4 (INSERT")
    assert "Duplicate entry 'taken'" in message and "rolled back: none of its changes remain" in message
    other = mariadb.connect(ssl_disabled=True)  # what any other session sees
    assert rows(other, f"SELECT `from`, `order` FROM `{db}`.`select`") == [("taken", 0)]
    history = read_history(other, db)
    assert [(h.script, h.success, h.atomic_run, h.failed_statement, h.statements_run) for h in history] == [
        ("V1__table.sql", True, False, None, 1), ("V2__seed.sql", False, True, 4, 3)]
    assert "Duplicate entry" in history[1].error_message and history[1].rolled_back
    status = migration_status(other, db, LocalScripts(scripts))[1]
    assert (status.state, status.atomic, status.rolled_back, status.failed_statement) == ("failed", True, True, 4)

    # Rolled back, so the same script may run again once the data is fixed.
    with other.cursor() as cur:
        cur.execute(f"DELETE FROM `{db}`.`select` WHERE `from` = 'taken'")
    assert apply_migrations(conn, db, LocalScripts(scripts)).applied == ["V2__seed.sql"]
    assert sorted(rows(other, f"SELECT `from`, `order` FROM `{db}`.`select`")) == [
        ('d"q', 12), ("it's;", 11), ("taken", 3)]
    assert [(h.script, h.success, h.atomic_run, h.statements_run) for h in read_history(other, db)] == [
        ("V1__table.sql", True, False, 1), ("V2__seed.sql", True, True, 4)]
    assert conn.get_autocommit() == autocommit, "the connection's autocommit is left as it was"


@pytest.mark.mariadb
def test_non_atomic_script_failing_at_statement_2_says_what_ran(mariadb, db_pair):
    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    script = ("/* make it */ CREATE TABLE `we;ird``t` (id INT PRIMARY KEY);\n"
              "-- then\nINSERT INTO `nosuch` VALUES (1);\nINSERT INTO `we;ird``t` VALUES (1);\n")
    scripts = {"V1__mixed.sql": script, "V2__later.sql": "INSERT INTO `we;ird``t` VALUES (2);"}
    dry = apply_migrations(conn, db, LocalScripts(scripts), dry_run=True)
    assert dry.warnings == [
        "V1__mixed.sql is not atomic: statement 1 (CREATE TABLE `we;ird``t` (id INT PRIMARY KEY)) "
        "commits implicitly; a failure part-way leaves earlier statements applied"]
    pending = migration_status(conn, db, LocalScripts(scripts))
    assert [(s.state, s.atomic) for s in pending] == [("pending", False), ("pending", True)]
    assert pending[0].not_atomic_because == (
        "statement 1 (CREATE TABLE `we;ird``t` (id INT PRIMARY KEY)) commits implicitly")

    with pytest.raises(MigrationFailed) as failed:
        apply_migrations(conn, db, LocalScripts(scripts))
    result = failed.value.result
    assert (result.failed, result.atomic, result.failed_statement, result.statements_run) == (
        "V1__mixed.sql", False, 2, 1)
    assert ("failed at statement 2 of 3 (INSERT INTO `nosuch` VALUES (1)): Table "
            f"'{db}.nosuch' doesn't exist; statement 1 ran and stays applied (not atomic: statement 1 "
            "(CREATE TABLE `we;ird``t` (id INT PRIMARY KEY)) commits implicitly)") in str(failed.value)
    assert result.error == f"Table '{db}.nosuch' doesn't exist"
    assert "we;ird`t" in tables(conn, db) and rows(conn, f"SELECT id FROM `{db}`.`we;ird``t`") == []
    h = read_history(conn, db)[0]
    assert (h.success, h.atomic_run, h.failed_statement, h.statements_run, h.failed_excerpt) == (
        False, False, 2, 1, "INSERT INTO `nosuch` VALUES (1)")
    s = migration_status(conn, db, LocalScripts(scripts))[0]
    assert (s.state, s.atomic, s.rolled_back, s.failed_statement, s.statements_run) == ("failed", False, False, 2, 1)

    # Statements stayed applied: the unchanged script is refused, naming where it stopped.
    with pytest.raises(MigrationOrderError, match=r"at statement 2 \(INSERT INTO `nosuch` VALUES \(1\)\) "
                                                  r"after 1 statement\(s\) ran and stayed applied"):
        apply_migrations(conn, db, LocalScripts(scripts))
    fixed = dict(scripts, **{"V1__mixed.sql": script.replace("`nosuch`", "`we;ird``t`").replace(
        "VALUES (1);\nINSERT", "VALUES (3);\nINSERT").replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS")})
    assert apply_migrations(conn, db, LocalScripts(fixed)).applied == ["V1__mixed.sql", "V2__later.sql"]
    assert rows(conn, f"SELECT id FROM `{db}`.`we;ird``t` ORDER BY id") == [(1,), (2,), (3,)]
    assert [(h.script, h.success) for h in read_history(conn, db)] == [
        ("V1__mixed.sql", True), ("V2__later.sql", True)]


@pytest.mark.mariadb
def test_procedure_script_behind_delimiter_is_not_atomic(mariadb, db_pair):
    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    scripts = {"V1__t.sql": NASTY_TABLE, "V2__proc.sql": PROCEDURE_SCRIPT}
    result = apply_migrations(conn, db, LocalScripts(scripts))
    assert result.applied == list(scripts) and len(result.warnings) == 2
    assert result.warnings[1].startswith("V2__proc.sql is not atomic: statement 2 (CREATE DEFINER")
    assert rows(conn, f"SELECT `from` FROM `{db}`.`select`") == [("y",)]
    assert rows(conn, f"SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='{db}'") == [
        ("p;1",)]
    assert [h.atomic_run for h in read_history(conn, db)] == [False, False]


@pytest.mark.mariadb
@pytest.mark.parametrize("impostor", [
    "CREATE TABLE {t} (id INT PRIMARY KEY, version VARCHAR(10), success INT)",
    "CREATE VIEW {t} AS SELECT 1 AS installed_rank",
])
def test_a_user_table_named_like_the_history_is_refused(mariadb, db_pair, impostor):
    _, db = db_pair
    conn = mariadb.connect(database=db, ssl_disabled=True)
    with conn.cursor() as cur:
        cur.execute(impostor.format(t="dbrepl_schema_history"))
        if impostor.startswith("CREATE TABLE"):
            cur.execute("INSERT INTO dbrepl_schema_history VALUES (1, '1', 0)")
    before = rows(conn, "SELECT * FROM dbrepl_schema_history")
    source = LocalScripts({"V1__a.sql": "CREATE TABLE a (id INT);"})
    for call in (lambda: apply_migrations(conn, db, source), lambda: migration_status(conn, db, source),
                 lambda: read_history(conn, db)):
        with pytest.raises(MigrationHistoryConflict) as exc:
            call()
        message = str(exc.value)
        assert "\n" not in message and f"{db}.dbrepl_schema_history is a" in message
        assert "not dbrepl's migration history" in message and "rename or drop it" in message
    assert "missing " in message
    assert "a" not in tables(conn, db), "nothing ran"
    assert rows(conn, "SELECT * FROM dbrepl_schema_history") == before, "the user's table is untouched"


@pytest.mark.mariadb
def test_history_of_the_first_shape_is_read_and_upgraded(mariadb, db_pair):
    _, db = db_pair
    conn = mariadb.connect(database=db, ssl_disabled=True)
    with conn.cursor() as cur:  # the table as dbrepl created it before atomicity was recorded
        cur.execute(
            "CREATE TABLE dbrepl_schema_history (installed_rank INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "version VARCHAR(50) NOT NULL, description VARCHAR(200) NOT NULL, script VARCHAR(255) NOT NULL, "
            "checksum CHAR(64) NOT NULL, checksum_algorithm VARCHAR(32) NOT NULL, "
            "installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), "
            "execution_ms INT NOT NULL, success TINYINT(1) NOT NULL, KEY version_idx (version))")
        v1 = Script("V1__a.sql", "CREATE TABLE a (id INT);")
        cur.execute(v1.content)
        cur.execute("INSERT INTO dbrepl_schema_history (version, description, script, checksum, "
                    "checksum_algorithm, installed_by, execution_ms, success) VALUES "
                    "('1', 'a', 'V1__a.sql', %s, %s, 'me', 1, 1)", (v1.checksum, CHECKSUM_ALGORITHM))
    scripts = {"V1__a.sql": v1.content, "V2__b.sql": "INSERT INTO a VALUES (1);"}
    old = read_history(conn, db)
    assert [(h.script, h.success, h.atomic_run, h.statements_run) for h in old] == [("V1__a.sql", True, None, None)]
    assert [s.state for s in migration_status(conn, db, LocalScripts(scripts))] == ["applied", "pending"]
    assert apply_migrations(conn, db, LocalScripts(scripts)).applied == ["V2__b.sql"]
    assert [(h.script, h.atomic_run, h.statements_run) for h in read_history(conn, db)] == [
        ("V1__a.sql", None, None), ("V2__b.sql", True, 1)]


@pytest.mark.mariadb
def test_rollback_says_when_a_non_transactional_table_kept_its_rows(mariadb, db_pair):
    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    scripts = {"V1__t.sql": "CREATE TABLE `my isam` (id INT PRIMARY KEY) ENGINE=MyISAM;",
               "V2__seed.sql": "INSERT INTO `my isam` VALUES (1);\nINSERT INTO `my isam` VALUES (1);"}
    with pytest.raises(MigrationFailed) as failed:
        apply_migrations(conn, db, LocalScripts(scripts))
    assert failed.value.result.atomic is True
    assert ("rolled back: none of its changes remain (except in non-transactional tables such as MyISAM, "
            "Aria or MEMORY, which kept theirs)") in str(failed.value)
    assert rows(conn, f"SELECT id FROM `{db}`.`my isam`") == [(1,)]


@pytest.mark.mariadb
def test_non_atomic_script_own_open_transaction_is_rolled_back_on_failure(mariadb, db_pair):
    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    script = ("CREATE TABLE x (id INT PRIMARY KEY);\nSTART TRANSACTION;\nINSERT INTO x VALUES (1);\n"
              "INSERT INTO x VALUES (1);\nCOMMIT;\n")
    with pytest.raises(MigrationFailed) as failed:
        apply_migrations(conn, db, LocalScripts({"V1__tx.sql": script}))
    result = failed.value.result
    assert (result.atomic, result.failed_statement, result.statements_run) == (False, 4, 3)
    assert rows(conn, f"SELECT id FROM `{db}`.x") == [], "the script's own uncommitted transaction"
    assert [(h.success, h.failed_statement) for h in read_history(conn, db)] == [(False, 4)]


def test_history_times_are_utc_whatever_the_session_time_zone(mariadb, db_pair):
    """installed_on is a TIMESTAMP (stored in UTC, shown in the session's zone): read as UTC, `Z`."""
    import datetime

    from dbrepl.sync.migrations import utc_text

    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(seconds=1)
    apply_migrations(conn, db, LocalScripts({"V1__create_customer.sql": V1}))
    for zone in ("+00:00", "+05:30", "-08:00"):
        with conn.cursor() as cur:
            cur.execute("SET time_zone = %s", (zone,))
        (row,) = read_history(conn, db)
        assert row.installed_on.endswith("Z"), row.installed_on
        when = datetime.datetime.strptime(row.installed_on, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
        assert before <= when <= before + datetime.timedelta(minutes=5), (zone, row.installed_on)
        assert migration_status(conn, db, LocalScripts({"V1__create_customer.sql": V1}))[0].to_dict()[
            "installed_on"] == row.installed_on
    assert utc_text(0) == "1970-01-01T00:00:00.000Z" and utc_text(None) is None


def test_repair_removes_failures_and_realigns_changed_checksums(mariadb, db_pair):
    from dbrepl.sync.migrations import repair_history

    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    apply_migrations(conn, db, LocalScripts({"V1__create_customer.sql": V1}))
    bad = {"V1__create_customer.sql": V1, "V2__bad.sql": "INSERT INTO nosuch VALUES (1);\n"}
    with pytest.raises(MigrationFailed):
        apply_migrations(conn, db, LocalScripts(bad))
    edited = {"V1__create_customer.sql": V1.replace("VARCHAR(50)", "VARCHAR(60)"), "V2__bad.sql": bad["V2__bad.sql"]}
    states = [s.state for s in migration_status(conn, db, LocalScripts(edited))]
    assert states == ["changed", "failed"]

    dry = repair_history(conn, db, LocalScripts(edited), dry_run=True)
    assert (dry.removed_failed, dry.realigned) == (["V2__bad.sql"], ["V1__create_customer.sql"])
    assert [s.state for s in migration_status(conn, db, LocalScripts(edited))] == states, "a dry run writes nothing"

    only_failed = repair_history(conn, db, LocalScripts(edited), realign=False)
    assert (only_failed.removed_failed, only_failed.realigned) == (["V2__bad.sql"], [])
    assert [s.state for s in migration_status(conn, db, LocalScripts(edited))] == ["changed", "pending"]

    done = repair_history(conn, db, LocalScripts(edited))
    assert done.realigned == ["V1__create_customer.sql"]
    assert [s.state for s in migration_status(conn, db, LocalScripts(edited))] == ["applied", "pending"]
    assert repair_history(conn, db, LocalScripts(edited)).to_dict()["realigned"] == []
