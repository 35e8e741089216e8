"""MariaDB servers standing in for the environments' Aurora clusters (also the tests' servers)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dbrepl.errors import WaitTimeout
from dbrepl.sandbox.procs import log_tail, port_free, spawn
from dbrepl.sandbox.state import FIRST_DB_PORT, HOST, START_TIMEOUT, Database, SandboxError, db_dir
from dbrepl.sandbox.tls import ServerTls


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


def wait_for_mariadb(port: int, alive: Callable[[], bool], log: Path, timeout: float = START_TIMEOUT,
                     ca_bundle: str | None = None, tls: bool = True) -> None:
    """Until root can log in over TCP (through dbrepl's one connect: TLS, verified against
    `ca_bundle` when given; `tls=False` for a server without TLS); fails early when the
    server exits."""
    from dbrepl.sync.connection import Endpoint, Tls, connect
    from dbrepl.sync.errors import DatabaseError

    endpoint = Endpoint(HOST, port, "root", "", tls=Tls(ca_bundle=ca_bundle, enabled=tls))
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise SandboxError(f"mariadbd exited while starting: {log_tail(log)}")
        try:
            connect(endpoint).close()
            return
        except DatabaseError as exc:
            if time.monotonic() > deadline:
                raise WaitTimeout(f"mariadbd on port {port} to accept connections ({exc})", timeout) from None
            time.sleep(0.1)


def _socket_path(rundir: Path) -> Path:
    sock = rundir / "mysqld.sock"
    if len(str(sock)) < 100:  # a Unix socket path is limited to 108 bytes
        return sock
    digest = hashlib.sha1(str(rundir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"dbrepl-sandbox-{digest}.sock"


def start_database(root: Path, env: str, bins: MariaDBBinaries, port: int, tls: ServerTls) -> Database:
    """A fresh stand-in for `env` on `port`, serving TLS with `tls` and refusing plain text."""
    rundir = db_dir(root, env)
    datadir = rundir / "data"
    # The AWS side starts empty every time, so the stand-ins do too.
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    init_datadir(bins, datadir)
    sock = _socket_path(rundir)
    log = rundir / "server.log"
    proc = spawn(server_argv(bins, datadir, port, sock, rundir, tls.server_args(), buffer_pool="128M"), log)
    (root / f"mariadb-{env}.pid").write_text(f"{proc.pid}\n")
    wait_for_mariadb(port, lambda: proc.poll() is None, log, ca_bundle=str(tls.ca))
    return Database(env=env, host=HOST, port=port, pid=proc.pid, datadir=str(datadir), socket=str(sock))


def pick_db_ports(n: int, avoid: set[int]) -> list[int]:
    ports: list[int] = []
    p = FIRST_DB_PORT
    while len(ports) < n and p < 65536:
        if p not in avoid and port_free(p):
            ports.append(p)
        p += 1
    return ports
