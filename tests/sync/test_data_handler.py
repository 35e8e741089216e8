"""The data-sync function end to end, called as Lambda calls it: moto serves Secrets Manager
and SSM in-process, two real MariaDB servers stand in for the dev and staging clusters."""

from __future__ import annotations

import json
import uuid

import pytest
from moto import mock_aws

from dbrepl.sync.handlers import data_sync
from tests import mariadb_server
from tests.sync.test_data_sync import checksum, run, snapshot

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def staging(mariadb):
    """A second server: the target environment's cluster (same database names as dev)."""
    server = mariadb_server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clusters(mariadb, staging):
    """Both clusters with an `app` database and its tables (created once: DDL is slow)."""
    db = f"app_{uuid.uuid4().hex[:6]}"
    conns = []
    for server in (mariadb, staging):
        conn = server.connect()
        run(conn, f"CREATE DATABASE `{db}`", f"USE `{db}`",
            "CREATE TABLE lookup_table (id INT PRIMARY KEY, code VARCHAR(10) COLLATE utf8mb4_general_ci, v JSON)",
            "CREATE TABLE config_table (k VARCHAR(20) PRIMARY KEY, v VARCHAR(50))",
            "CREATE TABLE nokey (a INT)")
        conns.append(conn)
    yield db, mariadb, staging, conns[0], conns[1]
    for conn in conns:
        run(conn, f"DROP DATABASE `{db}`")
        conn.close()


@pytest.fixture
def estate(clusters, monkeypatch):
    """Fresh rows on both sides, secrets in moto, the function's environment variables."""
    db, mariadb, staging, dev, stg = clusters
    suffix = "t" + uuid.uuid4().hex[:6]
    run(dev, "DELETE FROM lookup_table", "DELETE FROM config_table",
        "INSERT INTO lookup_table VALUES (1,'a','[1]'),(2,'b',NULL),(3,'c','{}')",
        "INSERT INTO config_table VALUES ('mode','on'),('limit','10')")
    run(stg, "DELETE FROM lookup_table", "DELETE FROM config_table",
        "INSERT INTO lookup_table VALUES (1,'A','[1]'),(2,'b',NULL),(4,'d','{}')",
        "INSERT INTO config_table VALUES ('mode','off')")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in ("REFERENCE_TABLES", "PROD_SECRET_ARN", "PROD_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        import boto3

        sm = boto3.client("secretsmanager", region_name="us-east-1")
        env = {"ENVIRONMENT_SUFFIX": suffix, "SYNC_DATABASES": db, "MIGRATION_BUCKET": "unused"}
        for name, server in (("dev", mariadb), ("staging", staging)):
            arn = sm.create_secret(
                Name=f"{name}-aurora-secret-{suffix}",
                SecretString=json.dumps({"username": server.user, "password": server.password}),
            )["ARN"]
            env[f"{name.upper()}_SECRET_ARN"] = arn
            env[f"{name.upper()}_ENDPOINT"] = f"{server.host}:{server.port}"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield {"db": db, "suffix": suffix, "dev": dev, "staging": stg,
               "ssm": boto3.client("ssm", region_name="us-east-1")}


def invoke(event):
    """As Lambda does: the handler gets the decoded event and returns a JSON body."""
    response = data_sync.lambda_handler(json.loads(json.dumps(event)), None)
    return response["statusCode"], json.loads(response["body"])


def record(estate, source="dev", target="staging"):
    name = f"/db-replication/{estate['suffix']}/last-data-sync/{source}-to-{target}"
    return json.loads(estate["ssm"].get_parameter(Name=name)["Parameter"]["Value"])


def test_seed_event_syncs_and_records(estate):
    db = estate["db"]
    code, body = invoke({"source_env": "dev", "target_env": "staging",
                         "tables": ["lookup_table", f"{db}.config_table"]})
    assert code == 200, body
    assert body["status"] == "success"
    assert body["rows_synced"] == 3 + 2  # lookup: 1 'A'->'a', 3 in, 4 out; config: 1 up, 1 in
    # Each table's one key range had changes: re-digested, and the rows counted, before COMMIT.
    assert body["per_table"] == [
        {"table": f"{db}.lookup_table", "inserted": 1, "updated": 1, "deleted": 1,
         "verified": {"ranges": 1, "rows": 3}},
        {"table": f"{db}.config_table", "inserted": 1, "updated": 1, "deleted": 0,
         "verified": {"ranges": 1, "rows": 2}},
    ]
    assert body["verify"] == "changed"
    assert body["verified"] == "row counts and every changed key range (2 re-digested) equal before commit"
    for table in ("lookup_table", "config_table"):
        assert snapshot(estate["staging"], db, table) == snapshot(estate["dev"], db, table)
        assert checksum(estate["staging"], db, table) == checksum(estate["dev"], db, table)
    rec = record(estate)
    assert rec["status"] == "success" and rec["rows_synced"] == 5 and rec["error"] is None
    assert rec["counts"] == {"rows_synced": 5, "inserted": 2, "updated": 2, "deleted": 1}
    assert rec["tables"] == body["per_table"]
    assert (rec["verify"], rec["verified"]) == (body["verify"], body["verified"])
    assert (rec["source"], rec["target"]) == ("dev", "staging")

    code, body = invoke({"source_env": "dev", "target_env": "staging",
                         "tables": ["lookup_table", "config_table"]})
    assert (code, body["rows_synced"]) == (200, 0)


def test_progress_hook_for_a_local_run(estate):
    """run_data_event's optional hook (what `--direct` draws its bar from) sees every table;
    an exception from it rolls the run back and propagates, and nothing is recorded."""
    from dbrepl.sync.data.event import run_data_event

    seen = []
    event = {"source_env": "dev", "target_env": "staging", "tables": ["lookup_table", "config_table"]}
    before = snapshot(estate["staging"], estate["db"], "lookup_table")

    def boom(p):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        run_data_event(event, progress=boom)
    assert snapshot(estate["staging"], estate["db"], "lookup_table") == before
    with pytest.raises(estate["ssm"].exceptions.ParameterNotFound):
        record(estate)
    body = run_data_event(event, progress=seen.append)
    assert body["status"] == "success" and body["rows_synced"] == 5
    done = [(p.table, p.rows_compared, p.inserted, p.updated, p.deleted) for p in seen if p.phase == "done"]
    assert done == [("lookup_table", 3, 1, 1, 1), ("config_table", 2, 1, 1, 0)]
    assert all(p.rows_compared <= p.rows_estimate for p in seen)
    assert {p.phase for p in seen} >= {"compare", "apply", "done"}


def test_dry_run_changes_nothing_and_records_nothing(estate):
    before = snapshot(estate["staging"], estate["db"], "lookup_table")
    code, body = invoke({"source_env": "dev", "target_env": "staging",
                         "tables": ["lookup_table"], "dry_run": True})
    assert (code, body["rows_synced"], body["dry_run"]) == (200, 3, True)
    assert snapshot(estate["staging"], estate["db"], "lookup_table") == before
    with pytest.raises(estate["ssm"].exceptions.ParameterNotFound):
        record(estate)


def test_verbose_dry_run_returns_the_statements(estate):
    code, body = invoke({"source_env": "dev", "target_env": "staging",
                         "tables": ["config_table"], "dry_run": True, "verbose": True})
    assert code == 200
    db = estate["db"]
    assert body["per_table"][0]["statements"] == [
        f"DELETE FROM `{db}`.`config_table` WHERE `k` IN ('mode')",
        f"INSERT INTO `{db}`.`config_table` (`k`, `v`) VALUES ('mode','on'),('limit','10')",
    ]


def test_reference_tables_are_the_default(estate, monkeypatch):
    monkeypatch.setenv("REFERENCE_TABLES", f"{estate['db']}.config_table")
    code, body = invoke({"source_env": "dev", "target_env": "staging"})
    assert (code, body["tables"], body["rows_synced"]) == (200, [f"{estate['db']}.config_table"], 2)


@pytest.mark.parametrize("event, message", [
    ({"source_env": "dev", "target_env": "staging", "tables": ["lookup_table\n; DROP TABLE x"]}, "invalid table name"),
    ({"source_env": "dev", "target_env": "staging", "tables": "lookup_table"}, "tables must be"),
    ({"source_env": "dev", "target_env": "staging", "tables": [7]}, "expected a string"),
    ({"source_env": "dev", "target_env": "staging", "tables": ["a.b" + "c" * 64]}, "invalid table name"),
    ({"source_env": "dev", "target_env": "staging", "tables": ["x"], "dry_run": "yes"}, "dry_run"),
    ({"source_env": "dev", "target_env": "dev", "tables": ["x"]}, "must differ"),
    ({"source_env": "dev'; --", "target_env": "staging", "tables": ["x"]}, "invalid environment"),
    ({"source_env": "dev", "target_env": "staging", "tables": ["x"], "truncate": True}, "unknown event key"),
    ([], "JSON object"),
    ({"source_env": "dev", "target_env": "staging", "tables": ["mysql.user"]}, "system schema"),
    ({"source_env": "dev", "target_env": "staging", "tables": ["otherdb.t"]}, "not in a configured database"),
])
def test_bad_events_are_refused_before_any_sql(estate, event, message, monkeypatch):
    # Any attempt to connect fails the test: refusals happen before connections.
    def no_connect(*a, **k):
        raise AssertionError("connected despite a bad event")

    monkeypatch.setattr("dbrepl.sync.data.event.connect", no_connect)
    before = snapshot(estate["staging"], estate["db"], "lookup_table")
    code, body = invoke(event)
    assert (code, body["status"]) == (400, "invalid")
    assert message in body["error"]
    assert snapshot(estate["staging"], estate["db"], "lookup_table") == before


def test_tables_are_checked_against_the_catalogue(estate):
    code, body = invoke({"source_env": "dev", "target_env": "staging", "tables": ["missing_table"]})
    assert (code, body["status"]) == (400, "invalid")
    assert "does not exist" in body["error"]
    rec = record(estate)
    assert rec["status"] == "invalid" and "missing_table" in rec["error"]


def test_refusal_is_recorded_and_target_untouched(estate):
    before = snapshot(estate["staging"], estate["db"], "lookup_table")
    code, body = invoke({"source_env": "dev", "target_env": "staging",
                         "tables": ["lookup_table", "nokey"]})
    assert (code, body["status"]) == (500, "error")
    assert "no primary key" in body["error"]
    assert snapshot(estate["staging"], estate["db"], "lookup_table") == before
    assert record(estate)["status"] == "error"


def test_unknown_environment_names_the_known_ones(estate):
    code, body = invoke({"source_env": "dev", "target_env": "prod", "tables": ["lookup_table"]})
    assert (code, body["status"]) == (400, "invalid")
    assert "known: dev, staging" in body["error"]
    assert estate["staging"].open
