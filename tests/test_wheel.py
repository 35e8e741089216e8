"""Installed from a wheel, run from an empty directory (issue 13's acceptance): `dbrepl init`,
`dbrepl bundle` (the handlers inside, built from the installed package), and in the sandbox
apply, plan (no changes) and destroy.

The wheel is built from a copy of the checkout and installed with `--no-deps` into a fresh
virtual environment that sees this machine's packages (boto3, pymysql, moto, ...), so nothing
is downloaded but the build backend. Every command runs as `<venv>/bin/dbrepl` in an empty
temporary directory, which also holds the sandbox's state (`.dbrepl/sandbox`).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbrepl import sandbox
from dbrepl.bundle import build_bundle

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = "w"


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DBREPL_", "PYTHON"))}
    env.update(HOME=str(cwd), COLUMNS="200", NO_COLOR="1")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with dbrepl installed from a wheel of this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT / "dbrepl", src / "dbrepl", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels = base / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(src)]
    r = _run(build, base)
    if r.returncode != 0:  # no index to fetch the build backend from: use the installed setuptools
        r = _run([*build, "--no-build-isolation"], base)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = wheels.glob("dbrepl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dbrepl/environments.yaml" in names and "dbrepl/sync/handlers/schema_sync.py" in names
    env = base / "venv"
    r = _run([sys.executable, "-m", "venv", "--system-site-packages", str(env)], base)
    assert r.returncode == 0, r.stderr
    r = _run([str(env / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall",
              str(wheel)], base)
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run([str(env / "bin" / "python"), "-c", "import dbrepl; print(dbrepl.__file__)"], base)
    assert r.returncode == 0 and Path(r.stdout.strip()).is_relative_to(env), r.stdout + r.stderr
    return env


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Path]:
    """An empty working directory; a sandbox started in it is stopped afterwards."""
    cwd = tmp_path / "empty"
    cwd.mkdir()
    try:
        yield cwd
    finally:
        root = sandbox.state_dir(cwd)
        if root.is_dir():
            sandbox.stop(root)


def test_init_and_bundle_from_the_wheel(venv: Path, empty: Path) -> None:
    dbrepl = str(venv / "bin" / "dbrepl")
    r = _run([dbrepl, "plan", "--suffix", SUFFIX], empty)
    assert r.returncode == 2 and "run `dbrepl init`" in r.stderr, r.stderr
    r = _run([dbrepl, "init"], empty)
    assert r.returncode == 0, r.stderr
    spec = empty / "config" / "environments.yaml"
    assert spec.read_text(encoding="utf-8") == (ROOT / "config" / "environments.yaml").read_text(encoding="utf-8")
    r = _run([dbrepl, "init"], empty)
    assert r.returncode == 2 and "already exists" in r.stderr, r.stderr
    r = _run([dbrepl, "bundle", "--output", "x.zip"], empty)
    assert r.returncode == 0, r.stderr
    data = (empty / "x.zip").read_bytes()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    for name in ("schema_sync.py", "data_sync.py", "dbrepl/sync/__init__.py", "dbrepl/sync/contract.py",
                 "dbrepl/sync/handlers/schema_sync.py", "dbrepl/sync/handlers/data_sync.py", "pymysql/__init__.py"):
        assert name in names, name
    # The installed package's bundle is the checkout's, byte for byte (deterministic).
    assert data == build_bundle()


def test_sandbox_apply_plan_destroy_from_the_wheel(venv: Path, empty: Path) -> None:
    missing = sandbox.moto_missing()
    if missing:
        pytest.skip(missing)
    dbrepl = str(venv / "bin" / "dbrepl")
    assert _run([dbrepl, "init"], empty).returncode == 0
    steps = [
        ["sandbox", "start", "--no-databases", "--port", str(sandbox.free_port())],
        ["--sandbox", "apply", "--suffix", SUFFIX, "--yes"],
        ["--sandbox", "plan", "--suffix", SUFFIX, "--detailed-exitcode"],
        ["--sandbox", "destroy", "--suffix", SUFFIX, "--yes", "--include-protected"],
        ["sandbox", "stop"],
    ]
    for args in steps:
        r = _run([dbrepl, *args], empty, timeout=900)
        assert r.returncode == 0, f"dbrepl {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, r.stderr
    assert sandbox.state_dir(empty).is_relative_to(empty)
