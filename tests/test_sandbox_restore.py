"""Destroy then apply brings prod back with its data, in the sandbox (issue 18, point 1): the
stand-in's databases are dumped with prod's final snapshot, and `aurora.restore_from_snapshot`
loads them again when apply restores the cluster. Each command is a real process in its own
temporary directory, against a sandbox it starts (and stops)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import yaml

from dbrepl import sandbox
from tests.test_demo import _assert_no_password, _query
from tests.test_sandbox import ROOT, _kill_leftovers, _need_mariadb, dbrepl

SUFFIX = "rt"


@pytest.fixture
def cwd(tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(ROOT / "config", tmp_path / "config", symlinks=False)
    try:
        yield tmp_path
    finally:
        root = sandbox.state_dir(tmp_path)
        if root.is_dir():
            sandbox.stop(root)
            _kill_leftovers(root)


def _write(db: dict, *statements: str) -> None:
    conn = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"],
                           connect_timeout=5, autocommit=True)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def _edit_spec(cwd: Path, **aurora: object) -> None:
    path = cwd / "config" / "environments.yaml"
    data = yaml.safe_load(path.read_text())
    data["timing"] = {**(data.get("timing") or {}), "poll_delay": 0, "retry_delay": 0}
    data["aurora"] = {**(data.get("aurora") or {}), **aurora}
    path.unlink()  # a link to the packaged spec in a checkout: write a file of our own
    path.write_text(yaml.safe_dump(data))


def test_destroy_then_apply_restoring_the_final_snapshot_brings_prods_rows_back(cwd: Path) -> None:
    _need_mariadb()
    _edit_spec(cwd)
    start = dbrepl(cwd, "sandbox", "start", "--port", str(sandbox.free_port()), timeout=300)
    assert start.code == 0, start.stderr
    st = json.loads((sandbox.state_dir(cwd) / "state.json").read_text())
    prod = st["databases"]["prod"]
    a = dbrepl(cwd, "--sandbox", "apply", "-s", SUFFIX, "--yes", timeout=600)
    assert a.code == 0, a.stdout + a.stderr
    rows = [(1, "alpha"), (2, "beta"), (3, "gamma")]
    _write(prod, "CREATE DATABASE app", "CREATE TABLE app.customers (id INT PRIMARY KEY, name VARCHAR(20))",
           "INSERT INTO app.customers VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')")

    x = dbrepl(cwd, "--sandbox", "destroy", "-s", SUFFIX, "--env", "prod", "--include-protected", "--yes",
               timeout=300)
    assert x.code == 0, x.stdout + x.stderr
    snapshot = re.search(r"Final snapshot kept: (prod-aurora-cluster-rt-final-\d{8}-\d{6})", x.stdout).group(1)
    out = " ".join(x.stdout.split())  # rich wraps long lines
    assert "kept: KMS key" in out and f"alias/prod-key-{SUFFIX}" in out
    assert f"--db-cluster-snapshot-identifier {snapshot}" in out and "aws kms schedule-key-deletion" in out
    assert (sandbox.state_dir(cwd) / "snapshots" / f"{snapshot}.sql").is_file()
    # The cluster's data went with it (the prompt said "deleted for good"), kept only in the snapshot.
    assert ("app",) not in _query(prod, "SHOW DATABASES")
    # What happens to the stand-in after the cluster is gone must not be what comes back.
    _write(prod, "CREATE DATABASE app", "CREATE TABLE app.written_later (id INT PRIMARY KEY)")

    _edit_spec(cwd, restore_from_snapshot={"prod": snapshot})
    p = dbrepl(cwd, "--sandbox", "plan", "-s", SUFFIX, "--env", "prod")
    assert p.code == 0, p.stdout + p.stderr
    assert f"prod-aurora-cluster-{SUFFIX} (restored from a snapshot)" in p.stdout
    assert f"RestoreFromSnapshot: {snapshot}" in p.stdout and "restore-snapshot" in p.stdout
    b = dbrepl(cwd, "--sandbox", "apply", "-s", SUFFIX, "--env", "prod", "--yes", timeout=300)
    assert b.code == 0, b.stdout + b.stderr
    assert _query(prod, "SELECT id, name FROM app.customers ORDER BY id") == rows, b.stdout + b.stderr
    assert _query(prod, "SHOW TABLES FROM app") == [("customers",)]
    assert "Stand-in for prod" in b.stdout  # the master user has the new secret's password
    again = dbrepl(cwd, "--sandbox", "plan", "-s", SUFFIX, "--env", "prod")
    assert "No changes" in again.stdout and "aurora.restore_from_snapshot.prod:" in " ".join(again.stdout.split())

    hashes = {h for (h,) in _query(prod, "SELECT authentication_string FROM mysql.user WHERE user = 'admin'")}
    assert hashes
    _assert_no_password(a.stdout + a.stderr + x.stdout + x.stderr + b.stdout + b.stderr, hashes)
    done = dbrepl(cwd, "--sandbox", "destroy", "-s", SUFFIX, "--include-protected", "--yes", timeout=300)
    assert done.code == 0, done.stderr
