"""Start a private, throw-away MariaDB server for tests (no systemd, no root service)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql


def find_binaries() -> tuple[str, str] | None:
    """Return (install_db, server) paths, or None when MariaDB is not installed."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = (
        shutil.which("mariadbd")
        or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
        or shutil.which("mysqld", path="/usr/sbin:/usr/local/sbin")
    )
    if install and server:
        return install, server
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MariaDB:
    """A running server; `root` connects over TCP as root with no password."""

    datadir: Path
    port: int
    socket: Path
    process: subprocess.Popen

    host: str = "127.0.0.1"
    user: str = "root"
    password: str = ""

    def connect(self, database: str | None = None, **kw) -> pymysql.Connection:
        return pymysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            database=database, autocommit=True, charset="utf8mb4", **kw,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start(extra_args: tuple[str, ...] = ()) -> MariaDB:
    """Initialise a data directory and start mariadbd on a free loopback port."""
    bins = find_binaries()
    if bins is None:
        raise RuntimeError("MariaDB server binaries not found (apt-get install mariadb-server)")
    install, server = bins
    root = Path(tempfile.mkdtemp(prefix="dbrepl-mariadb-"))
    datadir = root / "data"
    sock = root / "mysqld.sock"
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [install, f"--datadir={datadir}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *as_root],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={datadir}", f"--port={port}", f"--socket={sock}",
         "--bind-address=127.0.0.1", "--skip-name-resolve", "--innodb-buffer-pool-size=256M",
         "--innodb-flush-log-at-trx-commit=2", "--max-connections=500",
         "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
         f"--pid-file={root / 'mysqld.pid'}",
         # Its own temporary directory: on a shared /tmp, another process's clean-up can
         # delete the server's on-disk temporary tables mid-query (seen: "Error on delete
         # of '/tmp/#sql-temptable-...MAI'").
         f"--tmpdir={root}", *as_root, *extra_args],
        stdout=log, stderr=subprocess.STDOUT,
    )
    db = MariaDB(datadir=datadir, port=port, socket=sock, process=proc)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mariadbd exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            db.connect().close()
            return db
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                db.stop()
                raise RuntimeError("mariadbd did not accept connections within 60 s") from None
            time.sleep(0.1)
