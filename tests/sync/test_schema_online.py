"""Schema changes that never surprise-lock production (issue 20), against a real MariaDB:
the ALGORITHM/LOCK probe in the plan, explicit clauses when applying, the blocking limit,
lock_wait_timeout, and the function's remaining time."""

from __future__ import annotations

import json
import threading
import time

import pymysql
import pytest

from dbrepl.sync.schema import SchemaApplyFailed, apply_schema, plan_schema
from dbrepl.sync.schema.limits import BlockingChangeRefused, LockWaitTimedOut, MayOutliveFunction
from dbrepl.sync.schema.online import parse_size, with_clauses
from tests.sync.test_schema_handler import estate, function_env, invoke, staging_server  # noqa: F401 - fixtures

BASE = ("CREATE TABLE {db}.t (id INT NOT NULL, a INT, b VARCHAR(20) CHARACTER SET latin1, "
        "PRIMARY KEY (id), KEY ka (a)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")

# (name, the source's table, the expected (algorithm, lock) on MariaDB 10.11, duration class)
CASES = [
    ("add column", "CREATE TABLE {db}.t (id INT NOT NULL, a INT, b VARCHAR(20) CHARACTER SET latin1, c INT, "
     "PRIMARY KEY (id), KEY ka (a)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", ("INSTANT", "NONE"), "instant"),
    # MariaDB offers NOCOPY between INSTANT and INPLACE: an index build that rebuilds nothing.
    ("add index", "CREATE TABLE {db}.t (id INT NOT NULL, a INT, b VARCHAR(20) CHARACTER SET latin1, "
     "PRIMARY KEY (id), KEY ka (a), KEY kb (b)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", ("NOCOPY", "NONE"),
     "proportional"),
    ("modify column type", "CREATE TABLE {db}.t (id INT NOT NULL, a BIGINT, b VARCHAR(20) CHARACTER SET latin1, "
     "PRIMARY KEY (id), KEY ka (a)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", ("COPY", "SHARED"), "blocking"),
    ("primary key change", "CREATE TABLE {db}.t (id INT NOT NULL, a INT NOT NULL, "
     "b VARCHAR(20) CHARACTER SET latin1, PRIMARY KEY (id, a), KEY ka (a)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
     ("INPLACE", "NONE"), "proportional"),
    ("charset conversion", "CREATE TABLE {db}.t (id INT NOT NULL, a INT, b VARCHAR(20), "
     "PRIMARY KEY (id), KEY ka (a)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", ("COPY", "SHARED"), "blocking"),
    # MariaDB 10.11 accepts INSTANT for a change of engine, but only with a lock: it copies.
    ("engine change", "CREATE TABLE {db}.t (id INT NOT NULL, a INT, b VARCHAR(20) CHARACTER SET latin1, "
     "PRIMARY KEY (id), KEY ka (a)) ENGINE=Aria DEFAULT CHARSET=utf8mb4", ("INSTANT", "SHARED"), "blocking"),
]


def _setup(mariadb, src, dst, source_sql, rows=0):
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(source_sql.format(db=f"`{src}`"))
        cur.execute(BASE.format(db=f"`{dst}`"))
        if rows:
            cur.execute(f"INSERT INTO `{dst}`.t SELECT seq, seq % 100, REPEAT('x', 20) FROM `{dst}`.seq_1_to_{rows}")
            cur.execute(f"ANALYZE TABLE `{dst}`.t")
            cur.fetchall()
    return conn


def _show(conn, db):
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE `{db}`.t")
        return cur.fetchone()[1]


def _schemas(conn):
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return {r[0] for r in cur.fetchall()}


@pytest.mark.parametrize("held", [False, True], ids=["executed on the copy", "held copy"])
@pytest.mark.parametrize("name,source_sql,expected,duration", CASES, ids=[c[0] for c in CASES])
def test_probe_classifies_and_apply_runs_with_the_clauses(mariadb, db_pair, name, source_sql, expected, duration,
                                                          held):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, source_sql, rows=50)
    before = _schemas(conn)
    # held: more connections, so one table's copy is probed under another session's lock, NOWAIT
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)], probe_connect=mariadb.connect if held else None)
    alters = [s for s in plan.statements if s.sql.startswith("ALTER TABLE")]
    assert len(alters) == 1, plan.sql()
    online = alters[0].online
    assert (online.algorithm, online.lock) == expected
    assert online.duration == duration
    assert online.rows == 50 and online.bytes > 0
    # The plan text and JSON show it; the scratch schema is gone.
    assert f"ALGORITHM={expected[0]}, LOCK={expected[1]}" in plan.sql()
    d = alters[0].to_dict()
    assert (d["algorithm"], d["lock"], d["duration"], d["rows"]) == (*expected, duration, 50)
    assert _schemas(conn) == before
    # The ALTER runs with exactly those clauses (the server could not pick anything more blocking).
    ran = []
    apply_schema(conn, plan, allow_destructive=True, progress=lambda i, st: ran.append(st.run_sql))
    assert ran[0].startswith(f"ALTER TABLE `{dst}`.`t` ALGORITHM={expected[0]}, LOCK={expected[1]}, ")
    assert _show(conn, dst) == _show(conn, src).replace(f"`{src}`", f"`{dst}`")


def test_partition_clause_follows_without_comma():
    class Answer:
        clauses = "ALGORITHM=COPY, LOCK=SHARED"
    assert with_clauses("ALTER TABLE `d`.`t` PARTITION BY HASH (id)", Answer()) == \
        "ALTER TABLE `d`.`t` ALGORITHM=COPY, LOCK=SHARED PARTITION BY HASH (id)"
    assert with_clauses("ALTER TABLE `d`.`t` ADD c INT", Answer()) == \
        "ALTER TABLE `d`.`t` ALGORITHM=COPY, LOCK=SHARED, ADD c INT"


def test_sizes_parse():
    assert parse_size("256 MB") == 256 * 1024 ** 2
    assert parse_size("1G") == 1024 ** 3
    assert parse_size("0") == 0
    with pytest.raises(ValueError):
        parse_size("lots")


def test_blocking_change_above_the_limit_is_refused_before_any_ddl(mariadb, db_pair):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[2][1], rows=3000)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    before = _show(conn, dst)
    with pytest.raises(BlockingChangeRefused) as info:
        apply_schema(conn, plan, blocking_limit=16 * 1024)
    text = str(info.value)
    assert f"`{dst}`.`t`" in text and "ALGORITHM=COPY, LOCK=SHARED" in text and "3000 rows" in text
    assert "--allow-blocking" in text and "pt-online-schema-change" in text
    assert _show(conn, dst) == before
    # A dry run says what a run would refuse.
    dry = apply_schema(conn, plan, dry_run=True, blocking_limit=16 * 1024)
    assert dry.to_dict()["would_refuse_blocking"] and "ALGORITHM=COPY" in dry.to_dict()["would_refuse_blocking"][0]
    # Limit 0 (a protected environment): no blocking change at all; an online one passes.
    with pytest.raises(BlockingChangeRefused):
        apply_schema(conn, plan, blocking_limit=0)
    apply_schema(conn, plan, blocking_limit=16 * 1024, allow_blocking=True)
    assert _show(conn, dst) == _show(conn, src).replace(f"`{src}`", f"`{dst}`")


def test_online_change_passes_a_zero_limit(mariadb, db_pair):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[0][1], rows=3000)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    apply_schema(conn, plan, blocking_limit=0)


def test_statement_that_may_outlive_the_function_is_refused(mariadb, db_pair):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[1][1], rows=3000)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    before = _show(conn, dst)
    with pytest.raises(MayOutliveFunction) as info:
        apply_schema(conn, plan, remaining=lambda: 30.001)  # 1 ms left after the margin
    assert "--direct" in str(info.value) and f"`{dst}`.`t`" in str(info.value)
    assert _show(conn, dst) == before
    apply_schema(conn, plan, remaining=lambda: 900.0)  # plenty of time: runs


def test_metadata_lock_wait_times_out_with_the_holder_named(mariadb, db_pair):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[0][1], rows=10)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    holder = mariadb.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        holder_id = cur.fetchone()[0]
        cur.execute("BEGIN")
        cur.execute(f"SELECT * FROM `{dst}`.t")  # the open transaction holds the table's metadata lock
        cur.fetchall()
    started = time.monotonic()
    try:
        with pytest.raises(SchemaApplyFailed) as info:
            apply_schema(conn, plan, lock_wait_timeout=1)
    finally:
        holder.rollback()
        holder.close()
    assert time.monotonic() - started < 20
    assert isinstance(info.value.cause, LockWaitTimedOut)
    text = str(info.value)
    assert "lock_wait_timeout=1" in text and f"session {holder_id}" in text and "did not run" in text


def test_clauses_refused_when_the_table_changed_since_the_plan(mariadb, db_pair):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[0][1])
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    assert plan.statements[0].online.algorithm == "INSTANT"
    with conn.cursor() as cur:  # someone rebuilds the table in a form INSTANT cannot add a column to
        cur.execute(f"ALTER TABLE `{dst}`.t ENGINE=Aria")
    with pytest.raises(SchemaApplyFailed) as info:
        apply_schema(conn, plan)
    assert "no longer accepts ALGORITHM=INSTANT, LOCK=NONE" in str(info.value)
    assert info.value.executed == []


# --------------------------------------------------------------------------- the online path

def _tool_or_skip():
    import os
    import shutil

    if shutil.which("pt-online-schema-change") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but pt-online-schema-change is missing; .ci/run must install percona-toolkit")
        pytest.skip("pt-online-schema-change not installed (apt-get install percona-toolkit)")


def test_blocking_alter_through_pt_online_schema_change_with_concurrent_writes(mariadb, db_pair):
    from dbrepl.sync.schema.ptosc import OnlineTool

    _tool_or_skip()
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[2][1], rows=20000)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    assert plan.statements[0].online.duration == "blocking"
    lines: list[str] = []
    tool = OnlineTool.find(mariadb.endpoint(dst), output=lines.append, chunk_time=0.05)

    stop, errors, written = threading.Event(), [], {}

    def writer():
        w = mariadb.connect()
        n = 100000
        try:
            with w.cursor() as cur:
                while not stop.is_set():
                    n += 1
                    try:
                        cur.execute(f"INSERT INTO `{dst}`.t (id, a, b) VALUES (%s, %s, 'w')", (n, n))
                        written[n] = n
                        k = 1 + n % 20000
                        cur.execute(f"UPDATE `{dst}`.t SET a = %s WHERE id = %s", (-n, k))
                        written[k] = -n
                    except pymysql.err.MySQLError as exc:  # no write may fail
                        errors.append(exc)
        finally:
            w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        result = apply_schema(conn, plan, blocking_limit=16 * 1024, online_tool=tool)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert result.converged
    assert errors == []
    assert any("Copying" in line or "Copied rows" in line for line in lines), lines[-10:]
    assert _show(conn, dst) == _show(conn, src).replace(f"`{src}`", f"`{dst}`")
    inserted = [k for k in written if k > 100000]
    assert len(inserted) > 10  # the writer kept writing during the change
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, a FROM `{dst}`.t")
        final = dict(cur.fetchall())
    assert len(final) == 20000 + len(inserted)
    assert all(final[k] == v for k, v in written.items())
    # The password never reached the command line.
    assert not any("password" in a.lower() for a in tool.argv(plan.statements[0], "/x", False))


def test_pt_online_schema_change_failure_leaves_the_table_untouched(mariadb, db_pair):
    from dbrepl.sync.schema.ptosc import OnlineTool

    _tool_or_skip()
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[2][1], rows=2000)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    before = _show(conn, dst)
    tool = OnlineTool.find(mariadb.endpoint(dst), critical_load="Threads_running=1")  # aborts at once
    with pytest.raises(SchemaApplyFailed) as info:
        apply_schema(conn, plan, blocking_limit=16 * 1024, online_tool=tool)
    assert "pt-online-schema-change failed" in str(info.value)
    assert _show(conn, dst) == before
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (dst,))
        assert cur.fetchone()[0] == 1  # no _t_new left behind
        cur.execute(f"SELECT COUNT(*) FROM `{dst}`.t")
        assert cur.fetchone()[0] == 2000


def test_pt_online_schema_change_refuses_tables_with_foreign_keys(mariadb, db_pair):
    from dbrepl.sync.schema.ptosc import OnlineTool

    _tool_or_skip()
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[2][1], rows=2000)
    with conn.cursor() as cur:
        for db in (src, dst):
            cur.execute(f"CREATE TABLE `{db}`.child (id INT PRIMARY KEY, t_id INT, "
                        f"CONSTRAINT fk FOREIGN KEY (t_id) REFERENCES `{db}`.t (id)) ENGINE=InnoDB")
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    tool = OnlineTool.find(mariadb.endpoint(dst))
    with pytest.raises(BlockingChangeRefused) as info:
        apply_schema(conn, plan, blocking_limit=16 * 1024, online_tool=tool)
    assert "foreign keys" in str(info.value) and "pt-online-schema-change cannot take it" in str(info.value)


def test_pt_online_schema_change_keeps_the_tables_triggers(mariadb, db_pair):
    from dbrepl.sync.schema.ptosc import OnlineTool

    _tool_or_skip()
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[2][1], rows=2000)
    with conn.cursor() as cur:
        for db in (src, dst):
            cur.execute(f"CREATE TRIGGER `{db}`.tr BEFORE INSERT ON `{db}`.t FOR EACH ROW SET NEW.b = 'trig'")
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    tool = OnlineTool.find(mariadb.endpoint(dst), chunk_time=0.05)
    assert apply_schema(conn, plan, blocking_limit=16 * 1024, online_tool=tool).converged
    assert "--preserve-triggers" in tool.argv(plan.statements[0], "/x", True)
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{dst}`.t (id, a) VALUES (999999, 1)")
        cur.execute(f"SELECT b FROM `{dst}`.t WHERE id = 999999")
        assert cur.fetchone()[0] == "trig"


# --------------------------------------------------------------------------- the CLI with DSNs

def _cli(args):
    from typer.testing import CliRunner

    from dbrepl.cli import app

    r = CliRunner().invoke(app, args)
    text = r.stdout
    start = text.find("{")
    return r, (json.loads(text[start:]) if start >= 0 and args[-1] == "--json" else None)


def test_cli_dry_run_shows_the_clauses_and_the_refusal(mariadb, db_pair):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[2][1], rows=3000)
    base = f"mysql://root@127.0.0.1:{mariadb.port}/"
    r, result = _cli(["sync", "schema", base + src, base + dst, "--dry-run", "--blocking-limit", "16KB", "--json"])
    assert r.exit_code == 0, r.output
    st = result["statements"][0]
    assert (st["algorithm"], st["lock"], st["duration"], st["rows"]) == ("COPY", "SHARED", "blocking", 3000)
    assert "ALGORITHM=COPY, LOCK=SHARED" in st["script"]
    assert result["blocking_limit"] == 16 * 1024 and result["would_refuse_blocking"]
    before = _show(conn, dst)
    r, result = _cli(["sync", "schema", base + src, base + dst, "--yes", "--blocking-limit", "16KB", "--json"])
    assert r.exit_code == 1 and result["status"] == "refused", r.output
    assert "--allow-blocking" in result["error"] and _show(conn, dst) == before
    r, _ = _cli(["sync", "schema", base + src, base + dst, "--yes", "--blocking-limit", "lots"])
    assert r.exit_code == 2


def test_cli_online_tool_with_dsns(mariadb, db_pair):
    _tool_or_skip()
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[2][1], rows=3000)
    base = f"mysql://root@127.0.0.1:{mariadb.port}/"
    r, _ = _cli(["sync", "schema", base + src, base + dst, "--yes", "--blocking-limit", "16KB",
                 "--online-tool", "pt-online-schema-change"])
    assert r.exit_code == 0, r.output
    assert "pt-online-schema-change:" in r.output  # its progress, as it came
    assert _show(conn, dst) == _show(conn, src).replace(f"`{src}`", f"`{dst}`")


# --------------------------------------------------------------------------- the function

def test_function_takes_the_limit_from_its_event_and_watches_its_remaining_time(estate):  # noqa: F811
    from types import SimpleNamespace

    from dbrepl.sync.handlers import schema_sync

    dev, staging, _ = estate
    assert invoke({"source_env": "dev", "target_env": "staging"})[0] == 200
    with dev.cursor() as cur:  # customer.name widened across kinds: a COPY on the target
        cur.execute("ALTER TABLE app.customer MODIFY name VARCHAR(40) CHARACTER SET latin1")
    with staging.cursor() as cur:
        cur.execute("INSERT INTO app.customer SELECT seq, 'n' FROM app.seq_1_to_2000")
    code, body = invoke({"source_env": "dev", "target_env": "staging", "dry_run": True, "blocking_limit": 1024})
    assert code == 200 and body["would_refuse_blocking"], body
    st = next(s for s in body["statements"] if s["sql"].startswith("ALTER TABLE `app`.`customer`"))
    assert (st["algorithm"], st["lock"], st["duration"]) == ("COPY", "SHARED", "blocking")
    code, body = invoke({"source_env": "dev", "target_env": "staging", "blocking_limit": 1024,
                         "allow_destructive": True})
    assert code == 409 and body["status"] == "refused" and "blocking limit" in body["error"], body
    # Time: 30 s left is all margin; the copy may outlive the function.
    context = SimpleNamespace(function_name="f", aws_request_id="r", get_remaining_time_in_millis=lambda: 30000)
    response = schema_sync.lambda_handler({"source_env": "dev", "target_env": "staging", "allow_destructive": True,
                                           "allow_blocking": True}, context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 409 and "--direct" in body["error"], body
    code, body = invoke({"source_env": "dev", "target_env": "staging", "allow_destructive": True,
                         "allow_blocking": True, "lock_wait_timeout": 5})
    assert code == 200 and body["converged"], body
    code, body = invoke({"source_env": "dev", "target_env": "staging", "blocking_limit": "big"})
    assert code == 400 and "blocking_limit" in body["error"]


@pytest.mark.parametrize("held", [False, True], ids=["executed on the copy", "held copy"])
def test_probe_follows_renames_new_tables_and_several_alters_of_one_table(mariadb, db_pair, held):
    src, dst = db_pair
    conn = mariadb.connect()
    with conn.cursor() as cur:
        # two ALTERs of `t` (an index reorder drops, then re-adds), a renamed table altered, a new table
        cur.execute(f"CREATE TABLE `{src}`.t (id INT PRIMARY KEY, a INT, b INT, KEY kb (b), KEY ka (a), c INT)")
        cur.execute(f"CREATE TABLE `{dst}`.t (id INT PRIMARY KEY, a INT, b INT, KEY ka (a), KEY kb (b))")
        cur.execute(f"CREATE TABLE `{src}`.`new_name` (id INT PRIMARY KEY, x BIGINT)")
        cur.execute(f"CREATE TABLE `{dst}`.`old_name` (id INT PRIMARY KEY, x INT)")
        cur.execute(f"INSERT INTO `{dst}`.`old_name` VALUES (1, 1), (2, 2)")
        cur.execute(f"CREATE TABLE `{src}`.fresh (id INT PRIMARY KEY)")
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)], renames=[f"{src}.old_name=new_name"],
                       probe_connect=mariadb.connect if held else None)
    online = {s.sql: s.online for s in plan.statements if s.sql.startswith("ALTER")}
    t_alters = [o for sql, o in online.items() if sql.startswith(f"ALTER TABLE `{dst}`.`t`")]
    assert len(t_alters) == 2 and all(o.how == "probed" and o.algorithm for o in t_alters), plan.sql()
    renamed = next(o for sql, o in online.items() if "`new_name`" in sql)
    assert (renamed.algorithm, renamed.lock, renamed.rows) == ("COPY", "SHARED", 2)
    result = apply_schema(conn, plan)
    assert result.converged


# --------------------------------------------------------------------------- the probe while the plan reads

def _all_cases(mariadb, src, dst):
    """One table per CASE (each a different ALTER), plus two of one shape given the same ALTER."""
    conn = mariadb.connect()
    with conn.cursor() as cur:
        for n, (_, source_sql, _, _) in enumerate(CASES):
            cur.execute(source_sql.replace("{db}.t ", f"{{db}}.t{n} ").format(db=f"`{src}`"))
            cur.execute(BASE.replace("{db}.t ", f"{{db}}.t{n} ").format(db=f"`{dst}`"))
        for name in ("same1", "same2"):
            cur.execute(CASES[1][1].replace("{db}.t ", f"{{db}}.{name} ").format(db=f"`{src}`"))
            cur.execute(BASE.replace("{db}.t ", f"{{db}}.{name} ").format(db=f"`{dst}`"))
    return conn


def _answers(plan):
    return {s.sql: (s.online.algorithm, s.online.lock, s.online.how) for s in plan.statements if s.online}


def test_early_probe_gives_the_answers_of_the_plan_connection_alone(mariadb, db_pair, monkeypatch):
    """With a connection factory each table is probed while the plan still reads the others
    (online.ProbeSession): the same answers as the plan's own connection gives after the diff."""
    from dbrepl.sync.schema import apply as apply_module

    src, dst = db_pair
    conn = _all_cases(mariadb, src, dst)
    before = _schemas(conn)
    opened, guessed = [], []
    table_alters = apply_module.table_alters

    def guess(*a, **k):
        made = table_alters(*a, **k)
        guessed.extend(st.sql for st in made.statements)
        return made

    monkeypatch.setattr(apply_module, "table_alters", guess)

    def factory():
        opened.append(mariadb.connect())
        return opened[-1]

    from dbrepl.sync.schema import online

    copies = []
    copy_table = online._copy_table

    def counted(conn, scratch, n, job):
        copies.append((job.database, job.table))
        return copy_table(conn, scratch, n, job)

    monkeypatch.setattr(online, "_copy_table", counted)
    plans = [plan_schema(mariadb.connect(), conn, [(src, dst)])]
    alone_copies, copies[:] = list(copies), []
    plans.append(plan_schema(mariadb.connect(), conn, [(src, dst)], probe_connect=factory))
    assert [s.sql for s in plans[0].statements] == [s.sql for s in plans[1].statements]  # (diffs made ahead)
    alone, early = map(_answers, plans)
    assert early == alone and len(alone) == len(CASES) + 2
    assert set(early) <= set(guessed)  # every ALTER was guessed while reading, so probed then
    # ... and probed then only: each table's copy was made once, none again after the diff
    # (the two tables of one shape given the same ALTER share one copy either way).
    assert copies and sorted(copies) == sorted(alone_copies) and len(copies) == len(set(copies))
    assert {a[:2] for a in alone.values()} == {c[2] for c in CASES}
    assert _schemas(conn) == before
    assert opened and all(not c.open for c in opened)  # the session closed what it opened


def test_early_probe_keeps_answers_only_for_the_plans_alters(mariadb, db_pair, monkeypatch):
    """ALTERs handed to the probe early that are not the plan's are probed for nothing: the
    plan's own ALTER is probed (here the early diff is not the one the plan takes)."""
    from dbrepl.sync.schema import apply as apply_module

    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[2][1])  # the plan: MODIFY a BIGINT, COPY
    guessed = []

    def wrong(source, target, sdb, tdb, renames=None):
        class Guess:
            sql = f"ALTER TABLE `{tdb}`.`{source.name}` ADD COLUMN guessed INT"
            phase = "alter tables"

        class Made:
            statements = [Guess()]
            src = dst = None  # not the tables diff_databases sees: it diffs the table itself
        guessed.append(Guess.sql)
        return Made()

    monkeypatch.setattr(apply_module, "table_alters", wrong)
    before = _schemas(conn)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)], probe_connect=mariadb.connect)
    assert guessed  # the guess was made (and probed), but not kept
    online = next(s.online for s in plan.statements if s.online)
    assert (online.algorithm, online.lock, online.how) == ("COPY", "SHARED", "probed")
    assert _schemas(conn) == before


def test_early_probe_drops_its_scratch_schema_when_the_plan_fails(mariadb, db_pair, monkeypatch):
    from dbrepl.sync.schema import apply as apply_module

    src, dst = db_pair
    conn = _all_cases(mariadb, src, dst)
    before = _schemas(conn)
    probed = []
    original = apply_module.ProbeSession.submit

    def submit(self, *a, **k):
        probed.append(a)
        return original(self, *a, **k)

    def broken(*a, **k):
        raise RuntimeError("diff failed")

    monkeypatch.setattr(apply_module.ProbeSession, "submit", submit)
    monkeypatch.setattr(apply_module, "diff_databases", broken)
    with pytest.raises(RuntimeError, match="diff failed"):
        plan_schema(mariadb.connect(), conn, [(src, dst)], probe_connect=mariadb.connect)
    assert probed  # tables were being probed when the plan failed
    assert _schemas(conn) == before


def test_early_probe_opens_nothing_when_nothing_differs(mariadb, db_pair):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, BASE)
    opened = []
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)], probe_connect=lambda: opened.append(1))
    assert plan.empty and not opened


def test_probe_session_drops_its_scratch_schema_on_a_new_connection_when_its_own_is_lost(mariadb, db_pair):
    from dbrepl.sync.schema.online import ProbeSession

    src, dst = db_pair
    conn = _setup(mariadb, src, dst, BASE)
    before = _schemas(conn)
    session = ProbeSession(connect=mariadb.connect)
    task = session.submit(dst, "t", ["ADD COLUMN c INT"])
    assert session.answers(task) == [("INSTANT", "NONE")]
    assert session.scratch in _schemas(conn)
    with conn.cursor() as cur:
        cur.execute("KILL %s", (session._owner.thread_id(),))
    session.close()
    assert _schemas(conn) == before


def test_probe_session_leaves_tables_to_its_other_connections_when_one_is_refused(mariadb, db_pair):
    """A server that refuses more connections (max_user_connections) costs the probe its
    speed, not its answers: the workers that could not connect, and a holder that could not,
    leave their tables to the connections that did."""
    from dbrepl.sync.schema.online import ProbeSession

    src, dst = db_pair
    conn = _setup(mariadb, src, dst, BASE)
    before = _schemas(conn)
    opened, asked = [], []
    lock = threading.Lock()

    def factory():
        with lock:
            asked.append(1)
            if len(asked) > 1:
                raise pymysql.err.OperationalError(1226, "User 'sync' has exceeded the 'max_user_connections' resource")
        opened.append(mariadb.connect())
        return opened[-1]

    session = ProbeSession(connect=factory, workers=4)
    try:
        tasks = [session.submit(dst, "t", [f"ADD COLUMN c{n} INT"]) for n in range(6)]
        tasks.append(session.submit(dst, "t", ["ADD INDEX kb (b)"]))
        answers = [session.answers(t) for t in tasks]
    finally:
        session.close()
    assert answers == [[("INSTANT", "NONE")]] * 6 + [[("NOCOPY", "NONE")]]
    assert len(opened) == 1 and len(asked) > 2 and _schemas(conn) == before  # other workers and a holder were refused


def test_probe_session_closed_again_after_an_interrupted_close_drops_its_schema(mariadb, db_pair, monkeypatch):
    from dbrepl.sync.schema.online import ProbeSession

    src, dst = db_pair
    conn = _setup(mariadb, src, dst, BASE)
    before = _schemas(conn)
    session = ProbeSession(connect=mariadb.connect)
    assert session.answers(session.submit(dst, "t", ["ADD COLUMN c INT"])) == [("INSTANT", "NONE")]
    drop = ProbeSession._drop_scratch
    calls = []

    def interrupted(self, c):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return drop(self, c)

    monkeypatch.setattr(ProbeSession, "_drop_scratch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        session.close()
    assert session.scratch in _schemas(conn)  # the first close never got to drop it
    session.close()  # as the caller's own cleanup does
    assert _schemas(conn) == before and len(calls) == 2
    session.close()  # closed all the way: nothing more to do
    assert len(calls) == 2


# --------------------------------------------------------------------------- migrations

def test_migration_dry_run_classifies_each_alter(mariadb, db_pair):
    from dbrepl.sync.migrations import LocalScripts, apply_migrations

    _, dst = db_pair
    conn = _setup(mariadb, db_pair[0], dst, CASES[0][1], rows=100)
    scripts = LocalScripts({
        "V1__widen.sql": "-- widen a\nALTER TABLE t MODIFY a BIGINT;\nUPDATE t SET a = a + 1;\n"
                         "ALTER TABLE t ADD COLUMN c INT;\n",
        "V2__index.sql": f"ALTER TABLE `{dst}`.t ADD INDEX kb (b);\n",
    })
    result = apply_migrations(conn, dst, scripts, dry_run=True)
    got = [(d["script"], d["statement"], d["algorithm"], d["lock"], d["duration"]) for d in result.ddl]
    assert got == [("V1__widen.sql", 1, "COPY", "SHARED", "blocking"),
                   ("V1__widen.sql", 3, "INSTANT", "NONE", "instant"),
                   ("V2__index.sql", 1, "NOCOPY", "NONE", "proportional")]
    assert result.ddl[0]["rows"] == 100 and result.to_dict()["ddl"] == result.ddl
    assert _show(conn, dst) == _show(mariadb.connect(), dst)  # nothing ran
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE `{dst}`.t")
        assert "bigint" not in cur.fetchone()[1]


def test_without_the_probe_every_alter_counts_as_blocking(mariadb, db_pair, monkeypatch):
    from dbrepl.sync.errors import DatabaseError
    from dbrepl.sync.schema import apply as apply_module

    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[0][1], rows=3000)

    def no_scratch(*a, **k):
        raise DatabaseError("Failed to create the scratch schema (denied)")

    monkeypatch.setattr(apply_module, "probe_statements", no_scratch)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    st = plan.statements[0]
    assert st.online.duration == "unknown" and st.online.rows == 3000 and st.run_sql == st.sql
    assert any("not probed" in n for n in plan.notes)
    with pytest.raises(BlockingChangeRefused):
        apply_schema(conn, plan, blocking_limit=16 * 1024)
    assert apply_schema(conn, plan).converged  # below the default limit it runs, without clauses


def test_lock_wait_names_the_holder_from_metadata_lock_info(mariadb, db_pair):
    """With MariaDB's metadata_lock_info plugin the holder is exact: the session holding a lock
    on that table, not every session with a transaction open."""
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[0][1], rows=10)
    with conn.cursor() as cur:
        try:
            cur.execute("INSTALL SONAME 'metadata_lock_info'")
        except pymysql.err.MySQLError as exc:
            if exc.args[0] != 1968:  # already installed
                pytest.skip(f"metadata_lock_info plugin not available: {exc}")
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    holder, bystander = mariadb.connect(), mariadb.connect()
    try:
        with holder.cursor() as cur, bystander.cursor() as other:
            cur.execute("SELECT CONNECTION_ID()")
            holder_id = cur.fetchone()[0]
            other.execute("SELECT CONNECTION_ID()")
            bystander_id = other.fetchone()[0]
            other.execute("BEGIN")
            other.execute(f"SELECT COUNT(*) FROM `{src}`.t")  # a transaction on another table
            cur.execute("BEGIN")
            cur.execute(f"SELECT * FROM `{dst}`.t")
            cur.fetchall()
        with pytest.raises(SchemaApplyFailed) as info:
            apply_schema(conn, plan, lock_wait_timeout=1)
    finally:
        holder.rollback()
        bystander.rollback()
        holder.close()
        bystander.close()
        with conn.cursor() as cur:
            cur.execute("UNINSTALL SONAME 'metadata_lock_info'")
    text = str(info.value)
    assert f"session {holder_id} " in text and "metadata_lock_info" in text
    assert f"session {bystander_id} " not in text


def test_time_running_out_during_the_run_stops_before_the_statement(mariadb, db_pair):
    src, dst = db_pair
    conn = _setup(mariadb, src, dst, CASES[1][1], rows=3000)
    plan = plan_schema(mariadb.connect(), conn, [(src, dst)])
    clock = iter([900.0, 900.0, 30.0, 30.0, 30.0, 30.0])  # plenty at the start, nothing left at the statement
    with pytest.raises(SchemaApplyFailed) as info:
        apply_schema(conn, plan, remaining=lambda: next(clock))
    assert isinstance(info.value.cause, MayOutliveFunction) and info.value.executed == []
    assert "--direct" in str(info.value)
