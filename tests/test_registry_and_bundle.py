from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import pytest

import dbrepl.steps
from dbrepl.bundle import build_bundle, code_sha256
from dbrepl.engine import STEPS, Engine, get_step
from dbrepl.errors import DbreplError


def test_every_step_is_registered_documented_and_declares_permissions():
    assert set(STEPS) == set(dbrepl.steps.ORDER)
    for name, cls in STEPS.items():
        assert cls.name == name
        assert cls.__doc__ and len(cls.__doc__.strip()) > 40, name
        assert cls.permissions, name
        for p in cls.permissions:
            assert ":" in p, (name, p)
        for dep in cls.depends_on:
            assert dep in STEPS, (name, dep)


def test_unknown_step_names_the_valid_ones():
    with pytest.raises(DbreplError, match="valid steps: alarms, aurora, bucket"):
        get_step("nope")


def test_steps_run_in_dependency_order():
    from dbrepl.aws.session import SessionFactory
    from dbrepl.engine import Context
    from dbrepl.spec import load_spec

    e = Engine(Context(load_spec("config/environments.yaml"), "x", SessionFactory("us-east-1")))
    pos = {n: i for i, n in enumerate(e.order)}
    for name, step in e.steps.items():
        for dep in step.depends_on:
            assert pos[dep] < pos[name]


def test_bundle_is_deterministic_and_carries_handlers_sync_and_pymysql():
    a, b = build_bundle(), build_bundle()
    assert a == b and code_sha256(a) == code_sha256(b)
    z = zipfile.ZipFile(io.BytesIO(a))
    names = z.namelist()
    assert "schema_sync.py" in names and "data_sync.py" in names
    assert "dbrepl/sync/__init__.py" in names and "pymysql/__init__.py" in names
    assert not any("__pycache__" in n for n in names)
    assert not any(n.startswith(("dbrepl/cli", "dbrepl/engine", "dbrepl/steps")) for n in names)
    for info in z.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert (info.external_attr >> 16) == 0o100644


def test_handlers_import_from_the_bundle_alone(tmp_path):
    (tmp_path / "b.zip").write_bytes(build_bundle())
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import schema_sync, data_sync, pymysql, dbrepl.sync; "
            "assert callable(schema_sync.lambda_handler) and callable(data_sync.lambda_handler); "
            "assert pymysql.__file__.startswith(sys.argv[1]), pymysql.__file__; "
            "assert dbrepl.sync.__file__.startswith(sys.argv[1]), dbrepl.sync.__file__; print('ok')")
    # The Lambda runtime brings boto3; pymysql and dbrepl.sync must come from the zip.
    r = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path / "b.zip")], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_sync_package_imports_nothing_from_the_cli_or_engine():
    code = ("import sys, dbrepl.sync, pkgutil, importlib; import dbrepl.sync as s; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(s.__path__, 'dbrepl.sync.')]; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click') "
            "or m in ('dbrepl.cli', 'dbrepl.engine', 'dbrepl.steps')]; print(bad); assert not bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bundle_command_writes_the_zip(tmp_path):
    from typer.testing import CliRunner

    from dbrepl.cli import app

    out = tmp_path / "x.zip"
    r = CliRunner().invoke(app, ["bundle", "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == build_bundle()
    assert code_sha256(out.read_bytes()) in r.output.replace("\n", "")
