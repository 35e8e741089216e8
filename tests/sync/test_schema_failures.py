"""Issue 10 point 4: a run that fails half-way says what ran; a drop plus an add suggests a rename.

DDL cannot be rolled back. The failure here is real: between the preflight and the failing
statement another session inserts a duplicate (as a live application would), so the server
refuses the new unique key after another statement already ran.
"""

from __future__ import annotations

import pytest

from dbrepl.sync.schema import (
    DestructiveChangeRefused,
    SchemaApplyFailed,
    apply_schema,
    plan_schema,
    sync_schema,
)
from tests.sync.test_schema_corpus import run, snapshot

SOURCE = [
    "CREATE TABLE `a ``1``` (`id` INT NOT NULL PRIMARY KEY, `select` INT, `new` INT)",
    "CREATE TABLE `bé` (`id` INT NOT NULL PRIMARY KEY, `Wert` VARCHAR(10), UNIQUE KEY `u w` (`Wert`))",
    "CREATE TABLE `c` (`id` INT NOT NULL PRIMARY KEY, `x` INT, `y` INT)",
]
TARGET = [
    "CREATE TABLE `a ``1``` (`id` INT NOT NULL PRIMARY KEY, `select` INT)",
    "CREATE TABLE `bé` (`id` INT NOT NULL PRIMARY KEY, `Wert` VARCHAR(10))",
    "CREATE TABLE `c` (`id` INT NOT NULL PRIMARY KEY, `x` INT)",
    "INSERT INTO `bé` VALUES (1, 'eins'), (2, 'zwei')",
]


@pytest.mark.mariadb
def test_failure_after_a_statement_ran_lists_ran_failed_not_run_and_a_rerun_converges(mariadb, db_pair):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    other = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, SOURCE)
    run(conn, dst_db, TARGET)
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    assert ["`a ``1```" in s.sql and "UNIQUE" not in s.sql for s in plan.statements] == [True, False, False]
    assert "UNIQUE" in plan.statements[1].sql and "`c`" in plan.statements[2].sql, plan.sql()

    def race(index, statement):
        if "UNIQUE" in statement.sql:  # the application writes a duplicate after the preflight
            with other.cursor() as cur:
                cur.execute(f"INSERT INTO `{dst_db}`.`bé` VALUES (3, 'eins')")

    with pytest.raises(SchemaApplyFailed) as failed:
        apply_schema(conn, plan, progress=race)
    exc = failed.value
    first, *lines = str(exc).splitlines()
    assert "after 1 of 3 statement(s) ran" in first and "Duplicate entry" in first
    assert "cannot be rolled back" in first and "run the sync again" in first
    assert lines == [f"  ran: {plan.statements[0].description}",
                     f"  failed: {plan.statements[1].description}",
                     f"  not run: {plan.statements[2].description}"]
    as_dict = exc.to_dict()
    assert [s["sql"] for s in as_dict["ran"]] == [plan.statements[0].sql]
    assert as_dict["failed"]["sql"] == plan.statements[1].sql
    assert [s["sql"] for s in as_dict["not_run"]] == [plan.statements[2].sql]
    assert "Duplicate entry" in as_dict["error"]
    # What ran stayed; what did not run did not.
    now, src = snapshot(conn, dst_db), snapshot(conn, src_db)
    assert now["a `1`"] == src["a `1`"] and now["bé"] != src["bé"] and now["c"] != src["c"]

    # Second run: it plans from here. First still blocked by the duplicate (now before any DDL),
    # then, with the row fixed, it runs only what is left and converges.
    with pytest.raises(DestructiveChangeRefused, match="1 row|2 row"):
        sync_schema(conn, conn, [(src_db, dst_db)])
    run(conn, dst_db, ["DELETE FROM `bé` WHERE `id` = 3"])
    again = plan_schema(conn, conn, [(src_db, dst_db)])
    assert [s.sql for s in again.statements] == [s.sql for s in plan.statements[1:]]
    assert apply_schema(conn, again).converged
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)


@pytest.mark.mariadb
@pytest.mark.parametrize("before, after, hint", [
    # same definition, same position: a column renamed
    (["CREATE TABLE `orders` (`id` INT NOT NULL PRIMARY KEY, `qty` INT NOT NULL DEFAULT 1, `note` TEXT)"],
     ["CREATE TABLE `orders` (`id` INT NOT NULL PRIMARY KEY, `quantity` INT NOT NULL DEFAULT 1, `note` TEXT)"],
     "if column `qty` was renamed to `quantity`, pass --rename {db}.orders.qty=quantity"),
    # same columns: a table renamed
    (["CREATE TABLE `old_t` (`id` INT NOT NULL PRIMARY KEY, `v` VARCHAR(5))"],
     ["CREATE TABLE `new_t` (`id` INT NOT NULL PRIMARY KEY, `v` VARCHAR(5))"],
     "if table `old_t` was renamed to `new_t`, pass --rename {db}.old_t=new_t"),
    # a name no hint can carry: the refusal says so instead of a hint that would be refused
    (["CREATE TABLE `t` (`id` INT NOT NULL PRIMARY KEY, `a b` INT)"],
     ["CREATE TABLE `t` (`id` INT NOT NULL PRIMARY KEY, `a c` INT)"],
     "if column `a b` was renamed to `a c`, rename it in a migration: a --rename hint cannot name it"),
])
def test_drop_plus_add_that_looks_like_a_rename_suggests_the_hint(mariadb, db_pair, before, after, hint):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, after)
    run(conn, dst_db, before)
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    with pytest.raises(DestructiveChangeRefused) as refused:
        apply_schema(conn, plan)
    assert hint.format(db=src_db) in str(refused.value), str(refused.value)
    if ", pass --rename " in hint:
        # The suggested hint is exact: with it the plan is a rename, nothing destructive.
        suggested = hint.format(db=src_db).split("--rename ")[1]
        renamed = plan_schema(conn, conn, [(src_db, dst_db)], renames=[suggested])
        assert not renamed.destructive_clauses(), renamed.sql()
        assert apply_schema(conn, renamed).converged


@pytest.mark.mariadb
def test_no_hint_when_the_added_column_differs(mariadb, db_pair):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, ["CREATE TABLE `t` (`id` INT NOT NULL PRIMARY KEY, `b` BIGINT)"])
    run(conn, dst_db, ["CREATE TABLE `t` (`id` INT NOT NULL PRIMARY KEY, `a` INT)"])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    assert plan.destructive_clauses() and "--rename" not in str(DestructiveChangeRefused(plan.destructive_clauses()))


@pytest.mark.mariadb
def test_index_renamed_in_place_is_a_rename_not_a_rebuild(mariadb, db_pair):
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, ["CREATE TABLE `t` (`id` INT NOT NULL PRIMARY KEY, `a` INT, `b` INT, "
                       "KEY `New ``k```(`a`, `b` DESC), KEY `kb` (`b`))"])
    run(conn, dst_db, ["CREATE TABLE `t` (`id` INT NOT NULL PRIMARY KEY, `a` INT, `b` INT, "
                       "KEY `old k` (`a`, `b` DESC), KEY `kb` (`b`))"])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    assert [s.sql for s in plan.statements] == [
        f"ALTER TABLE `{dst_db}`.`t` RENAME INDEX `old k` TO `New ``k```"]
    assert apply_schema(conn, plan).converged
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)
