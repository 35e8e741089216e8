"""TLS to the databases (issue 11, point 5): real MariaDB servers serving TLS with certificates
made by the test (dbrepl.sandbox.tls), dbrepl's one connect function, the CLI on DSNs, the
functions' code with the CA bundle of their zip, and the spec's `databases.tls`.

No output may hold the password.
"""

from __future__ import annotations

import io
import json
import os
import re
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from typer.testing import CliRunner

from dbrepl.bundle import build_bundle, code_sha256
from dbrepl.cli import app
from dbrepl.sandbox.tls import make_server_tls
from dbrepl.spec import load_spec
from dbrepl.sync import aws, contract
from dbrepl.sync.connection import Endpoint, Tls, connect, parse_dsn
from dbrepl.sync.data.event import run_data_event
from dbrepl.sync.errors import DatabaseError, InvalidInput
from dbrepl.sync.schema.event import run_schema_event
from tests import mariadb_server

pytestmark = pytest.mark.mariadb

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Pw-" + uuid.uuid4().hex
USER = "syncer"
runner = CliRunner()


def _need_mariadb() -> None:
    if mariadb_server.find_binaries() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but MariaDB server binaries are missing; install mariadb-server")
        pytest.skip("MariaDB server binaries not installed (apt-get install mariadb-server)")


@pytest.fixture(scope="module")
def server() -> Iterator[mariadb_server.MariaDB]:
    """A server that requires TLS (require_secure_transport), as the clusters' parameter group says."""
    _need_mariadb()
    db = mariadb_server.start(require_tls=True)
    conn = db.connect()  # pymysql's default: TLS when the server offers it
    with conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (USER, PASSWORD))
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'")
        cur.execute("CREATE DATABASE IF NOT EXISTS tls_src")
        cur.execute("CREATE DATABASE IF NOT EXISTS tls_dst")
        cur.execute("CREATE TABLE IF NOT EXISTS tls_src.t (id INT PRIMARY KEY, v VARCHAR(10))")
    conn.close()
    yield db
    db.stop()


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the server's certificate."""
    return make_server_tls(tmp_path_factory.mktemp("other-ca"), common_name="not the server's CA").ca


def cli(*args: str) -> Any:
    r = runner.invoke(app, list(args))
    assert "Traceback" not in r.output, r.output
    assert PASSWORD not in r.output, "a password was printed"
    return r


def dsn(server: mariadb_server.MariaDB, database: str, query: str = "") -> str:
    return f"mysql://{USER}:{PASSWORD}@127.0.0.1:{server.port}/{database}{'?' + query if query else ''}"


def _ssl_version(conn: Any) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        return str(cur.fetchone()[1])


# --------------------------------------------------------------------------- the one connect

def test_verified_connection_uses_tls_and_checks_the_host_name(server) -> None:
    for host in ("127.0.0.1", "localhost"):  # both are in the certificate's names
        endpoint = Endpoint(host, server.port, USER, PASSWORD, tls=Tls(ca_bundle=str(server.ca_bundle)))
        conn = connect(endpoint)
        try:
            assert _ssl_version(conn) in ("TLSv1.2", "TLSv1.3")
        finally:
            conn.close()


def test_unverified_connection_is_still_encrypted(server) -> None:
    conn = connect(Endpoint("127.0.0.1", server.port, USER, PASSWORD))
    try:
        assert _ssl_version(conn) in ("TLSv1.2", "TLSv1.3")
    finally:
        conn.close()
    assert Tls().mode == "unverified" and "is not verified" in (Tls().warning("x", "fix") or "")
    assert Tls(ca_bundle="/ca.pem").warning("x", "fix") is None


def test_wrong_ca_fails_naming_tls_verification(server, other_ca) -> None:
    with pytest.raises(DatabaseError) as e:
        connect(Endpoint("127.0.0.1", server.port, USER, PASSWORD, tls=Tls(ca_bundle=str(other_ca))))
    assert "TLS verification failed" in str(e.value) and str(other_ca) in str(e.value)
    assert PASSWORD not in str(e.value)


def test_a_certificate_for_another_name_is_refused(tmp_path) -> None:
    """Chain good, name wrong: the host name is checked, not only the chain."""
    _need_mariadb()
    elsewhere = make_server_tls(tmp_path / "tls", names=("db.example.invalid",))
    db = mariadb_server.start(server_tls=elsewhere)
    try:
        with pytest.raises(DatabaseError, match="TLS verification failed") as e:
            connect(Endpoint("127.0.0.1", db.port, "root", "", tls=Tls(ca_bundle=str(elsewhere.ca))))
        assert "127.0.0.1" in str(e.value)
    finally:
        db.stop()


def test_plain_text_is_refused_by_a_server_that_requires_tls(server) -> None:
    # MariaDB 10.11 answers a plain-text login under require_secure_transport with 1045
    # (Aurora MySQL 3: 3159, "Connections using insecure transport are prohibited").
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD, ssl_disabled=True)
    # The same through dbrepl: a DSN that turns TLS off is refused by the server, exit 1.
    r = cli("sync", "schema", dsn(server, "tls_src", "ssl-mode=disabled"), dsn(server, "tls_dst"), "--dry-run")
    assert r.exit_code == 1, r.output
    assert "Failed to connect to mysql://syncer@127.0.0.1" in r.output
    assert "plain text (ssl-mode=disabled)" in r.output and "drop ssl-mode=disabled" in r.output, r.output
    assert "warning" not in r.output  # no connection was made: nothing to warn about


def test_dbrepl_refuses_a_server_without_tls() -> None:
    _need_mariadb()
    db = mariadb_server.start(tls=False)
    try:
        with pytest.raises(DatabaseError, match="the server does not offer TLS, which dbrepl requires"):
            connect(Endpoint("127.0.0.1", db.port, "root", ""))
        # ... unless the DSN says so, and then the run says it is plain text.
        conn = connect(parse_dsn(f"mysql://root@127.0.0.1:{db.port}/mysql?ssl-mode=disabled", {}))
        conn.close()
    finally:
        db.stop()


# --------------------------------------------------------------------------- the CLI on DSNs

def test_cli_wrong_ca_exits_1_naming_tls_verification_without_the_password(server, other_ca) -> None:
    q = f"ssl-ca={other_ca}"
    r = cli("sync", "schema", dsn(server, "tls_src", q), dsn(server, "tls_dst", q), "--dry-run")
    assert r.exit_code == 1, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "TLS verification failed" in errors[0], r.output
    assert "is not verified" not in r.output  # verification was asked for


def test_cli_verified_run_prints_no_warning(server) -> None:
    q = f"ssl-ca={server.ca_bundle}"
    r = cli("sync", "schema", dsn(server, "tls_src", q), dsn(server, "tls_dst", q), "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert set(result["tls"].values()) == {"verified"} and "warnings" not in result
    assert "warning" not in r.stderr


def test_cli_unverified_run_warns_once_per_database(server) -> None:
    r = cli("sync", "schema", dsn(server, "tls_src"), dsn(server, "tls_dst"), "--dry-run")
    assert r.exit_code == 0, r.output
    for db in ("tls_src", "tls_dst"):
        line = f"TLS to mysql://syncer@127.0.0.1:{server.port}/{db} is not verified"
        assert r.stderr.count(line) == 1, r.stderr
    assert "add ?ssl-ca=PATH to the DSN" in r.stderr
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS tls_dst.t (id INT PRIMARY KEY, v VARCHAR(10))")
    conn.close()
    d = cli("sync", "data", dsn(server, "tls_src"), dsn(server, "tls_dst"), "-t", "t", "--dry-run", "--json")
    assert d.exit_code == 0, d.output
    result = json.loads(d.stdout)
    assert set(result["tls"].values()) == {"unverified"} and len(result["warnings"]) == 2
    assert d.stderr.count("is not verified") == 2


@pytest.mark.parametrize(("query", "words"), [
    ("ssl-ca=/nonexistent/ca.pem", "CA bundle '/nonexistent/ca.pem' not found"),
    ("ssl-mode=verify_identity", "ssl-mode=verify_identity needs ssl-ca=PATH"),
    ("ssl-mode=disabled&ssl-ca=/x.pem", "contradict"),
    ("ssl-mode=sometimes", "ssl-mode must be one of required, verify_identity, disabled"),
    ("sslca=/x.pem", "unknown option 'sslca'"),
])
def test_bad_dsn_tls_options_exit_2_touching_nothing(query: str, words: str) -> None:
    # No server: bad input is found before any connection.
    r = cli("sync", "schema", f"mysql://u:{PASSWORD}@127.0.0.1:1/a?{query}", "mysql://u@127.0.0.1:1/b", "--dry-run")
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], r.output


# --------------------------------------------------------------------------- the functions

class Secrets:
    def get_secret_value(self, SecretId: str) -> dict[str, str]:  # noqa: N803 - boto3's name
        return {"SecretString": json.dumps({"username": USER, "password": PASSWORD})}


def _environ(server: mariadb_server.MariaDB, **extra: str) -> dict[str, str]:
    v = {"SYNC_DATABASES": "tls_src", "REFERENCE_TABLES": "tls_src.t"}
    for env in ("dev", "staging"):
        v.update({contract.secret_arn_variable(env): f"arn:aws:secretsmanager:us-east-1:1:secret:{env}",
                  contract.endpoint_variable(env): "127.0.0.1", contract.port_variable(env): str(server.port)})
    return {**v, **extra}


def _client(service: str) -> Any:
    assert service == "secretsmanager", service  # no ENVIRONMENT_SUFFIX: no record is written
    return Secrets()


def test_function_without_a_ca_bundle_says_so_in_its_result(server) -> None:
    r = run_data_event({"source_env": "dev", "target_env": "staging", "dry_run": True}, _environ(server),
                       client=_client)
    assert r["status"] == "success", r
    assert r["tls"] == {"dev": "unverified", "staging": "unverified"}
    version = r["warnings"][0].split("encrypted with ")[1].split(",")[0]
    assert version.startswith("TLSv1."), r["warnings"]
    assert r["warnings"] == [f"TLS to {env} is not verified (encrypted with {version}, but the server's certificate "
                             "was not checked): set databases.tls.ca_bundle in the spec and run "
                             "dbrepl apply (see docs/configuration.md, \"TLS to the databases\")"
                             for env in ("dev", "staging")]


def test_function_verifies_against_the_ca_bundle_of_its_zip(server, tmp_path) -> None:
    """The zip as Lambda unpacks it under LAMBDA_TASK_ROOT: its CA bundle is what the code verifies with."""
    zipfile.ZipFile(io.BytesIO(build_bundle(server.ca_bundle))).extractall(tmp_path)
    environ = _environ(server, LAMBDA_TASK_ROOT=str(tmp_path))
    assert aws.function_tls(environ) == Tls(ca_bundle=str(tmp_path / contract.TLS_CA_FILE))
    r = run_schema_event({"source_env": "dev", "target_env": "staging", "dry_run": True,
                          "databases": ["tls_src"]}, environ, client=_client)
    assert r["status"] == "success", r
    assert r["tls"] == {"dev": "verified", "staging": "verified"} and "warnings" not in r


def test_function_with_the_wrong_ca_fails_naming_tls(server, other_ca) -> None:
    environ = _environ(server, **{contract.TLS_CA_BUNDLE: str(other_ca)})
    r = run_data_event({"source_env": "dev", "target_env": "staging", "dry_run": True}, environ, client=_client)
    assert r["status"] == "error" and "TLS verification failed" in r["error"], r
    assert PASSWORD not in json.dumps(r)
    missing = _environ(server, **{contract.TLS_CA_BUNDLE: "/nonexistent.pem"})
    r = run_data_event({"source_env": "dev", "target_env": "staging", "dry_run": True}, missing, client=_client)
    assert r["status"] == "invalid" and "/nonexistent.pem" in r["error"], r


def test_function_tls_reads_only_its_own_places(tmp_path) -> None:
    assert aws.function_tls({}) == Tls()
    assert aws.function_tls({contract.LAMBDA_TASK_ROOT: str(tmp_path)}) == Tls()  # a zip without a bundle
    assert aws.function_tls({contract.TLS_CA_BUNDLE: ""}) == Tls()
    with pytest.raises(InvalidInput):
        aws.function_tls({contract.TLS_CA_BUNDLE: str(tmp_path / "none.pem")})


# --------------------------------------------------------------------------- the bundle

def test_bundle_carries_the_ca_and_its_content_changes_the_hash(tmp_path) -> None:
    ca = make_server_tls(tmp_path / "a").ca
    with_ca = build_bundle(ca)
    assert build_bundle(ca) == with_ca  # deterministic
    z = zipfile.ZipFile(io.BytesIO(with_ca))
    assert z.read(contract.TLS_CA_FILE) == ca.read_bytes()
    info = z.getinfo(contract.TLS_CA_FILE)
    assert info.date_time == (1980, 1, 1, 0, 0, 0) and info.external_attr >> 16 == 0o100644
    without = build_bundle()
    assert contract.TLS_CA_FILE not in zipfile.ZipFile(io.BytesIO(without)).namelist()
    assert code_sha256(without) != code_sha256(with_ca)
    ca.write_bytes(make_server_tls(tmp_path / "b").ca.read_bytes())  # same path, new content
    assert code_sha256(build_bundle(ca)) != code_sha256(with_ca)


# --------------------------------------------------------------------------- the spec

def _spec(tmp_path: Path, tls: str) -> Path:
    text = (ROOT / "config" / "environments.yaml").read_text(encoding="utf-8")
    # The default's own databases block goes: a key given twice is refused (issue 19, item 1).
    text = re.sub(r"^databases:\n(?:(?:[ \t].*)?\n)*", "", text, flags=re.M)
    assert "\ndatabases:" not in text and "\ntiming:" in text
    path = tmp_path / "conf" / "environments.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + f"\ndatabases:\n  tls: {tls}\n", encoding="utf-8")
    return path


def test_spec_ca_bundle_is_relative_to_the_spec_and_goes_into_the_bundle(tmp_path, monkeypatch) -> None:
    ca = make_server_tls(tmp_path / "conf" / "certs").ca
    spec_file = _spec(tmp_path, "{ca_bundle: certs/ca.pem}")
    monkeypatch.chdir(tmp_path)  # not the spec's folder: the path is the spec's
    spec = load_spec(spec_file)
    assert spec.databases.tls.ca_bundle == ca.resolve() and spec.databases.tls.verified_bundle == ca.resolve()
    r = cli("bundle", "--output", str(tmp_path / "b.zip"), "--config", str(spec_file))
    assert r.exit_code == 0 and f"CA bundle {ca.resolve()}" in r.output, r.output
    assert (tmp_path / "b.zip").read_bytes() == build_bundle(ca)
    off = load_spec(_spec(tmp_path, "{ca_bundle: certs/ca.pem, verify: false}"))
    assert off.databases.tls.verified_bundle is None  # not verified, so not bundled
    assert load_spec(ROOT / "config" / "environments.yaml").databases.tls.verified_bundle is None


@pytest.mark.parametrize(("tls", "words"), [
    ("{ca_bundle: missing.pem}", "databases.tls.ca_bundle: CA bundle {dir}/missing.pem not found; download the RDS "
                                 "bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"),
    ("{ca_bundle: environments.yaml}", "holds no PEM certificate"),
    ("{ca: x.pem}", "databases.tls.ca: unknown key"),
    ("{verify: maybe}", "databases.tls.verify"),
])
def test_bad_tls_settings_exit_2_with_one_line(tmp_path, tls: str, words: str) -> None:
    spec_file = _spec(tmp_path, tls)
    r = cli("bundle", "--output", str(tmp_path / "b.zip"), "--config", str(spec_file))
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and words.format(dir=spec_file.parent) in lines[0], r.output
    assert not (tmp_path / "b.zip").exists()


@pytest.mark.parametrize("kind", ["schema", "data"])
def test_handlers_log_the_warnings_for_the_function_log(kind: str, monkeypatch, caplog) -> None:
    import logging

    from dbrepl.sync.handlers import data_sync, schema_sync

    module = {"schema": schema_sync, "data": data_sync}[kind]
    line = "TLS to dev is not verified: set databases.tls.ca_bundle in the spec and run dbrepl apply"
    monkeypatch.setattr(module, f"run_{kind}_event", lambda event, **kw: {"status": "success", "warnings": [line]})
    with caplog.at_level(logging.WARNING):
        response = module.lambda_handler({}, None)
    assert json.loads(response["body"])["warnings"] == [line]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [line]


# --------------------------------------------------------------------------- protected needs the bundle

def test_protected_without_bundle_is_refused_outside_the_sandbox_only(tmp_path: Path) -> None:
    """plan/apply's check (issue 18): the default spec (prod protected, no bundle) is refused on AWS;
    in a sandbox with stand-ins its CA is the bundle; in one without stand-ins no database exists."""
    from dbrepl.app import refuse_unverified_protected
    from dbrepl.errors import BadInput
    from dbrepl.sandbox import Sandbox
    from dbrepl.sandbox.state import State

    spec = load_spec(ROOT / "config" / "environments.yaml")
    with pytest.raises(BadInput, match="databases.tls.ca_bundle: not set while prod is protected"):
        refuse_unverified_protected(spec)
    ca = make_server_tls(tmp_path / "tls").ca
    base = {"root": str(tmp_path), "endpoint": "http://127.0.0.1:9", "port": 9, "pid": 0}
    with_stand_ins = Sandbox(State(**base, ca_bundle=str(ca)))
    refuse_unverified_protected(spec, with_stand_ins)
    assert with_stand_ins.effective_spec(spec).databases.tls.verified_bundle == Path(ca)
    refuse_unverified_protected(spec, Sandbox(State(**base)))


# --------------------------------------------------------------------------- what TLS messages say, and when

def _fresh_server_without_tls() -> mariadb_server.MariaDB:
    _need_mariadb()
    db = mariadb_server.start(tls=False)
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (USER, PASSWORD))
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'")
        cur.execute("CREATE DATABASE IF NOT EXISTS plain_src")
        cur.execute("CREATE DATABASE IF NOT EXISTS plain_dst")
    conn.close()
    return db


def test_a_server_without_tls_names_the_dsn_that_runs_and_no_warning_comes_first() -> None:
    db = _fresh_server_without_tls()
    try:
        r = cli("sync", "schema", dsn(db, "plain_src"), dsn(db, "plain_dst"), "--dry-run")
        assert r.exit_code == 1, r.output
        assert "warning" not in r.output and "ssl-ca=PATH" not in r.output, r.output  # nothing known before
        error = r.stderr.strip()
        assert error.startswith("error:") and len(error.splitlines()) == 1, r.stderr
        assert "the server does not offer TLS" in error
        hint = f"mysql://{USER}@127.0.0.1:{db.port}/plain_src?ssl-mode=disabled"
        assert hint in error and "MYSQL_PWD" in error, error
        # The hint runs as printed (the password from MYSQL_PWD, as it says).
        ok = runner.invoke(app, ["sync", "schema", hint, hint.replace("plain_src", "plain_dst"), "--dry-run"],
                           env={"MYSQL_PWD": PASSWORD})
        assert ok.exit_code == 0, ok.output
        assert "is off" in ok.stderr and "ssl-mode=disabled" in ok.stderr
    finally:
        db.stop()


@pytest.mark.parametrize("kind", ["schema", "data"])
def test_a_failed_connection_prints_no_tls_warning(server, kind: str) -> None:
    wrong = dsn(server, "tls_src").replace(PASSWORD, "not-the-password")
    refused = f"mysql://{USER}@127.0.0.1:{_closed_port()}/tls_dst"
    extra = ["--table", "t"] if kind == "data" else []
    for src, dst, words in ((wrong, dsn(server, "tls_dst"), "Access denied"),
                            (refused, dsn(server, "tls_dst"), "Connection refused")):
        r = cli("sync", kind, src, dst, "--dry-run", *extra)
        assert r.exit_code == 1, r.output
        assert words in r.output and "warning" not in r.output and "ssl-ca" not in r.output, r.output
        j = cli("sync", kind, src, dst, "--dry-run", "--json", *extra)
        assert j.exit_code == 1 and "warnings" not in json.loads(j.stdout), j.stdout


def test_the_unverified_warning_says_what_the_handshake_found(server) -> None:
    r = cli("sync", "schema", dsn(server, "tls_src"), dsn(server, "tls_dst"), "--dry-run")
    assert r.exit_code == 0, r.output
    assert "is not verified (encrypted with TLSv1." in r.stderr and "add ?ssl-ca=PATH" in r.stderr, r.stderr


def test_the_function_warns_only_after_it_connected(server) -> None:
    environ = _environ(server)
    environ[contract.port_variable("dev")] = str(_closed_port())
    r = run_data_event({"source_env": "dev", "target_env": "staging", "tables": ["tls_src.t"], "dry_run": True},
                       environ=environ, client=_client)
    assert r["status"] == "error" and "Connection refused" in r["error"], r
    assert "warnings" not in r and r["tls"] == {"dev": "unverified", "staging": "unverified"}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
