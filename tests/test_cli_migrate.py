"""`dbrepl migrate` and atomicity (issue 10, point 5) through the real CLI: scripts pushed to
moto's S3, applied by the schema function's code (`--direct`) to a real MariaDB server."""

from __future__ import annotations

import json

import boto3
import pytest

from tests import test_cli_sync as base
from tests.test_cli_sync import BUCKET, ENV_ARGS, SUFFIX, cli, sql

# The same servers, estate and app databases as test_cli_sync (module-scoped: started anew here).
dev, staging, estate, app_dbs = base.dev, base.staging, base.estate, base.app_dbs

CREATE = "-- the table\nCREATE TABLE `order` (`key` VARCHAR(20) PRIMARY KEY, `select` INT);\n"
SEED = """/* DML only: one transaction */
INSERT INTO `order` VALUES ('a;b', 1), ('it''s', 2);
UPDATE `order` SET `select` = `select` + 1 WHERE `key` <> '-- x';
INSERT INTO `order` VALUES ('taken', 3);
"""
PROC = """INSERT INTO `order` VALUES ('p', 0);
DELIMITER //
/* x */ CREATE PROCEDURE `bump;it`() BEGIN UPDATE `order` SET `select` = 0; SELECT '//'; END//
DELIMITER ;
"""


def write(tmp_path, scripts: dict[str, str]) -> list[str]:
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    return [str(tmp_path / name) for name in scripts]


def keys() -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@pytest.mark.mariadb
def test_push_and_status_flag_non_atomic_scripts(staging, app_dbs, tmp_path) -> None:
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    paths = write(tmp_path, {"V1__create.sql": CREATE, "V2__seed.sql": SEED, "V3__proc.sql": PROC})

    r = cli("migrate", "push", *paths, *ENV_ARGS)
    assert r.exit_code == 0, r.output
    assert ("warning: V1__create.sql is not atomic: statement 1 (CREATE TABLE `order` (`key` VARCHAR(20) "
            "PRIMARY KEY, `sel...) commits implicitly; a failure part-way leaves earlier statements "
            "applied") in r.output
    assert "warning: V3__proc.sql is not atomic: statement 2 (CREATE PROCEDURE `bump;it`() BEGIN" in r.output
    assert "V2__seed.sql is not atomic" not in r.output and r.output.count("is not atomic") == 2

    r = cli("migrate", "status", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert [ln.split()[1:3] for ln in lines if ln.strip().startswith(("1 ", "2 ", "3 "))] == [
        ["pending", "not"], ["pending", "atomic"], ["pending", "not"]]
    assert any("statement 2 (CREATE PROCEDURE" in ln and "commits implicitly" in ln for ln in lines), r.output
    body = json.loads(cli("migrate", "status", "staging", "--direct", "--json", *ENV_ARGS).stdout)
    assert [(s["script"], s["atomic"]) for s in body["status_by_database"]["app"]] == [
        ("V1__create.sql", False), ("V2__seed.sql", True), ("V3__proc.sql", False)]

    r = cli("migrate", "apply", "staging", "--direct", "--dry-run", *ENV_ARGS)
    assert r.exit_code == 0 and r.output.count("is not atomic") == 2, r.output
    assert sql(staging, "SHOW TABLES FROM app LIKE 'order'") == [], "a dry run runs nothing"


@pytest.mark.mariadb
def test_unsplittable_script_is_bad_input_and_nothing_is_uploaded(app_dbs, tmp_path) -> None:
    paths = write(tmp_path, {"V1__ok.sql": SEED, "V2__open.sql": "INSERT INTO t VALUES ('no end);"})
    r = cli("migrate", "push", *paths, *ENV_ARGS)
    assert r.exit_code == 2 and "unterminated string" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert keys() == []


@pytest.mark.mariadb
def test_dml_script_failing_at_its_last_statement_leaves_no_row(staging, app_dbs, tmp_path) -> None:
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    assert cli("migrate", "push", *write(tmp_path, {"V1__create.sql": CREATE}), *ENV_ARGS).exit_code == 0
    assert cli("migrate", "apply", "staging", "--direct", *ENV_ARGS).exit_code == 0
    sql(staging, "INSERT INTO app.`order` VALUES ('taken', 0)")
    assert cli("migrate", "push", *write(tmp_path, {"V2__seed.sql": SEED}), *ENV_ARGS).exit_code == 0

    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 1, r.output
    assert ("app: failed V2__seed.sql at statement 3 (INSERT INTO `order` VALUES ('taken', 3)): "
            "Duplicate entry 'taken'") in r.output
    assert "app: rolled back: none of its changes remain" in r.output
    assert "error: app: V2__seed.sql failed at statement 3 of 3" in r.output
    assert sql(staging, "SELECT `key`, `select` FROM app.`order`") == [("taken", 0)], "no row of the script"
    assert sql(staging, "SELECT script, success, atomic_run, failed_statement, statements_run "
                        "FROM app.dbrepl_schema_history ORDER BY installed_rank") == [
        ("V1__create.sql", 1, 0, None, 1), ("V2__seed.sql", 0, 1, 3, 2)]
    r = cli("migrate", "status", "staging", "--direct", *ENV_ARGS)
    assert "failed at statement 3 (INSERT INTO `order` VALUES ('taken', 3)), rolled back: Duplicate" in r.output
    rec = json.loads(boto3.client("ssm").get_parameter(
        Name=f"/db-replication/{SUFFIX}/last-schema-sync/migrations-to-staging")["Parameter"]["Value"])
    assert rec["status"] == "error" and "statement 3 of 3" in rec["error"]

    # Nothing of it remains, so the same script runs again once the data is fixed.
    sql(staging, "DELETE FROM app.`order` WHERE `key` = 'taken'")
    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and "Applied 1 script(s)" in r.output, r.output
    assert sorted(sql(staging, "SELECT `key`, `select` FROM app.`order`")) == [
        ("a;b", 2), ("it's", 3), ("taken", 3)]


@pytest.mark.mariadb
def test_non_atomic_failure_names_the_statement_and_what_ran(staging, app_dbs, tmp_path) -> None:
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    bad = "CREATE TABLE t2 (id INT PRIMARY KEY);\n-- oops\nINSERT INTO nosuch VALUES (1);\nDROP TABLE t2;\n"
    assert cli("migrate", "push", *write(tmp_path, {"V1__mixed.sql": bad}), *ENV_ARGS).exit_code == 0
    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 1, r.output
    warned = r.output.index("app: warning: V1__mixed.sql is not atomic: statement 1 (CREATE TABLE t2")
    assert warned < r.output.index("app: failed V1__mixed.sql"), "flagged before the failure is reported"
    assert "app: failed V1__mixed.sql at statement 2 (INSERT INTO nosuch VALUES (1)): Table 'app.nosuch'" in r.output
    assert "app: 1 statement(s) of it ran and stay applied (not atomic)" in r.output
    assert ("statement 1 ran and stays applied (not atomic: statement 1 (CREATE TABLE t2 (id INT PRIMARY KEY)) "
            "commits implicitly)") in r.output
    assert ("t2",) in sql(staging, "SHOW TABLES FROM app")
    r = cli("migrate", "status", "staging", "--direct", *ENV_ARGS)
    assert "failed at statement 2 (INSERT INTO nosuch VALUES (1)), 1 statement(s) ran and stay applied" in r.output
    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 1 and "failed earlier at statement 2 (INSERT INTO nosuch VALUES (1)) after 1" in r.output


@pytest.mark.mariadb
def test_a_foreign_history_table_is_refused(staging, app_dbs, tmp_path) -> None:
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    sql(staging, "CREATE TABLE app.dbrepl_schema_history (id INT PRIMARY KEY, note TEXT)",
        "INSERT INTO app.dbrepl_schema_history VALUES (1, 'mine')")
    assert cli("migrate", "push", *write(tmp_path, {"V1__create.sql": CREATE}), *ENV_ARGS).exit_code == 0
    for args in (("apply", "staging"), ("status", "staging")):
        r = cli("migrate", *args, "--direct", *ENV_ARGS)
        assert r.exit_code == 1, r.output
        errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
        assert errors == [
            "error: app.dbrepl_schema_history is a table that is not dbrepl's migration history (missing "
            "installed_rank, version, description, script, checksum, checksum_algorithm, installed_by, "
            "installed_on, execution_ms, success; unexpected id, note): rename or drop it, dbrepl keeps its "
            "history under that name (nothing was run)"], r.output
    assert sql(staging, "SHOW TABLES FROM app LIKE 'order'") == []
    assert sql(staging, "SELECT * FROM app.dbrepl_schema_history") == [(1, "mine")]
