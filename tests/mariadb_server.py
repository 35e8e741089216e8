"""Start a private, throw-away MariaDB server for tests (no systemd, no root service)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pymysql

# The server's command line and start-up wait are shared with the sandbox's stand-ins.
from dbrepl.sandbox import find_mariadb, free_port, init_datadir, server_argv, wait_for_mariadb


def find_binaries() -> tuple[str, str] | None:
    """Return (install_db, server) paths, or None when MariaDB is not installed."""
    bins = find_mariadb()
    return (bins.install_db, bins.server) if bins else None


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
    bins = find_mariadb()
    if bins is None:
        raise RuntimeError("MariaDB server binaries not found (apt-get install mariadb-server)")
    root = Path(tempfile.mkdtemp(prefix="dbrepl-mariadb-"))
    datadir = root / "data"
    sock = root / "mysqld.sock"
    init_datadir(bins, datadir)
    port = free_port()
    log_path = root / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(server_argv(bins, datadir, port, sock, root, extra_args), stdout=log,
                            stderr=subprocess.STDOUT)
    db = MariaDB(datadir=datadir, port=port, socket=sock, process=proc)
    try:
        wait_for_mariadb(port, lambda: proc.poll() is None, log_path)
    except Exception:
        db.stop()
        raise
    return db
