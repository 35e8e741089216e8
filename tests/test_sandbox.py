"""The local sandbox (issue 5): start, status, a second start, stop, stale pid files, a busy
port (another is picked), AWS only without MariaDB, and `--sandbox` with and without a running sandbox.

Every command runs as a real process in its own temporary working directory (the sandbox
keeps its state under `.dbrepl/sandbox/` there) on free ports; whatever a test starts is
stopped by its fixture, also when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from dbrepl import sandbox
from dbrepl.cli.common import hoist_sandbox_flag

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "config" / "environments.yaml"
ENVS = ("dev", "staging", "prod")


@dataclass
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    def json(self) -> Any:
        return json.loads(self.stdout)


def dbrepl(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Run:
    """The CLI of this checkout as a separate process in `cwd`, with no AWS settings of ours."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DBREPL_"))}
    e.update(PYTHONPATH=str(ROOT), HOME=str(cwd), COLUMNS="200", NO_COLOR="1", **(env or {}))
    p = subprocess.run([sys.executable, "-c", "from dbrepl.cli import main; main()", *args], cwd=cwd, env=e,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return Run(args, p.returncode, p.stdout, p.stderr)


def _alive(pid: int) -> bool:
    return sandbox.cmdline(pid) is not None


def _kill_leftovers(root: Path) -> None:
    """Last resort after `sandbox stop`: end our own processes still named by a pid file."""
    for f in root.glob("*.pid"):
        pid = sandbox.read_pid(f)
        if pid and sandbox.is_ours(root, f.stem, pid):
            os.kill(pid, signal.SIGKILL)


def _need_mariadb() -> None:
    if sandbox.find_mariadb() is None:
        if os.environ.get("CI"):
            pytest.fail("MariaDB server binaries are missing on CI (apt-get install mariadb-server)")
        pytest.skip("MariaDB server binaries not installed (apt-get install mariadb-server)")


@dataclass
class Sandbox:
    cwd: Path
    port: int
    start: Run

    @property
    def root(self) -> Path:
        return self.cwd / ".dbrepl" / "sandbox"

    def state(self) -> dict[str, Any]:
        r = dbrepl(self.cwd, "sandbox", "status", "--json")
        assert r.code == 0, r.stderr
        return r.json()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    cwd = tmp_path_factory.mktemp("sandbox")
    port = sandbox.free_port()
    sb = Sandbox(cwd, port, Run((), -1, "", ""))
    try:
        sb.start = dbrepl(cwd, "sandbox", "start", "--port", str(port), "--config", str(SPEC))
        yield sb
    finally:
        dbrepl(cwd, "sandbox", "stop")
        _kill_leftovers(sb.root)


@pytest.fixture
def cwd(tmp_path: Path) -> Iterator[Path]:
    """An empty working directory; anything a test starts in it is stopped afterwards."""
    try:
        yield tmp_path
    finally:
        root = sandbox.state_dir(tmp_path)
        if root.is_dir():
            sandbox.stop(root)
            _kill_leftovers(root)


# --------------------------------------------------------------------------- a running sandbox
# These run in file order on one sandbox; the last one stops it.

def test_start_reports_endpoint_ports_and_pids(running: Sandbox) -> None:
    r = running.start
    assert r.code == 0, r.stderr
    url = f"http://127.0.0.1:{running.port}"
    assert "Sandbox started." in r.stdout
    assert url in r.stdout
    st = running.state()
    assert st["running"] is True
    assert st["endpoint"] == url and st["port"] == running.port
    assert _alive(st["pid"])
    assert all(st["alive"].values()), st["alive"]
    assert (running.root / "aws.pid").read_text().strip() == str(st["pid"])
    if sandbox.find_mariadb() is None:
        assert st["databases"] == {} and "apt-get install mariadb-server" in st["skipped"]
    else:
        assert set(st["databases"]) == set(ENVS)
        ports = {d["port"] for d in st["databases"].values()}
        assert len(ports) == len(ENVS) and running.port not in ports
        for env, d in st["databases"].items():
            assert f"127.0.0.1:{d['port']}" in r.stdout
            assert (running.root / f"mariadb-{env}.pid").read_text().strip() == str(d["pid"])
            assert Path(d["datadir"]).is_relative_to(running.root)


def test_status_text(running: Sandbox) -> None:
    r = dbrepl(running.cwd, "sandbox", "status")
    assert r.code == 0, r.stderr
    st = running.state()
    assert f"http://127.0.0.1:{running.port}" in r.stdout
    assert f"pid {st['pid']}" in r.stdout
    for d in st["databases"].values():
        assert f"127.0.0.1:{d['port']}" in r.stdout and f"pid {d['pid']}" in r.stdout
    assert "not running" not in r.stdout


def test_stand_ins_accept_connections(running: Sandbox) -> None:
    _need_mariadb()
    for env, d in running.state()["databases"].items():
        conn = pymysql.connect(host=d["host"], port=d["port"], user=d["user"], password=d["password"],
                               connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@port, @@datadir")
                port, datadir = cur.fetchone()
        finally:
            conn.close()
        assert port == d["port"], env
        assert Path(datadir).resolve() == Path(d["datadir"]).resolve(), env


def test_stand_ins_serve_tls_verified_by_the_sandbox_ca_and_refuse_plain_text(running: Sandbox) -> None:
    """The CA made at start signs the stand-ins' certificate (127.0.0.1, localhost); they
    refuse plain-text logins (require_secure_transport), like the clusters."""
    from dbrepl.sync.connection import Endpoint, Tls, connect

    _need_mariadb()
    st = running.state()
    ca = Path(st["ca_bundle"])
    assert ca.is_file() and ca.is_relative_to(running.root) and "-----BEGIN CERTIFICATE-----" in ca.read_text()
    assert "TLS: the stand-ins require it; connections verify them against " + str(ca) in running.start.stdout
    for env, d in st["databases"].items():
        conn = connect(Endpoint(d["host"], d["port"], d["user"], d["password"], tls=Tls(ca_bundle=str(ca))))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@require_secure_transport")
                assert cur.fetchone()[0] == 1, env
                cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
                assert cur.fetchone()[1].startswith("TLSv1."), env
        finally:
            conn.close()
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host=d["host"], port=d["port"], user=d["user"], password=d["password"],
                            ssl_disabled=True, connect_timeout=5)
    # The effective spec of the sandbox verifies against that CA (and the zip carries it).
    from dbrepl.sandbox import Sandbox as Running
    from dbrepl.spec import load_spec

    effective = Running(sandbox.read_state(running.root)).effective_spec(load_spec(SPEC))
    assert effective.databases.tls.verified_bundle == ca


def test_second_start_changes_nothing(running: Sandbox) -> None:
    files = {f.name: f.read_bytes() for f in running.root.iterdir() if f.suffix in (".pid", ".json")}
    before = running.state()
    other = sandbox.free_port()
    r = dbrepl(running.cwd, "sandbox", "start", "--port", str(other), "--config", str(SPEC))
    assert r.code == 0, r.stderr
    assert "already running" in r.stdout and "nothing was changed" in r.stdout
    assert f"--port {other} ignored" in r.stdout
    assert {f.name: f.read_bytes() for f in running.root.iterdir() if f.suffix in (".pid", ".json")} == files
    assert running.state() == before
    assert sandbox.port_free(other)


def test_sandbox_flag_reaches_the_running_sandbox(running: Sandbox) -> None:
    # A profile that does not exist: the sandbox's settings must replace it, not fail on it.
    r = dbrepl(running.cwd, "plan", "--suffix", "x", "--sandbox", "--config", str(SPEC),
               env={"AWS_PROFILE": "no-such-profile"})
    assert r.code == 0, r.stderr
    assert "+ AWS::EC2::VPC" in r.stdout and "dev-vpc-x" in r.stdout
    assert "to create, 0 to update, 0 to delete." in r.stdout
    j = dbrepl(running.cwd, "plan", "--suffix", "x", "--json", "--config", str(SPEC), env={"DBREPL_SANDBOX": "1"})
    assert j.code == 0, j.stderr
    assert j.json()["summary"]["create"] > 0
    f = dbrepl(running.cwd, "--sandbox", "plan", "-s", "x", "-c", str(SPEC))
    assert f.code == 0, f.stderr


def test_stop_ends_only_what_start_started(running: Sandbox) -> None:
    st = running.state()
    pids = [st["pid"], *(d["pid"] for d in st["databases"].values())]
    ports = [st["port"], *(d["port"] for d in st["databases"].values())]
    r = dbrepl(running.cwd, "sandbox", "stop")
    assert r.code == 0, r.stderr
    assert f"Stopped aws (pid {st['pid']})." in r.stdout
    for env, d in st["databases"].items():
        assert f"Stopped mariadb-{env} (pid {d['pid']})." in r.stdout
    assert not any(_alive(p) for p in pids)
    assert all(sandbox.port_free(p) for p in ports)
    assert list(running.root.glob("*.pid")) == [] and not (running.root / "state.json").exists()
    again = dbrepl(running.cwd, "sandbox", "stop")
    assert again.code == 0 and "No sandbox was running here." in again.stdout
    s = dbrepl(running.cwd, "sandbox", "status", "--json")
    assert s.code == 0 and s.json()["running"] is False


# --------------------------------------------------------------------------- no sandbox

@pytest.mark.parametrize("how", ["after", "before", "env"])
def test_sandbox_flag_without_a_sandbox_exits_2(cwd: Path, how: str) -> None:
    args = {"after": ("plan", "--suffix", "x", "--sandbox"), "before": ("--sandbox", "plan", "--suffix", "x"),
            "env": ("plan", "--suffix", "x")}[how]
    r = dbrepl(cwd, *args, "--config", str(SPEC), env={"DBREPL_SANDBOX": "1"} if how == "env" else None)
    assert r.code == 2
    assert r.stdout == ""
    assert len(r.lines) == 1 and "dbrepl sandbox start" in r.lines[0], r.stderr


def test_status_and_stop_without_a_sandbox(cwd: Path) -> None:
    s = dbrepl(cwd, "sandbox", "status")
    assert s.code == 0 and "No sandbox is running here" in s.stdout
    r = dbrepl(cwd, "sandbox", "stop")
    assert r.code == 0 and "No sandbox was running here." in r.stdout


def test_a_busy_port_picks_another_and_says_which(cwd: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = dbrepl(cwd, "sandbox", "start", "--no-databases", "--port", str(port))
        assert r.code == 0, r.stderr
        st = sandbox.read_state(sandbox.state_dir(cwd))
        assert st is not None and st.port != port
        assert f"port {port} on 127.0.0.1 is in use: the sandbox's AWS listens on {st.port} instead" in r.stdout
        assert f"http://127.0.0.1:{st.port}" in r.stdout


# --------------------------------------------------------------------------- stale pid files

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _fake_state(cwd: Path, pid: int, names: tuple[str, ...] = ("aws",)) -> Path:
    root = sandbox.state_dir(cwd)
    root.mkdir(parents=True)
    for name in names:
        (root / f"{name}.pid").write_text(f"{pid}\n")
    st = sandbox.State(root=str(root), endpoint="http://127.0.0.1:1", port=1, pid=pid)
    (root / "state.json").write_text(json.dumps(st.to_json()))
    return root


def test_stale_pid_file_of_a_gone_process(cwd: Path) -> None:
    pid = _dead_pid()
    root = _fake_state(cwd, pid)
    s = dbrepl(cwd, "sandbox", "status", "--json")
    assert s.code == 0 and s.json()["running"] is False
    assert "not running" in dbrepl(cwd, "sandbox", "status").stdout
    flag = dbrepl(cwd, "plan", "-s", "x", "--sandbox", "-c", str(SPEC))
    assert flag.code == 2 and "dbrepl sandbox start" in flag.stderr
    r = dbrepl(cwd, "sandbox", "stop")
    assert r.code == 0, r.stderr
    assert f"Removed stale pid file: aws (pid {pid}: process gone)." in r.stdout
    assert list(root.glob("*.pid")) == [] and not (root / "state.json").exists()


def test_start_over_a_stale_pid_file(cwd: Path) -> None:
    _fake_state(cwd, _dead_pid())
    port = sandbox.free_port()
    r = dbrepl(cwd, "sandbox", "start", "--no-databases", "--port", str(port))
    assert r.code == 0, r.stderr
    assert "removed stale pid files: aws.pid" in r.stdout and "Sandbox started." in r.stdout
    st = dbrepl(cwd, "sandbox", "status", "--json").json()
    assert st["running"] is True and st["port"] == port and st["databases"] == {}
    assert dbrepl(cwd, "sandbox", "stop").code == 0
    assert not _alive(st["pid"])


def test_stale_pid_reused_by_another_program_is_left_alone(cwd: Path) -> None:
    other = subprocess.Popen(["sleep", "120"])
    try:
        root = _fake_state(cwd, other.pid, names=("aws", "mariadb-dev"))
        assert dbrepl(cwd, "sandbox", "status", "--json").json()["running"] is False
        r = dbrepl(cwd, "sandbox", "stop")
        assert r.code == 0, r.stderr
        assert f"aws (pid {other.pid}: pid now belongs to another program, left alone)" in r.stdout
        assert f"mariadb-dev (pid {other.pid}: pid now belongs to another program, left alone)" in r.stdout
        assert other.poll() is None, "stop killed a process it did not start"
        assert list(root.glob("*.pid")) == []
    finally:
        other.kill()
        other.wait()


# --------------------------------------------------------------------------- without MariaDB

def test_without_mariadb_the_sandbox_runs_aws_only(cwd: Path) -> None:
    root = sandbox.state_dir(cwd)
    res = sandbox.start(root, port=sandbox.free_port(), environments=list(ENVS), mariadb=None)
    assert not res.already_running
    assert res.state.databases == {}
    assert len(res.notes) == 1
    note = res.notes[0]
    assert "dev, staging, prod" in note and "apt-get install mariadb-server" in note
    assert sandbox.running_state(root) is not None
    out = sandbox.stop(root)
    assert out.stopped == [f"aws (pid {res.state.pid})"] and not out.failed


# --------------------------------------------------------------------------- the flag's position

def test_sandbox_flag_is_moved_before_the_command() -> None:
    assert hoist_sandbox_flag(["plan", "-s", "x", "--sandbox"]) == ["--sandbox", "plan", "-s", "x"]
    assert hoist_sandbox_flag(["plan", "-s", "x"]) == ["plan", "-s", "x"]
    assert hoist_sandbox_flag(["x", "--", "--sandbox"]) == ["x", "--", "--sandbox"]


def test_partly_running_sandbox_is_not_restarted_but_stopped(cwd: Path) -> None:
    root = sandbox.state_dir(cwd)
    # A process whose command line is that of this sandbox's AWS server (it only sleeps).
    fake_aws = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                 "-m", "dbrepl.sandbox", "aws", "1", str(root)])
    try:
        _fake_state(cwd, fake_aws.pid)
        (root / "mariadb-dev.pid").write_text(f"{_dead_pid()}\n")
        st = json.loads((root / "state.json").read_text())
        st["databases"] = {"dev": {"env": "dev", "host": "127.0.0.1", "port": 1, "pid": _dead_pid(),
                                   "datadir": str(root / "mariadb" / "dev" / "data"), "socket": "x"}}
        (root / "state.json").write_text(json.dumps(st))
        r = dbrepl(cwd, "sandbox", "start", "--no-databases", "--port", str(sandbox.free_port()))
        assert r.code == 1 and "partly running (mariadb-dev stopped)" in r.stderr, r.stderr
        assert fake_aws.poll() is None
        s = dbrepl(cwd, "sandbox", "stop")
        assert s.code == 0, s.stderr
        assert f"Stopped aws (pid {fake_aws.pid})." in s.stdout and "mariadb-dev" in s.stdout
        assert fake_aws.wait(timeout=10) is not None
    finally:
        fake_aws.kill()
        fake_aws.wait()
