"""The local sandbox: a moto server standing in for AWS and one MariaDB server per environment
standing in for its Aurora cluster (DESIGN §6).

Everything lives under `.dbrepl/sandbox/` of the working directory:

    state.json              endpoints, ports, pids, what was skipped (written by start)
    aws.pid, aws.log        the moto server
    mariadb-<env>.pid       one per environment
    mariadb/<env>/          data/, server.log, the server's own pid file and tmpdir

Processes are started in their own session so they outlive the command that started them.
`stop` ends only processes whose pid file names them *and* whose command line is still the
one start gave them (/proc/<pid>/cmdline): a pid reused by another program is left alone.

moto's backends are not thread-safe and dbrepl calls AWS from many threads, so the server
takes one request at a time (werkzeug `threaded=False`); AWS itself needs no such care.

Run as `python -m dbrepl.sandbox aws PORT ROOT` this module is the moto server itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dbrepl.errors import BadInput, DbreplError, WaitTimeout

HOST = "127.0.0.1"
DEFAULT_PORT = 4566
FIRST_DB_PORT = 3307  # 3306 is left to a MariaDB/MySQL the machine may already run
REGION = "us-east-1"
# moto accepts any credentials; these are not secrets.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
STATE_DIR = Path(".dbrepl") / "sandbox"
INSTALL_HINT = "apt-get install mariadb-server"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_PKG_PARENT = Path(__file__).resolve().parents[1]


class SandboxError(DbreplError):
    """The sandbox could not be started or stopped."""


# --------------------------------------------------------------------------- state

@dataclass
class Proc:
    """One process the sandbox started."""

    name: str  # "aws" or "mariadb-<env>"
    pid: int
    port: int


@dataclass
class Database:
    """A MariaDB stand-in for one environment's Aurora cluster (root over TCP, no password)."""

    env: str
    host: str
    port: int
    pid: int
    datadir: str
    socket: str
    user: str = "root"
    password: str = ""


@dataclass
class State:
    root: str
    endpoint: str
    port: int
    pid: int
    region: str = REGION
    databases: dict[str, Database] = field(default_factory=dict)
    skipped: str = ""  # why no stand-ins run, with how to get them
    started_at: float = 0.0

    def procs(self) -> list[Proc]:
        return [Proc("aws", self.pid, self.port),
                *(Proc(f"mariadb-{e}", d.pid, d.port) for e, d in self.databases.items())]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        dbs = {e: Database(**d) for e, d in (data.get("databases") or {}).items()}
        return cls(**{**data, "databases": dbs})


def state_dir(cwd: Path | None = None) -> Path:
    return ((cwd or Path.cwd()) / STATE_DIR).resolve()


def read_state(root: Path) -> State | None:
    try:
        return State.from_json(json.loads((root / "state.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        raise SandboxError(f"{root / 'state.json'} is unreadable ({e}); run `dbrepl sandbox stop`") from None


def _write_state(root: Path, st: State) -> None:
    tmp = root / "state.json.tmp"
    tmp.write_text(json.dumps(st.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(root / "state.json")


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One start/stop at a time per sandbox directory."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- processes

def _marker(root: Path, name: str) -> str:
    """A string only the command line of our own process `name` contains."""
    if name == "aws":
        return "-m dbrepl.sandbox aws "
    return f"--datadir={_db_dir(root, name.removeprefix('mariadb-')) / 'data'} "


def _cmdline(pid: int) -> str | None:
    """The process's command line, or None when it is gone (a zombie counts as gone)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child (start in-process)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    except PermissionError:
        return ""  # alive, but not ours to read: certainly not ours to stop


def is_ours(root: Path, name: str, pid: int) -> bool:
    """True when `pid` is alive and still the process start made for `name`."""
    cmd = _cmdline(pid)
    if not cmd:
        return False
    if name == "aws":  # ... aws PORT ROOT: the root says which sandbox
        return _marker(root, name) in cmd and cmd.endswith(f" {root} ")
    return _marker(root, name) in cmd


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _pid_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.pid"))


def _terminate(pid: int, deadline: float) -> bool:
    """SIGTERM, wait until `deadline`, then SIGKILL; True once the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    while time.monotonic() < deadline:
        if _cmdline(pid) is None:
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        if _cmdline(pid) is None:
            return True
        time.sleep(0.1)
    return False


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env=env, cwd=log.parent, start_new_session=True)


def port_free(port: int, host: str = HOST) -> bool:
    """True when a server could listen on the port (as servers do, despite TIME_WAIT leftovers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _log_tail(path: Path, n: int = 600) -> str:
    try:
        return " ".join(path.read_text(errors="replace")[-n:].split())
    except FileNotFoundError:
        return "(no log)"


# --------------------------------------------------------------------------- MariaDB

@dataclass(frozen=True)
class MariaDBBinaries:
    install_db: str
    server: str


def find_mariadb() -> MariaDBBinaries | None:
    """MariaDB's server binaries, or None when they are not installed."""
    sbin = "/usr/sbin:/usr/local/sbin"
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path=sbin) or shutil.which("mysqld", path=sbin)
    return MariaDBBinaries(install, server) if install and server else None


def _as_root() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def init_datadir(bins: MariaDBBinaries, datadir: Path) -> None:
    """A fresh data directory whose root logs in over TCP with no password."""
    # The bootstrap server too gets a private temporary directory (next to the data): on a
    # shared /tmp its temporary tables can vanish under it ("Unknown table 'mysql.tmp_user_sys'").
    tmp = datadir.parent / "tmp-install"
    tmp.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(
        [bins.install_db, f"--datadir={datadir}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *_as_root(), f"--tmpdir={tmp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, env={**os.environ, "TMPDIR": str(tmp)},
    )
    shutil.rmtree(tmp, ignore_errors=True)
    if p.returncode:
        err = " ".join(p.stderr.decode(errors="replace").split())[-600:]
        raise SandboxError(f"mariadb-install-db failed for {datadir}: {err}")


def server_argv(bins: MariaDBBinaries, datadir: Path, port: int, sock: Path, rundir: Path,
                extra: Sequence[str] = (), buffer_pool: str = "256M") -> list[str]:
    """mariadbd on 127.0.0.1 only, with its own pid file and temporary directory."""
    return [
        bins.server, "--no-defaults", f"--datadir={datadir}", f"--port={port}", f"--socket={sock}",
        "--bind-address=127.0.0.1", "--skip-name-resolve", f"--innodb-buffer-pool-size={buffer_pool}",
        "--innodb-flush-log-at-trx-commit=2", "--max-connections=500",
        "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
        f"--pid-file={rundir / 'mysqld.pid'}",
        # Its own temporary directory: on a shared /tmp, another process's clean-up can
        # delete the server's on-disk temporary tables mid-query (seen: "Error on delete
        # of '/tmp/#sql-temptable-...MAI'").
        f"--tmpdir={rundir}", *_as_root(), *extra,
    ]


def wait_for_mariadb(port: int, alive: Callable[[], bool], log: Path, timeout: float = START_TIMEOUT) -> None:
    """Until root can run a query over TCP; fails early when the server exits."""
    import pymysql

    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise SandboxError(f"mariadbd exited while starting: {_log_tail(log)}")
        try:
            pymysql.connect(host=HOST, port=port, user="root", password="", connect_timeout=2).close()
            return
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise WaitTimeout(f"mariadbd on port {port} to accept connections", timeout) from None
            time.sleep(0.1)


def _db_dir(root: Path, env: str) -> Path:
    return root / "mariadb" / env


def _socket_path(rundir: Path) -> Path:
    sock = rundir / "mysqld.sock"
    if len(str(sock)) < 100:  # a Unix socket path is limited to 108 bytes
        return sock
    digest = hashlib.sha1(str(rundir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"dbrepl-sandbox-{digest}.sock"


def _start_database(root: Path, env: str, bins: MariaDBBinaries, port: int) -> Database:
    rundir = _db_dir(root, env)
    datadir = rundir / "data"
    # The AWS side starts empty every time, so the stand-ins do too.
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    init_datadir(bins, datadir)
    sock = _socket_path(rundir)
    log = rundir / "server.log"
    proc = _spawn(server_argv(bins, datadir, port, sock, rundir, buffer_pool="128M"), log)
    (root / f"mariadb-{env}.pid").write_text(f"{proc.pid}\n")
    wait_for_mariadb(port, lambda: proc.poll() is None, log)
    return Database(env=env, host=HOST, port=port, pid=proc.pid, datadir=str(datadir), socket=str(sock))


def _pick_db_ports(n: int, avoid: set[int]) -> list[int]:
    ports: list[int] = []
    p = FIRST_DB_PORT
    while len(ports) < n and p < 65536:
        if p not in avoid and port_free(p):
            ports.append(p)
        p += 1
    return ports


# --------------------------------------------------------------------------- AWS (moto)

def moto_missing() -> str | None:
    """Why moto's server cannot run here, or None."""
    for mod in ("moto", "werkzeug", "flask"):
        if importlib.util.find_spec(mod) is None:
            return f"the sandbox needs moto's server ({mod} is not installed): pip install 'moto[server]'"
    return None


def _post_json(url: str, body: dict[str, Any], timeout: float = 10) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        r.read()


def _start_aws(root: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(MOTO_IAM_LOAD_MANAGED_POLICIES="true", AWS_DEFAULT_REGION=REGION, **FAKE_CREDENTIALS)
    # The server runs the same dbrepl as the command that starts it.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PKG_PARENT), env.get("PYTHONPATH", "")) if p)
    log = root / "aws.log"
    proc = _spawn([sys.executable, "-m", "dbrepl.sandbox", "aws", str(port), str(root)], log, env)
    (root / "aws.pid").write_text(f"{proc.pid}\n")
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise SandboxError(f"the moto server exited while starting: {_log_tail(root / 'aws.log')}")
        try:
            # Lambda without Docker: CreateFunction works, Invoke only echoes the payload.
            _post_json(f"{url}/moto-api/config", {"lambda": {"use_docker": False}}, timeout=5)
            return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise WaitTimeout(f"the moto server on {url}", START_TIMEOUT) from None
            time.sleep(0.2)


def serve_aws(port: int) -> None:
    """The moto server, one request at a time (its backends are not thread-safe)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    app = DomainDispatcherApplication(create_backend_app)
    run_simple(HOST, port, app, threaded=False, processes=1, use_reloader=False)


# --------------------------------------------------------------------------- start / stop / status

@dataclass
class Started:
    state: State
    already_running: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class Stopped:
    stopped: list[str] = field(default_factory=list)  # "aws (pid 123)"
    stale: list[str] = field(default_factory=list)  # pid files whose process was gone or not ours
    failed: list[str] = field(default_factory=list)


def running_state(root: Path) -> State | None:
    """The sandbox's state when its AWS server is running, else None."""
    st = read_state(root)
    if st is None or not is_ours(root, "aws", st.pid):
        return None
    return st


def liveness(root: Path, st: State) -> dict[str, bool]:
    return {p.name: is_ours(root, p.name, p.pid) for p in st.procs()}


def start(root: Path, *, port: int = DEFAULT_PORT, environments: Sequence[str] = (),
          mariadb: MariaDBBinaries | None = None) -> Started:
    """Start moto and, with `mariadb` given, one stand-in per environment; idempotent."""
    with _locked(root):
        notes: list[str] = []
        st = read_state(root)
        if st is not None:
            alive = liveness(root, st)
            if all(alive.values()):
                if port != st.port:
                    notes.append(f"--port {port} ignored: the running sandbox uses {st.port}")
                return Started(st, True, notes)
            if any(alive.values()):
                down = ", ".join(n for n, ok in alive.items() if not ok)
                raise SandboxError(f"the sandbox is partly running ({down} stopped); "
                                   "run `dbrepl sandbox stop`, then `dbrepl sandbox start`")
        stale = _clear_stale(root)
        if stale:
            notes.append(f"removed stale pid files: {', '.join(stale)}")
        why = moto_missing()
        if why:
            raise BadInput(why)
        if not port_free(port):
            raise BadInput(f"port {port} on {HOST} is already in use; stop what uses it or pass --port N")

        started: list[tuple[str, int]] = []
        try:
            proc = _start_aws(root, port)
            started.append(("aws", proc.pid))
            st = State(root=str(root), endpoint=f"http://{HOST}:{port}", port=port, pid=proc.pid,
                       started_at=time.time())
            if environments and mariadb is None:
                st.skipped = (f"MariaDB server binaries not found: no database stand-ins for "
                              f"{', '.join(environments)} (AWS only); install them with `{INSTALL_HINT}`, "
                              "then `dbrepl sandbox stop` and `dbrepl sandbox start`")
                notes.append(st.skipped)
            elif environments and mariadb is not None:
                ports = _pick_db_ports(len(environments), {port})
                if len(ports) < len(environments):
                    raise BadInput(f"no free ports from {FIRST_DB_PORT} for the database stand-ins")
                with ThreadPoolExecutor(max_workers=len(environments)) as pool:
                    futures = {e: pool.submit(_start_database, root, e, mariadb, p)
                               for e, p in zip(environments, ports, strict=True)}
                    errors: list[BaseException] = []
                    for e, f in futures.items():
                        try:
                            st.databases[e] = f.result()
                        except BaseException as exc:  # noqa: BLE001 - collected, re-raised below
                            errors.append(exc)
                        pid = _read_pid(root / f"mariadb-{e}.pid")
                        if pid is not None:
                            started.append((f"mariadb-{e}", pid))
                    if errors:
                        raise errors[0]
            _write_state(root, st)
            return Started(st, False, notes)
        except BaseException:
            # Leave nothing half-started behind.
            deadline = time.monotonic() + STOP_TIMEOUT
            for name, pid in started:
                if is_ours(root, name, pid):
                    _terminate(pid, deadline)
            for f in _pid_files(root):
                f.unlink(missing_ok=True)
            raise


def _clear_stale(root: Path) -> list[str]:
    """Remove pid files (and state) of processes that are gone or no longer ours."""
    stale = []
    for f in _pid_files(root):
        pid = _read_pid(f)
        if pid is not None and is_ours(root, f.stem, pid):
            raise SandboxError(f"{f.stem} (pid {pid}) of an earlier sandbox still runs; "
                               "run `dbrepl sandbox stop`, then `dbrepl sandbox start`")
        stale.append(f.name)
        f.unlink(missing_ok=True)
    (root / "state.json").unlink(missing_ok=True)
    return stale


def stop(root: Path) -> Stopped:
    """End what start started (by pid file, confirmed by command line); remove the stand-ins' data."""
    result = Stopped()
    if not root.is_dir():
        return result
    with _locked(root):
        deadline = time.monotonic() + STOP_TIMEOUT
        # Databases first, the AWS server last.
        files = sorted(_pid_files(root), key=lambda f: f.name == "aws.pid")
        for f in files:
            name = f.stem
            pid = _read_pid(f)
            if pid is None:
                result.stale.append(f"{name} (unreadable pid file)")
            elif not is_ours(root, name, pid):
                gone = _cmdline(pid) is None
                why = "process gone" if gone else "pid now belongs to another program, left alone"
                result.stale.append(f"{name} (pid {pid}: {why})")
            elif _terminate(pid, deadline):
                result.stopped.append(f"{name} (pid {pid})")
            else:
                result.failed.append(f"{name} (pid {pid})")
                continue
            f.unlink(missing_ok=True)
        if result.failed:
            return result
        (root / "state.json").unlink(missing_ok=True)
        shutil.rmtree(root / "mariadb", ignore_errors=True)
        return result


def aws_environment(st: State) -> dict[str, str]:
    """What to set in os.environ so every AWS call goes to the sandbox (no real credentials)."""
    return {
        "AWS_ENDPOINT_URL": st.endpoint, "AWS_REGION": st.region, "AWS_DEFAULT_REGION": st.region,
        # No profile, config or credentials file of the user's can redirect a call to real AWS.
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **FAKE_CREDENTIALS,
    }


# Unset when pointing at the sandbox: each could send a call elsewhere or pick other credentials.
AWS_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
             "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def point_at_sandbox(environ: dict[str, str] | Any, st: State) -> None:
    for k in [k for k in environ if k.startswith("AWS_ENDPOINT_URL_") or k in AWS_UNSET]:
        del environ[k]
    environ.update(aws_environment(st))


# --------------------------------------------------------------------------- stand-ins bound to clusters

def active_state(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> State | None:
    """The running sandbox of `cwd` when this process's AWS calls go to it (`--sandbox`), else None."""
    environ = os.environ if environ is None else environ
    url = environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None
    st = running_state(state_dir(cwd))
    return st if st is not None and st.endpoint == url else None


def stand_in_environment(st: State, variables: Mapping[str, str]) -> dict[str, str]:
    """`<ENV>_ENDPOINT` / `<ENV>_PORT` of a function's variables mapped to the stand-ins."""
    out: dict[str, str] = {}
    for env, db in st.databases.items():
        key = env.upper()
        if f"{key}_ENDPOINT" in variables:
            out[f"{key}_ENDPOINT"] = db.host
            out[f"{key}_PORT"] = str(db.port)
    return out


@dataclass
class Bound:
    env: str
    user: str
    port: int


def bind_stand_ins(st: State, spec: Any, suffix: str, sessions: Any,
                   envs: Sequence[str] | None = None) -> tuple[list[Bound], list[str]]:
    """Give each stand-in its cluster's master user (name and password from the environment's
    secret) with all privileges; returns what was bound and notes on what was not.

    The password goes from Secrets Manager to MariaDB only: it is never printed or stored.
    """
    import pymysql

    from dbrepl import names

    bound: list[Bound] = []
    notes: list[str] = []
    for env in envs or list(spec.environments):
        db = st.databases.get(env)
        if db is None:
            notes.append(f"{env}: no MariaDB stand-in runs ({st.skipped or 'not started for it'})")
            continue
        sm = sessions.client("secretsmanager", env)
        try:
            value = sm.get_secret_value(SecretId=names.secret(env, suffix))["SecretString"]
        except sm.exceptions.ResourceNotFoundException:
            notes.append(f"{env}: no secret {names.secret(env, suffix)} yet (apply it first)")
            continue
        try:
            secret = json.loads(value)
            user, password = str(secret["username"]), str(secret["password"])
        except (ValueError, KeyError, TypeError):
            raise SandboxError(f"{env}: the secret is not a {{username, password}} JSON") from None
        if user == db.user:
            raise SandboxError(f"{env}: master user {user!r} is the stand-in's own administrator; "
                               "choose another aurora.master_username")
        conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password,
                               connect_timeout=10, autocommit=True)
        try:
            with conn.cursor() as cur:
                for host in ("%", "localhost", "127.0.0.1"):
                    cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password))
                    cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
                    cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (user, host))
        except pymysql.MySQLError as e:
            # The statements hold the password: say only which step failed and the server's code.
            code = e.args[0] if e.args else "?"
            raise SandboxError(f"{env}: could not create the master user {user!r} on the stand-in "
                               f"(MariaDB error {code})") from None
        finally:
            conn.close()
        bound.append(Bound(env, user, db.port))
    return bound, notes


if __name__ == "__main__":  # python -m dbrepl.sandbox aws PORT ROOT (ROOT marks the command line)
    if len(sys.argv) != 4 or sys.argv[1] != "aws":
        sys.exit("usage: python -m dbrepl.sandbox aws PORT ROOT")
    serve_aws(int(sys.argv[2]))
