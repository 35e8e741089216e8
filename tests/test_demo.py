"""`dbrepl demo` end to end (issue 5): each command a real process in its own temporary working
directory with a copy of config/, on a free port; whatever a test starts is stopped afterwards.

The full demo needs MariaDB's server binaries (skipped without them; a failure under CI=true).
The AWS-only path is simulated with DBREPL_SANDBOX_NO_MARIADB=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pymysql
import pytest

from dbrepl import sandbox
from tests.test_sandbox import ROOT, Run, _kill_leftovers, dbrepl

PASSWORD_LENGTH = 32  # secrets.password_length of config/environments.yaml


@pytest.fixture
def cwd(tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    try:
        yield tmp_path
    finally:
        root = sandbox.state_dir(tmp_path)
        if root.is_dir():
            sandbox.stop(root)
            _kill_leftovers(root)


def _lines(r: Run) -> list[str]:
    return [ln for ln in r.stdout.splitlines() if ln.strip()]


def _line(r: Run, start: str) -> str:
    found = [ln for ln in _lines(r) if ln.startswith(start)]
    assert len(found) == 1, f"no single line starting {start!r} in:\n{r.stdout}\n{r.stderr}"
    return found[0]


def _our_processes(root: Path) -> list[int]:
    """Processes whose command line names this sandbox (moto: its root; MariaDB: its data directory)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            cmd = sandbox.cmdline(int(proc.name))
            if cmd and str(root) in cmd:
                pids.append(int(proc.name))
    return pids


def _query(db: dict, sql: str, args: tuple | None = None) -> list[tuple]:
    conn = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"],
                           connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def _mysql_native_hash(password: str) -> str:
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _assert_no_password(text: str, hashes: set[str]) -> None:
    """No window of the output is a password whose hash the stand-ins hold."""
    for i in range(len(text) - PASSWORD_LENGTH + 1):
        assert _mysql_native_hash(text[i:i + PASSWORD_LENGTH]) not in hashes, "a master password was printed"


def test_demo_end_to_end(cwd: Path) -> None:
    if sandbox.find_mariadb() is None:
        if os.environ.get("CI"):
            pytest.fail("MariaDB server binaries are missing on CI (apt-get install mariadb-server)")
        pytest.skip("MariaDB server binaries not installed (apt-get install mariadb-server)")
    port = sandbox.free_port()
    r = dbrepl(cwd, "demo", "--keep", "--port", str(port), timeout=600)
    assert r.code == 0, r.stdout + r.stderr
    assert _line(r, "✓ sandbox: started").count("127.0.0.1:") == 4
    assert "created" in _line(r, "✓ apply: ok, estate demo:")
    assert "master user admin on dev, staging, prod" in _line(r, "✓ stand-ins:")
    assert _line(r, "✓ plan:") == "✓ plan: no changes (the estate matches the spec)"
    assert "lookup_data (5 rows)" in _line(r, "✓ sample schema:")
    assert "(verified)" in _line(r, "✓ sync schema: synced dev -> staging:")
    assert _line(r, "✓ sync data:").startswith("✓ sync data: synced dev -> staging: rows 5 ")
    # The stand-ins serve TLS with the sandbox's CA, and every connection verified them.
    assert _line(r, "✓ sync schema:").endswith("; TLS verified")
    assert _line(r, "✓ sync data:").endswith("; TLS verified")
    assert "not verified" not in r.stdout + r.stderr
    assert "staging has dev's tables (lookup_data, orders)" in _line(r, "✓ check:")
    assert "V1__orders_note.sql pushed" in _line(r, "✓ migration:") and "applied to staging" in r.stdout
    assert "0 missing, 0 drifted, 0 extra" in _line(r, "✓ status:")
    assert _line(r, "✓ destroy:").startswith("✓ destroy: ok, ")
    assert "left running (--keep)" in _line(r, "✓ sandbox: left")
    assert "✗" not in r.stdout and "Demo complete" in r.stdout

    # The kept stand-ins: staging has dev's tables and reference rows, plus the migration.
    st = json.loads((sandbox.state_dir(cwd) / "state.json").read_text())
    dev, staging = st["databases"]["dev"], st["databases"]["staging"]
    assert {t for (t,) in _query(staging, "SHOW TABLES FROM app")} == {"lookup_data", "orders",
                                                                       "dbrepl_schema_history"}
    rows = "SELECT * FROM app.lookup_data ORDER BY id"
    assert _query(staging, rows) == _query(dev, rows) and len(_query(dev, rows)) == 5
    assert ("note",) in _query(staging, "SELECT column_name FROM information_schema.columns "
                                        "WHERE table_schema = 'app' AND table_name = 'orders'")
    assert _query(staging, "SELECT script, success FROM app.dbrepl_schema_history") == [("V1__orders_note.sql", 1)]
    # Each stand-in has the cluster's master user with every privilege; no password was printed.
    hashes: set[str] = set()
    for db in st["databases"].values():
        grants = " ".join(g for (g,) in _query(db, "SHOW GRANTS FOR 'admin'@'%'"))
        assert "GRANT ALL PRIVILEGES ON *.*" in grants and "WITH GRANT OPTION" in grants
        hashes |= {h for (h,) in _query(db, "SELECT authentication_string FROM mysql.user WHERE user = 'admin'")}
    assert hashes and all(h.startswith("*") for h in hashes)
    _assert_no_password(r.stdout + r.stderr, hashes)

    # The CLI path in the kept sandbox: apply binds the stand-ins, sync runs against them.
    a = dbrepl(cwd, "--sandbox", "apply", "-s", "cli", "--yes", timeout=300)
    assert a.code == 0, a.stderr
    for env in ("dev", "staging", "prod"):
        assert f"Stand-in for {env} (127.0.0.1:{st['databases'][env]['port']}): master user admin" in a.stdout
    # An apply with nothing to change still binds: a stand-in that lost its master user gets it back.
    _query(dev, "DROP USER 'admin'@'%'")
    again = dbrepl(cwd, "--sandbox", "apply", "-s", "cli", "--yes", timeout=300)
    assert again.code == 0, again.stderr
    assert "No changes" in again.stdout and "Stand-in for dev" in again.stdout
    assert ("%",) in _query(dev, "SELECT host FROM mysql.user WHERE user = 'admin'")
    d = dbrepl(cwd, "--sandbox", "sync", "data", "dev", "staging", "-s", "cli")
    assert d.code == 0, d.stderr
    assert "No differences: dev -> staging" in d.stdout
    assert "not verified" not in d.stderr and "warning" not in d.stderr
    j = dbrepl(cwd, "--sandbox", "sync", "schema", "dev", "staging", "-s", "cli", "--dry-run", "--json")
    assert j.code == 0, j.stderr
    assert j.json()["tls"] == {"dev": "verified", "staging": "verified"}
    # Issue 12: the run's EMF metrics line goes to the function's log group in the sandbox's AWS,
    # as on Lambda (issue 19: not onto the terminal, unless --verbose); status shows the route's last run.
    assert '"_aws"' not in d.stdout + d.stderr
    logs = boto3.client("logs", region_name="us-east-1", endpoint_url=st["endpoint"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    messages = [e["message"] for e in logs.filter_log_events(
        logGroupName="/aws/lambda/db-sync-data-replication-cli")["events"]]
    assert any(json.loads(m).get("Route") == "dev->staging" for m in messages if m.startswith('{"_aws"')), messages
    assert any(m.startswith("[INFO]") and "data sync dev -> staging: success, 0 rows" in m for m in messages), messages
    assert messages[0].startswith("START RequestId: ") and messages[-1].startswith("REPORT RequestId: "), messages
    status = dbrepl(cwd, "--sandbox", "status", "-s", "cli", "--json")
    assert status.code == 0, status.stderr
    route = next(r for r in json.loads(status.stdout)["routes"] if (r["route"], r["kind"]) == ("dev->staging", "data"))
    assert route["status"] == "success" and route["rows"] == 0 and route["age_seconds"] < 600
    assert {a["name"] for a in json.loads(status.stdout)["alarms"]} >= {"dev-aurora-replication-lag-cli"}
    text = dbrepl(cwd, "--sandbox", "status", "-s", "cli")
    assert "Sync routes (last run)" in text.stdout and "dev->staging" in text.stdout, text.stdout
    m = dbrepl(cwd, "--sandbox", "migrate", "status", "staging", "-s", "cli")
    assert m.code == 0 and "app:" in m.stdout, m.stderr
    hashes = {h for db in st["databases"].values()
              for (h,) in _query(db, "SELECT authentication_string FROM mysql.user WHERE user = 'admin'")}
    _assert_no_password(a.stdout + a.stderr + again.stdout + again.stderr + d.stdout + d.stderr, hashes)
    x = dbrepl(cwd, "--sandbox", "destroy", "-s", "cli", "--yes", "--include-protected", timeout=300)
    assert x.code == 0, x.stderr

    stop = dbrepl(cwd, "sandbox", "stop")
    assert stop.code == 0, stop.stderr
    root = sandbox.state_dir(cwd)
    assert list(root.glob("*.pid")) == [] and _our_processes(root) == []


def test_demo_without_mariadb_provisions_destroys_and_says_what_it_skipped(cwd: Path) -> None:
    port = sandbox.free_port()
    r = dbrepl(cwd, "demo", "--port", str(port), env={"DBREPL_SANDBOX_NO_MARIADB": "1"}, timeout=600)
    assert r.code == 0, r.stdout + r.stderr
    assert "AWS only" in _line(r, "✓ sandbox: started")
    assert _line(r, "✓ apply:").startswith("✓ apply: ok, estate demo:")
    assert _line(r, "✓ plan:") == "✓ plan: no changes (the estate matches the spec)"
    for step in ("sample schema", "sync schema", "sync data", "migration"):
        assert _line(r, f"- {step}:").endswith("skipped: no MariaDB stand-in for dev and staging")
    assert _line(r, "✓ destroy:").startswith("✓ destroy: ok, ")
    assert _line(r, "✓ sandbox: stopped") == "✓ sandbox: stopped (aws)"
    assert "apt-get install mariadb-server" in _lines(r)[-1]
    root = sandbox.state_dir(cwd)
    assert list(root.glob("*.pid")) == [] and not (root / "state.json").exists()
    assert _our_processes(root) == []
    assert sandbox.port_free(port)


def test_demo_leaves_a_running_sandbox_running(cwd: Path) -> None:
    port = sandbox.free_port()
    s = dbrepl(cwd, "sandbox", "start", "--no-databases", "--port", str(port))
    assert s.code == 0, s.stderr
    r = dbrepl(cwd, "demo", "--suffix", "kept", timeout=600)
    assert r.code == 0, r.stdout + r.stderr
    assert _line(r, "✓ sandbox: already running here").startswith(f"✓ sandbox: already running here: AWS at "
                                                                  f"http://127.0.0.1:{port}")
    assert "left running (it was running before the demo)" in r.stdout
    assert sandbox.running_state(sandbox.state_dir(cwd)) is not None
    # Again at once, same suffix: nothing of the first run (e.g. moto's automatic snapshot) is in the way.
    again = dbrepl(cwd, "demo", "--suffix", "kept", timeout=600)
    assert again.code == 0, again.stdout + again.stderr
    assert _line(again, "✓ destroy:").startswith("✓ destroy: ok, ")


def test_stand_in_environment_maps_only_the_function_environments() -> None:
    st = sandbox.State(root="/x", endpoint="http://127.0.0.1:1", port=1, pid=1, databases={
        "dev": sandbox.Database("dev", "127.0.0.1", 3307, 2, "/d", "/s"),
        "qa": sandbox.Database("qa", "127.0.0.1", 3308, 3, "/d", "/s")})
    variables = {"DEV_ENDPOINT": "dev.cluster.example", "DEV_SECRET_ARN": "arn", "STAGING_ENDPOINT": "s"}
    assert sandbox.stand_in_environment(st, variables) == {"DEV_ENDPOINT": "127.0.0.1", "DEV_PORT": "3307"}
    assert sandbox.Sandbox(st).database_environment(variables) == sandbox.stand_in_environment(st, variables)
