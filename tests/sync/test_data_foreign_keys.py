"""Data sync that honours the target's foreign keys, including those of tables outside the
synced set (issue 17), against a real MariaDB server.

The run applies with foreign key checks off (related synced tables converge in any order),
then, before COMMIT, checks every foreign key of the target whose parent or child is a synced
table for the keys that changed. By default (`on_delete="refuse"`) a run that would leave a
child row pointing at nothing is rolled back (ForeignKeyViolation); with `on_delete="apply"`
rows the source deleted are deleted with the checks on, so the target's own CASCADE / SET NULL
happen and RESTRICT / NO ACTION fail the run.
"""

from __future__ import annotations

import json
import re

import pytest

from dbrepl.sync.data import ForeignKeyViolation
from dbrepl.sync.errors import DatabaseError
from tests.sync.test_data_sync import both, run
from tests.sync.test_data_triggers import assert_converged, cli, cli_dsn, dump, foreign_keys, orphans, sync

pytestmark = pytest.mark.mariadb


ACTIONS = ["CASCADE", "SET NULL", "RESTRICT", "NO ACTION"]


# -- a synced parent (`ref`) with children outside the set (`app`, and `app_note` under it) ------


def _ref_pair(admin, src: str, dst: str, action: str) -> None:
    """The source deleted ref 3 (two app rows reference it) and ref 6 (none does), renamed
    ref 2 (app 11 references it: a changed row, never to be cascaded away) and added ref 5."""
    both(admin, src, dst,
         "CREATE TABLE ref (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
         "CREATE TABLE app (id INT PRIMARY KEY, ref_id INT NULL, note VARCHAR(20), KEY (ref_id),"
         f" CONSTRAINT fk_app_ref FOREIGN KEY (ref_id) REFERENCES ref (id) ON DELETE {action})",
         "CREATE TABLE app_note (id INT PRIMARY KEY, app_id INT NOT NULL,"
         " CONSTRAINT fk_note_app FOREIGN KEY (app_id) REFERENCES app (id) ON DELETE CASCADE)")
    run(admin,
        f"INSERT INTO `{src}`.ref VALUES (1,'one'),(2,'two'),(4,'four'),(5,'five')",
        f"INSERT INTO `{dst}`.ref VALUES (1,'one'),(2,'TWO'),(3,'three'),(4,'four'),(6,'six')",
        f"INSERT INTO `{src}`.app VALUES (77, 1, 'source only')",  # never read: app is not synced
        f"INSERT INTO `{dst}`.app VALUES (10,1,'a'),(11,2,'b'),(12,3,'c'),(13,3,'d'),(14,NULL,'e')",
        f"INSERT INTO `{dst}`.app_note VALUES (100,10),(101,12),(102,13),(103,11)")


def _entry(result, constraint: str) -> dict:
    json.dumps(result.to_dict())
    entries = result.to_dict()["foreign_keys"]
    found = [e for e in entries if e["constraint"] == constraint or e["constraint"].endswith(f".{constraint}")]
    assert len(found) == 1, entries
    return found[0]


def _assert_names(msg: str, dst: str, constraint: str, table: str, rows: int) -> None:
    assert constraint in msg, msg
    assert re.search(rf"\b{re.escape(table)}\b", msg), msg
    assert re.search(rf"\b{rows}\b", msg), msg


@pytest.mark.parametrize("action", ACTIONS)
def test_deleted_parent_of_rows_outside_the_set_is_refused_by_default(conns, db_pair, action):
    """Whatever the target declares, the default never lets a sync decide to delete (or
    orphan) rows of a table nobody asked to sync: rolled back, the constraint, the table
    outside the set and the number of rows named. A dry run says the same and writes nothing."""
    admin, _, _ = conns
    src, dst = db_pair
    _ref_pair(admin, src, dst, action)
    before = dump(admin, dst)

    with pytest.raises(ForeignKeyViolation) as excinfo:
        sync(conns, src, dst, ["ref"])
    assert isinstance(excinfo.value, DatabaseError)
    _assert_names(str(excinfo.value), dst, "fk_app_ref", "app", 2)
    assert dump(admin, dst) == before

    with pytest.raises(ForeignKeyViolation) as excinfo:
        sync(conns, src, dst, ["ref"], dry_run=True)
    _assert_names(str(excinfo.value), dst, "fk_app_ref", "app", 2)
    assert dump(admin, dst) == before


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL"])
def test_on_delete_apply_cascades_and_sets_null_as_the_target_declares(conns, db_pair, action):
    admin, _, _ = conns
    src, dst = db_pair
    _ref_pair(admin, src, dst, action)
    before = dump(admin, dst)

    dry = sync(conns, src, dst, ["ref"], on_delete="apply", dry_run=True)
    entry = _entry(dry, "fk_app_ref")
    assert (entry["child"], entry["parent"], entry["on_delete"], entry["rows"]) == (
        f"{dst}.app", f"{dst}.ref", action, 2)
    assert dump(admin, dst) == before, "a dry run writes nothing"

    result = sync(conns, src, dst, ["ref"], on_delete="apply")
    t = result.tables[0]
    assert (t.inserted, t.updated, t.deleted) == (1, 1, 2)
    entry = _entry(result, "fk_app_ref")
    assert (entry["child"], entry["parent"], entry["on_delete"], entry["rows"]) == (
        f"{dst}.app", f"{dst}.ref", action, 2)
    app = run(admin, f"SELECT id, ref_id, note FROM `{dst}`.app ORDER BY id")
    notes = run(admin, f"SELECT id, app_id FROM `{dst}`.app_note ORDER BY id")
    if action == "CASCADE":
        assert app == ((10, 1, "a"), (11, 2, "b"), (14, None, "e"))
        assert notes == ((100, 10), (103, 11))  # and on down the chain
    else:
        assert app == ((10, 1, "a"), (11, 2, "b"), (12, None, "c"), (13, None, "d"), (14, None, "e"))
        assert notes == ((100, 10), (101, 12), (102, 13), (103, 11))
    assert run(admin, f"SELECT COUNT(*) FROM `{src}`.app")[0][0] == 1, "the source is only read"
    assert_converged(conns, src, dst, ["ref"], fks=2, on_delete="apply")


@pytest.mark.parametrize("action", ["RESTRICT", "NO ACTION"])
def test_on_delete_apply_with_restrict_fails_and_rolls_back(conns, db_pair, action):
    admin, _, _ = conns
    src, dst = db_pair
    _ref_pair(admin, src, dst, action)
    before = dump(admin, dst)
    with pytest.raises(DatabaseError) as excinfo:
        sync(conns, src, dst, ["ref"], on_delete="apply")
    assert "fk_app_ref" in str(excinfo.value), str(excinfo.value)
    assert dump(admin, dst) == before


@pytest.mark.parametrize("on_delete", ["refuse", "apply"])
@pytest.mark.parametrize("action", ["CASCADE", "SET NULL", "RESTRICT"])
def test_changed_and_unreferenced_parent_rows_converge_leaving_children_alone(conns, db_pair, action, on_delete):
    """Only ref 2 (renamed, same key; app 11 references it) and ref 6 (deleted, no child)
    differ: no finding, children untouched, whatever the action and the mode."""
    admin, _, _ = conns
    src, dst = db_pair
    _ref_pair(admin, src, dst, action)
    run(admin, f"INSERT INTO `{src}`.ref VALUES (3, 'three')")  # the source keeps ref 3 now
    app_before = dump(admin, dst)["app"], dump(admin, dst)["app_note"]
    result = sync(conns, src, dst, ["ref"], on_delete=on_delete)
    assert (result.tables[0].inserted, result.tables[0].updated, result.tables[0].deleted) == (1, 1, 1)
    assert all(e["rows"] == 0 for e in result.to_dict()["foreign_keys"]), result.to_dict()["foreign_keys"]
    assert (dump(admin, dst)["app"], dump(admin, dst)["app_note"]) == app_before
    assert_converged(conns, src, dst, ["ref"], fks=2, on_delete=on_delete)


def test_composite_foreign_key_outside_the_set(conns, db_pair):
    """A two-column reference: refused by default (3 rows named), SET NULL with apply."""
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE p (a INT NOT NULL, b VARCHAR(5) NOT NULL, v INT, PRIMARY KEY (a, b))",
         "CREATE TABLE c (id INT PRIMARY KEY, a INT NULL, b VARCHAR(5) NULL, KEY (a, b),"
         " CONSTRAINT fk_c_p FOREIGN KEY (a, b) REFERENCES p (a, b) ON DELETE SET NULL)")
    run(admin, f"INSERT INTO `{src}`.p VALUES (1,'x',1),(1,'y',2),(2,'x',3)",
        f"INSERT INTO `{dst}`.p VALUES (1,'x',1),(1,'y',9),(2,'x',3),(2,'y',4)",
        f"INSERT INTO `{dst}`.c VALUES (1,1,'y'),(2,2,'y'),(3,2,'y'),(4,2,'x'),(5,2,'y')")
    before = dump(admin, dst)
    with pytest.raises(ForeignKeyViolation) as excinfo:
        sync(conns, src, dst, ["p"])
    _assert_names(str(excinfo.value), dst, "fk_c_p", "c", 3)
    assert dump(admin, dst) == before
    result = sync(conns, src, dst, ["p"], on_delete="apply")
    assert _entry(result, "fk_c_p")["rows"] == 3
    assert run(admin, f"SELECT id, a, b FROM `{dst}`.c ORDER BY id") == (
        (1, 1, "y"), (2, None, None), (3, None, None), (4, 2, "x"), (5, None, None))
    assert_converged(conns, src, dst, ["p"], fks=1, on_delete="apply")


def test_changed_referenced_non_key_value_is_refused(conns, db_pair):
    """The reference is to a unique non-key column the source changed (same key): the
    delete-and-insert would orphan the child rows of the old value. Refused, rolled back."""
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE ref (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL, UNIQUE KEY (code))",
         "CREATE TABLE app (id INT PRIMARY KEY, ref_code VARCHAR(10), CONSTRAINT fk_app_code"
         " FOREIGN KEY (ref_code) REFERENCES ref (code) ON DELETE CASCADE ON UPDATE CASCADE)")
    run(admin, f"INSERT INTO `{src}`.ref VALUES (1,'A'),(2,'B2')",
        f"INSERT INTO `{dst}`.ref VALUES (1,'A'),(2,'B')",
        f"INSERT INTO `{dst}`.app VALUES (10,'A'),(11,'B')")
    before = dump(admin, dst)
    with pytest.raises(ForeignKeyViolation) as excinfo:
        sync(conns, src, dst, ["ref"])
    _assert_names(str(excinfo.value), dst, "fk_app_code", "app", 1)
    assert dump(admin, dst) == before


# -- a synced child whose parent table is outside the set ----------------------------------------


@pytest.mark.parametrize("on_delete", ["refuse", "apply"])
def test_synced_child_referencing_a_missing_unsynced_parent_is_refused(conns, db_pair, on_delete):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE country (id INT PRIMARY KEY, name VARCHAR(20))",
         "CREATE TABLE city (id INT PRIMARY KEY, country_id INT NOT NULL, name VARCHAR(20),"
         " CONSTRAINT fk_city_country FOREIGN KEY (country_id) REFERENCES country (id))")
    run(admin,
        f"INSERT INTO `{src}`.country VALUES (1,'A'),(2,'B'),(3,'C')",
        f"INSERT INTO `{dst}`.country VALUES (1,'A'),(2,'B')",
        f"INSERT INTO `{src}`.city VALUES (10,1,'x'),(20,2,'y'),(30,3,'z'),(31,3,'w')",
        f"INSERT INTO `{dst}`.city VALUES (10,1,'X'),(20,2,'y')")
    before = dump(admin, dst)
    with pytest.raises(DatabaseError) as excinfo:
        sync(conns, src, dst, ["city"], on_delete=on_delete)
    msg = str(excinfo.value)
    assert "fk_city_country" in msg and re.search(r"\bcountry\b", msg), msg
    if on_delete == "refuse":
        assert isinstance(excinfo.value, ForeignKeyViolation)
        assert re.search(r"\b2\b", msg), msg
    assert dump(admin, dst) == before

    with pytest.raises(ForeignKeyViolation):
        sync(conns, src, dst, ["city"], dry_run=True)
    assert dump(admin, dst) == before

    # With the parent's row there, the same run converges.
    run(admin, f"INSERT INTO `{dst}`.country VALUES (3, 'C')")
    assert sync(conns, src, dst, ["city"], on_delete=on_delete).rows_synced == 3
    assert_converged(conns, src, dst, ["city"], fks=1, on_delete=on_delete)


# -- parent and child both synced ------------------------------------------------------------------


@pytest.mark.parametrize("on_delete", ["refuse", "apply"])
@pytest.mark.parametrize("order", [["child", "parent"], ["parent", "child"]])
@pytest.mark.parametrize("action", ["CASCADE", "RESTRICT"])
def test_parent_and_child_both_synced_converge_in_any_order(conns, db_pair, action, order, on_delete):
    """The source deleted parent 3 and its child 30, moved child 31 to parent 4 (new), and
    renamed parent 1 whose child 10 stays."""
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst,
         "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL)",
         "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL, KEY (parent_id),"
         f" CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE {action})")
    run(admin,
        f"INSERT INTO `{src}`.parent VALUES (1,'ONE'),(2,'two'),(4,'four')",
        f"INSERT INTO `{src}`.child VALUES (10,1),(20,2),(31,4),(40,4)",
        f"INSERT INTO `{dst}`.parent VALUES (1,'one'),(2,'two'),(3,'three')",
        f"INSERT INTO `{dst}`.child VALUES (10,1),(20,2),(30,3),(31,3)")
    result = sync(conns, src, dst, order, on_delete=on_delete)
    if on_delete == "refuse":  # parent: 1 rewritten, 4 new, 3 gone; child: 30 gone, 31 moved, 40 new
        assert result.rows_synced == 3 + 3
    else:  # a CASCADE from parent 3 may have taken 30 and 31 first (then 31 is re-inserted)
        assert result.rows_synced >= 3 + 2
    assert_converged(conns, src, dst, ["parent", "child"], fks=1, on_delete=on_delete)


# -- the CLI, DSN to DSN ----------------------------------------------------------------------------


def test_cli_on_delete_refused_by_default_then_applied_with_json(conns, db_pair, mariadb):
    admin, _, _ = conns
    src, dst = db_pair
    _ref_pair(admin, src, dst, "CASCADE")
    before = dump(admin, dst)
    s, d = cli_dsn(mariadb, src), cli_dsn(mariadb, dst)

    r = cli("sync", "data", s, d, "--table", "ref", "--json")
    assert r.exit_code == 1, r.output
    body = json.loads(r.stdout)
    assert body["status"] == "error" and "fk_app_ref" in body["error"], body
    assert dump(admin, dst) == before

    r = cli("sync", "data", s, d, "--table", "ref", "--on-delete", "apply", "--json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert body["status"] == "success" and body["rows_synced"] == 4, body
    found = [e for e in body["foreign_keys"] if e["constraint"].endswith("fk_app_ref")]
    assert len(found) == 1 and found[0]["rows"] == 2 and found[0]["on_delete"] == "CASCADE", body
    assert found[0]["child"] == f"{dst}.app", body
    assert body["triggers"] == [], body
    assert run(admin, f"SELECT id FROM `{dst}`.app ORDER BY id") == ((10,), (11,), (14,))
    assert orphans(admin, dst) == {} and len(foreign_keys(admin, dst)) == 2

    r = cli("sync", "data", s, d, "--table", "ref", "--on-delete", "bogus")
    assert r.exit_code == 2, r.output
