"""What keeps an applied ALTER from surprise-locking production (see online.py for the probe).

- the blocking limit: an ALTER that needs COPY or LOCK=SHARED/EXCLUSIVE on a table above
  the limit is refused before any DDL (or handed to the online tool, when one is given);
- the function's remaining time: a statement whose duration class is not instant and whose
  estimated time (its table's bytes at `DDL_BYTES_PER_SECOND`) exceeds what is left of the
  function's time is refused before any DDL, with the `--direct` suggestion;
- the session's server-side limits: `lock_wait_timeout` always (a DDL waiting for a metadata
  lock holds up every later query on the table), `max_statement_time` on MariaDB when a
  statement limit is given (MySQL's max_execution_time bounds SELECTs only);
- a lock wait that times out is reported with the sessions that may hold the lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pymysql

from dbrepl.sync.schema.online import DURATIONS, format_size
from dbrepl.sync.schema.plan import Clause, DestructiveChangeRefused, Statement

# A conservative rate for a table rebuild or copy (data and indexes); real servers often do
# better, so the function refuses early rather than late.
DDL_BYTES_PER_SECOND = 20 * 1024 * 1024
# Time kept back at the end of a function run: the verify, the SSM record, the answer.
FUNCTION_MARGIN_SECONDS = 30.0

ONLINE_WAYS_OUT = ("--allow-blocking (writes to the table wait for the whole change), or the online path: "
                   "pt-online-schema-change with a DSN or --direct (--online-tool, or schema.online_tool in the spec)")


def is_blocking_over(st: Statement, limit: int) -> bool:
    """Does `st` need COPY or a write-stopping LOCK on a table above `limit` bytes?"""
    online = st.online
    if online is None or not online.blocking:
        return False
    return online.bytes is None or online.bytes > limit


def blocking_clause(st: Statement, limit: int, reason: str = "") -> Clause:
    online = st.online
    size = "size unknown" if online.bytes is None else f"{format_size(online.bytes)}, {online.rows or 0} rows"
    needs = online.clauses or online.how
    why = reason or (f"needs {needs} ({DURATIONS[online.duration]}) on {size}, above the blocking limit "
                     f"{format_size(limit)}")
    return Clause(f"table {online.table}: {st.description}", True, (why,))


class BlockingChangeRefused(DestructiveChangeRefused):
    """ALTERs that would block writes on tables above the limit; nothing was run.

    Reported as a refusal (status `refused`, exit 1); --allow-destructive does not lift it,
    --allow-blocking or the online tool does."""

    def __init__(self, clauses: list[Clause], limit: int):
        self.clauses = clauses
        self.limit = limit
        lines = "\n".join(f"  - {c.label()}" for c in clauses)
        super(DestructiveChangeRefused, self).__init__(
            f"refusing {len(clauses)} blocking change(s) above the blocking limit {format_size(limit)} "
            f"(no DDL was run):\n{lines}\nWays out: {ONLINE_WAYS_OUT}.")


def estimated_seconds(st: Statement) -> float:
    online = st.online
    if online is None or online.duration in ("instant", "new table"):
        return 0.0
    return (online.bytes or 0) / DDL_BYTES_PER_SECOND


class MayOutliveFunction(DestructiveChangeRefused):
    """A statement may run longer than the function has left; nothing was run."""

    def __init__(self, clauses: list[Clause], remaining: float):
        self.clauses = clauses
        lines = "\n".join(f"  - {c.label()}" for c in clauses)
        super(DestructiveChangeRefused, self).__init__(
            f"refusing {len(clauses)} statement(s) that may outlive the function ({remaining:.0f} s left, "
            f"{FUNCTION_MARGIN_SECONDS:.0f} s kept for the verify and the record; no DDL was run):\n{lines}\n"
            "Run the sync with --direct from a host (no time limit there), or with the online tool.")


def check_remaining(statements: Sequence[Statement], remaining: float) -> None:
    """Refuse, before any DDL, when the statements' estimated total exceeds `remaining` seconds."""
    budget = remaining - FUNCTION_MARGIN_SECONDS
    total, late = 0.0, []
    for st in statements:
        took = estimated_seconds(st)
        total += took
        if took and total > budget:
            size = format_size(st.online.bytes or 0)
            late.append(Clause(f"table {st.online.table}: {st.description}", True, (
                f"{DURATIONS[st.online.duration]}: about {took:.0f} s for {size} at "
                f"{DDL_BYTES_PER_SECOND // 1024 // 1024} MB/s, {total:.0f} s into the run",)))
    if late:
        raise MayOutliveFunction(late, remaining)


def prepare_ddl_session(cur: Any, lock_wait_timeout: int, statement_seconds: float | None,
                        mariadb: bool) -> None:
    """Server-side bounds for this session's DDL (see the module's docstring)."""
    cur.execute("SET SESSION lock_wait_timeout = %s", (max(1, int(lock_wait_timeout)),))
    if statement_seconds is not None and mariadb:
        cur.execute("SET SESSION max_statement_time = %s", (max(1.0, float(statement_seconds)),))


class LockWaitTimedOut(Exception):
    """The statement waited `lock_wait_timeout` for a lock and gave up; it did not run."""


class ClausesRefused(Exception):
    """The server no longer accepts the plan's ALGORITHM/LOCK for this ALTER; it did not run."""


LOCK_WAIT_TIMEOUT = 1205
STATEMENT_TIMEOUT = 1969  # MariaDB: max_statement_time exceeded


def lock_wait_message(cur: Any, st: Statement, exc: Exception, lock_wait_timeout: int) -> str:
    """Why the statement timed out, naming the sessions that may hold the table's lock."""
    table = st.online.table if st.online is not None else _table_of(st.sql)
    holders = blocking_sessions(cur, table)
    who = ("; ".join(holders) if holders else
           "no holder visible (the account needs PROCESS to see other sessions)")
    return (f"waited lock_wait_timeout={lock_wait_timeout} s for the metadata lock on {table} and gave up "
            f"({exc.args[-1] if exc.args else exc}); the statement did not run. Likely holder(s): {who}. "
            "End or commit that transaction (KILL <id> ends a session), then run the sync again")


def _table_of(sql: str) -> str:
    m = re.match(r"^\w+ TABLE (`(?:[^`]|``)+`\.`(?:[^`]|``)+`)", sql)
    return m.group(1) if m else "the table"


def blocking_sessions(cur: Any, table: str) -> list[str]:
    """Sessions that may hold a metadata lock on `table`: the exact holders from the
    metadata_lock_info plugin when it is installed, else every other session with an open
    transaction (information_schema.INNODB_TRX joined to PROCESSLIST), oldest first."""
    m = re.fullmatch(r"`((?:[^`]|``)+)`\.`((?:[^`]|``)+)`", table)
    out: list[str] = []
    try:
        if m is not None:
            db, name = m.group(1).replace("``", "`"), m.group(2).replace("``", "`")
            cur.execute("SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' "
                        "AND PLUGIN_STATUS = 'ACTIVE'")
            if cur.fetchone()[0]:
                cur.execute("SELECT DISTINCT m.THREAD_ID, p.USER, p.HOST, p.TIME, p.COMMAND FROM "
                            "information_schema.METADATA_LOCK_INFO m LEFT JOIN information_schema.PROCESSLIST p "
                            "ON p.ID = m.THREAD_ID WHERE m.TABLE_SCHEMA = %s AND m.TABLE_NAME = %s "
                            "AND m.THREAD_ID <> CONNECTION_ID()", (db, name))
                out = [f"session {i} ({u}@{h}, {c}, {t} s) holds a lock on it (metadata_lock_info)"
                       for i, u, h, t, c in cur.fetchall()]
                if out:
                    return out
        cur.execute("SELECT t.trx_mysql_thread_id, p.USER, p.HOST, "
                    "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), p.COMMAND FROM information_schema.INNODB_TRX t "
                    "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                    "WHERE t.trx_mysql_thread_id <> CONNECTION_ID() ORDER BY t.trx_started")
        out = [f"session {i} ({u}@{h}, {c}) has a transaction open for {s} s" for i, u, h, s, c in cur.fetchall()]
    except pymysql.err.MySQLError:
        return out
    return out


Remaining = Callable[[], float]
