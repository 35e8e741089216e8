"""The schema-sync function end to end, as Lambda calls it: (event, context).

moto serves Secrets Manager, SSM and S3 in-process; two real MariaDB servers stand in for
the dev and staging clusters (one server cannot: both sides use the same database names).
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from dbrepl.sync.handlers import schema_sync
from dbrepl.sync.migrations import push_scripts, read_history
from tests import mariadb_server

PASSWORD = "s3cret-Pw_0123456789abcdefghijkl"
SUFFIX = "t42"
BUCKET = "migration-scripts-t42-123456789012"
CONTEXT = SimpleNamespace(function_name=f"db-sync-schema-replication-{SUFFIX}", aws_request_id="r-1")


@pytest.fixture(scope="module")
def staging_server():
    if mariadb_server.find_binaries() is None:
        pytest.skip("MariaDB server binaries not installed")
    server = mariadb_server.start()
    yield server
    server.stop()


def _add_user(server) -> None:
    conn = server.connect(ssl_disabled=True)
    with conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'syncer'@'%%' IDENTIFIED BY %s", (PASSWORD,))
        cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'syncer'@'%'")
    conn.close()


@pytest.fixture(scope="module")
def function_env(mariadb, staging_server):
    """moto (one per module: a reset costs seconds) and the deployed function's env vars."""
    with pytest.MonkeyPatch.context() as mp:
        # Nothing here uses IAM: do not load its managed policies.
        mp.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)
        with mock_aws():
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            sm = boto3.client("secretsmanager", region_name="us-east-1")
            for env, server in (("DEV", mariadb), ("STAGING", staging_server)):
                _add_user(server)
                arn = sm.create_secret(Name=f"{env.lower()}-aurora-secret-{SUFFIX}", SecretString=json.dumps(
                    {"username": "syncer", "password": PASSWORD}))["ARN"]
                mp.setenv(f"{env}_SECRET_ARN", arn)
                mp.setenv(f"{env}_ENDPOINT", "127.0.0.1")
                mp.setenv(f"{env}_PORT", str(server.port))
            mp.setenv("PROD_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod")
            mp.setenv("PROD_ENDPOINT", "prod.invalid")
            mp.setenv("ENVIRONMENT_SUFFIX", SUFFIX)
            mp.setenv("MIGRATION_BUCKET", BUCKET)
            mp.setenv("SYNC_DATABASES", "app")
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
            yield boto3.client("ssm", region_name="us-east-1")


@pytest.fixture
def estate(mariadb, staging_server, function_env):
    """dev holds database app (customer, orders); staging has no app. Yields (dev, staging, ssm)."""
    ssm = function_env
    for server in (mariadb, staging_server):
        conn = server.connect(ssl_disabled=True)
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS app")
        conn.close()
    for p in ssm.get_parameters_by_path(Path=f"/db-replication/{SUFFIX}", Recursive=True)["Parameters"]:
        ssm.delete_parameter(Name=p["Name"])
    s3 = boto3.client("s3", region_name="us-east-1")
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    dev, staging = mariadb.connect(ssl_disabled=True), staging_server.connect(ssl_disabled=True)
    with dev.cursor() as cur:
        cur.execute("CREATE DATABASE app CHARACTER SET latin1 COLLATE latin1_bin")
        cur.execute("CREATE TABLE app.customer (id INT PRIMARY KEY, name VARCHAR(40)) DEFAULT CHARSET=utf8mb4")
        cur.execute("CREATE TABLE app.orders (id INT PRIMARY KEY, customer_id INT, KEY (customer_id), "
                    "FOREIGN KEY (customer_id) REFERENCES app.customer (id))")
    yield dev, staging, ssm
    dev.close()
    staging.close()


def invoke(event):
    response = schema_sync.lambda_handler(event, CONTEXT)
    return response["statusCode"], json.loads(response["body"])


def record(ssm, source="dev", target="staging"):
    p = ssm.get_parameter(Name=f"/db-replication/{SUFFIX}/last-schema-sync/{source}-to-{target}")["Parameter"]
    assert p["Type"] == "String"
    return json.loads(p["Value"])


def push(tmp_path, files):
    """Write the scripts (name -> SQL) and push them to the migrations bucket."""
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    push_scripts(boto3.client("s3", region_name="us-east-1"), BUCKET, [tmp_path / n for n in files])


def show_create(conn, table):
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE app.{table}")
        return cur.fetchone()[1]


@pytest.mark.mariadb
def test_sync_creates_database_and_tables_then_nothing(estate, caplog):
    dev, staging, ssm = estate
    caplog.set_level(logging.INFO)  # the function's level
    code, body = invoke({"source_env": "dev", "target_env": "staging"})
    assert code == 200, body
    assert body["status"] == "success" and body["converged"] is True
    assert body["counts"]["statements"] == body["counts"]["executed"] == 4  # db, 2 tables, 1 FK
    with staging.cursor() as cur:
        cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                    "WHERE SCHEMA_NAME='app'")
        assert cur.fetchone() == ("latin1", "latin1_bin"), "created with the source's defaults"
    for table in ("customer", "orders"):
        assert show_create(staging, table) == show_create(dev, table)

    rec = record(ssm)
    assert set(rec) >= {"timestamp", "status", "source", "target", "counts", "error"}
    assert (rec["status"], rec["source"], rec["target"], rec["error"]) == ("success", "dev", "staging", None)
    assert rec["counts"]["statements"] == 4 and rec["timestamp"].endswith("Z")

    code, body = invoke({"source_env": "dev", "target_env": "staging", "databases": ["app"]})
    assert code == 200 and body["statements"] == [] and body["counts"]["executed"] == 0
    assert PASSWORD not in json.dumps(body) and PASSWORD not in caplog.text


@pytest.mark.mariadb
def test_destructive_refused_then_allowed_and_dry_run(estate):
    dev, staging, ssm = estate
    assert invoke({"source_env": "dev", "target_env": "staging"})[0] == 200
    with staging.cursor() as cur:
        cur.execute("CREATE TABLE app.extra (id INT PRIMARY KEY)")
        cur.execute("ALTER TABLE app.customer ADD COLUMN legacy INT")
    with dev.cursor() as cur:
        cur.execute("ALTER TABLE app.customer ADD COLUMN email VARCHAR(80)")

    code, body = invoke({"source_env": "dev", "target_env": "staging", "dry_run": True})
    assert code == 200 and body["dry_run"] is True and body["counts"]["executed"] == 0
    assert any("DROP TABLE `app`.`extra`" in s["sql"] for s in body["statements"])
    assert len(body["would_refuse"]) == 2

    code, body = invoke({"source_env": "dev", "target_env": "staging"})
    assert code == 409 and body["status"] == "refused"
    assert sorted(body["refused"]) == [
        "drop column `app`.`customer`.`legacy` (its values are lost)",
        "drop table `app`.`extra` (its rows are lost)"]
    assert "email" not in show_create(staging, "customer"), "refused: no DDL at all, not even the safe part"
    assert record(ssm)["status"] == "refused"

    code, body = invoke({"source_env": "dev", "target_env": "staging", "allow_destructive": True})
    assert code == 200 and body["converged"] is True
    assert show_create(staging, "customer") == show_create(dev, "customer")
    assert record(ssm)["status"] == "success"


@pytest.mark.mariadb
@pytest.mark.parametrize("event, message, recorded", [
    ({"source_env": "qa", "target_env": "staging"}, "unknown environment", False),
    ({"source_env": "dev", "target_env": "dev"}, "must differ", False),
    ({"source_env": "dev'; DROP", "target_env": "staging"}, "invalid environment", False),
    ({"source_env": "dev", "target_env": "staging", "databases": ["app`; DROP DATABASE app; --"]},
     "invalid database", True),
    ({"source_env": "dev", "target_env": "staging", "databases": ["a'b"]}, "invalid database", True),
    ({"source_env": "dev", "target_env": "staging", "databases": ["a;b"]}, "invalid database", True),
    ({"source_env": "dev", "target_env": "staging", "databases": ["mysql"]}, "system schema", True),
    ({"source_env": "dev", "target_env": "staging", "databases": "app"}, "list of database names", True),
    ({"source_env": "dev", "target_env": "staging", "dry_run": "yes"}, "true or false", True),
    ({"source_env": "dev", "target_env": "staging", "allow_destructive": 1}, "true or false", True),
    ({"source_env": "dev", "target_env": "staging", "renames": ["app.t`x=y"]}, "rename hint", True),
    ({"source_env": "dev", "target_env": "staging", "migration_script": "s3://x/V1__a;b.sql"}, "bucket", True),
    ({"source_env": "dev", "target_env": "staging", "migration_script": "drop.sql"}, "V<version>", True),
    ({"source_env": "dev", "target_env": "staging", "tables": ["x"]}, "unknown event key", True),
    ({"source_env": "dev", "target_env": "staging", "action": "drop"}, "action must be", True),
    ({"source_env": "dev", "target_env": "staging", "action": "schema", "migration_script": "V1__a.sql"},
     "goes with action migrate", True),
    ("not an object", "JSON object", False),
])
def test_bad_events_run_no_sql(estate, monkeypatch, event, message, recorded):
    _, staging, ssm = estate
    opened = []
    monkeypatch.setattr("dbrepl.sync.schema.event.connect", lambda *a, **k: opened.append(a))
    code, body = invoke(event)
    assert code == 400 and body["status"] == "invalid"
    assert message in body["error"]
    assert opened == [], "no connection is opened for a bad event"
    with staging.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='app'")
        assert cur.fetchone()[0] == 0
    params = ssm.get_parameters_by_path(Path=f"/db-replication/{SUFFIX}", Recursive=True)["Parameters"]
    names = [p["Name"] for p in params]
    if recorded:  # two configured environments: the failure is recorded, as the seed records errors
        assert names == [f"/db-replication/{SUFFIX}/last-schema-sync/dev-to-staging"]
        assert record(ssm)["status"] == "invalid" and message in record(ssm)["error"]
    else:  # never a record under a name nobody configured
        assert names == []


@pytest.mark.mariadb
def test_unexpected_failure_still_answers_and_records(estate, monkeypatch):
    _, _, ssm = estate

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr("dbrepl.sync.schema.event.plan_schema", boom)
    code, body = invoke({"source_env": "dev", "target_env": "staging"})
    assert code == 500 and body["error"] == "internal error: RuntimeError: kaboom"
    assert record(ssm)["status"] == "error"


@pytest.mark.mariadb
def test_migration_script_applies_pending_scripts_up_to_it(estate, tmp_path):
    dev, staging, ssm = estate
    assert invoke({"source_env": "dev", "target_env": "staging"})[0] == 200
    files = {"V1__index.sql": "CREATE INDEX customer_name ON customer (name);",
             "V2__seed.sql": "INSERT INTO customer VALUES (1, 'first');",
             "V3__later.sql": "INSERT INTO customer VALUES (2, 'second');"}
    push(tmp_path, files)

    code, body = invoke({"source_env": "dev", "target_env": "staging",
                         "migration_script": f"s3://{BUCKET}/migrations/V2__seed.sql"})
    assert code == 200, body
    assert body["migrations"][0]["applied"] == ["V1__index.sql", "V2__seed.sql"]
    assert [h.script for h in read_history(staging, "app")] == ["V1__index.sql", "V2__seed.sql"]
    with staging.cursor() as cur:
        cur.execute("SELECT id FROM app.customer")
        assert cur.fetchall() == ((1,),)
    assert record(ssm)["counts"] == {"applied": 2, "pending": 0, "failed": 0}

    # The history table is the environment's own: schema sync neither copies nor drops it
    # (the index the migration added on staging alone is drift, and is planned away).
    code, body = invoke({"source_env": "dev", "target_env": "staging", "dry_run": True})
    assert code == 200
    assert [s["description"] for s in body["statements"]] == ["drop index `customer_name` on `app`.`customer`"]


@pytest.mark.mariadb
def test_migrate_all_pending_and_status(estate, tmp_path):
    dev, staging, ssm = estate
    assert invoke({"source_env": "dev", "target_env": "staging"})[0] == 200
    files = {"V1__seed.sql": "INSERT INTO customer VALUES (1, 'a');",
             "V2__more.sql": "INSERT INTO customer VALUES (2, 'b');"}
    push(tmp_path, files)

    code, body = invoke({"target_env": "staging", "action": "migrate_status"})
    assert code == 200
    assert [(s["script"], s["state"]) for s in body["status_by_database"]["app"]] == [
        ("V1__seed.sql", "pending"), ("V2__more.sql", "pending")]
    code, body = invoke({"target_env": "staging", "action": "migrate", "dry_run": True})
    assert code == 200 and body["migrations"][0]["pending"] == list(files) and read_history(staging, "app") == []
    code, body = invoke({"target_env": "staging", "action": "migrate"})
    assert code == 200 and body["migrations"][0]["applied"] == list(files)
    assert record(ssm, source="migrations")["counts"] == {"applied": 2, "pending": 0, "failed": 0}
    # dev is a valid migrate target although the schema default source is dev.
    code, body = invoke({"target_env": "dev", "action": "migrate_status", "databases": ["app"]})
    assert code == 200 and body["source"] == "migrations"
    code, body = invoke({"target_env": "staging", "action": "migrate_status"})
    assert {s["state"] for s in body["status_by_database"]["app"]} == {"applied"}

    # An edited applied script: refused (409), recorded, nothing run.
    push(tmp_path, {"V1__seed.sql": "INSERT INTO customer VALUES (9, 'z');",
                    "V3__x.sql": "INSERT INTO customer VALUES (3, 'c');"})
    code, body = invoke({"target_env": "staging", "action": "migrate"})
    assert code == 409 and "V1__seed.sql" in body["error"]
    assert record(ssm, source="migrations")["status"] == "refused"
    with staging.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM app.customer")
        assert cur.fetchone()[0] == 2


@pytest.mark.mariadb
def test_failed_migration_answers_with_the_list_of_runs_and_records(estate, tmp_path):
    _, staging, ssm = estate
    assert invoke({"source_env": "dev", "target_env": "staging"})[0] == 200
    files = {"V1__seed.sql": "INSERT INTO customer VALUES (1, 'a');",
             "V2__broken.sql": "INSERT INTO no_such_table VALUES (1);"}
    push(tmp_path, files)

    code, body = invoke({"target_env": "staging", "action": "migrate"})
    assert code == 500 and body["status"] == "error" and "V2__broken.sql" in body["error"]
    # The same shape as a success: a list of runs per database, the failed one saying so.
    assert isinstance(body["migrations"], list) and len(body["migrations"]) == 1
    run = body["migrations"][0]
    assert run["applied"] == ["V1__seed.sql"] and run["failed"] == "V2__broken.sql"
    rec = record(ssm, source="migrations")
    assert rec["status"] == "error" and rec["counts"] == {"applied": 1, "pending": 0, "failed": 1}
