"""The issue-10 schema classes on MySQL 8.0 SHOW CREATE TABLE texts (no MySQL server here).

MySQL prints generated columns as `GENERATED ALWAYS AS ((expr)) VIRTUAL|STORED` (MariaDB:
`GENERATED ALWAYS AS (expr) VIRTUAL|STORED`, accepting `AS (...) PERSISTENT` as input), CHECKs
with double parentheses and optionally `/*!80016 NOT ENFORCED */`, and no display widths.
These texts go through the same parser and diff as the MariaDB ones.
"""

from __future__ import annotations

from dbrepl.sync.schema.diff import diff_databases
from dbrepl.sync.schema.model import Database, parse_create_table
from dbrepl.sync.schema.preflight import has_default

MYSQL_VIRTUAL = """CREATE TABLE `Mixed Case` (
  `id` int NOT NULL AUTO_INCREMENT,
  `a b` int DEFAULT NULL,
  `Größe` int GENERATED ALWAYS AS ((`a b` * 2)) VIRTUAL,
  `must` date NOT NULL,
  PRIMARY KEY (`id`),
  KEY `k g` (`Größe`),
  CONSTRAINT `c g` CHECK ((`Größe` >= 0)),
  CONSTRAINT `lax` CHECK ((`a b` < 5)) /*!80016 NOT ENFORCED */
) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci"""

INFO_VIRTUAL = {"id": {"column_type": "int", "nullable": False}, "a b": {"column_type": "int"},
                "Größe": {"column_type": "int", "generated": "VIRTUAL"},
                "must": {"column_type": "date", "nullable": False}}


def _db(text: str, info: dict) -> Database:
    table = parse_create_table(text, info)
    return Database(name="app", charset="utf8mb4", collation="utf8mb4_0900_ai_ci", tables={table.name: table})


def test_generated_virtual_to_stored_rebuilds_index_and_check_on_mysql_text():
    stored = MYSQL_VIRTUAL.replace(")) VIRTUAL,", ")) STORED,")
    info_stored = {**INFO_VIRTUAL, "Größe": {"column_type": "int", "generated": "STORED"}}
    target, source = _db(MYSQL_VIRTUAL, INFO_VIRTUAL), _db(stored, info_stored)
    assert source.tables["Mixed Case"].column("Größe").definition == \
        "int GENERATED ALWAYS AS ((`a b` * 2)) STORED"
    statements, notes = diff_databases({"app": source}, {"app": target}, [("app", "app")])
    assert notes == []
    sql = [s.sql for s in statements]
    assert sql[0] == (
        "ALTER TABLE `app`.`Mixed Case` DROP COLUMN `Größe`, "
        "ADD COLUMN `Größe` int GENERATED ALWAYS AS ((`a b` * 2)) STORED AFTER `a b`, "
        "DROP INDEX `k g`, DROP CONSTRAINT `c g`, DROP CONSTRAINT `lax`, "
        "ADD CONSTRAINT `c g` CHECK ((`Größe` >= 0)), "
        "ADD CONSTRAINT `lax` CHECK ((`a b` < 5)) /*!80016 NOT ENFORCED */")
    assert sql[1] == "ALTER TABLE `app`.`Mixed Case` ADD KEY `k g` (`Größe`)"
    # The re-added CHECKs hold on the existing rows already: nothing to precheck; the
    # unenforced one never is. The column, now stored, is computed over the rows by the
    # ALTER: its expression is evaluated first (warnings) and its values must fit int.
    checks = [p.sql() for s in statements for c in s.clauses for p in c.prechecks]
    assert checks == [
        "SELECT COUNT(*), COUNT(((`a b` * 2))) FROM `app`.`Mixed Case`",
        "SELECT COUNT(*) FROM `app`.`Mixed Case` WHERE ((`a b` * 2)) NOT BETWEEN -2147483648 AND 2147483647",
    ]


def test_new_checks_and_not_null_column_prechecked_on_mysql_text():
    before = MYSQL_VIRTUAL.replace("  `must` date NOT NULL,\n", "").replace(
        ",\n  CONSTRAINT `c g` CHECK ((`Größe` >= 0)),\n  CONSTRAINT `lax` CHECK ((`a b` < 5)) "
        "/*!80016 NOT ENFORCED */", "")
    info_before = {k: v for k, v in INFO_VIRTUAL.items() if k != "must"}
    statements, _ = diff_databases({"app": _db(MYSQL_VIRTUAL, INFO_VIRTUAL)}, {"app": _db(before, info_before)},
                                   [("app", "app")])
    checks = {p.what: p.sql() for s in statements for c in s.clauses for p in c.prechecks}
    assert checks == {
        # A NOT NULL DATE without DEFAULT is refused only under NO_ZERO_DATE (its implicit
        # default is the zero date); otherwise it is added, as on the server.
        "add column `must` date NOT NULL": "SELECT COUNT(*) FROM `app`.`Mixed Case` "
                                           "WHERE FIND_IN_SET('NO_ZERO_DATE', @@SESSION.sql_mode) > 0",
        "add CONSTRAINT `c g` CHECK ((`Größe` >= 0))":
            "SELECT COUNT(*) FROM `app`.`Mixed Case` WHERE NOT ((`Größe` >= 0))",
    }


def test_has_default_reads_mysql_generated_and_auto_increment():
    assert has_default("int GENERATED ALWAYS AS ((`a b` * 2)) VIRTUAL")
    assert has_default("bigint unsigned NOT NULL AUTO_INCREMENT")
    assert not has_default("date NOT NULL")
    assert not has_default("varchar(5) NOT NULL COMMENT 'DEFAULT'")


def test_generated_expression_change_prechecks_its_check_with_the_new_expression_on_mysql_text():
    changed = MYSQL_VIRTUAL.replace("((`a b` * 2)) VIRTUAL", "((`a b` * 3)) VIRTUAL")
    statements, _ = diff_databases({"app": _db(changed, INFO_VIRTUAL)}, {"app": _db(MYSQL_VIRTUAL, INFO_VIRTUAL)},
                                   [("app", "app")])
    assert [s.sql for s in statements] == [
        "ALTER TABLE `app`.`Mixed Case` MODIFY COLUMN `Größe` int GENERATED ALWAYS AS ((`a b` * 3)) VIRTUAL"]
    # The CHECK over it with the new expression; and, the column being indexed, the
    # expression computed over the rows (warnings) and its values fitting int.
    assert [p.sql() for s in statements for c in s.clauses for p in c.prechecks] == [
        "SELECT COUNT(*) FROM `app`.`Mixed Case` WHERE NOT ((((`a b` * 3)) >= 0))",
        "SELECT COUNT(*), COUNT(((`a b` * 3))) FROM `app`.`Mixed Case`",
        "SELECT COUNT(*) FROM `app`.`Mixed Case` WHERE ((`a b` * 3)) NOT BETWEEN -2147483648 AND 2147483647",
    ]
