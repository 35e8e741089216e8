"""`dbrepl sync` and `dbrepl migrate` through the real CLI (issues 3 and 4, item CLI).

Two real MariaDB servers stand in for dev and staging (one server cannot: both sides use the
same database names); DSN runs use two databases of the dev server. moto serves Secrets
Manager, SSM, S3, STS and Lambda in-process; the functions' configuration points at the
servers, so `--direct` runs the handler code against them. No output may hold a password.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.endpoint
import pymysql
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from dbrepl.app import functions as app_functions
from dbrepl.cli import app
from tests import mariadb_server

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "config" / "environments.yaml")  # dev, staging (hub), prod (protected)
PASSWORD = "Pw-" + uuid.uuid4().hex  # the sync user's password on both servers
USER = "syncer"
SUFFIX = "clisync"
ACCOUNT = "123456789012"  # moto's
BUCKET = f"migration-scripts-{SUFFIX}-{ACCOUNT}"

runner = CliRunner()
OUTPUTS: list[str] = []


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run dbrepl; every output is kept so the last test can look for the password in all of them."""
    r = runner.invoke(app, list(args), env=env)
    OUTPUTS.append(r.output)
    assert "Traceback" not in r.output, r.output
    assert PASSWORD not in r.output, "a password was printed"
    return r


def _start_server() -> mariadb_server.MariaDB:
    if mariadb_server.find_binaries() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but MariaDB server binaries are missing; install mariadb-server")
        pytest.skip("MariaDB server binaries not installed (apt-get install mariadb-server)")
    server = mariadb_server.start()
    conn = server.connect(ssl_disabled=True)
    with conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (USER, PASSWORD))
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'")
    conn.close()
    return server


@pytest.fixture(scope="module")
def dev() -> Iterator[mariadb_server.MariaDB]:
    server = _start_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def staging() -> Iterator[mariadb_server.MariaDB]:
    server = _start_server()
    yield server
    server.stop()


def sql(server: mariadb_server.MariaDB, *statements: str) -> list[tuple[Any, ...]]:
    conn = server.connect(ssl_disabled=True)
    rows: list[tuple[Any, ...]] = []
    try:
        with conn.cursor() as cur:
            for s in statements:
                cur.execute(s)
                rows = list(cur.fetchall())
    finally:
        conn.close()
    return rows


def dsn(server: mariadb_server.MariaDB, database: str, password: bool = True) -> str:
    pw = f":{PASSWORD}" if password else ""
    return f"mysql://{USER}{pw}@127.0.0.1:{server.port}/{database}"


@pytest.fixture
def dbs(dev: mariadb_server.MariaDB) -> Iterator[tuple[str, str]]:
    """Two fresh databases on the dev server: (source, target)."""
    tag = uuid.uuid4().hex[:8]
    src, dst = f"src_{tag}", f"dst_{tag}"
    sql(dev, f"CREATE DATABASE {src}", f"CREATE DATABASE {dst}")
    yield src, dst
    sql(dev, f"DROP DATABASE IF EXISTS {src}", f"DROP DATABASE IF EXISTS {dst}")


# --------------------------------------------------------------------------- DSN to DSN

@pytest.mark.mariadb
def test_schema_dsn_to_dsn_dry_run_detailed_exitcode_then_sync(dev, dbs) -> None:
    src, dst = dbs
    sql(dev, f"CREATE TABLE {src}.customer (id INT PRIMARY KEY, name VARCHAR(40))",
        f"CREATE TABLE {src}.orders (id INT PRIMARY KEY, customer_id INT, KEY (customer_id), "
        f"FOREIGN KEY (customer_id) REFERENCES {src}.customer (id))")
    s, d = dsn(dev, src), dsn(dev, dst)

    r = cli("sync", "schema", s, d, "--dry-run", "--detailed-exitcode")
    assert r.exit_code == 3, r.output
    assert "CREATE TABLE" in r.stdout and "customer" in r.stdout, "the DDL is printed on stdout"
    assert "nothing was changed" in r.output
    assert sql(dev, f"SHOW TABLES FROM {dst}") == [], "a dry run changes nothing"

    r = cli("sync", "schema", s, d, "--detailed-exitcode")
    assert r.exit_code == 3 and "verified" in r.output, r.output
    assert {t for (t,) in sql(dev, f"SHOW TABLES FROM {dst}")} == {"customer", "orders"}

    r = cli("sync", "schema", s, d, "--dry-run", "--detailed-exitcode")
    assert r.exit_code == 0 and "No schema differences" in r.output, r.output

    r = cli("sync", "schema", s, d, "--json")
    body = json.loads(r.stdout)
    assert r.exit_code == 0 and body["status"] == "success" and body["statements"] == []


@pytest.mark.mariadb
def test_password_from_mysql_pwd(dev, dbs) -> None:
    src, dst = dbs
    sql(dev, f"CREATE TABLE {src}.t (id INT PRIMARY KEY)")
    r = cli("sync", "schema", dsn(dev, src, password=False), dsn(dev, dst, password=False),
            env={"MYSQL_PWD": PASSWORD})
    assert r.exit_code == 0, r.output
    assert sql(dev, f"SHOW TABLES FROM {dst}") == [("t",)]


@pytest.mark.mariadb
def test_destructive_change_refused_naming_each_clause_then_allowed(dev, dbs) -> None:
    src, dst = dbs
    sql(dev, f"CREATE TABLE {src}.t (id INT PRIMARY KEY, a SMALLINT)",
        f"CREATE TABLE {dst}.t (id INT PRIMARY KEY, a INT, extra INT)",
        f"CREATE TABLE {dst}.gone (id INT PRIMARY KEY)",
        f"INSERT INTO {dst}.t VALUES (1, 2, 3)")
    s, d = dsn(dev, src), dsn(dev, dst)

    r = cli("sync", "schema", s, d, "--dry-run")
    assert r.exit_code == 0 and "needs --allow-destructive" in r.output, r.output

    r = cli("sync", "schema", s, d)
    assert r.exit_code == 1, r.output
    assert "refusing 3 destructive change(s)" in r.output and "no DDL was run" in r.output
    for clause in ("drop column", "extra", "drop table", "gone", "smallint"):
        assert clause in r.output, (clause, r.output)
    assert sql(dev, f"SELECT * FROM {dst}.t") == [(1, 2, 3)], "nothing ran"

    r = cli("sync", "schema", s, d, "--allow-destructive")
    assert r.exit_code == 0, r.output
    assert sql(dev, f"SELECT * FROM {dst}.t") == [(1, 2)]
    assert sql(dev, f"SHOW TABLES FROM {dst}") == [("t",)]


@pytest.mark.mariadb
def test_data_dsn_to_dsn_dry_run_verbose_then_sync(dev, dbs) -> None:
    src, dst = dbs
    for db in (src, dst):
        sql(dev, f"CREATE TABLE {db}.lookup (id INT PRIMARY KEY, v VARCHAR(20))")
    sql(dev, f"INSERT INTO {src}.lookup VALUES (1,'a'),(2,'b'),(3,'c')",
        f"INSERT INTO {dst}.lookup VALUES (1,'a'),(2,'B'),(9,'z')")
    s, d = dsn(dev, src), dsn(dev, dst)

    r = cli("sync", "data", s, d, "--table", "lookup", "--dry-run", "--verbose", "--detailed-exitcode")
    assert r.exit_code == 3, r.output
    line = next(ln for ln in r.stdout.splitlines() if f"{src}.lookup" in ln)
    assert "1 would insert" in line and "1 would update" in line and "1 would delete" in line, line
    assert "INSERT" in r.stdout and "DELETE" in r.stdout, "--verbose shows the statements"
    assert sql(dev, f"SELECT * FROM {dst}.lookup ORDER BY id") == [(1, "a"), (2, "B"), (9, "z")]

    r = cli("sync", "data", s, d, "--table", f"{src}.lookup")
    assert r.exit_code == 0 and "Synced 3 row(s)" in r.output, r.output
    assert "Verified: row counts and every changed key range (1 re-digested) equal before commit" in r.output
    assert sql(dev, f"SELECT * FROM {dst}.lookup ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]

    r = cli("sync", "data", s, d, "--table", "lookup", "--detailed-exitcode", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows_synced"] == 0, r.output


@pytest.mark.mariadb
def test_data_verification_failure_exits_1_and_changes_nothing(dev, dbs, monkeypatch) -> None:
    """A comparison fault (the captured `GROUP BY b` that once shipped) is caught before COMMIT."""
    from dbrepl.sync.data import statements

    src, dst = dbs
    for db in (src, dst):
        sql(dev, f"CREATE TABLE {db}.lookup (id INT PRIMARY KEY, b INT NOT NULL, v INT NOT NULL)")
    sql(dev, f"INSERT INTO {src}.lookup SELECT seq, 1, 1 FROM {src}.seq_1_to_500",
        f"INSERT INTO {dst}.lookup SELECT seq, 1, IF(seq % 5 = 0, 2, 1) FROM {src}.seq_1_to_500")
    before = sql(dev, f"SELECT * FROM {dst}.lookup ORDER BY id")

    def captured(shape, lo, hi, buckets):
        return (f"SELECT {statements.bucket(shape, buckets)} AS b, COUNT(*),"
                f" BIT_XOR(CONV(LEFT({statements.row_hash(shape)}, 16), 16, 10))"
                f" FROM {shape.qname} WHERE {statements.key_range(shape, lo, hi)} GROUP BY b")

    import dbrepl.sync.data.sync as data_sync

    monkeypatch.setattr(data_sync, "_FIRST_DRILL", "bucket")  # the bucket path, under the fault
    monkeypatch.setattr(statements, "bucket_digests", captured)
    r = cli("sync", "data", dsn(dev, src), dsn(dev, dst), "--table", "lookup", "--json")
    assert r.exit_code == 1, r.output
    body = json.loads(r.stdout)
    assert body["status"] == "error" and "verification failed for" in body["error"], body
    assert "rolled back" in body["error"] and "lookup" in body["error"], body
    assert sql(dev, f"SELECT * FROM {dst}.lookup ORDER BY id") == before

    monkeypatch.undo()
    r = cli("sync", "data", dsn(dev, src), dsn(dev, dst), "--table", "lookup", "--verify", "full", "--json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert (body["verify"], body["rows_synced"]) == ("full", 100), body
    assert body["per_table"][0]["verified"] == {"ranges": 1, "rows": 500}, body
    assert sql(dev, f"SELECT * FROM {dst}.lookup ORDER BY id") == sql(dev, f"SELECT * FROM {src}.lookup ORDER BY id")


@pytest.mark.mariadb
def test_data_sync_missing_table_points_to_schema_sync(dev, dbs) -> None:
    src, dst = dbs
    sql(dev, f"CREATE TABLE {src}.lookup (id INT PRIMARY KEY)")
    r = cli("sync", "data", dsn(dev, src), dsn(dev, dst), "--table", "lookup")
    assert r.exit_code == 1 and "sync schema" in r.output, r.output


# --------------------------------------------------------------------------- bad input

@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any AWS request and any database connection."""
    calls: list[str] = []

    def no_request(self: Any, operation_model: Any, request_dict: Any) -> Any:
        calls.append(f"aws:{operation_model.name}")
        raise AssertionError("AWS request during bad input")

    def no_connect(*a: Any, **k: Any) -> Any:
        calls.append("sql:connect")
        raise AssertionError("database connection during bad input")

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", no_request)
    monkeypatch.setattr(pymysql, "connect", no_connect)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("DBREPL_SUFFIX", raising=False)
    return calls


GOOD = "mysql://u@127.0.0.1:1/a"


@pytest.mark.parametrize(("args", "words"), [
    (["sync", "schema", "dev", "nowhere", "-s", "x", "-c", CONFIG], "unknown environment 'nowhere'"),
    (["sync", "schema", "dev", "stag`ing", "-s", "x", "-c", CONFIG], "unknown environment"),
    (["sync", "schema", "dev", "staging", "-c", CONFIG], "no suffix given"),
    (["sync", "schema", "dev", "staging", "-s", "x", "-c", CONFIG, "--database", "app "], "invalid database"),
    (["sync", "schema", "dev", "staging", "-s", "x", "-c", CONFIG, "--database", "a.b"], "invalid database"),
    (["sync", "schema", "dev", "staging", "-s", "x", "-c", CONFIG, "--rename", "app.x =y"], "rename"),
    (["sync", "schema", "dev", "dev", "-s", "x", "-c", CONFIG], "same environment"),
    (["sync", "schema", "mysql://u:hunter2@127.0.0.1:1/", GOOD], "names no database"),
    (["sync", "schema", "mysql://u@127.0.0.1:1/a%01b", GOOD], "invalid database"),
    (["sync", "schema", GOOD, "dev"], "must both be DSNs"),
    (["sync", "schema", GOOD, GOOD], "same database"),
    (["sync", "schema", GOOD, "mysql://u@127.0.0.1:1/b", "--database", "x"], "--database goes with"),
    (["sync", "data", GOOD, "mysql://u@127.0.0.1:1/b"], "name the tables"),
    (["sync", "data", GOOD, "mysql://u@127.0.0.1:1/b", "--table", "t" * 65], "invalid table name"),
    (["sync", "data", "dev", "staging", "-s", "x", "-c", CONFIG, "--table", "a.b "], "invalid table name"),
    (["sync", "data", GOOD, "mysql://u@127.0.0.1:1/b", "--table", "t", "--verify", "most"], "invalid verify"),
    (["sync", "data", "dev", "staging", "-s", "x", "-c", CONFIG, "--table", "mysql.user"], "system schema"),
    (["sync", "data", "dev", "prod", "-s", "x", "-c", CONFIG], "prod is protected: pass --yes"),
    (["sync", "schema", "staging", "prod", "-s", "x", "-c", CONFIG], "prod is protected: pass --yes"),
    (["sync", "status", "-c", CONFIG], "no suffix given"),
    (["migrate", "apply", "prod", "-s", "x", "-c", CONFIG], "prod is protected: pass --yes"),
    (["migrate", "apply", "qa", "-s", "x", "-c", CONFIG], "unknown environment"),
    (["migrate", "apply", "dev", "-s", "x", "-c", CONFIG, "--to", "x.sql"], "must look like V<version>"),
    (["migrate", "status", "dev", "-c", CONFIG], "no suffix given"),
    (["migrate", "push", "V1__x.sql", "-c", CONFIG], "no such file"),
    (["migrate", "push", str(ROOT / "README.md"), "-s", "x", "-c", CONFIG], "must look like V<version>"),
    (["sync", "schema", "dev", "staging", "-s", "x", "-c", "/nonexistent.yaml"], "file not found"),
])
def test_bad_input_exits_2_with_one_line_and_no_sql_or_aws(no_io, args, words) -> None:
    r = cli(*args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert words in r.output, r.output
    assert "hunter2" not in r.output
    assert no_io == []


# --------------------------------------------------------------------------- environment names (moto)

def _function_variables(dev_server: mariadb_server.MariaDB, staging_server: mariadb_server.MariaDB) -> dict[str, str]:
    sm = boto3.client("secretsmanager")
    v = {"ENVIRONMENT_SUFFIX": SUFFIX, "MIGRATION_BUCKET": BUCKET, "SYNC_DATABASES": "app",
         "REFERENCE_TABLES": "app.lookup_data",
         "PROD_SECRET_ARN": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod", "PROD_ENDPOINT": "prod.invalid"}
    for env, server in (("DEV", dev_server), ("STAGING", staging_server)):
        arn = sm.create_secret(Name=f"{env.lower()}-aurora-secret-{SUFFIX}",
                               SecretString=json.dumps({"username": USER, "password": PASSWORD}))["ARN"]
        v.update({f"{env}_SECRET_ARN": arn, f"{env}_ENDPOINT": "127.0.0.1", f"{env}_PORT": str(server.port)})
    return v


@pytest.fixture(scope="module")
def estate(dev, staging) -> Iterator[dict[str, str]]:
    """The deployed functions (configuration only: `--direct` runs their code here), bucket, secrets."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        with mock_aws():
            variables = _function_variables(dev, staging)
            trust = json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}]})
            role = boto3.client("iam").create_role(RoleName=f"db-sync-lambda-role-{SUFFIX}",
                                                   AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            lam = boto3.client("lambda")
            for kind in ("schema", "data"):
                lam.create_function(FunctionName=f"db-sync-{kind}-replication-{SUFFIX}", Runtime="python3.12",
                                    Role=role, Handler=f"{kind}_sync.lambda_handler",
                                    Code={"ZipFile": _zip()}, Environment={"Variables": variables})
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            yield variables
            _remove_estate()


def _remove_estate() -> None:
    """What `estate` made, removed: another module's `estate` (test_cli_migrate shares this
    fixture) may run inside the same moto state when an outer mock is active."""
    lam, sm, s3, ssm = (boto3.client(s) for s in ("lambda", "secretsmanager", "s3", "ssm"))
    for kind in ("schema", "data"):
        lam.delete_function(FunctionName=f"db-sync-{kind}-replication-{SUFFIX}")
    boto3.client("iam").delete_role(RoleName=f"db-sync-lambda-role-{SUFFIX}")
    for env in ("dev", "staging"):
        sm.delete_secret(SecretId=f"{env}-aurora-secret-{SUFFIX}", ForceDeleteWithoutRecovery=True)
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    s3.delete_bucket(Bucket=BUCKET)
    for p in ssm.get_parameters_by_path(Path=f"/db-replication/{SUFFIX}", Recursive=True)["Parameters"]:
        ssm.delete_parameter(Name=p["Name"])


def _zip() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("schema_sync.py", "")
    return buf.getvalue()


@pytest.fixture
def app_dbs(dev, staging, estate) -> Iterator[None]:
    """dev holds app (customer, orders, lookup_data with rows); staging has no app; no records, no scripts."""
    for server in (dev, staging):
        sql(server, "DROP DATABASE IF EXISTS app")
    sql(dev, "CREATE DATABASE app",
        "CREATE TABLE app.customer (id INT PRIMARY KEY, name VARCHAR(40))",
        "CREATE TABLE app.lookup_data (code VARCHAR(10) PRIMARY KEY, label VARCHAR(40))",
        "INSERT INTO app.lookup_data VALUES ('a', 'Alpha'), ('b', 'Beta')")
    ssm = boto3.client("ssm")
    for p in ssm.get_parameters_by_path(Path=f"/db-replication/{SUFFIX}", Recursive=True)["Parameters"]:
        ssm.delete_parameter(Name=p["Name"])
    s3 = boto3.client("s3")
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    yield


ENV_ARGS = ("--suffix", SUFFIX, "--config", CONFIG)


@pytest.mark.mariadb
def test_direct_schema_and_data_sync_with_env_names_then_status(dev, staging, app_dbs) -> None:
    r = cli("sync", "schema", "dev", "staging", "--direct", "--dry-run", "--detailed-exitcode", *ENV_ARGS)
    assert r.exit_code == 3 and "CREATE DATABASE" in r.stdout, r.output

    r = cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and "verified" in r.output, r.output
    assert '"_aws"' not in r.output and "metrics" not in r.output  # the EMF line is the function log's
    assert {t for (t,) in sql(staging, "SHOW TABLES FROM app")} == {"customer", "lookup_data"}

    r = cli("sync", "data", "dev", "staging", "--direct", "--dry-run", *ENV_ARGS)
    assert r.exit_code == 0 and "2 would insert" in r.output, r.output
    r = cli("sync", "data", "dev", "staging", "--direct", "--json", "--verbose", *ENV_ARGS)
    assert r.exit_code == 0 and json.loads(r.stdout)["rows_synced"] == 2, r.output
    # --verbose shows the run's EMF line, on stderr only (stdout stays the JSON), one line.
    metrics_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("metrics: ")]
    assert len(metrics_lines) == 1, r.stderr
    doc = json.loads(metrics_lines[0].removeprefix("metrics: "))
    assert (doc["Route"], doc["Kind"], doc["RowsInserted"], doc["Success"]) == ("dev->staging", "data", 2, 1)
    assert sql(staging, "SELECT * FROM app.lookup_data ORDER BY code") == [("a", "Alpha"), ("b", "Beta")]
    r = cli("sync", "data", "dev", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and "No differences" in r.output and '"_aws"' not in r.output, r.output

    ssm = boto3.client("ssm")
    rec = json.loads(ssm.get_parameter(Name=f"/db-replication/{SUFFIX}/last-data-sync/dev-to-staging")
                     ["Parameter"]["Value"])
    assert rec["status"] == "success" and rec["rows_synced"] == 0  # the last run found nothing to do

    r = cli("sync", "status", "--suffix", SUFFIX, "--config", CONFIG)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any(ln.startswith("schema") and "dev-to-staging" in ln and "success" in ln for ln in lines), r.output
    assert any(ln.startswith("data") and "dev-to-staging" in ln and "rows_synced 0" in ln for ln in lines), r.output
    body = json.loads(cli("sync", "status", "--suffix", SUFFIX, "--config", CONFIG, "--json").stdout)
    assert {(b["kind"], b["pair"], b["status"]) for b in body} == {
        ("schema", "dev-to-staging", "success"), ("data", "dev-to-staging", "success")}


@pytest.mark.mariadb
def test_direct_data_sync_feeds_the_progress_bar(dev, staging, app_dbs, monkeypatch) -> None:
    """--direct runs the handler's code here, so the CLI's progress bar gets its Progress events."""
    from dbrepl.cli import sync as cli_sync

    seen: list[Any] = []

    class Recorder:  # stands in for the rich bar (which stays off without a terminal)
        def __enter__(self) -> Any:
            return seen.append

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(cli_sync, "_progress_bar", Recorder)
    sql(dev, "INSERT INTO app.lookup_data SELECT CONCAT('k', seq), CONCAT('label ', seq) FROM app.seq_1_to_3000")
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    r = cli("sync", "data", "dev", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and "Synced 3002 row(s)" in r.output, r.output
    assert "no progress" not in r.output
    assert seen and {(p.database, p.table) for p in seen} == {("app", "lookup_data")}
    compared = [p.rows_compared for p in seen]
    assert compared == sorted(compared) and compared[-1] == 3002
    assert all(p.rows_compared <= p.rows_estimate for p in seen)
    assert seen[-1].phase == "done" and seen[-1].inserted == 3002
    phases = [p.phase for p in seen[:-1]]  # empty target: copied, not compared; then verified
    assert set(phases) == {"apply", "verify"} and phases == sorted(phases), phases


def test_progress_bar_follows_compared_rows(monkeypatch) -> None:
    from rich.console import Console

    from dbrepl.cli import sync as cli_sync
    from dbrepl.sync.data import Progress

    monkeypatch.setattr(cli_sync, "err", Console(file=io.StringIO(), force_terminal=True, width=100))
    bar = cli_sync._progress_bar()
    hook = bar.__enter__()
    try:
        hook(Progress("app", "t", "compare", 10, 100, 0, 0, 0))
        hook(Progress("app", "t", "apply", 150, 150, 5, 0, 0))
        task = bar.bar.tasks[0]
        assert (task.description, task.completed, task.total) == ("app.t", 150, 150)
    finally:
        bar.__exit__(None, None, None)


@pytest.mark.mariadb
def test_direct_refusal_and_unknown_table_from_the_function(dev, staging, app_dbs) -> None:
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    sql(staging, "ALTER TABLE app.customer ADD COLUMN legacy INT")
    r = cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 1 and "drop column" in r.output and "legacy" in r.output, r.output
    r = cli("sync", "data", "dev", "staging", "--direct", "--table", "nosuch", *ENV_ARGS)
    assert r.exit_code == 2 and "nosuch" in r.output, r.output


@pytest.mark.mariadb
def test_protected_target_with_yes_reaches_the_function(dev, staging, app_dbs) -> None:
    # prod's endpoint does not resolve: the run gets past the protection and fails connecting.
    r = cli("sync", "schema", "staging", "prod", "--direct", "--yes", *ENV_ARGS)
    assert r.exit_code == 1 and "prod" in r.output, r.output
    assert "protected" not in r.output


@pytest.mark.mariadb
def test_invoke_sends_the_seed_event_and_renders_the_result(dev, staging, app_dbs, monkeypatch, estate) -> None:
    """Without --direct the function is invoked; here a stand-in Lambda runs the real handler."""
    events: list[dict[str, Any]] = []

    class Lambda:
        def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
            assert InvocationType == "RequestResponse"
            event = json.loads(Payload)
            events.append({"function": FunctionName, **event})
            kind = "schema" if "schema" in FunctionName else "data"
            module = app_functions.handler_module(kind)
            with monkeypatch.context() as mp:
                for k, v in estate.items():
                    mp.setenv(k, v)
                response = module.lambda_handler(event, None)
            return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(response).encode())}

    monkeypatch.setattr(app_functions.Functions, "_invoke_client", lambda self: Lambda())
    r = cli("sync", "schema", "dev", "staging", "--database", "app", *ENV_ARGS)
    assert r.exit_code == 0 and "verified" in r.output, r.output
    r = cli("sync", "data", "dev", "staging", "--table", "lookup_data", "--dry-run", *ENV_ARGS)
    assert r.exit_code == 0 and "2 would insert" in r.output, r.output
    assert f"Invoking function db-sync-data-replication-{SUFFIX}: no progress is shown" in r.output
    assert events == [
        {"function": f"db-sync-schema-replication-{SUFFIX}", "source_env": "dev", "target_env": "staging",
         "dry_run": False, "allow_destructive": False, "databases": ["app"]},
        {"function": f"db-sync-data-replication-{SUFFIX}", "source_env": "dev", "target_env": "staging",
         "dry_run": True, "tables": ["lookup_data"]},
    ]


@pytest.mark.mariadb
def test_function_not_deployed_says_so(app_dbs) -> None:
    r = cli("sync", "schema", "dev", "staging", "--direct", "--suffix", "other", "--config", CONFIG)
    assert r.exit_code == 1 and "db-sync-schema-replication-other" in r.output and "dbrepl apply" in r.output, r.output


@pytest.mark.mariadb
def test_direct_blocking_change_refused_then_through_the_online_tool(dev, staging, app_dbs) -> None:
    """Issue 20 with environment names and --direct: the limit, then pt-online-schema-change
    with the secret's credentials (never printed: cli() checks every output)."""
    import shutil

    if shutil.which("pt-online-schema-change") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but pt-online-schema-change is missing; .ci/run must install percona-toolkit")
        pytest.skip("pt-online-schema-change not installed (apt-get install percona-toolkit)")
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    sql(staging, "INSERT INTO app.customer SELECT seq, 'name' FROM app.seq_1_to_3000")
    sql(dev, "ALTER TABLE app.customer MODIFY name VARCHAR(40) CHARACTER SET latin1")  # a COPY on staging
    r = cli("sync", "schema", "dev", "staging", "--direct", "--allow-destructive", "--blocking-limit", "1KB",
            *ENV_ARGS)
    assert r.exit_code == 1 and "blocking limit" in r.output and "ALGORITHM=COPY" in r.output, r.output
    r = cli("sync", "schema", "dev", "staging", "--direct", "--allow-destructive", "--blocking-limit", "1KB",
            "--online-tool", "pt-online-schema-change", *ENV_ARGS)
    assert r.exit_code == 0 and "pt-online-schema-change:" in r.output and "verified" in r.output, r.output
    assert "latin1" in sql(staging, "SHOW CREATE TABLE app.customer")[0][1]
    assert sql(staging, "SELECT COUNT(*) FROM app.customer") == [(3000,)]


# --------------------------------------------------------------------------- migrations

@pytest.mark.mariadb
def test_migrate_push_apply_status(dev, staging, app_dbs, tmp_path) -> None:
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    scripts = {
        "V1__create_orders.sql": "CREATE TABLE orders (id INT PRIMARY KEY);\n",
        "V2__seed.sql": "-- seed\nINSERT INTO orders VALUES (1), (2);\n",
        "V3__index.sql": "ALTER TABLE orders ADD COLUMN note VARCHAR(10);\n",
    }
    paths = []
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))

    r = cli("migrate", "push", *paths, *ENV_ARGS)
    assert r.exit_code == 0 and f"s3://{BUCKET}/migrations/V3__index.sql" in r.output, r.output

    r = cli("migrate", "status", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and r.output.count("pending") == 3, r.output
    r = cli("migrate", "apply", "staging", "--direct", "--dry-run", *ENV_ARGS)
    assert r.exit_code == 0 and "3 script(s) pending" in r.output, r.output

    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and "Applied 3 script(s)" in r.output, r.output
    assert sql(staging, "SELECT id FROM app.orders ORDER BY id") == [(1,), (2,)]
    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 0 and "up to date" in r.output, r.output

    body = json.loads(cli("migrate", "status", "staging", "--direct", "--json", *ENV_ARGS).stdout)
    assert [s["state"] for s in body["status_by_database"]["app"]] == ["applied"] * 3

    (tmp_path / "V2__seed.sql").write_text("INSERT INTO orders VALUES (3);\n")
    # Issue 19: replacing a script an environment ran is refused (exit 2, naming it), unless --force.
    r = cli("migrate", "push", str(tmp_path / "V2__seed.sql"), "--direct", *ENV_ARGS)
    assert r.exit_code == 2 and "V2__seed.sql ran on staging" in r.output, r.output
    assert cli("migrate", "push", str(tmp_path / "V2__seed.sql"), "--force", *ENV_ARGS).exit_code == 0
    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 1 and "changed" in r.output and "V2__seed.sql" in r.output, r.output

    rec = json.loads(boto3.client("ssm").get_parameter(
        Name=f"/db-replication/{SUFFIX}/last-schema-sync/migrations-to-staging")["Parameter"]["Value"])
    assert rec["status"] == "refused"


@pytest.mark.mariadb
def test_protected_target_asks_on_a_terminal(app_dbs, monkeypatch) -> None:
    from dbrepl.cli import sync as cli_sync

    monkeypatch.setattr(cli_sync, "_on_terminal", lambda: True)
    r = runner.invoke(app, ["sync", "schema", "staging", "prod", "--direct", *ENV_ARGS], input="n\n")
    assert r.exit_code == 1 and "protected environment" in r.output and "Nothing was changed" in r.output, r.output
    r = runner.invoke(app, ["sync", "schema", "staging", "prod", "--direct", *ENV_ARGS], input="y\n")
    assert r.exit_code == 1 and "prod database secret" in r.output, "past the question, on to prod"


@pytest.mark.mariadb
def test_failing_migration_is_recorded_and_stops_the_run(staging, app_dbs, tmp_path) -> None:
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    for name, text in {"V1__ok.sql": "CREATE TABLE t1 (id INT PRIMARY KEY);",
                       "V2__bad.sql": "CREATE TABLE t2 (id INT PRIMARY KEY);\nINSERT INTO nosuch VALUES (1);",
                       "V3__later.sql": "CREATE TABLE t3 (id INT PRIMARY KEY);"}.items():
        (tmp_path / name).write_text(text)
    assert cli("migrate", "push", *sorted(str(p) for p in tmp_path.iterdir()), *ENV_ARGS).exit_code == 0
    r = cli("migrate", "apply", "staging", "--direct", *ENV_ARGS)
    assert r.exit_code == 1, r.output
    assert "applied V1__ok.sql" in r.output and "failed V2__bad.sql" in r.output and "nosuch" in r.output
    assert "not applied V3__later.sql" in r.output
    tables = {t for (t,) in sql(staging, "SHOW TABLES FROM app")}
    assert "t1" in tables and "t3" not in tables
    assert sql(staging, "SELECT script, success FROM app.dbrepl_schema_history ORDER BY installed_rank") == [
        ("V1__ok.sql", 1), ("V2__bad.sql", 0)]
    r = cli("migrate", "status", "staging", "--direct", *ENV_ARGS)
    assert "failed" in r.output and "pending" in r.output, r.output


@pytest.mark.mariadb
def test_invoke_errors_name_the_function(app_dbs, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    class Missing:  # what AWS answers for a function that is not deployed (moto's answer varies by version)
        def invoke(self, **kw: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": f"Function not found: {kw.get('FunctionName')}"}}, "Invoke")

    monkeypatch.setattr(app_functions.Functions, "_invoke_client", lambda self: Missing())
    r = cli("sync", "data", "dev", "staging", "--suffix", "other", "--config", CONFIG)
    assert r.exit_code == 1, r.output
    assert "Failed to invoke function db-sync-data-replication-other" in r.output and "dbrepl apply" in r.output

    class Crashing:
        def invoke(self, **kw: Any) -> dict[str, Any]:
            body = {"errorMessage": "Unable to import module 'schema_sync'", "errorType": "Runtime.ImportModuleError"}
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(body).encode())}

    monkeypatch.setattr(app_functions.Functions, "_invoke_client", lambda self: Crashing())
    r = cli("sync", "schema", "dev", "staging", *ENV_ARGS)
    assert r.exit_code == 1 and "Unable to import module" in r.output, r.output
    assert f"/aws/lambda/db-sync-schema-replication-{SUFFIX}" in r.output, r.output


@pytest.mark.mariadb
def test_direct_verbose_dry_run_shows_the_functions_statements(dev, staging, app_dbs) -> None:
    assert cli("sync", "schema", "dev", "staging", "--direct", *ENV_ARGS).exit_code == 0
    r = cli("sync", "data", "dev", "staging", "--direct", "--dry-run", "--verbose", *ENV_ARGS)
    assert r.exit_code == 0 and "INSERT INTO `app`.`lookup_data`" in r.output, r.output


def test_no_password_in_any_output() -> None:
    """Every command this module ran: no password (cli() checks each; this checks they ran)."""
    if not OUTPUTS:
        pytest.skip("runs after the other tests of this module")
    assert not any(PASSWORD in o for o in OUTPUTS)
