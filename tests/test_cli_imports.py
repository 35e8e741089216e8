"""A DSN sync imports only what it needs (issue 17, point 5).

`dbrepl sync data|schema` between two DSNs runs the sync library here: no AWS call, no spec.
Loading boto3/botocore, the spec's pydantic models, the engine or the sandbox's process
control for it cost about half a second of every run. Each test runs the real CLI in a new
interpreter (an import made by an earlier test would hide one) and reads its sys.modules
after the command returned.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import mariadb_server

ROOT = Path(__file__).resolve().parents[1]

# Never needed by a DSN run: AWS, the spec (and its pydantic models), the engine and steps,
# the sandbox's process control.
NOT_FOR_DSN = ("boto3", "botocore", "dbrepl.spec", "dbrepl.aws", "dbrepl.engine", "dbrepl.steps",
               "dbrepl.sandbox.control", "dbrepl.sandbox.moto",
               # the other command groups: main() builds only the one the command line names
               "dbrepl.cli.provision", "dbrepl.cli.demo", "dbrepl.cli.migrate", "dbrepl.app.demo")

_PROBE = """
import json, sys
out = sys.argv[1]
sys.argv = ["dbrepl", *sys.argv[2:]]
from dbrepl.cli import main
code = 0
try:
    main()
except SystemExit as e:
    code = e.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def typer_needs_pydantic() -> bool:
    """typer 0.2x and later coerce every parameter through a pydantic TypeAdapter themselves."""
    requires = importlib.metadata.requires("typer") or []
    return any(r.split(";")[0].strip().lower().startswith("pydantic") for r in requires)


def run_cli(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    out = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DBREPL_SANDBOX": ""}
    env.pop("DBREPL_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert out.exists(), proc.stderr
    found = json.loads(out.read_text())
    return found["code"], set(found["modules"])


def loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def assert_lean(modules: set[str]) -> None:
    wrong = [name for name in NOT_FOR_DSN if loaded(modules, name)]
    assert not wrong, f"a DSN sync imported {wrong}"
    if not typer_needs_pydantic():
        assert not loaded(modules, "pydantic"), "a DSN sync imported pydantic"


def test_sync_data_help_imports_no_aws_spec_or_engine(tmp_path):
    code, modules = run_cli(tmp_path, "sync", "data", "--help")
    assert code == 0
    assert "dbrepl.cli.sync" in modules  # the probe really ran the command
    assert_lean(modules)


@pytest.mark.parametrize("command", [["data", "--table", "t", "--dry-run"], ["schema", "--dry-run"]])
def test_dsn_sync_whose_server_is_down_imports_no_aws_spec_or_engine(tmp_path, command):
    # Port 1 refuses at once: the whole DSN path up to connecting is loaded, then exit 1.
    kind, *rest = command
    code, modules = run_cli(tmp_path, "sync", kind, "mysql://u@127.0.0.1:1/a", "mysql://u@127.0.0.1:1/b", *rest)
    assert code == 1
    assert "dbrepl.sync.connection" in modules
    assert_lean(modules)


@pytest.mark.mariadb
def test_dsn_data_dry_run_imports_no_aws_spec_or_engine(tmp_path):
    if mariadb_server.find_binaries() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but MariaDB server binaries are missing; install mariadb-server")
        pytest.skip("MariaDB server binaries not installed (apt-get install mariadb-server)")
    server = mariadb_server.start()
    try:
        conn = server.connect()
        with conn.cursor() as cur:
            for db in ("a", "b"):
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.execute("INSERT INTO a.t VALUES (1, 'x'), (2, 'y')")
            cur.execute("INSERT INTO b.t VALUES (1, 'x')")
        conn.close()
        base = f"mysql://root@127.0.0.1:{server.port}"
        code, modules = run_cli(tmp_path, "sync", "data", f"{base}/a", f"{base}/b", "--table", "t", "--dry-run")
        assert code == 0
        assert "dbrepl.sync.data.sync" in modules  # the sync itself ran in the probe
        assert_lean(modules)
        assert loaded(modules, "rich")  # it printed for a human
        # With --json and verified TLS (no warning to print) nothing goes through rich, so rich
        # is not even imported (its consoles are made on first use; the progress bar asks for
        # a terminal without it).
        ca = f"?ssl-ca={server.ca_bundle}"
        code, modules = run_cli(tmp_path, "sync", "data", f"{base}/a{ca}", f"{base}/b{ca}", "--table", "t",
                                "--dry-run", "--json")
        assert code == 0
        assert "dbrepl.sync.data.sync" in modules
        assert_lean(modules)
        assert not loaded(modules, "rich"), "a DSN sync with --json imported rich"
    finally:
        server.stop()
