"""Triggers, stored routines and events sync as part of a schema (issue 10 point 6).

Everything runs against the real MariaDB of the `mariadb` fixture. The objects use the
nastiest names we could think of (spaces, backticks, quotes, non-ASCII, reserved words,
mixed case), bodies full of `;`, strings and comments, an ANSI_QUOTES routine, a time-zoned
event, and bodies that name the source database, synced into a target database with
another (hyphenated) name.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid

import pytest

from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.ident import qualified, quote
from dbrepl.sync.schema import DestructiveChangeRefused, apply_schema, plan_schema
from dbrepl.sync.schema.objects import map_body
from dbrepl.sync.schema.plan import Clause, Statement
from tests.sync.test_schema_api import SpyConnection
from tests.sync.test_schema_corpus import snapshot

TABLE = "order items `v2` ü"
AUDIT = "Audit Log"
DEFINER = "dbrepl test `user` ü"


def tables() -> list[str]:
    return [
        f"CREATE TABLE {quote(TABLE)} (id INT PRIMARY KEY, `select` INT, total DECIMAL(10,2) "
        "DEFAULT 0, note VARCHAR(50))",
        f"CREATE TABLE {quote(AUDIT)} (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(200))",
    ]


def objects(src: str, definer: str = "") -> list[str]:
    """The source's objects; `src` is the source database, named inside some bodies."""
    d = f"DEFINER={definer} " if definer else ""
    bare = src if re.fullmatch(r"\w+", src) else quote(src)
    return [
        # ;, a comment with ;, a string with ; and a reserved-word column in one body
        f"CREATE {d}TRIGGER `trg ``bi`` ü` BEFORE INSERT ON {quote(TABLE)} FOR EACH ROW BEGIN\n"
        "  -- a comment; with a semicolon\n"
        "  IF NEW.`select` IS NULL THEN SET NEW.`select` = 1; END IF;\n"
        "  SET NEW.note = CONCAT('x;y ', IFNULL(NEW.note, ''));\n"
        "END",
        # names the source database (quoted): must write to the target's audit table
        f"CREATE {d}TRIGGER `After Insert` AFTER INSERT ON {quote(TABLE)} FOR EACH ROW "
        f"INSERT INTO {qualified(src, AUDIT)} (msg) VALUES (CONCAT('inserted ', NEW.id))",
        f"CREATE {d}TRIGGER `zz second` AFTER INSERT ON {quote(TABLE)} FOR EACH ROW "
        "SET @objects_test_after = NEW.id",
        # names the source database unquoted (src is a plain name)
        f"CREATE {d}PROCEDURE `add item`(IN p_id INT, OUT p_count INT) COMMENT 'it''s; odd' BEGIN "
        f"INSERT INTO {bare}.{quote(TABLE)} (id, total) VALUES (p_id, 10); "
        f"SELECT COUNT(*) INTO p_count FROM {quote(TABLE)}; END",
        f"CREATE {d}FUNCTION `Total With Tax`(x DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC "
        "RETURN x * 1.2",
        # a view calling the function: the function must exist before the view is created
        f"CREATE VIEW `priced` AS SELECT id, `Total With Tax`(total) AS gross FROM {quote(TABLE)}",
        "SET SESSION time_zone = '+05:00'",
        f"CREATE {d}EVENT `nightly purge` ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 03:00:00' "
        f"DISABLE COMMENT 'purge' DO BEGIN DELETE FROM {quote(AUDIT)} WHERE id < 0; "
        "CALL `add item`(-1, @c); END",
        "SET SESSION time_zone = DEFAULT",
        # no STARTS given: the server renders the creation time; a reserved word as name
        f"CREATE {d}EVENT `select` ON SCHEDULE EVERY 1 HOUR DO DELETE FROM {qualified(src, AUDIT)} "
        "WHERE id < 0",
        "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES')",
        f'CREATE {d}PROCEDURE "ansi ""quoted"" proc"() SELECT "note" FROM "{TABLE}"',
        "SET SESSION sql_mode = DEFAULT",
    ]


def run(conn, db: str, statements: list[str]) -> None:
    conn.select_db(db)
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


_DEFINER = re.compile(r"DEFINER=(`[^`]*(?:``[^`]*)*`|\"[^\"]*\")@(`[^`]*`|\"[^\"]*\") ")


def objects_of(conn, db: str, *, definer: bool = False) -> dict[tuple[str, str], tuple]:
    """Every trigger, routine and event as the server shows it, db name and definer aside."""
    out: dict[tuple[str, str], tuple] = {}

    def norm(text: str) -> str:
        text = text.replace(quote(db), "DB").replace(db, "DB")
        return text if definer else _DEFINER.sub("", text)

    with conn.cursor() as cur:
        cur.execute("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
                    "ACTION_ORDER, ACTION_STATEMENT, SQL_MODE, DEFINER FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_SCHEMA = %s", (db,))
        for name, *rest, body, mode, who in cur.fetchall():
            out[("trigger", name)] = (*rest, norm(body), mode) + ((who,) if definer else ())
        cur.execute("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
                    "WHERE ROUTINE_SCHEMA = %s", (db,))
        for kind, name in cur.fetchall():
            cur.execute(f"SHOW CREATE {kind} {qualified(db, name)}")
            row = cur.fetchone()
            out[(kind.lower(), name)] = (row[1], norm(row[2]))
        cur.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (db,))
        for (name,) in cur.fetchall():
            cur.execute(f"SHOW CREATE EVENT {qualified(db, name)}")
            row = cur.fetchone()
            out[("event", name)] = (row[1], row[2], norm(row[3]))
    return out


@pytest.fixture
def dbs(mariadb):
    """(source, target, connection): a plain mixed-case source name, a hyphenated target."""
    tag = uuid.uuid4().hex[:8]
    src, dst = f"ObjSrc_{tag}", f"obj-dst-{tag}"
    conn = mariadb.connect(ssl_disabled=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote(src)}")
        cur.execute(f"CREATE DATABASE {quote(dst)}")
    yield src, dst, conn
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote(src)}")
        cur.execute(f"DROP DATABASE IF EXISTS {quote(dst)}")
    conn.close()


def sync(conn, src: str, dst: str, **kw):
    plan = plan_schema(conn, conn, [(src, dst)], definer=kw.pop("definer", "omit"),
                       renames=kw.pop("renames", None))
    return plan, apply_schema(conn, plan, **kw)


@pytest.mark.mariadb
def test_round_trip_creates_every_object_and_they_work_on_the_target(dbs, mariadb):
    src, dst, conn = dbs
    run(conn, src, tables() + objects(src))
    # As the CLI connects to a target by DSN: no current database (the view calling a stored
    # function unqualified needs its own database selected to be created).
    target = mariadb.connect(ssl_disabled=True)
    plan = plan_schema(conn, target, [(src, dst)])
    assert plan.notes == [] and plan.destructive_clauses() == []
    created = {c.description for s in plan.statements for c in s.clauses}
    for label in ("trigger `trg ``bi`` ü`", "trigger `After Insert`", "trigger `zz second`",
                  "procedure `add item`", "function `Total With Tax`", "event `nightly purge`",
                  "event `select`", 'procedure `ansi "quoted" proc`'):
        assert f"create {label.split()[0]} {quote(dst)}.{label.split(' ', 1)[1]}" in created
    phases = [s.phase for s in plan.statements]
    # routines before the view that calls one; triggers and events after tables and views
    assert phases.index("create routines") < phases.index("create views") < phases.index("create objects")
    result = apply_schema(target, plan)
    assert result.converged is True
    assert objects_of(conn, dst) == objects_of(conn, src)
    assert snapshot(conn, dst) == snapshot(conn, src)
    assert plan_schema(conn, conn, [(src, dst)]).statements == []  # a second run is a no-op

    # The objects are real and name the target database, not the source.
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {qualified(dst, TABLE)} (id, note) VALUES (7, 'n')")
        cur.execute(f"SELECT `select`, note FROM {qualified(dst, TABLE)}")
        assert cur.fetchall() == ((1, "x;y n"),)
        cur.execute(f"SELECT msg FROM {qualified(dst, AUDIT)}")
        assert cur.fetchall() == (("inserted 7",),)
        cur.execute(f"SELECT COUNT(*) FROM {qualified(src, AUDIT)}")
        assert cur.fetchone() == (0,)
        cur.execute(f"CALL {qualified(dst, 'add item')}(8, @n)")
        cur.execute("SELECT @n")
        assert cur.fetchone() == (2,)
        cur.execute(f"SELECT gross FROM {qualified(dst, 'priced')} WHERE id = 8")
        assert str(cur.fetchone()[0]) == "12.00"
        cur.execute(f"SELECT COUNT(*) FROM {qualified(src, TABLE)}")
        assert cur.fetchone() == (0,)
        cur.execute("SELECT TIME_ZONE, STATUS FROM information_schema.EVENTS "
                    "WHERE EVENT_SCHEMA = %s AND EVENT_NAME = 'nightly purge'", (dst,))
        assert cur.fetchone() == ("+05:00", "DISABLED")
        cur.execute("SELECT SQL_MODE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s "
                    "AND ROUTINE_NAME = 'ansi \"quoted\" proc'", (dst,))
        assert "ANSI_QUOTES" in cur.fetchone()[0]


@pytest.mark.mariadb
def test_extra_objects_dropped_only_with_allow_destructive(dbs):
    src, dst, conn = dbs
    run(conn, src, tables())
    run(conn, dst, tables() + objects(dst))
    before = objects_of(conn, dst)
    assert len(before) == 8
    plan = plan_schema(conn, conn, [(src, dst)])
    refused = plan.destructive_clauses()
    assert sorted(c.description for c in refused) == sorted(
        f"drop {kind} {qualified(dst, name)}" for kind, name in before)
    with pytest.raises(DestructiveChangeRefused) as exc:
        apply_schema(conn, plan)
    for c in refused:
        assert c.label() in str(exc.value)
    assert objects_of(conn, dst) == before, "a refused plan runs no DDL"
    result = apply_schema(conn, plan, allow_destructive=True)
    assert result.converged is True and objects_of(conn, dst) == {}
    assert plan_schema(conn, conn, [(src, dst)]).statements == []


@pytest.mark.mariadb
@pytest.mark.parametrize("edited", ["source", "target"])
def test_changed_bodies_are_replaced_without_allow_destructive(dbs, edited):
    src, dst, conn = dbs
    run(conn, src, tables() + objects(src))
    sync(conn, src, dst)
    run(conn, src if edited == "source" else dst, [
        "DROP TRIGGER `trg ``bi`` ü`",
        f"CREATE TRIGGER `trg ``bi`` ü` BEFORE INSERT ON {quote(TABLE)} FOR EACH ROW "
        "SET NEW.note = 'changed; body'",
        "DROP PROCEDURE `add item`",
        "CREATE PROCEDURE `add item`(IN p_id INT, OUT p_count INT) SET p_count = p_id * 100",
        "ALTER EVENT `select` ON SCHEDULE EVERY 2 HOUR STARTS '2032-02-02 02:02:02'",
        "DROP FUNCTION `Total With Tax`",
        "CREATE FUNCTION `Total With Tax`(x DECIMAL(10,2)) RETURNS DECIMAL(10,2) NOT DETERMINISTIC "
        "RETURN x * 2",
    ])
    plan = plan_schema(conn, conn, [(src, dst)])
    assert plan.destructive_clauses() == []
    described = sorted(c.description for s in plan.statements for c in s.clauses)
    assert described == sorted(
        [f"replace {k} {qualified(dst, n)}: drop the old definition" for k, n in [
            ("trigger", "trg `bi` ü"), ("procedure", "add item"), ("event", "select"),
            ("function", "Total With Tax")]]
        + [f"replace {k} {qualified(dst, n)}" for k, n in [
            ("trigger", "trg `bi` ü"), ("procedure", "add item"), ("event", "select"),
            ("function", "Total With Tax")]])
    assert apply_schema(conn, plan).converged is True
    assert objects_of(conn, dst) == objects_of(conn, src)
    with conn.cursor() as cur:
        cur.execute(f"CALL {qualified(dst, 'add item')}(3, @n)")
        cur.execute("SELECT @n")
        assert cur.fetchone() == ((300,) if edited == "source" else (1,))


@pytest.mark.mariadb
@pytest.mark.parametrize("direction", ["insert_in_the_middle", "remove_from_the_middle"])
def test_trigger_order_within_table_timing_and_event(dbs, direction):
    src, dst, conn = dbs
    three = [f"CREATE TRIGGER `{n}` AFTER UPDATE ON {quote(TABLE)} FOR EACH ROW {{}}SET @objects_test = '{n}'"
             for n in ("first", "Middle ü", "last")]
    two = [three[0].format(""), three[2].format("")]
    bigger, smaller = (src, dst) if direction == "insert_in_the_middle" else (dst, src)
    run(conn, bigger, tables() + two + [three[1].format("PRECEDES `last` ")])
    run(conn, smaller, tables() + two)

    def order(db: str) -> list[str]:
        with conn.cursor() as cur:
            cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
                        "ORDER BY ACTION_ORDER", (db,))
            return [r[0] for r in cur.fetchall()]

    assert order(bigger) == ["first", "Middle ü", "last"]
    plan, result = sync(conn, src, dst, allow_destructive=True)
    assert result.converged is True
    assert order(dst) == order(src)
    assert objects_of(conn, dst) == objects_of(conn, src)
    dropped = [c.description for c in plan.destructive_clauses()]
    assert dropped == ([] if direction == "insert_in_the_middle" else
                       [f"drop trigger {qualified(dst, 'Middle ü')}"])


@pytest.mark.mariadb
def test_a_trigger_on_a_dropped_table_goes_with_its_table(dbs):
    src, dst, conn = dbs
    run(conn, src, tables())
    run(conn, dst, tables() + [
        "CREATE TABLE `old; table` (id INT PRIMARY KEY)",
        "CREATE TRIGGER `old trg` BEFORE INSERT ON `old; table` FOR EACH ROW SET NEW.id = NEW.id + 1",
    ])
    plan = plan_schema(conn, conn, [(src, dst)])
    assert not any("TRIGGER" in s.sql for s in plan.statements), plan.sql()
    assert [c.description for c in plan.destructive_clauses()] == [
        f"drop table {qualified(dst, 'old; table')}"]
    assert apply_schema(conn, plan, allow_destructive=True).converged is True
    assert objects_of(conn, dst) == {}


@pytest.mark.mariadb
def test_definer_omit_by_default_keep_when_asked(dbs):
    src, dst, conn = dbs
    definer = f"{quote(DEFINER)}@`%`"
    with conn.cursor() as cur:  # a view calling a function checks that its definer exists
        cur.execute(f"CREATE USER IF NOT EXISTS {definer}")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO {definer}")
    try:
        _definer_omit_then_keep(src, dst, conn, definer)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS {definer}")


def _definer_omit_then_keep(src, dst, conn, definer):
    run(conn, src, tables() + objects(src, definer=definer))
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        me = cur.fetchone()[0]

    def definers(db: str) -> set[str]:
        with conn.cursor() as cur:
            cur.execute("SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s UNION ALL "
                        "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s UNION ALL "
                        "SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (db, db, db))
            return {r[0] for r in cur.fetchall()}

    assert definers(src) == {f"{DEFINER}@%"}
    # omit (default): created as the connecting user; a definer difference alone is no change
    plan, result = sync(conn, src, dst)
    assert all("DEFINER=" not in s.sql for s in plan.statements)
    assert result.converged is True and definers(dst) == {me}
    assert objects_of(conn, dst) == objects_of(conn, src)
    assert plan_schema(conn, conn, [(src, dst)]).statements == []
    # keep: the definer is compared, so every object is replaced with the source's definer
    plan, result = sync(conn, src, dst, definer="keep")
    assert len(plan.statements) == 2 * 8 and plan.destructive_clauses() == []
    assert all(f"DEFINER={definer} " in s.sql for s in plan.statements if s.sql.startswith("CREATE"))
    assert result.converged is True and definers(dst) == {f"{DEFINER}@%"}
    assert objects_of(conn, dst, definer=True) == objects_of(conn, src, definer=True)
    assert plan_schema(conn, conn, [(src, dst)], definer="keep").statements == []
    assert plan_schema(conn, conn, [(src, dst)]).statements == []


@pytest.mark.mariadb
def test_session_sql_mode_and_time_zone_restored_after_apply(dbs):
    src, dst, conn = dbs
    run(conn, src, tables() + objects(src))
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '-03:00'")
        cur.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
        before = cur.fetchone()
    assert sync(conn, src, dst)[1].converged is True
    with conn.cursor() as cur:
        cur.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
        assert cur.fetchone() == before


@pytest.mark.mariadb
def test_dry_run_script_runs_in_the_mariadb_client(dbs, mariadb):
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        pytest.skip("no mariadb/mysql client installed")
    src, dst, conn = dbs
    run(conn, src, tables() + objects(src))
    plan = plan_schema(conn, conn, [(src, dst)])
    script = plan.sql()
    assert "DELIMITER $$" in script and "SET @dbrepl_saved_sql_mode" in script
    done = subprocess.run(
        [client, "--no-defaults", "--comments", "-h", "127.0.0.1", "-P", str(mariadb.port), "-u", "root"],
        input=script, text=True, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert objects_of(conn, dst) == objects_of(conn, src)
    assert plan_schema(conn, conn, [(src, dst)]).statements == []


def test_bad_definer_mode_refused_before_any_sql():
    src, dst = SpyConnection(), SpyConnection()
    for bad in ("Keep", "", None, "drop"):
        with pytest.raises(InvalidInput, match="definer must be 'omit' .* or 'keep'"):
            plan_schema(src, dst, ["app"], definer=bad)
    assert src.executed == [] and dst.executed == []


def test_map_body_rewrites_database_qualifiers_only():
    m = {"app": "app-copy", "ref": "ref2"}
    body = ("BEGIN INSERT INTO app.t SELECT NEW.x, OLD.y FROM `app`.`t`, \"app\".u, ref.v, "
            "apps.t, x.app, 'app.t', @app.x; -- app.t\n /* `app`.t */ END")
    assert map_body(body, m, trigger=True) == (
        "BEGIN INSERT INTO `app-copy`.t SELECT NEW.x, OLD.y FROM `app-copy`.`t`, \"app-copy\".u, "
        "ref2.v, apps.t, x.app, 'app.t', @app.x; -- app.t\n /* `app`.t */ END")
    assert map_body("SET NEW.a = 1", {"NEW": "other"}, trigger=True) == "SET NEW.a = 1"
    assert map_body("SELECT app.t.c FROM app.t", {"app": "app"}) == "SELECT app.t.c FROM app.t"


def test_script_wraps_bodies_in_a_delimiter_the_body_does_not_contain():
    body = Statement(sql="CREATE PROCEDURE `p`() BEGIN SELECT '$$'; END", database="d",
                     clauses=(Clause("create procedure `d`.`p`"),), session=(("sql_mode", "ANSI_QUOTES"),))
    assert body.script() == (
        "SET @dbrepl_saved_sql_mode = @@SESSION.sql_mode, SESSION sql_mode = 'ANSI_QUOTES';\n"
        "DELIMITER //\nCREATE PROCEDURE `p`() BEGIN SELECT '$$'; END//\nDELIMITER ;\n"
        "SET SESSION sql_mode = @dbrepl_saved_sql_mode;\n")
    plain = Statement(sql="DROP TRIGGER `d`.`a;b`", database="d", clauses=())
    assert plain.script() == "DROP TRIGGER `d`.`a;b`;\n"


def test_function_event_definer_field_checked_before_any_connection():
    from dbrepl.sync.schema.event import validate_event

    environ = {"SYNC_DATABASES": "app"}
    assert validate_event({"definer": "keep"}, environ)["definer"] == "keep"
    assert validate_event({}, environ)["definer"] == "omit"
    for bad in ("KEEP", 1, None, "definer"):
        with pytest.raises(InvalidInput, match="definer must be 'omit'"):
            validate_event({"definer": bad}, environ)


@pytest.mark.mariadb
def test_cli_dry_run_prints_a_runnable_script_and_definer_keep_flows_through(dbs, mariadb):
    from typer.testing import CliRunner

    from dbrepl.cli import app

    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        pytest.skip("no mariadb/mysql client installed")
    src, dst, conn = dbs
    definer = f"{quote(DEFINER)}@`%`"
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS {definer}")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO {definer}")
    try:
        run(conn, src, tables() + objects(src, definer=definer))
        s, d = (f"mysql://root@127.0.0.1:{mariadb.port}/{db}" for db in (src, dst))
        cli = CliRunner()
        r = cli.invoke(app, ["sync", "schema", s, d, "--dry-run", "--definer", "sideways"])
        assert r.exit_code != 0 and "definer must be 'omit'" in r.output, r.output
        r = cli.invoke(app, ["sync", "schema", s, d, "--dry-run", "--definer", "keep"])
        assert r.exit_code == 0, r.output
        assert "DELIMITER $$" in r.stdout and f"DEFINER={definer}" in r.stdout
        assert objects_of(conn, dst) == {}, "a dry run changes nothing"
        done = subprocess.run(
            [client, "--no-defaults", "--comments", "-h", "127.0.0.1", "-P", str(mariadb.port), "-u", "root"],
            input=r.stdout, text=True, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert objects_of(conn, dst, definer=True) == objects_of(conn, src, definer=True)
        r = cli.invoke(app, ["sync", "schema", s, d, "--definer", "keep", "--json"])
        assert r.exit_code == 0 and '"statements": []' in r.stdout, r.output
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS {definer}")


@pytest.mark.mariadb
def test_an_event_past_its_time_is_noted_not_synced(dbs):
    """With the scheduler off such an event stays on the source; re-created, the server
    would drop it at once and the run could never converge."""
    src, dst, conn = dbs
    run(conn, src, tables() + [
        "CREATE EVENT `gone; soon` ON SCHEDULE AT CURRENT_TIMESTAMP + INTERVAL 1 SECOND DO SELECT 1",
        "CREATE EVENT `ends soon` ON SCHEDULE EVERY 1 HOUR ENDS CURRENT_TIMESTAMP + INTERVAL 1 SECOND "
        "DO SELECT 1",
        "CREATE EVENT `kept` ON SCHEDULE AT '2020-01-01 00:00:00' ON COMPLETION PRESERVE DISABLE DO SELECT 1",
    ])
    with conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.event_scheduler")
        assert cur.fetchone()[0] == "OFF"
        cur.execute("SELECT SLEEP(2)")
    plan, result = sync(conn, src, dst)
    assert sorted(plan.notes) == [
        f"event {src}.{name} is not synced: its AT or ENDS time is past, so the server would drop "
        "or disable it on creation" for name in ("ends soon", "gone; soon")]
    assert [c.description for s in plan.statements for c in s.clauses if "event" in c.description] == [
        f"create event {qualified(dst, 'kept')}"]
    assert result.converged is True
    assert set(objects_of(conn, dst)) == {("event", "kept")}


@pytest.mark.mariadb
def test_a_renamed_table_keeps_its_triggers(dbs):
    src, dst, conn = dbs
    trg = "CREATE TRIGGER `t ü` BEFORE INSERT ON `{}` FOR EACH ROW SET NEW.id = NEW.id + 1"
    run(conn, src, ["CREATE TABLE `New-Name` (id INT PRIMARY KEY)", trg.format("New-Name")])
    run(conn, dst, ["CREATE TABLE `old-name` (id INT PRIMARY KEY)", trg.format("old-name")])
    plan = plan_schema(conn, conn, [(src, dst)])
    assert [c.description for c in plan.destructive_clauses()] == [
        f"drop table {qualified(dst, 'old-name')}"], "without the hint: drop and create"
    assert "DROP TRIGGER" not in plan.sql(), "the table's drop takes its trigger along"
    # With the hint the server moves the trigger with its table: nothing else to do.
    plan, result = sync(conn, src, dst, renames=[f"{src}.old-name=New-Name"])
    assert [c.description for s in plan.statements for c in s.clauses] == [
        f"rename table {qualified(dst, 'old-name')} to `New-Name`"]
    assert result.converged is True
    assert objects_of(conn, dst) == objects_of(conn, src)
