"""Migrations as Flyway keeps them (issue 19, item 8), through the real CLI: a push that would
replace an applied script is refused, `migrate repair` accepts the new content or restores the
bucket's original and removes failed entries, `status --detailed-exitcode`, DSN targets with
`--scripts DIR`, history times in UTC. moto's S3 and Lambda configuration, real MariaDB servers."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from tests import test_cli_sync as base
from tests.test_cli_sync import BUCKET, ENV_ARGS, cli, sql

dev, staging, estate, app_dbs = base.dev, base.staging, base.estate, base.app_dbs

CREATE = "CREATE TABLE `order` (`key` VARCHAR(20) PRIMARY KEY, `n` INT);\n"
CREATE_V2 = "CREATE TABLE `order` (`key` VARCHAR(20) PRIMARY KEY, `n` INT, `note` TEXT);\n"
SEED = "INSERT INTO `order` VALUES ('a', 1);\nINSERT INTO `order` VALUES ('taken', 2);\n"
UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def write(where, name: str, text: str) -> str:
    where.mkdir(exist_ok=True)
    (where / name).write_text(text)
    return str(where / name)


def stored(name: str) -> str:
    return boto3.client("s3").get_object(Bucket=BUCKET, Key=f"migrations/{name}")["Body"].read().decode()


def status(env: str = "staging") -> dict:
    r = cli("migrate", "status", env, "--direct", "--json", *ENV_ARGS)
    assert r.exit_code == 0, r.output
    return {s["script"]: s for s in json.loads(r.stdout)["status_by_database"]["app"]}


def detailed(env: str = "staging") -> int:
    return cli("migrate", "status", env, "--direct", "--detailed-exitcode", *ENV_ARGS).exit_code


@pytest.fixture
def applied_v1(staging, app_dbs, tmp_path) -> str:
    """staging has app and V1__create.sql applied from the bucket."""
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    assert detailed() == 0  # no scripts, no history: up to date
    path = write(tmp_path, "V1__create.sql", CREATE)
    assert cli("migrate", "push", path, *ENV_ARGS).exit_code == 0
    assert detailed() == 3  # pending
    assert cli("migrate", "apply", "staging", "--direct", *ENV_ARGS).exit_code == 0
    assert detailed() == 0
    return path


@pytest.fixture
def versioned_bucket(estate):
    s3 = boto3.client("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=BUCKET, Key=v["Key"], VersionId=v["VersionId"])
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})


@pytest.mark.mariadb
def test_push_refuses_to_replace_an_applied_script_and_repair_accepts_the_new_content(
        staging, applied_v1, tmp_path) -> None:
    changed = write(tmp_path / "new", "V1__create.sql", CREATE_V2)
    r = cli("migrate", "push", changed, "--direct", *ENV_ARGS)
    assert r.exit_code == 2, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "V1__create.sql ran on staging" in errors[0] and "--force" in errors[0], r.output
    assert "nothing was uploaded" in errors[0] and stored("V1__create.sql") == CREATE

    # The same statements, re-indented and commented, are the same script: replaced freely.
    same = write(tmp_path / "same", "V1__create.sql", "-- the orders\n" + CREATE.replace(" (", "  (", 1))
    assert cli("migrate", "push", same, "--direct", *ENV_ARGS).exit_code == 0

    r = cli("migrate", "push", changed, "--direct", "--force", *ENV_ARGS)
    assert r.exit_code == 0 and "replaced" in r.output and stored("V1__create.sql") == CREATE_V2, r.output

    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 1 and "changed since they ran" in r.output, r.output
    hint = next(ln for ln in r.output.splitlines() if ln.startswith("hint: "))
    assert hint.startswith(f"hint: dbrepl migrate repair staging --suffix {base.SUFFIX} --config "
                           f"{base.CONFIG} --direct"), hint
    assert r.output.index("error:") < r.output.index("hint:"), r.output
    assert detailed() == 1 and status()["V1__create.sql"]["state"] == "changed"

    r = cli("migrate", "repair", "staging", "--direct", *ENV_ARGS)  # no terminal, no --yes
    assert r.exit_code == 2 and "--yes" in r.output, r.output
    r = cli("migrate", "repair", "staging", "--direct", "--dry-run", *ENV_ARGS)
    assert r.exit_code == 0 and "app: would accept the new content of V1__create.sql" in r.output, r.output
    assert "Nothing was changed" in r.output
    assert detailed() == 1
    # The hint runs as printed (plus the confirmation: no terminal here).
    r = cli(*hint.removeprefix("hint: dbrepl ").split()[:8], "--yes")
    assert r.exit_code == 0 and "app: accepted the new content of V1__create.sql" in r.output, r.output
    assert detailed() == 0
    assert "note" not in [c for (c, *_) in sql(staging, "SHOW COLUMNS FROM app.`order`")], "repair runs no script"
    assert UTC.match(status()["V1__create.sql"]["installed_on"]), status()


@pytest.mark.mariadb
def test_repair_restore_puts_back_the_version_that_ran(staging, versioned_bucket, applied_v1, tmp_path) -> None:
    changed = write(tmp_path / "new", "V1__create.sql", CREATE_V2)
    assert cli("migrate", "push", changed, "--direct", "--force", *ENV_ARGS).exit_code == 0
    assert detailed() == 1
    r = cli("migrate", "repair", "staging", "--restore", "--yes", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and "restored in the bucket: V1__create.sql (version " in r.output, r.output
    assert stored("V1__create.sql") == CREATE and detailed() == 0
    s3 = boto3.client("s3")
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="migrations/V1__create.sql")["Versions"]
    contents = [s3.get_object(Bucket=BUCKET, Key=v["Key"], VersionId=v["VersionId"])["Body"].read().decode()
                for v in versions]
    assert CREATE_V2 in contents, "nothing is lost: the changed content stays an earlier version"


@pytest.mark.mariadb
def test_repair_removes_a_failed_entry_so_the_script_is_retried(staging, applied_v1, tmp_path) -> None:
    sql(staging, "INSERT INTO app.`order` VALUES ('taken', 0)")
    assert cli("migrate", "push", write(tmp_path, "V2__seed.sql", SEED), *ENV_ARGS).exit_code == 0
    assert cli("migrate", "apply", "staging", "--direct", *ENV_ARGS).exit_code == 1
    assert detailed() == 1 and status()["V2__seed.sql"]["state"] == "failed"
    r = cli("migrate", "repair", "staging", "--yes", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and "app: removed the failed entry of V2__seed.sql" in r.output, r.output
    assert detailed() == 3 and status()["V2__seed.sql"]["state"] == "pending"
    sql(staging, "DELETE FROM app.`order` WHERE `key` = 'taken'")
    assert cli("migrate", "apply", "staging", "--direct", *ENV_ARGS).exit_code == 0
    assert detailed() == 0


@pytest.mark.mariadb
def test_apply_and_status_on_a_dsn_with_a_scripts_directory(dev, estate, tmp_path) -> None:
    sql(dev, "DROP DATABASE IF EXISTS mig_dsn", "CREATE DATABASE mig_dsn")
    scripts = tmp_path / "sql"
    scripts.mkdir()
    write(scripts, "V1__create.sql", CREATE)
    write(scripts, "V2__seed.sql", SEED)
    target = base.dsn(dev, "mig_dsn")

    r = cli("migrate", "status", target)
    assert r.exit_code == 2 and "--scripts DIR" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = cli("migrate", "status", "staging", "--scripts", str(scripts), *ENV_ARGS)
    assert r.exit_code == 2 and "--scripts goes with a DSN target" in r.output, r.output
    r = cli("migrate", "apply", target, "--scripts", str(tmp_path / "nosuch"))
    assert r.exit_code == 2 and "no such directory" in r.output, r.output

    assert cli("migrate", "status", target, "--scripts", str(scripts), "--detailed-exitcode").exit_code == 3
    r = cli("migrate", "apply", target, "--scripts", str(scripts), "--dry-run")
    assert r.exit_code == 0 and "would apply V1__create.sql" in r.output, r.output
    r = cli("migrate", "apply", target, "--scripts", str(scripts))
    assert r.exit_code == 0 and "Applied 2 script(s)" in r.output, r.output
    assert sorted(sql(dev, "SELECT `key` FROM mig_dsn.`order`")) == [("a",), ("taken",)]
    r = cli("migrate", "status", target, "--scripts", str(scripts), "--json", "--detailed-exitcode")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["status_by_database"]["mig_dsn"]
    assert [s["state"] for s in rows] == ["applied", "applied"] and all(UTC.match(s["installed_on"]) for s in rows)

    write(scripts, "V1__create.sql", CREATE_V2)
    r = cli("migrate", "apply", target, "--scripts", str(scripts))
    assert r.exit_code == 1 and "changed since they ran" in r.output, r.output
    hint = next(ln for ln in r.output.splitlines() if ln.startswith("hint: "))
    assert hint == f"hint: dbrepl migrate repair mysql://{base.USER}@127.0.0.1:{dev.port}/mig_dsn --scripts {scripts}"
    r = cli("migrate", "repair", target, "--scripts", str(scripts), "--yes")
    assert r.exit_code == 0 and "mig_dsn: accepted the new content of V1__create.sql" in r.output, r.output
    assert cli("migrate", "status", target, "--scripts", str(scripts), "--detailed-exitcode").exit_code == 0
    sql(dev, "DROP DATABASE mig_dsn")
