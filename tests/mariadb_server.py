"""Start a private, throw-away MariaDB server for tests (no systemd, no root service)."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pymysql

# The server's command line and start-up wait are shared with the sandbox's stand-ins.
from dbrepl.sandbox import find_mariadb, free_port, init_datadir, server_argv, wait_for_mariadb
from dbrepl.sandbox.tls import ServerTls, make_server_tls
from dbrepl.sync.connection import Endpoint, Tls

_TLS: list[ServerTls] = []


def test_tls() -> ServerTls:
    """One CA and server certificate (127.0.0.1, localhost) for every test server of the process."""
    if not _TLS:
        where = Path(tempfile.mkdtemp(prefix="dbrepl-test-tls-"))
        atexit.register(shutil.rmtree, where, True)
        _TLS.append(make_server_tls(where, common_name="dbrepl test CA"))
    return _TLS[0]


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
    # The CA its certificate chains to; None: the server has no TLS.
    ca_bundle: Path | None = None

    def endpoint(self, database: str | None = None, *, verify: bool = False) -> Endpoint:
        """dbrepl's Endpoint of this server as root (TLS verified against its CA with `verify`)."""
        tls = Tls(ca_bundle=str(self.ca_bundle) if verify and self.ca_bundle else None,
                  enabled=self.ca_bundle is not None)
        return Endpoint(self.host, self.port, self.user, self.password, database, tls=tls)

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


def start(extra_args: tuple[str, ...] = (), tls: bool = True, require_tls: bool = False,
          server_tls: ServerTls | None = None) -> MariaDB:
    """Initialise a data directory and start mariadbd on a free loopback port.

    `tls` (the default): it serves TLS with test_tls()'s certificate (dbrepl's connections
    require TLS); `require_tls` also refuses plain-text logins (require_secure_transport), as
    the sandbox's stand-ins and the clusters' parameter group do. Tests' own raw connections
    may still go plain text without it. `server_tls`: other certificates than test_tls()'s.
    """
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
    # Its own certificates may name other hosts on purpose: then the start-up wait does not verify.
    verify_start = tls and server_tls is None
    server_tls = (server_tls or test_tls()) if tls else None
    args = (*server_tls.server_args(require_tls), *extra_args) if server_tls else extra_args
    proc = subprocess.Popen(server_argv(bins, datadir, port, sock, root, args), stdout=log,
                            stderr=subprocess.STDOUT)
    db = MariaDB(datadir=datadir, port=port, socket=sock, process=proc,
                 ca_bundle=server_tls.ca if server_tls else None)
    try:
        wait_for_mariadb(port, lambda: proc.poll() is None, log_path,
                         ca_bundle=str(server_tls.ca) if server_tls and verify_start else None, tls=tls)
    except Exception:
        db.stop()
        raise
    return db
