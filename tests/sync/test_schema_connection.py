"""Endpoints, DSNs, connections and the AWS adapter (Secrets Manager, SSM, env vars)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from dbrepl.sync import aws
from dbrepl.sync.connection import Endpoint, connect, parse_dsn
from dbrepl.sync.errors import DatabaseError, InvalidInput


def test_endpoint_repr_hides_password():
    e = Endpoint("db.example", 3307, "app", "hunter2-very-secret", "sales")
    assert "hunter2" not in repr(e) and "hunter2" not in str(e) and "hunter2" not in e.display()
    assert e.display() == "mysql://app@db.example:3307/sales"


def test_parse_dsn():
    e = parse_dsn("mysql://bob:p%40ss@h.example:3310/app", environ={})
    assert (e.host, e.port, e.user, e.password, e.database) == ("h.example", 3310, "bob", "p@ss", "app")
    e = parse_dsn("mysql://bob@h/app", environ={"MYSQL_PWD": "from-env"})
    assert (e.port, e.password) == (3306, "from-env")


@pytest.mark.parametrize("dsn, message", [
    ("mysql://bob@h", "names no database"),
    ("mysql://bob:pw@h:3306/", "names no database"),
    ("postgres://bob@h/app", "must look like"),
    ("mysql://bob@h/app;drop", "invalid database"),
    ("mysql://bob@h/a`b", "invalid database"),
    ("mysql://bob@h/a'b", "invalid database"),
    ("mysql://bob:pw@h:port/app", "invalid port"),
    ("mysql://bob@/app", "no host"),
])
def test_bad_dsns(dsn, message):
    with pytest.raises(InvalidInput, match=message) as err:
        parse_dsn(dsn, environ={})
    assert "\n" not in str(err.value), "one-line message"


def test_dsn_error_never_echoes_the_password():
    with pytest.raises(InvalidInput) as err:
        parse_dsn("mysql://bob:TopSecret9@h:1/", environ={})
    assert "TopSecret9" not in str(err.value)


@pytest.mark.mariadb
def test_connect(mariadb):
    conn = connect(Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password))
    with conn.cursor() as cur:
        cur.execute("SELECT @@character_set_client, @@autocommit")
        assert cur.fetchone() == ("utf8mb4", 1)
    bad = Endpoint(mariadb.host, mariadb.port, "nobody", "WrongPass123")
    with pytest.raises(DatabaseError) as err:
        connect(bad)
    assert "WrongPass123" not in str(err.value) and "nobody@" in str(err.value)


@pytest.fixture
def moto_aws(monkeypatch):
    monkeypatch.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)  # no IAM here; faster
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1"), boto3.client("ssm", region_name="us-east-1")


def test_endpoint_for_env(moto_aws):
    sm, _ = moto_aws
    secret = json.dumps({"username": "u", "password": "p"})
    arn = sm.create_secret(Name="dev-aurora-secret-x", SecretString=secret)["ARN"]
    env = {"DEV_SECRET_ARN": arn, "DEV_ENDPOINT": "dev.cluster.example", "STAGING_SECRET_ARN": arn,
           "STAGING_ENDPOINT": "mysql://stg.example:3310", "PROD_SECRET_ARN": arn, "PROD_ENDPOINT": "p",
           "PROD_PORT": "4000"}
    assert aws.endpoint_for_env("dev", env, sm) == Endpoint("dev.cluster.example", 3306, "u", "p")
    assert aws.endpoint_for_env("STAGING", env, sm).port == 3310
    assert aws.endpoint_for_env("prod", env, sm).port == 4000
    with pytest.raises(InvalidInput, match=r"unknown environment 'qa' \(known: dev, prod, staging\)"):
        aws.endpoint_for_env("qa", env, sm)
    for bad in ["dev;", "de v", "dev`", "", None, 3]:
        with pytest.raises(InvalidInput):
            aws.endpoint_for_env(bad, env, sm)
    sm.create_secret(Name="broken", SecretString="not json with password hunter2")
    with pytest.raises(aws.AwsError) as err:
        aws.endpoint_for_env("dev", {"DEV_SECRET_ARN": "broken", "DEV_ENDPOINT": "h"}, sm)
    assert "hunter2" not in str(err.value)


def test_record_result_writes_the_seed_record(moto_aws):
    _, ssm = moto_aws
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    written = aws.record_result(ssm, "s1", "data", "staging", "prod",
                                {"status": "success", "counts": {"rows": 5}}, now=lambda: at)
    p = ssm.get_parameter(Name="/db-replication/s1/last-data-sync/staging-to-prod")["Parameter"]
    assert p["Type"] == "String"
    assert json.loads(p["Value"]) == written == {
        "timestamp": "2026-01-02T03:04:05Z", "status": "success", "source": "staging", "target": "prod",
        "counts": {"rows": 5}, "error": None}
    # Overwrite, and an error makes the status "error" and is kept short enough for SSM.
    aws.record_result(ssm, "s1", "data", "staging", "prod", {"error": "x" * 10000, "details": "y" * 5000})
    name = "/db-replication/s1/last-data-sync/staging-to-prod"
    value = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    assert value["status"] == "error" and len(value["error"]) <= aws.ERROR_LIMIT and value["truncated"]
    with pytest.raises(InvalidInput):
        aws.record_result(ssm, "s1", "other", "a", "b", {})


def test_sync_databases_and_reference_tables():
    assert aws.sync_databases({"SYNC_DATABASES": " app, sales ,"}) == ["app", "sales"]
    assert aws.sync_databases({}) == []
    assert aws.reference_tables({"REFERENCE_TABLES": "app.countries, sales.currency"}) == [
        ("app", "countries"), ("sales", "currency")]
    for bad in ["app", "app.t;x", "a`b.t", "app.t'"]:
        with pytest.raises(InvalidInput):
            aws.reference_tables({"REFERENCE_TABLES": bad})
    with pytest.raises(InvalidInput):
        aws.sync_databases({"SYNC_DATABASES": "app;drop"})
