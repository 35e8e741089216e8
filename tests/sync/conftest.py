from __future__ import annotations

import os
import uuid

import pytest

from tests import mariadb_server


@pytest.fixture(scope="session")
def mariadb():
    """One real MariaDB server for the whole session; skipped only off CI."""
    if mariadb_server.find_binaries() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but MariaDB server binaries are missing; .ci/run must install mariadb-server")
        pytest.skip("MariaDB server binaries not installed (apt-get install mariadb-server)")
    server = mariadb_server.start()
    yield server
    server.stop()


@pytest.fixture
def db_pair(mariadb):
    """Two fresh, empty databases (source, target) on the server; dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    src, dst = f"src_{tag}", f"dst_{tag}"
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{src}`")
        cur.execute(f"CREATE DATABASE `{dst}`")
    yield src, dst
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{src}`")
        cur.execute(f"DROP DATABASE IF EXISTS `{dst}`")
    conn.close()


@pytest.fixture
def conns(mariadb):
    """(admin, source, target) connections to the session's server, the admin's session in UTC;
    a data sync gets the last two."""
    admin, s, t = mariadb.connect(), mariadb.connect(), mariadb.connect()
    with admin.cursor() as cur:
        cur.execute("SET SESSION time_zone='+00:00'")
    yield admin, s, t
    for c in (admin, s, t):
        c.close()
