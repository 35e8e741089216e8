"""Issue 17 point 3: MySQL's implicit default is allowed; generated columns are checked first.

A NOT NULL column without DEFAULT added to a table with rows gets the type's implicit
default in every row, on MySQL and MariaDB in every SQL mode; the source went through the
same when the column was added there. The sync runs it as the server does and says in the
plan how many rows get which value. It refuses, before any DDL and naming the column, the
table and why, only what the server itself would refuse (checked here on MariaDB 10.11):
a DATE/DATETIME under NO_ZERO_DATE, and keys, CHECKs and foreign keys the implicit value
breaks. A generated column stored (or indexed) over rows its expression cannot compute in
strict mode is refused the same way, instead of failing after earlier statements ran.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from dbrepl.cli import app
from dbrepl.sync.ident import qualified, quote
from dbrepl.sync.schema import RowsPreventChange, SchemaApplyFailed, apply_schema, plan_schema
from dbrepl.sync.schema.model import Column
from dbrepl.sync.schema.preflight import implicit_default
from tests.sync.test_schema_corpus import (  # noqa: F401 (fresh_dbs is a fixture)
    fresh_dbs,
    row_ids,
    run,
    snapshot,
)

# Column types and what the server stores in existing rows (as CAST(c AS CHAR), or HEX for
# binary values), for comparison with implicit_default()'s rule.
TYPES = [
    ("INT", "0"), ("TINYINT UNSIGNED", "0"), ("BIGINT", "0"), ("DECIMAL(6,2)", "0.00"), ("DECIMAL(5,0)", "0"),
    ("FLOAT", "0"), ("DOUBLE", "0"), ("BIT(3)", "hex:0"), ("YEAR", "0000"),
    ("VARCHAR(5)", ""), ("CHAR(3)", ""), ("TEXT", ""), ("BLOB", ""), ("VARBINARY(4)", ""),
    ("BINARY(3)", "hex:000000"), ("ENUM('it''s','b')", "it's"), ("SET('x','y')", ""),
    ("DATE", "0000-00-00"), ("DATETIME", "0000-00-00 00:00:00"), ("DATETIME(3)", "0000-00-00 00:00:00.000"),
    ("TIMESTAMP", "0000-00-00 00:00:00"), ("TIME", "00:00:00"), ("TIME(2)", "00:00:00.00"),
    ("JSON", ""), ("INET6", "::"), ("UUID", "00000000-0000-0000-0000-000000000000"),
]


def _shown(value: str) -> str:
    """implicit_default's display form back to the stored text."""
    if value.startswith("0x"):
        return "hex:" + value[2:].upper()
    if value == "b'0'":
        return "hex:0"
    if value.startswith("'"):
        return value.split(" (")[0][1:-1].replace("''", "'")
    return value


@pytest.mark.mariadb
def test_the_implicit_default_rule_agrees_with_the_server(mariadb, db_pair):
    """For each type: add the column over two rows on the server, read what the rows got, and
    compare with the value the plan names (read from the catalogue like a real plan)."""
    _, db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    for n, (typ, stored) in enumerate(TYPES):
        table = f"t{n}"
        run(conn, db, [f"CREATE TABLE {table} (id INT PRIMARY KEY)", f"INSERT INTO {table} VALUES (1), (2)",
                       f"ALTER TABLE {table} ADD COLUMN c {typ} NOT NULL"])
        with conn.cursor() as cur:
            expr = "HEX({})" if stored.startswith("hex:") else "CAST({} AS CHAR)"
            cur.execute(f"SELECT DISTINCT {expr.format('c')} FROM {table}")
            got = [r[0] for r in cur.fetchall()]
        assert got == [stored.removeprefix("hex:")], (typ, got)
        column = plan_column(conn, db, table)
        value = implicit_default(column)
        assert value is not None and value[0] is not None, typ
        assert _shown(value[1]) == stored, (typ, value)
        with conn.cursor() as cur:  # the expression standing in for the column is that value too
            cur.execute(f"SELECT {expr.format(value[0])}")
            # (a YEAR's 0000 is the number 0, which CAST prints as 0)
            assert cur.fetchone()[0] == ("0" if typ == "YEAR" else stored.removeprefix("hex:")), (typ, value)


def plan_column(conn, db: str, table: str) -> Column:
    from dbrepl.sync.schema.introspect import read_database
    return read_database(conn, db).tables[table].column("c")


def test_implicit_default_is_none_when_the_column_brings_its_own_value():
    def c(definition, column_type="int(11)", nullable=False, generated=None):
        return Column("c", definition, None, None, column_type, nullable, generated)
    assert implicit_default(c("int(11) DEFAULT NULL", nullable=True)) is None
    assert implicit_default(c("int(11) NOT NULL DEFAULT 5")) is None
    assert implicit_default(c("int(11) NOT NULL AUTO_INCREMENT")) is None
    assert implicit_default(c("int(11) GENERATED ALWAYS AS (`a` + 1) STORED", generated="STORED")) is None
    assert implicit_default(c("int(11) NOT NULL")) == ("CAST(0 AS SIGNED)", "0")
    assert implicit_default(c("mystery NOT NULL", "mystery")) == (None, "the implicit default of mystery")


T = "CREATE TABLE `Tab le` (`id` INT NOT NULL PRIMARY KEY, `a` INT{cols})"
ROWS = ["INSERT INTO `Tab le` (`id`, `a`) VALUES (1, 1), (2, 2), (3, 3)"]


@pytest.mark.mariadb
def test_plan_dry_run_and_result_say_how_many_rows_get_which_value(mariadb, fresh_dbs):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, [T.format(cols=", `n` INT NOT NULL, `s` VARCHAR(9) NOT NULL, "
                                     "`e` ENUM('new','old') NOT NULL, `d` DECIMAL(7,3) NOT NULL")])
    run(conn, dst_db, [T.format(cols=""), *ROWS])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    assert not plan.destructive_clauses()
    text = plan.sql()
    for column, value in (("n", "0"), ("s", "''"), ("e", "'new'"), ("d", "0.000")):
        assert f"add column `{dst_db}`.`Tab le`.`{column}` (3 existing row(s) get the implicit default {value})" \
            in text, text
    as_json = json.loads(json.dumps(plan.to_dict()))
    assert as_json["implicit_defaults"] == [
        {"database": dst_db, "table": "Tab le", "column": c, "value": v, "rows": 3}
        for c, v in (("n", "0"), ("s", "''"), ("e", "'new'"), ("d", "0.000"))]
    assert "3 existing row(s) get the implicit default 0" in as_json["statements"][0]["description"]

    result = apply_schema(conn, plan)
    assert result.converged
    assert result.to_dict()["implicit_defaults"][0]["rows"] == 3
    with conn.cursor() as cur:
        cur.execute(f"SELECT `n`, `s`, `e`, CAST(`d` AS CHAR) FROM {qualified(dst_db, 'Tab le')}")
        assert set(cur.fetchall()) == {(0, "", "new", "0.000")}
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)


@pytest.mark.mariadb
def test_cli_dry_run_prints_the_counts_in_text_and_json(mariadb, fresh_dbs):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, [T.format(cols=", `n` INT NOT NULL")])
    run(conn, dst_db, [T.format(cols=""), *ROWS])
    base = f"mysql://root@127.0.0.1:{mariadb.port}/"
    text = CliRunner().invoke(app, ["sync", "schema", base + src_db, base + dst_db, "--dry-run"])
    assert text.exit_code == 0, text.output
    assert "(3 existing row(s) get the implicit default 0)" in text.output, text.output
    as_json = CliRunner().invoke(app, ["sync", "schema", base + src_db, base + dst_db, "--dry-run", "--json"])
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output[as_json.output.index("{"):])
    assert any("3 existing row(s) get the implicit default 0" in s["description"] for s in body["statements"])
    assert snapshot(conn, dst_db) != snapshot(conn, src_db), "a dry run changes nothing"


def _refused_before_any_ddl(conn, src_db, dst_db, table: str, clause: str, why: str, count: int):
    before_schema, before_rows = snapshot(conn, dst_db), row_ids(conn, dst_db)
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    with pytest.raises(RowsPreventChange) as refused:
        apply_schema(conn, plan, allow_destructive=True)
    message = str(refused.value)
    assert "no DDL was run" in message
    assert f"table {qualified(dst_db, table)}: " in message and clause in message and why in message, message
    assert f"{count} row(s) in the way" in message, message
    assert snapshot(conn, dst_db) == before_schema and row_ids(conn, dst_db) == before_rows
    return plan


@pytest.mark.mariadb
@pytest.mark.parametrize("typ, zero", [("DATE", "'0000-00-00'"), ("DATETIME(2)", "'0000-00-00 00:00:00.00'")])
def test_zero_date_refused_only_where_the_session_refuses_it(mariadb, fresh_dbs, typ, zero):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, [T.format(cols=f", `When` {typ} NOT NULL")])
    run(conn, dst_db, [T.format(cols=""), *ROWS])
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_ZERO_DATE')")
    # The server itself refuses it in this mode: the check is not stricter than the server.
    with conn.cursor() as cur, pytest.raises(Exception, match="1292"):
        cur.execute(f"ALTER TABLE {qualified(dst_db, 'Tab le')} ADD COLUMN `x` {typ} NOT NULL")
    _refused_before_any_ddl(conn, src_db, dst_db, "Tab le", "add column `When`",
                            f"would get the implicit default {zero}, which the target session's sql_mode "
                            f"refuses (NO_ZERO_DATE", 3)
    # Without NO_ZERO_DATE (MariaDB's default) the server adds it: so does the sync.
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_ZERO_DATE', '')")
    assert apply_schema(conn, plan_schema(conn, conn, [(src_db, dst_db)])).converged
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)


# Keys, CHECKs and foreign keys over an added column: the implicit value in every row.
DEPENDENTS = [
    ("unique_key", ", `u` INT NOT NULL, UNIQUE KEY `u u` (`u`)", "UNIQUE KEY `u u`", "share a value", 3),
    ("primary_key", None, "PRIMARY KEY", "share a value", 3),
    ("table_check", ", `c` INT NOT NULL, CONSTRAINT `c pos` CHECK (`c` > 0)", "CHECK (`c` > 0)", "violate it", 3),
    ("column_check", ", `c` INT NOT NULL CHECK (`c` > 0)", "add column `c`", "which violates the column's CHECK", 3),
    ("json", ", `j` JSON NOT NULL", "add column `j`", "implicit default '', which violates the column's CHECK", 3),
    ("spatial_key", ", `p` POINT NOT NULL, SPATIAL KEY `sp` (`p`)", "SPATIAL KEY `sp`",
     "which a SPATIAL key cannot index", 3),
]


@pytest.mark.mariadb
@pytest.mark.parametrize("name, cols, clause, why, count", DEPENDENTS, ids=[d[0] for d in DEPENDENTS])
def test_what_the_implicit_value_breaks_is_refused_before_any_ddl(mariadb, fresh_dbs, name, cols, clause, why,  # noqa: F811
                                                                  count):
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    if name == "primary_key":
        run(conn, src_db, ["CREATE TABLE `Tab le` (`id` INT NOT NULL, `a` INT, `k` INT NOT NULL, "
                           "PRIMARY KEY (`k`, `a`))"])
        run(conn, dst_db, ["CREATE TABLE `Tab le` (`id` INT NOT NULL, `a` INT NOT NULL, PRIMARY KEY (`id`))",
                           "INSERT INTO `Tab le` VALUES (1, 1), (2, 1), (3, 1)"])
    else:
        run(conn, src_db, [T.format(cols=cols)])
        run(conn, dst_db, [T.format(cols=""), *ROWS])
    _refused_before_any_ddl(conn, src_db, dst_db, "Tab le", clause, why, count)
    # With one row left nothing collides (the CHECKs still fail on it, as on the server).
    run(conn, dst_db, ["DELETE FROM `Tab le` WHERE `id` > 1"])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    if name in ("unique_key", "primary_key"):
        assert apply_schema(conn, plan, allow_destructive=True).converged
        assert snapshot(conn, dst_db) == snapshot(conn, src_db)
    else:
        with pytest.raises(RowsPreventChange, match="1 row"):
            apply_schema(conn, plan, allow_destructive=True)


@pytest.mark.mariadb
def test_foreign_key_over_an_added_column_checked_with_its_implicit_value(mariadb, fresh_dbs):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    parent = "CREATE TABLE `Éltern` (`id` INT NOT NULL PRIMARY KEY)"
    run(conn, src_db, [parent, T.format(cols=", `p` INT NOT NULL, KEY `kp` (`p`), CONSTRAINT `fk` FOREIGN KEY "
                                             "(`p`) REFERENCES `Éltern` (`id`)")])
    run(conn, dst_db, [parent, "INSERT INTO `Éltern` VALUES (1)", T.format(cols=""), *ROWS])
    _refused_before_any_ddl(conn, src_db, dst_db, "Tab le", "FOREIGN KEY (`p`)", "parent row that does not exist", 3)
    run(conn, dst_db, ["INSERT INTO `Éltern` VALUES (0)"])  # the implicit 0 now has its parent
    assert apply_schema(conn, plan_schema(conn, conn, [(src_db, dst_db)])).converged
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)


# ---- generated columns computed over the rows -----------------------------------------------

OTHER = "CREATE TABLE `A first` (`id` INT NOT NULL PRIMARY KEY{cols})"
GEN = "CREATE TABLE `Tab le` (`id` INT NOT NULL PRIMARY KEY, `txt` VARCHAR(10), `g` INT AS ({expr}) {kind})"
GEN_ROWS = ["INSERT INTO `Tab le` (`id`, `txt`) VALUES (1, '5'), (2, 'abc'), (3, 'x'), (4, NULL)"]


@pytest.mark.mariadb
@pytest.mark.parametrize("before, after, first", [
    # virtual -> stored over text that is not a number: "Truncated incorrect DOUBLE value"
    (GEN.format(expr="`txt` + 1", kind="VIRTUAL"), GEN.format(expr="`txt` + 1", kind="STORED"), "1292"),
    # a stored column's expression changed to one dividing by zero
    (GEN.format(expr="`id`", kind="STORED"), GEN.format(expr="10 DIV (`id` - 1)", kind="STORED"), "1365"),
    # a stored column added whose values do not fit its type
    ("CREATE TABLE `Tab le` (`id` INT NOT NULL PRIMARY KEY, `txt` VARCHAR(10))",
     "CREATE TABLE `Tab le` (`id` INT NOT NULL PRIMARY KEY, `txt` VARCHAR(10), `g` TINYINT AS (`id` * 100) STORED)",
     "outside -128..127"),
    # a virtual column gaining an index over rows its expression cannot compute
    (GEN.format(expr="`txt` + 1", kind="VIRTUAL"),
     GEN.format(expr="`txt` + 1", kind="VIRTUAL").replace(" VIRTUAL)", " VIRTUAL, KEY `kg` (`g`))"), "1292"),
], ids=["virtual_to_stored", "stored_expression_division_by_zero", "added_stored_out_of_range",
        "virtual_gains_index"])
def test_generated_column_the_rows_cannot_store_is_refused_before_any_ddl(mariadb, fresh_dbs, before, after,  # noqa: F811
                                                                         first):
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    # Another table's change comes first in the plan: a failure there would be part-way.
    run(conn, src_db, [OTHER.format(cols=", `x` INT"), after])
    run(conn, dst_db, [OTHER.format(cols=""), before, *GEN_ROWS])
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    assert "`A first`" in plan.statements[0].sql, plan.sql()

    # Without the check the server fails the table's ALTER after `other`'s ran (shown on a copy).
    check_db, copy_db = fresh_dbs()
    run(conn, check_db, [OTHER.format(cols=", `x` INT"), after])
    run(conn, copy_db, [OTHER.format(cols=""), before, *GEN_ROWS])
    unchecked = plan_schema(conn, conn, [(check_db, copy_db)])
    unchecked.statements = [replace(st, clauses=tuple(replace(c, prechecks=()) for c in st.clauses))
                            for st in unchecked.statements]
    with pytest.raises(SchemaApplyFailed):
        apply_schema(conn, unchecked, allow_destructive=True)

    refused_plan = _refused_before_any_ddl(conn, src_db, dst_db, "Tab le", "column `g`", first, 4 if
                                           "outside" not in first else 3)
    assert refused_plan.statements
    # Once the rows can be computed, the same sync converges.
    run(conn, dst_db, ["UPDATE `Tab le` SET `txt` = '7' WHERE `id` IN (2, 3)", "DELETE FROM `Tab le` WHERE `id` = 1"]
        if "outside" not in first else ["DELETE FROM `Tab le` WHERE `id` > 1"])
    assert apply_schema(conn, plan_schema(conn, conn, [(src_db, dst_db)])).converged
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)


@pytest.mark.mariadb
def test_generated_check_follows_the_session_strictness(mariadb, fresh_dbs):  # noqa: F811
    """Not strict: the server stores the truncated values with warnings, so the sync runs."""
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, [GEN.format(expr="`txt` + 1", kind="STORED")])
    run(conn, dst_db, [GEN.format(expr="`txt` + 1", kind="VIRTUAL"), *GEN_ROWS])
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
    assert apply_schema(conn, plan_schema(conn, conn, [(src_db, dst_db)])).converged
    with conn.cursor() as cur:
        cur.execute(f"SELECT {quote('g')} FROM {qualified(dst_db, 'Tab le')} ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == [None, 1, 1, 6]


@pytest.mark.mariadb
def test_dry_run_reports_what_the_preflight_would_refuse(mariadb, fresh_dbs):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, [GEN.format(expr="`txt` + 1", kind="STORED")])
    run(conn, dst_db, [GEN.format(expr="`txt` + 1", kind="VIRTUAL"), *GEN_ROWS])
    before = snapshot(conn, dst_db)
    result = apply_schema(conn, plan_schema(conn, conn, [(src_db, dst_db)]), dry_run=True)
    (label,) = result.to_dict()["would_block"]
    assert label.startswith(f"table {qualified(dst_db, 'Tab le')}: re-add column `g`"), label
    assert "4 row(s) in the way" in label and "Truncated incorrect DOUBLE value: 'abc'" in label, label
    assert snapshot(conn, dst_db) == before
    # Rows fixed: nothing in the way, and the dry run says so.
    run(conn, dst_db, ["UPDATE `Tab le` SET `txt` = '7'"])
    assert apply_schema(conn, plan_schema(conn, conn, [(src_db, dst_db)]), dry_run=True).to_dict()["would_block"] == []


@pytest.mark.mariadb
def test_cli_dsn_dry_run_shows_what_the_rows_would_refuse(mariadb, fresh_dbs):  # noqa: F811
    src_db, dst_db = fresh_dbs()
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, [GEN.format(expr="`txt` + 1", kind="STORED")])
    run(conn, dst_db, [GEN.format(expr="`txt` + 1", kind="VIRTUAL"), *GEN_ROWS])
    base = f"mysql://root@127.0.0.1:{mariadb.port}/"
    text = CliRunner().invoke(app, ["sync", "schema", base + src_db, base + dst_db, "--dry-run"])
    assert text.exit_code == 0, text.output
    assert "refused by the target's rows" in text.output and "4 row(s) in the way" in text.output, text.output
    as_json = CliRunner().invoke(app, ["sync", "schema", base + src_db, base + dst_db, "--dry-run", "--json"])
    body = json.loads(as_json.output[as_json.output.index("{"):])
    assert [w for w in body["would_block"] if "re-add column `g`" in w], body
