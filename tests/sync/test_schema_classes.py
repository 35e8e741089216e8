"""Issue 10 point 4: schema changes that used to fail or not converge, both directions.

Each case runs through the corpus runner (`_sync_one_direction`): forward (target has
`before`, source `after`) and backward; destructive clauses refused first, then applied;
afterwards every SHOW CREATE TABLE matches, a second plan is empty and safe changes keep
every row. Names are the awkward ones users have: spaces, backticks, quotes, reserved
words, non-ASCII letters, mixed case.
"""

from __future__ import annotations

import pytest

from tests.sync.test_schema_corpus import Case, _sync_one_direction, fresh_dbs  # noqa: F401

# An auto-increment table whose every name needs quoting.
AI = ("CREATE TABLE `Order Items` (`id` INT NOT NULL AUTO_INCREMENT, `select` INT NOT NULL DEFAULT 0, "
      "`ünï ``q``` INT NOT NULL DEFAULT 0, {keys})")
AI_ROWS = ["INSERT INTO `Order Items` (`select`, `ünï ``q```) VALUES (1, 10), (2, 20), (2, 30)"]

GEN = ("CREATE TABLE `Mixed Case` (`id` INT NOT NULL PRIMARY KEY, `a b` INT, "
       "`Größe` INT AS ({expr}) {kind}, `order` INT, "
       "KEY `k g` (`Größe`), KEY `k'2` (`a b`), KEY `k3` (`order`, `Größe`), "
       "CONSTRAINT `c g` CHECK (`Größe` >= 0), CONSTRAINT `c``2` CHECK (`a b` < 1000))")
GEN_ROWS = ["INSERT INTO `Mixed Case` (`id`, `a b`, `order`) VALUES (1, 1, 7), (2, 2, 8), (3, 3, NULL)"]

AUTHORS = "CREATE TABLE `Authörs` (`id` INT NOT NULL PRIMARY KEY, `name` VARCHAR(20))"
POSTS = ("CREATE TABLE `posts ``x``` (`id` INT NOT NULL PRIMARY KEY, `author id` INT, "
         "FOREIGN KEY (`author id`) REFERENCES `Authörs` (`id`){action})")
POSTS_ROWS = ["INSERT INTO `Authörs` VALUES (1, 'a'), (2, 'b')",
              "INSERT INTO `posts ``x``` VALUES (10, 1), (11, 2), (12, NULL)"]

PARENT = ("CREATE TABLE `Parent` (`key` INT NOT NULL, `name` VARCHAR(20) NOT NULL DEFAULT '', "
          "PRIMARY KEY (`key`))")
CHILD = ("CREATE TABLE `child table` (`id` INT NOT NULL PRIMARY KEY, `parent key` INT, "
         "CONSTRAINT `fk` FOREIGN KEY (`parent key`) REFERENCES `Parent` (`key`))")

CASES = [
    # 1. primary key changed on a table with an AUTO_INCREMENT column: one ALTER (error 1075)
    Case("pk_extended_auto_increment_with_unique",
         [AI.format(keys="PRIMARY KEY (`id`), UNIQUE KEY `u``q` (`ünï ``q```)")],
         [AI.format(keys="PRIMARY KEY (`id`, `select`), UNIQUE KEY `u``q` (`ünï ``q```)")],
         before_rows=AI_ROWS, after_rows=AI_ROWS),
    Case("pk_changed_auto_increment_needs_new_key",
         [AI.format(keys="PRIMARY KEY (`id`), KEY `by select` (`select`)")],
         [AI.format(keys="PRIMARY KEY (`select`, `id`), KEY `by id` (`id`), KEY `by select` (`select`)")],
         before_rows=AI_ROWS, after_rows=AI_ROWS),
    Case("auto_increment_key_moves_between_statements",
         [AI.format(keys="PRIMARY KEY (`select`, `id`), KEY `by id` (`id`), KEY `by select` (`select`)")],
         [AI.format(keys="PRIMARY KEY (`select`, `id`), KEY `by select` (`select`), KEY `by id` (`id`)")],
         before_rows=AI_ROWS, after_rows=AI_ROWS),
    # 2. generated column kind or expression changed while indexes and CHECKs depend on it
    Case("generated_virtual_to_persistent_with_dependents",
         [GEN.format(expr="`a b` * 2", kind="VIRTUAL")], [GEN.format(expr="`a b` * 2", kind="PERSISTENT")],
         before_rows=GEN_ROWS, after_rows=GEN_ROWS),
    Case("generated_kind_and_expression_with_dependents",
         [GEN.format(expr="`a b` * 2", kind="VIRTUAL")], [GEN.format(expr="`a b` + 100", kind="STORED")],
         before_rows=GEN_ROWS, after_rows=GEN_ROWS),
    Case("generated_expression_with_dependents",
         [GEN.format(expr="`a b` * 2", kind="STORED")], [GEN.format(expr="`a b` * 3", kind="STORED")],
         before_rows=GEN_ROWS, after_rows=GEN_ROWS),
    # 3. foreign key dropped and re-added under its own name keeps its implicit index's name
    Case("foreign_key_readded_same_name",
         [AUTHORS, POSTS.format(action=" ON DELETE CASCADE")], [AUTHORS, POSTS.format(action=" ON DELETE SET NULL")],
         before_rows=POSTS_ROWS, after_rows=POSTS_ROWS),
    Case("foreign_key_readded_after_column_change",
         [AUTHORS, POSTS.format(action="")],
         [AUTHORS.replace("`id` INT", "`id` BIGINT"), POSTS.format(action="").replace("`author id` INT",
                                                                                       "`author id` BIGINT")],
         backward_destructive=True, before_rows=POSTS_ROWS, after_rows=POSTS_ROWS),
    # 7. an index renamed (same key parts, same place): RENAME INDEX, no drop and rebuild
    Case("index_renamed_in_place",
         [GEN.format(expr="`a b` * 2", kind="VIRTUAL").replace("KEY `k'2`", "KEY `Old Näme`")],
         [GEN.format(expr="`a b` * 2", kind="VIRTUAL")], before_rows=GEN_ROWS, after_rows=GEN_ROWS),
    # 4. a referencing table is dropped while the column it references goes with its key (1829)
    Case("drop_referencing_table_and_referenced_key",
         [PARENT, CHILD],
         ["CREATE TABLE `Parent` (`name` VARCHAR(20) NOT NULL DEFAULT '', PRIMARY KEY (`name`))"],
         forward_destructive=True,
         before_rows=["INSERT INTO `Parent` VALUES (1, 'a'), (2, 'b')",
                      "INSERT INTO `child table` VALUES (1, 1), (2, NULL)"]),
]


@pytest.mark.mariadb
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_forward(mariadb, fresh_dbs, case: Case):  # noqa: F811 (the imported fixture)
    _sync_one_direction(mariadb, fresh_dbs, case.after, case.before, case.before_rows,
                        case.forward_destructive, case.forward_renames)


@pytest.mark.mariadb
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_backward(mariadb, fresh_dbs, case: Case):  # noqa: F811
    _sync_one_direction(mariadb, fresh_dbs, case.before, case.after, case.after_rows,
                        case.backward_destructive, case.backward_renames)


# ---- point 1 audit: a view's table alias spelled like the source database is not rewritten ----


@pytest.mark.mariadb
def test_view_alias_named_like_the_source_database_is_not_rewritten(mariadb, db_pair):
    from dbrepl.sync.schema import apply_schema, plan_schema
    from tests.sync.test_schema_corpus import run, snapshot

    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, [
        "CREATE TABLE `t` (`id` INT NOT NULL PRIMARY KEY, `v` INT)",
        "CREATE TABLE `u` (`id` INT NOT NULL PRIMARY KEY)",
        f"CREATE VIEW `w` AS SELECT `{src_db}`.`id`, `x`.`id` AS `xid` FROM `t` AS `{src_db}` "
        f"JOIN `u` AS `x` ON `{src_db}`.`id` = `x`.`id` WHERE `{src_db}`.`v` > 0",
    ])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    (view,) = [s.sql for s in plan.statements if s.phase == "create views"]
    assert f"`{dst_db}`.`t` `{src_db}`" in view and f"`{src_db}`.`id` AS `id`" in view, view
    assert apply_schema(conn, plan).converged
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)
    # The target's view reads the target's tables (the source's stay empty).
    run(conn, dst_db, ["INSERT INTO `t` VALUES (1, 5), (2, 0)", "INSERT INTO `u` VALUES (1), (2)"])
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{dst_db}`.`w`")
        assert cur.fetchall() == ((1, 1),)


def test_map_databases_keeps_aliases_and_rewrites_tables():
    from dbrepl.sync.schema.diff import map_databases

    m = {"app": "stg"}
    assert map_databases("select `app`.`id` AS `id` from `app`.`t` `app`", m) == \
        "select `app`.`id` AS `id` from `stg`.`t` `app`"
    assert map_databases("select `app`.`t`.`id` AS `id` from `app`.`t`", m) == \
        "select `stg`.`t`.`id` AS `id` from `stg`.`t`"
    assert map_databases("select `d`.`a` AS `a` from (select `app`.`t`.`a` AS `a` from `app`.`t`) `d`", m) == \
        "select `d`.`a` AS `a` from (select `stg`.`t`.`a` AS `a` from `stg`.`t`) `d`"
