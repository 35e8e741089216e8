"""Foreign keys from other databases are found (issue 17, point 2), by InnoDB's dictionary
where it can be read (fast: only the databases named are opened) and by a scan otherwise."""

from __future__ import annotations

import uuid

import pytest

import dbrepl.sync.data.fkeys as fkeys
from dbrepl.sync.data import ForeignKeyViolation
from tests.sync.test_data_sync import both, run, sync

pytestmark = pytest.mark.mariadb


@pytest.fixture
def other_db(mariadb):
    name = f"oth_{uuid.uuid4().hex[:8]}"
    conn = mariadb.connect()
    run(conn, f"CREATE DATABASE `{name}`")
    yield name
    run(conn, f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.mark.parametrize("dictionary", [True, False], ids=["innodb-dictionary", "scan"])
def test_a_child_in_another_database_is_checked(conns, db_pair, other_db, monkeypatch, dictionary):  # noqa: F811
    admin, _, _ = conns
    src, dst = db_pair
    if not dictionary:
        monkeypatch.setattr(fkeys, "_child_databases", lambda conn, dbs: None)
    found = fkeys._child_databases(admin, [dst]) if dictionary else None
    both(admin, src, dst, "CREATE TABLE ref (id INT PRIMARY KEY)")
    run(admin, f"INSERT INTO `{src}`.ref VALUES (1)", f"INSERT INTO `{dst}`.ref VALUES (1), (2)",
        f"CREATE TABLE `{other_db}`.app (id INT PRIMARY KEY, ref_id INT,"
        f" CONSTRAINT far_ref FOREIGN KEY (ref_id) REFERENCES `{dst}`.ref (id))",
        f"INSERT INTO `{other_db}`.app VALUES (7, 2)")
    if dictionary:
        assert found == set()  # before the child existed
        assert fkeys._child_databases(admin, [dst]) == {other_db}
    with pytest.raises(ForeignKeyViolation) as e:
        sync(conns, src, dst, ["ref"])
    assert "far_ref" in str(e.value) and f"{other_db}.app (not synced)" in str(e.value), str(e.value)
    assert run(admin, f"SELECT id FROM `{dst}`.ref ORDER BY id") == ((1,), (2,))


def test_names_innodb_stores_encoded_fall_back_to_the_scan(conns):  # noqa: F811
    admin, _, _ = conns
    assert fkeys._child_databases(admin, ["with-dash"]) is None
