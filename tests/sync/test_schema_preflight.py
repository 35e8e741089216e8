"""Issue 10 point 4: changes the target's rows make impossible are refused before any DDL.

Each case has a `before` and `after` schema and rows of the `before` side that block the
change to `after` (forward). Forward: the run is refused by a read-only preflight, naming
the table, the clause and how many rows are in the way; nothing changed (schema and rows);
after the rows are fixed the same sync converges. Backward (target `after`, rows valid
for it): the corpus runner converges. Column names include the preflight's own aliases
(`dbrepl_n`, `dbrepl_dups`, `dbrepl_parent`) so a capture would show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from typer.testing import CliRunner

from dbrepl.cli import app
from dbrepl.sync.schema import RowsPreventChange, apply_schema, plan_schema
from dbrepl.sync.schema.plan import DestructiveChangeRefused
from dbrepl.sync.schema.preflight import Precheck, has_default, inline_check
from tests.sync.test_schema_corpus import (  # noqa: F401 (fresh_dbs is a fixture)
    _sync_one_direction,
    fresh_dbs,
    row_ids,
    run,
    snapshot,
)


@dataclass
class Blocked:
    name: str
    before: list[str]
    after: list[str]
    rows: list[str]  # target rows (for `before`) that block the forward change
    table: str  # the blocked table as named in the error
    clause: str  # a piece of the blocked clause's text
    count: int  # rows in the way
    fix: list[str]  # statements on the target that remove the obstacle
    forward_destructive: bool = False
    backward_destructive: bool = False
    after_rows: list[str] = field(default_factory=list)


T = "CREATE TABLE `Tab le` (`id` INT NOT NULL PRIMARY KEY, {cols})"


def t(cols: str) -> str:
    return T.format(cols=cols)


PARENT = "CREATE TABLE `Éltern` (`id` INT NOT NULL PRIMARY KEY, `dbrepl_n` INT)"
CHILD = ("CREATE TABLE `child ``c```(`id` INT NOT NULL PRIMARY KEY, `dbrepl_parent` INT,"
         " KEY `k p` (`dbrepl_parent`){fk})")
FK = ", CONSTRAINT `fk'p` FOREIGN KEY (`dbrepl_parent`) REFERENCES `Éltern` (`id`)"
NODE = ("CREATE TABLE `node` (`id` INT NOT NULL PRIMARY KEY, `parent id` INT, KEY `kp` (`parent id`){fk})")
NODE_FK = ", CONSTRAINT `self` FOREIGN KEY (`parent id`) REFERENCES `node` (`id`)"

CASES = [
    Blocked("new_check_violated", [t("`select` INT")],
            [t("`select` INT, CONSTRAINT `ck \"x\"` CHECK (`select` >= 0)")],
            ["INSERT INTO `Tab le` VALUES (1, -1), (2, -5), (3, 4), (4, NULL)"],
            "`Tab le`", "CHECK (`select` >= 0)", 2, ["UPDATE `Tab le` SET `select` = 0 WHERE `select` < 0"],
            after_rows=["INSERT INTO `Tab le` VALUES (1, 0)"]),
    Blocked("new_column_check_violated", [t("`order` INT")], [t("`order` INT CHECK (`order` < 10)")],
            ["INSERT INTO `Tab le` VALUES (1, 10), (2, 9)"], "`Tab le`", "CHECK (`order` < 10)", 1,
            ["DELETE FROM `Tab le` WHERE `order` >= 10"]),
    Blocked("enum_member_removed", [t("`état` ENUM('a','b','c''q')")], [t("`état` ENUM('a','b')")],
            ["INSERT INTO `Tab le` VALUES (1, 'c''q'), (2, 'c''q'), (3, 'a'), (4, NULL)"],
            "`Tab le`", "enum('a','b')", 2, ["UPDATE `Tab le` SET `état` = 'b' WHERE `état` = 'c''q'"],
            forward_destructive=True),
    # A name holding "%s": the checks with bound values must not read it as a placeholder.
    Blocked("set_member_removed", [t("`Flags %s` SET('x','y','z')")], [t("`Flags %s` SET('x','y')")],
            ["INSERT INTO `Tab le` VALUES (1, 'x,z'), (2, 'x,y'), (3, '')"], "`Tab le`", "set('x','y')", 1,
            ["UPDATE `Tab le` SET `Flags %s` = 'x' WHERE `id` = 1"], forward_destructive=True),
    # (A NOT NULL column without DEFAULT added over rows is no longer refused: the rows get the
    # type's implicit default, as on the server; test_schema_implicit_defaults.py.)
    Blocked("unique_key_over_duplicates", [t("`dbrepl_n` VARCHAR(10), `group` INT")],
            [t("`dbrepl_n` VARCHAR(10), `group` INT, UNIQUE KEY `u``1` (`dbrepl_n`(3), `group`)")],
            ["INSERT INTO `Tab le` VALUES (1, 'abcX', 1), (2, 'ABCy', 1), (3, 'abc', 2), (4, NULL, 1), "
             "(5, NULL, 1), (6, 'zz', 1)"],
            "`Tab le`", "UNIQUE KEY `u``1`", 2, ["UPDATE `Tab le` SET `group` = 3 WHERE `id` = 2"]),
    Blocked("collation_change_under_unique_key",
            [t("`Näme` VARCHAR(10) COLLATE utf8mb4_bin, UNIQUE KEY `u` (`Näme`)")],
            [t("`Näme` VARCHAR(10) COLLATE utf8mb4_general_ci, UNIQUE KEY `u` (`Näme`)")],
            ["INSERT INTO `Tab le` VALUES (1, 'Äbc'), (2, 'äbc'), (3, 'abc'), (4, 'x')"], "`Tab le`",
            "under UNIQUE KEY `u`", 3,  # general_ci ignores case and accents: Äbc = äbc = abc
            ["UPDATE `Tab le` SET `Näme` = CONCAT('y', `id`) WHERE `id` IN (2, 3)"]),
    # Generated columns whose values change: keys and CHECKs over them see the new values.
    Blocked("generated_expression_under_unique_key",
            [t("`a` INT, `Größe` INT AS (`a` * 2) STORED, UNIQUE KEY `u g` (`Größe`)")],
            [t("`a` INT, `Größe` INT AS (`a` DIV 2) STORED, UNIQUE KEY `u g` (`Größe`)")],
            ["INSERT INTO `Tab le` (`id`, `a`) VALUES (1, 1), (2, 2), (3, 3)"], "`Tab le`",
            "under UNIQUE KEY `u g`", 2, ["UPDATE `Tab le` SET `a` = 30 WHERE `id` = 3"]),
    Blocked("generated_kind_and_expression_under_check",
            [t("`a` INT, `g` INT AS (`a` + 0) VIRTUAL, CONSTRAINT `c g` CHECK (`g` < 100)")],
            [t("`a` INT, `g` INT AS (`a` * 100) PERSISTENT, CONSTRAINT `c g` CHECK (`g` < 100)")],
            ["INSERT INTO `Tab le` (`id`, `a`) VALUES (1, 0), (2, 1), (3, 2), (4, NULL)"], "`Tab le`",
            "under CONSTRAINT `c g`", 2, ["UPDATE `Tab le` SET `a` = 0"],
            after_rows=["INSERT INTO `Tab le` (`id`, `a`) VALUES (1, 0)"]),
    Blocked("new_generated_column_under_new_unique_key", [t("`a` INT")],
            [t("`a` INT, `odd` INT AS (`a` % 2) VIRTUAL, UNIQUE KEY `u odd` (`odd`)")],
            ["INSERT INTO `Tab le` VALUES (1, 1), (2, 3), (3, NULL)"], "`Tab le`", "UNIQUE KEY `u odd`", 2,
            ["UPDATE `Tab le` SET `a` = 2 WHERE `id` = 2"], backward_destructive=True),
    Blocked("primary_key_over_duplicates",
            ["CREATE TABLE `Tab le` (`id` INT NOT NULL, `dbrepl_dups` INT NOT NULL DEFAULT 0, PRIMARY KEY (`id`))"],
            ["CREATE TABLE `Tab le` (`id` INT NOT NULL, `dbrepl_dups` INT NOT NULL DEFAULT 0, "
             "PRIMARY KEY (`dbrepl_dups`))"],
            ["INSERT INTO `Tab le` VALUES (1, 7), (2, 7), (3, 7), (4, 8)"], "`Tab le`", "PRIMARY KEY", 3,
            ["UPDATE `Tab le` SET `dbrepl_dups` = `id` + 100"]),
    Blocked("varchar_narrowed_below_data", [t("`Näme` VARCHAR(20)")], [t("`Näme` VARCHAR(3)")],
            ["INSERT INTO `Tab le` VALUES (1, 'äbcd'), (2, 'äbc'), (3, NULL)"], "`Tab le`", "varchar(3)", 1,
            ["UPDATE `Tab le` SET `Näme` = 'x' WHERE `id` = 1"], forward_destructive=True),
    Blocked("int_narrowed_below_data", [t("`count` INT")], [t("`count` TINYINT UNSIGNED")],
            ["INSERT INTO `Tab le` VALUES (1, 300), (2, -1), (3, 255), (4, 0)"], "`Tab le`", "tinyint(3) unsigned",
            2, ["UPDATE `Tab le` SET `count` = 1 WHERE `count` NOT BETWEEN 0 AND 255"],
            forward_destructive=True, backward_destructive=False),
    Blocked("decimal_narrowed_below_data", [t("`amount` DECIMAL(10,2)")], [t("`amount` DECIMAL(4,2)")],
            ["INSERT INTO `Tab le` VALUES (1, 100.00), (2, -99.99), (3, -12345.5)"], "`Tab le`", "decimal(4,2)", 2,
            ["UPDATE `Tab le` SET `amount` = 1 WHERE ABS(`amount`) >= 100"], forward_destructive=True),
    Blocked("text_to_number_not_a_number", [t("`Preis €` VARCHAR(20)")], [t("`Preis €` DECIMAL(10,2)")],
            ["INSERT INTO `Tab le` VALUES (1, ' 12.5 '), (2, 'zwölf'), (3, ''), (4, NULL), (5, '-1e2')"],
            "`Tab le`", "decimal(10,2)", 2, ["UPDATE `Tab le` SET `Preis €` = '0' WHERE `id` IN (2, 3)"],
            forward_destructive=True, backward_destructive=True),
    Blocked("text_to_date_not_a_date", [t("`when` VARCHAR(20)")], [t("`when` DATE")],
            ["INSERT INTO `Tab le` VALUES (1, '2024-02-29'), (2, '2023-02-29'), (3, 'soon'), (4, NULL)"],
            "`Tab le`", "modify column `when` to `when` date", 2,
            ["UPDATE `Tab le` SET `when` = NULL WHERE `id` IN (2, 3)"], forward_destructive=True,
            backward_destructive=True),
    Blocked("text_to_enum_not_a_member", [t("`state` VARCHAR(10)")], [t("`state` ENUM('new','done')")],
            ["INSERT INTO `Tab le` VALUES (1, 'new'), (2, 'DONE'), (3, 'lost'), (4, NULL)"],
            "`Tab le`", "enum('new','done')", 1, ["DELETE FROM `Tab le` WHERE `id` = 3"],
            forward_destructive=True, backward_destructive=True),
    Blocked("null_to_not_null", [t("`v` INT NULL")], [t("`v` INT NOT NULL DEFAULT 0")],
            ["INSERT INTO `Tab le` VALUES (1, NULL), (2, 1), (3, NULL)"], "`Tab le`", "modify column `v`", 2,
            ["UPDATE `Tab le` SET `v` = 0 WHERE `v` IS NULL"], forward_destructive=True),
    Blocked("becomes_auto_increment_over_zero",
            ["CREATE TABLE `Tab le` (`id` INT NOT NULL PRIMARY KEY, `v` INT)"],
            ["CREATE TABLE `Tab le` (`id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY, `v` INT)"],
            ["INSERT INTO `Tab le` VALUES (0, 1), (5, 2)"], "`Tab le`", "AUTO_INCREMENT", 1,
            ["UPDATE `Tab le` SET `id` = 6 WHERE `id` = 0"]),
    Blocked("foreign_key_orphans", [PARENT, CHILD.format(fk="")], [PARENT, CHILD.format(fk=FK)],
            ["INSERT INTO `Éltern` VALUES (1, 1), (2, 2)",
             "INSERT INTO `child ``c``` VALUES (10, 1), (11, 99), (12, NULL), (13, 98)"],
            "`child ``c```", "FOREIGN KEY (`dbrepl_parent`)", 2,
            ["UPDATE `child ``c``` SET `dbrepl_parent` = NULL WHERE `dbrepl_parent` > 2"]),
    Blocked("self_referencing_foreign_key_orphans", [NODE.format(fk="")], [NODE.format(fk=NODE_FK)],
            ["INSERT INTO `node` VALUES (1, NULL), (2, 1), (3, 42), (4, 4)"], "`node`",
            "FOREIGN KEY (`parent id`)", 1, ["DELETE FROM `node` WHERE `id` = 3"]),
    Blocked("foreign_key_to_new_parent", [CHILD.format(fk="")], [PARENT, CHILD.format(fk=FK)],
            ["INSERT INTO `child ``c``` VALUES (10, 1), (12, NULL)"], "`child ``c```", "REFERENCES", 1,
            ["UPDATE `child ``c``` SET `dbrepl_parent` = NULL"], backward_destructive=True),
]


@pytest.mark.mariadb
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_forward_refused_before_any_ddl(mariadb, fresh_dbs, case: Blocked):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    src, dst = mariadb.connect(ssl_disabled=True), mariadb.connect(ssl_disabled=True)
    run(src, src_db, case.after)
    run(dst, dst_db, case.before + case.rows)
    schema_before, rows_before = snapshot(dst, dst_db), row_ids(dst, dst_db)

    plan = plan_schema(src, dst, [(src_db, dst_db)])
    assert bool(plan.destructive_clauses()) == case.forward_destructive, plan.sql()
    with pytest.raises(RowsPreventChange) as refused:
        apply_schema(dst, plan, allow_destructive=True)
    message = str(refused.value)
    assert "no DDL was run" in message
    assert f"table `{dst_db}`.{case.table}" in message, message
    assert case.clause in message, message
    assert f"{case.count} row(s) in the way" in message, message
    assert [n for _, n in refused.value.blocked] == [case.count]
    assert refused.value.to_dict()["blocked"][0]["rows"] == case.count
    assert isinstance(refused.value, DestructiveChangeRefused), "reported as a refusal"
    assert snapshot(dst, dst_db) == schema_before and row_ids(dst, dst_db) == rows_before

    # Fixed rows: the same plan now passes the preflight and converges.
    run(dst, dst_db, case.fix)
    assert apply_schema(dst, plan, allow_destructive=True).converged
    assert snapshot(dst, dst_db) == snapshot(src, src_db)
    assert plan_schema(src, dst, [(src_db, dst_db)]).statements == []
    src.close()
    dst.close()


@pytest.mark.mariadb
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_backward_converges(mariadb, fresh_dbs, case: Blocked):  # noqa: F811
    _sync_one_direction(mariadb, fresh_dbs, case.before, case.after, case.after_rows,
                        case.backward_destructive, [])


@pytest.mark.mariadb
def test_refusal_reaches_the_cli_as_refused_exit_1(mariadb, fresh_dbs):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    case = CASES[0]
    run(conn, src_db, case.after)
    run(conn, dst_db, case.before + case.rows)
    before = snapshot(conn, dst_db)
    base = f"mysql://root@127.0.0.1:{mariadb.port}/"
    r = CliRunner().invoke(app, ["sync", "schema", base + src_db, base + dst_db, "--yes", "--json"])
    assert r.exit_code == 1, r.output
    assert '"status": "refused"' in r.output and "2 row(s) in the way" in r.output, r.output
    assert snapshot(conn, dst_db) == before


def test_precheck_sql_is_capture_proof():
    p = Precheck("d b", "t`x", "add key", "dup", where="`d b`.`t``x`.`c` IS NOT NULL",
                 group_by=("`d b`.`t``x`.`c`",))
    sql = p.sql()
    with_values = Precheck("d%b", "t", "w", "y", where="`d%b`.`t`.`c` IN (%s)", params=("a%b",))
    assert with_values.sql() == "SELECT COUNT(*) FROM `d%%b`.`t` WHERE `d%%b`.`t`.`c` IN (%s)"
    # Grouping by a qualified column, the count read through its derived table's name.
    assert "GROUP BY `d b`.`t``x`.`c` HAVING COUNT(*) > 1" in sql
    assert sql.startswith("SELECT COALESCE(SUM(`dbrepl_dups`.`dbrepl_n`), 0) FROM (SELECT COUNT(*)")
    assert Precheck("d", "t", "w", "y", where="`x` > 0").sql() == "SELECT COUNT(*) FROM `d`.`t` WHERE `x` > 0"


@pytest.mark.parametrize("definition, default", [
    ("int(11) NOT NULL", False), ("int(11) NOT NULL DEFAULT 0", True),
    ("varchar(5) NOT NULL COMMENT 'DEFAULT AS'", False), ("int(11) NOT NULL AUTO_INCREMENT", True),
    ("int(11) GENERATED ALWAYS AS (`a` + 1) STORED", True),  # MariaDB and MySQL 8.0 print this
    ("int(11) AS (`a` + 1) PERSISTENT", True),
])
def test_has_default(definition, default):
    assert has_default(definition) is default


def test_inline_check():
    assert inline_check("int(11) DEFAULT NULL CHECK (`a` > 0 and (`a` < 9))") == "(`a` > 0 and (`a` < 9))"
    assert inline_check("varchar(9) DEFAULT 'CHECK (x)'") is None


@pytest.mark.mariadb
def test_preflight_reads_the_target_under_its_names_before_renames(mariadb, fresh_dbs):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, ["CREATE TABLE `new_t` (`id` INT NOT NULL PRIMARY KEY, `quantity` INT, "
                       "CONSTRAINT `ck` CHECK (`quantity` >= 0), UNIQUE KEY `uq` (`quantity`))"])
    run(conn, dst_db, ["CREATE TABLE `old_t` (`id` INT NOT NULL PRIMARY KEY, `qty` INT)",
                       "INSERT INTO `old_t` VALUES (1, -1), (2, 5), (3, 5), (4, 6)"])
    hints = [f"{src_db}.old_t=new_t", f"{src_db}.new_t.qty=quantity"]
    plan = plan_schema(conn, conn, [(src_db, dst_db)], renames=hints)
    before = snapshot(conn, dst_db)
    with pytest.raises(RowsPreventChange) as refused:
        apply_schema(conn, plan)
    blocked = {(p.table, p.what): n for p, n in refused.value.blocked}
    assert blocked == {("old_t", "add CONSTRAINT `ck` CHECK (`quantity` >= 0)"): 1,
                       ("old_t", "add UNIQUE KEY `uq` (`quantity`)"): 2}
    assert snapshot(conn, dst_db) == before
    run(conn, dst_db, ["DELETE FROM `old_t` WHERE `id` IN (1, 3)"])
    assert apply_schema(conn, plan).converged
