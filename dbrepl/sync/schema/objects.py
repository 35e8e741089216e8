"""Triggers, stored routines and events: introspection and diff (issue 10 point 6); the
model stores them as model.StoredObject.

What is compared, per object:
- trigger: its table, timing (BEFORE/AFTER), event (INSERT/UPDATE/DELETE), body (as the
  server stores it, information_schema.TRIGGERS.ACTION_STATEMENT), its place among the
  triggers of the same table, timing and event (ACTION_ORDER), and its sql_mode;
- procedure / function: SHOW CREATE text after the name (parameters, RETURNS,
  characteristics such as DETERMINISTIC, SQL SECURITY and COMMENT, and the body), sql_mode;
- event: SHOW CREATE EVENT text after the name (schedule with the STARTS/ENDS the server
  rendered, ON COMPLETION, ENABLE/DISABLE, COMMENT, body), sql_mode and time_zone.
The DEFINER is compared only with definer="keep". character_set_client and
collation_connection are not compared: dbrepl always connects as utf8mb4.

A body naming the source database is rewritten to the target database (as views are).
A created object runs under the sql_mode (and, for events, the time_zone) it had on the
source: Statement.session carries them and execute_statement sets and restores them.
"""

from __future__ import annotations

from typing import Any

from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.ident import qualified, quote
from dbrepl.sync.schema.model import HISTORY_TABLE, Database, StoredObject, UnsupportedSchema
from dbrepl.sync.schema.plan import Clause, Renames, Statement
from dbrepl.sync.splitter import tokenize

DEFINER_MODES = ("omit", "keep")
# Session variables a statement may set for itself (names never come from input).
SESSION_VARIABLES = ("sql_mode", "time_zone")
# Phases of diff.PHASES that belong to this module.
DROP_PHASE = "drop objects"
ROUTINE_PHASE = "create routines"  # before views: a view may call a stored function
CREATE_PHASE = "create objects"  # triggers, then events, after tables and views


def check_definer_mode(value: object) -> str:
    if value not in DEFINER_MODES:
        raise InvalidInput(f"definer must be 'omit' (objects get the connecting user as definer) "
                           f"or 'keep' (the source's definer), not {value!r}")
    return str(value)


# ---- introspection -------------------------------------------------------------------------


def _split_create(text: str, kinds: tuple[str, ...], what: str) -> tuple[str, str]:
    """(keyword, rest after the name) of a SHOW CREATE PROCEDURE/FUNCTION/EVENT text.

    The server prints `CREATE DEFINER=`u`@`h` [AGGREGATE] FUNCTION `name`(...)...`, quoting
    with backticks or, when the object's sql_mode has ANSI_QUOTES, double quotes.
    """
    toks = list(tokenize(text))
    words: list[str] = []
    for i, tok in enumerate(toks):
        if tok.kind != "word":
            continue
        upper = tok.text.upper()
        if upper == "AGGREGATE":
            words.append(upper)
        elif upper in kinds:
            words.append(upper)
            j = i + 1
            while j < len(toks) and toks[j].kind in ("space", "comment"):
                j += 1
            if j < len(toks) and toks[j].kind in ("ident", "string", "word"):
                rest = "".join(t.text for t in toks[j + 1:])
                return " ".join(words), rest
            break
    raise UnsupportedSchema(f"{what}: cannot read its SHOW CREATE text {text[:80]!r}")


def read_objects(cur: Any, database: str) -> tuple[dict[tuple[str, str], StoredObject], list[str]]:
    """Every trigger, routine and event of `database`, keyed (kind, name); and skip notes."""
    objects: dict[tuple[str, str], StoredObject] = {}
    skipped: list[str] = []
    cur.execute(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER, "
        "ACTION_STATEMENT, SQL_MODE, DEFINER FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s", (database,))
    for name, table, timing, event, order, body, sql_mode, definer in cur.fetchall():
        if table == HISTORY_TABLE:
            continue
        objects[("trigger", name)] = StoredObject(
            kind="trigger", name=name, definition=body, sql_mode=sql_mode or "",
            definer=definer or "", table=table, timing=timing.upper(), event=event.upper(),
            order=int(order or 0))
    cur.execute(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE, DEFINER FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s", (database,))
    for name, rtype, definer in cur.fetchall():
        kind = (rtype or "").lower()
        if kind not in ("procedure", "function"):
            skipped.append(f"{kind or 'routine'} {database}.{name} is not synced "
                           "(create it in a migration)")
            continue
        cur.execute(f"SHOW CREATE {kind.upper()} {qualified(database, name)}")
        row = cur.fetchone()
        if row is None or row[2] is None:
            raise UnsupportedSchema(
                f"{kind} {database}.{name}: the server did not show its definition; the sync "
                "account needs SHOW CREATE ROUTINE (MariaDB) or SHOW_ROUTINE (MySQL) privilege")
        keyword, rest = _split_create(row[2], (kind.upper(),), f"{kind} {database}.{name}")
        objects[(kind, name)] = StoredObject(kind=kind, name=name, definition=rest,
                                             sql_mode=row[1] or "", definer=definer or "",
                                             keyword=keyword)
    cur.execute(
        "SELECT EVENT_NAME, DEFINER, "
        "CONVERT_TZ(COALESCE(EXECUTE_AT, ENDS), TIME_ZONE, @@SESSION.time_zone) < NOW() "
        "AND NOT (ON_COMPLETION = 'PRESERVE' AND STATUS = 'DISABLED') "
        "FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (database,))
    for name, definer, expired in cur.fetchall():
        if expired:
            skipped.append(f"event {database}.{name} is not synced: its AT or ENDS time is past, so "
                           "the server would drop or disable it on creation")
        cur.execute(f"SHOW CREATE EVENT {qualified(database, name)}")
        row = cur.fetchone()  # Event, sql_mode, time_zone, Create Event, ...
        keyword, rest = _split_create(row[3], ("EVENT",), f"event {database}.{name}")
        objects[("event", name)] = StoredObject(kind="event", name=name, definition=rest,
                                                sql_mode=row[1] or "", definer=definer or "",
                                                keyword=keyword, time_zone=row[2] or "SYSTEM",
                                                expired=bool(expired))
    return objects, skipped


# ---- database names inside bodies ----------------------------------------------------------


def map_body(text: str, db_map: dict[str, str], trigger: bool = False) -> str:
    """Rewrite source database qualifiers (`db`.x, db.x, "db".x) to the target's names.

    Strings and comments are left alone. In a trigger NEW.x and OLD.x are the row, never a
    database. A table alias spelled exactly like a source database would be rewritten too.
    """
    if all(k == v for k, v in db_map.items()):
        return text
    toks = list(tokenize(text))
    out = []
    for i, tok in enumerate(toks):
        nxt = toks[i + 1].text if i + 1 < len(toks) else ""
        prev = toks[i - 1].text if i else ""
        if tok.kind in ("ident", "string") and nxt.startswith(".") and not prev.endswith("."):
            # A "..." string followed by a dot is a name only under ANSI_QUOTES; a string
            # literal cannot be followed by ".x", so the rewrite is safe either way.
            name = tok.text[1:-1].replace(tok.text[0] * 2, tok.text[0])
            if name in db_map:
                out.append(tok.text[0] + db_map[name].replace(tok.text[0], tok.text[0] * 2) + tok.text[0])
                continue
        if tok.kind == "word" and "." in tok.text and not prev.endswith("."):
            head, dot, tail = tok.text.partition(".")
            if head in db_map and not (trigger and head.upper() in ("NEW", "OLD")):
                target = db_map[head]
                plain = all(c.isalnum() or c in "_$" for c in target)
                out.append((target if plain else quote(target)) + dot + tail)
                continue
        out.append(tok.text)
    return "".join(out)


# ---- diff ----------------------------------------------------------------------------------


def _applied_table_renames(src: Database, dst: Database, sdb: str, renames: Renames) -> dict[str, str]:
    """Target table renames the plan performs (the same rule as diff._rename_tables)."""
    return {old: new for (db, old), new in renames.tables.items()
            if db == sdb and old in dst.tables and new not in dst.tables
            and new in src.tables and old not in src.tables}


def diff_objects(src: Database, dst: Database, sdb: str, tdb: str, db_map: dict[str, str],
                 renames: Renames, definer: str) -> list[Statement]:
    """Statements making the target's triggers, routines and events equal to the source's.

    Creating and replacing (drop then create: MySQL 8.0 has no CREATE OR REPLACE for
    triggers) are safe; dropping an object the source does not have is destructive.
    """
    expired = {k for k, o in src.objects.items() if o.expired}  # noted, left alone on both sides
    wanted = {k: _mapped(o, db_map) for k, o in src.objects.items() if k not in expired}
    have = _target_objects(src, dst, sdb, renames, expired)
    drop, create = _trigger_changes(wanted, have, definer)
    for k, o in sorted(wanted.items()):
        if o.kind != "trigger" and (k not in have or have[k].key(definer) != o.key(definer)):
            create.append(k)
            if k in have:
                drop.add(k)
    drop.update(k for k in have if k not in wanted)
    return _drop_statements(drop, wanted, have, tdb) + _create_statements(create, wanted, have, tdb, definer)


def _target_objects(src: Database, dst: Database, sdb: str, renames: Renames,
                    expired: set[tuple[str, str]]) -> dict[tuple[str, str], StoredObject]:
    """The target's objects to compare, triggers under their table's name after this run's
    renames; triggers of a table the run drops go with it and are left out."""
    moved = _applied_table_renames(src, dst, sdb, renames)
    have = {}
    for k, o in dst.objects.items():
        if k in expired:
            continue
        if o.kind == "trigger":
            table = moved.get(o.table, o.table)
            if table not in src.tables:
                continue  # its table is dropped, and the trigger with it
            o = StoredObject(**{**o.__dict__, "table": table})
        have[k] = o
    return have


def _trigger_changes(wanted: dict[tuple[str, str], StoredObject], have: dict[tuple[str, str], StoredObject],
                     definer: str) -> tuple[set[tuple[str, str]], list[tuple[str, str]]]:
    """(to drop, to create) among the triggers."""
    drop: set[tuple[str, str]] = set()
    create: list[tuple[str, str]] = []
    # Triggers: within (table, timing, event) the server fires them in creation order, so a
    # group must match the source from its first difference on (as index order does).
    groups: dict[tuple[str, str, str], tuple[list[StoredObject], list[StoredObject]]] = {}
    for side, objects in ((0, wanted), (1, have)):
        for o in objects.values():
            if o.kind == "trigger":
                groups.setdefault((o.table, o.timing, o.event), ([], []))[side].append(o)
    for s_g, d_g in groups.values():
        s_g.sort(key=lambda o: o.order)
        d_g.sort(key=lambda o: o.order)
        p = 0
        while p < min(len(s_g), len(d_g)) and s_g[p].name == d_g[p].name \
                and s_g[p].key(definer) == d_g[p].key(definer):
            p += 1
        drop.update(("trigger", o.name) for o in d_g[p:])
        create.extend(("trigger", o.name) for o in s_g[p:])
    return drop, create


def _drop_statements(drop: set[tuple[str, str]], wanted: dict[tuple[str, str], StoredObject],
                     have: dict[tuple[str, str], StoredObject], tdb: str) -> list[Statement]:
    statements = []
    for k in sorted(drop):
        o = have[k]
        if k in wanted:
            clause = Clause(f"replace {o.label(tdb)}: drop the old definition")
        else:
            clause = Clause(f"drop {o.label(tdb)}", True, (f"the source has no such {o.kind}",))
        statements.append(Statement(sql=o.drop_sql(tdb), database=tdb, clauses=(clause,),
                                    phase=DROP_PHASE))
    return statements


def _create_statements(create: list[tuple[str, str]], wanted: dict[tuple[str, str], StoredObject],
                       have: dict[tuple[str, str], StoredObject], tdb: str, definer: str) -> list[Statement]:
    statements = []
    order = {"procedure": 0, "function": 0, "trigger": 1, "event": 2}
    for k in sorted(create, key=lambda k: (order[k[0]], k[0] != "trigger" and k[1])):
        o = wanted[k]
        what = "replace" if k in have else "create"
        statements.append(Statement(
            sql=o.create_sql(tdb, definer), database=tdb,
            clauses=(Clause(f"{what} {o.label(tdb)}"),),
            phase=ROUTINE_PHASE if o.kind in ("procedure", "function") else CREATE_PHASE,
            session=o.session()))
    return statements


def _mapped(o: StoredObject, db_map: dict[str, str]) -> StoredObject:
    return StoredObject(**{**o.__dict__, "definition": map_body(o.definition, db_map, o.kind == "trigger")})


# ---- running -------------------------------------------------------------------------------


def execute_statement(cur: Any, st: Statement) -> None:
    """Run one statement, under its session settings (restored afterwards) if it has any.

    A view is created with its database as the current one: the server checks that a stored
    function the view calls unqualified exists in the current database (and the view then
    calls its own database's function). The session keeps that database afterwards.
    """
    if st.phase == "create views":
        cur.execute("SELECT DATABASE()")
        if cur.fetchone()[0] != st.database:
            cur.execute(f"USE {quote(st.database)}")
    if not st.session:
        cur.execute(st.run_sql)
        return
    names = [n for n, _ in st.session]
    if any(n not in SESSION_VARIABLES for n in names):
        raise ValueError(f"statement sets an unexpected session variable: {names}")
    cur.execute("SELECT " + ", ".join(f"@@SESSION.{n}" for n in names))
    saved = cur.fetchone()
    try:
        for n, v in st.session:
            cur.execute(f"SET SESSION {n} = %s", (v,))
        cur.execute(st.run_sql)
    finally:
        for n, v in zip(names, saved, strict=True):
            cur.execute(f"SET SESSION {n} = %s", (v,))
