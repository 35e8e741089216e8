"""Plan (read-only) and apply (plan plus doing, then verify) a schema sync."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pymysql

from dbrepl.sync.contract import DEFAULT_BLOCKING_LIMIT, DEFAULT_LOCK_WAIT_TIMEOUT
from dbrepl.sync.errors import DatabaseError, InvalidInput
from dbrepl.sync.schema.diff import TableAlter, diff_databases, table_alters
from dbrepl.sync.schema.introspect import (
    check_database_name,
    database_exists,
    prepare_session,
    read_database,
)
from dbrepl.sync.schema.limits import (
    FUNCTION_MARGIN_SECONDS,
    LOCK_WAIT_TIMEOUT,
    STATEMENT_TIMEOUT,
    BlockingChangeRefused,
    ClausesRefused,
    LockWaitTimedOut,
    MayOutliveFunction,
    blocking_clause,
    check_remaining,
    estimated_seconds,
    is_blocking_over,
    lock_wait_message,
    prepare_ddl_session,
)
from dbrepl.sync.schema.model import Table
from dbrepl.sync.schema.objects import check_definer_mode, execute_statement
from dbrepl.sync.schema.online import (
    REFUSED,
    ProbeSession,
    probe_statements,
    probed_tables,
    server_is_mariadb,
    unprobed,
)
from dbrepl.sync.schema.plan import (
    DestructiveChangeRefused,
    Renames,
    SchemaNotConverged,
    SchemaPlan,
    Statement,
    parse_renames,
)
from dbrepl.sync.schema.preflight import RowsPreventChange, count_implicit_defaults, preflight

DatabaseSpec = str | tuple[str, str]


class SchemaApplyFailed(DatabaseError):
    """A DDL statement failed; the statements before it stay applied (DDL cannot roll back).

    The message and `to_dict()` list what ran, what failed and what did not run. A second
    run plans again from the target as it now is, so it continues from there.
    """

    def __init__(self, statement: Statement, executed: list[Statement], cause: Exception,
                 not_run: list[Statement] | None = None):
        self.statement = statement
        self.executed = list(executed)
        self.not_run = list(not_run or [])
        self.cause = cause
        total = len(self.executed) + 1 + len(self.not_run)
        lines = [f"Failed to {statement.description} ({cause}) after {len(self.executed)} of {total} "
                 f"statement(s) ran; DDL cannot be rolled back, so those stay applied. Fix the cause and "
                 f"run the sync again: it plans from the target as it is now and continues from there."]
        lines += [f"  ran: {st.description}" for st in self.executed]
        lines.append(f"  failed: {statement.description}")
        lines += [f"  not run: {st.description}" for st in self.not_run]
        super().__init__("\n".join(lines))

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": str(self.cause),
            "ran": [st.to_dict() for st in self.executed],
            "failed": self.statement.to_dict(),
            "not_run": [st.to_dict() for st in self.not_run],
            "next": "run the sync again: it continues from the target's current state",
        }


@dataclass
class SchemaResult:
    plan: SchemaPlan
    executed: list[Statement] = field(default_factory=list)
    dry_run: bool = False
    converged: bool | None = None  # None: not applied (dry run)
    seconds: float = 0.0
    # Dry run: what the preflight found in the way (preflight.Precheck, rows); a run would refuse.
    blocked: list[tuple[Any, int]] = field(default_factory=list)
    # Dry run: blocking ALTERs above the limit a run would refuse (labels), and those the
    # online tool would take.
    blocking: list[str] = field(default_factory=list)
    online: list[str] = field(default_factory=list)

    def would_block(self) -> list[str]:
        """The clauses the target's rows would refuse, labelled as the refusal names them."""
        return [c.label() for c in RowsPreventChange(self.blocked).clauses] if self.blocked else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "converged": self.converged,
            "executed": len(self.executed),
            "seconds": round(self.seconds, 3),
            "refused": [c.label() for c in self.plan.destructive_clauses()] if self.dry_run else [],
            "would_block": self.would_block(),
            "would_refuse_blocking": list(self.blocking),
            "online_tool": list(self.online),
            **self.plan.to_dict(),
        }


def database_pairs(databases: Iterable[DatabaseSpec]) -> list[tuple[str, str]]:
    """Checked (source, target) database names; a plain name means the same on both sides."""
    if isinstance(databases, str) or databases is None:
        raise InvalidInput("databases must be a list of database names")
    pairs = []
    for item in databases:
        if isinstance(item, str):
            src, dst = item, item
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            src, dst = item
        else:
            raise InvalidInput(f"invalid database {item!r}: a name or a (source, target) pair")
        pairs.append((check_database_name(src), check_database_name(dst)))
    if not pairs:
        raise InvalidInput("no database to sync (configure sync.databases or pass --database)")
    if len({d for _, d in pairs}) != len(pairs):
        raise InvalidInput("a target database is named twice")
    return pairs


def plan_schema(
    src_conn: Any,
    dst_conn: Any,
    databases: Sequence[DatabaseSpec],
    renames: Renames | Iterable[str] | None = None,
    definer: str = "omit",
    *,
    probe: bool = True,
    probe_connect: Callable[[], Any] | None = None,
) -> SchemaPlan:
    """Ordered DDL making `dst_conn`'s databases equal to `src_conn`'s. Changes nothing of theirs.

    `definer`: "omit" (triggers, routines and events get the connecting user as definer and
    a definer difference alone is no change) or "keep" (the source's, compared).
    `probe` (default): each ALTER gets the ALGORITHM and LOCK the target accepts, found on an
    empty copy in a scratch schema the probe creates and drops (online.py); `probe_connect`
    opens more target connections, on which each table is probed as soon as both sides of it
    are read, while the plan reads the others (online.ProbeSession)."""
    pairs = database_pairs(databases)
    check_definer_mode(definer)
    hints = renames if isinstance(renames, Renames) else parse_renames(renames)
    sources = {s for s, _ in pairs}
    for db, *_ in list(hints.tables) + list(hints.columns):
        if db not in sources:
            raise InvalidInput(f"rename hint names database {db!r}, which is not being synced")
    try:
        prepare_session(src_conn)
        prepare_session(dst_conn)
        for src, _ in pairs:
            if database_exists(src_conn, src) is None:
                raise InvalidInput(f"database {src!r} does not exist on the source")
    except pymysql.err.MySQLError as exc:
        raise DatabaseError(f"Failed to read the source catalogue: {exc}") from exc
    # With more connections the probe starts on each table as soon as both sides of it are read,
    # while the plan reads the others (online.ProbeSession).
    session = ProbeSession(connect=probe_connect) if probe and probe_connect is not None else None
    early = _EarlyProbe(session, pairs, hints) if session is not None else None

    def on(side: str, database: str) -> Callable[[str, Table], None] | None:
        return early.reader(side, database) if early is not None else None

    try:
        if src_conn is dst_conn:
            source = {s: read_database(src_conn, s, on("source", s)) for s, _ in pairs}
            target = {t: read_database(dst_conn, t, on("target", t)) for _, t in pairs}
        else:
            # Two servers answer at once: reading both sides in parallel halves the wait.
            with ThreadPoolExecutor(max_workers=1) as pool:
                later = pool.submit(lambda: {t: read_database(dst_conn, t, on("target", t))
                                             for _, t in pairs})
                source = {s: read_database(src_conn, s, on("source", s)) for s, _ in pairs}
                target = later.result()
        statements, notes = diff_databases(source, target, pairs, hints, definer=definer,
                                           ahead=early.made if early is not None else None)
        # Read-only: how many rows get the implicit default of each NOT NULL column added without one.
        statements = count_implicit_defaults(dst_conn, statements)
        notes += [n for db in source.values() for n in db.skipped]
        if probe and statements:
            shapes = {(t, name): table_shape(target[t].tables[name]) for t, name in probed_tables(statements)
                      if name in target[t].tables}
            try:
                statements = probe_statements(dst_conn, statements, shapes=shapes, connect=probe_connect,
                                              session=session)
                if session is not None:
                    session.close()  # a scratch schema left behind is a failed probe, as without a session
            except (DatabaseError, pymysql.err.MySQLError) as exc:
                notes.append(f"ALGORITHM/LOCK not probed: {exc}; ALTERs run without explicit clauses and count "
                             "as blocking for the limit")
                statements = unprobed(dst_conn, statements, str(exc))
        if session is not None:
            try:
                session.close()  # (done above, unless the probe failed or the plan has nothing to probe)
            except DatabaseError as exc:
                notes.append(str(exc))
    except BaseException as exc:
        if session is not None:
            try:
                session.close()
            except DatabaseError as drop:
                exc.add_note(str(drop))
        raise
    return SchemaPlan(statements=statements, databases=pairs, source=source, notes=notes,
                      definer=definer)


def table_shape(table: Table) -> str:
    """A table's definition but for its name and what cannot change an ALTER's ALGORITHM/LOCK
    (its comment): tables of one shape given the same ALTER get the same answer."""
    return repr((table.columns, table.indexes, table.foreign_keys, table.checks,
                 [o for o in table.options if o[0] != "COMMENT"], table.partitioning))


class _EarlyProbe:
    """Diffs each table both sides have as soon as both are read (diff.table_alters, which
    diff_databases then takes instead of diffing it again) and hands its ALTERs to the probe,
    which probes the table while the plan reads on. probe_statements keeps those answers only
    when the plan's ALTERs of the table are exactly these (the foreign keys may add one, a rename
    changes them) and probes the others itself."""

    def __init__(self, session: ProbeSession, pairs: list[tuple[str, str]], hints: Renames) -> None:
        self.session = session
        self.pairs = pairs
        self.hints = hints
        # Tables a rename hint names (either name): their ALTERs depend on the rename.
        self.renamed = {(d, t) for d, t in hints.tables} | {(d, t) for (d, _), t in hints.tables.items()}
        self.read: dict[tuple[str, str, str], Table] = {}  # (side, database, table)
        self.made: dict[tuple[str, str], TableAlter] = {}  # for diff_databases (ahead)
        self.lock = threading.Lock()

    def reader(self, side: str, database: str) -> Callable[[str, Table], None]:
        return lambda name, table: self.arrived(side, database, name, table)

    def arrived(self, side: str, database: str, name: str, table: Table) -> None:
        with self.lock:
            self.read[(side, database, name)] = table
            if side == "source":
                both = [(database, t, table, other) for s, t in self.pairs
                        if s == database and (other := self.read.get(("target", t, name))) is not None]
            else:
                both = [(s, database, other, table) for s, t in self.pairs
                        if t == database and (other := self.read.get(("source", s, name))) is not None]
        for sdb, tdb, src, dst in both:
            if src == dst or (sdb, name) in self.renamed:
                continue
            try:
                made = table_alters(src, dst, sdb, tdb, self.hints)
            except Exception:  # noqa: BLE001 - the plan's own diff of the table reports it
                continue
            with self.lock:
                self.made[(tdb, name)] = made
            with contextlib.suppress(Exception):  # early or not, probe_statements probes every ALTER
                self.session.start(made.statements, {(tdb, name): table_shape(dst)})


def diff_against(dst_conn: Any, plan: SchemaPlan) -> SchemaPlan:
    """Re-read the target and diff it against the source snapshot the plan was made from."""
    prepare_session(dst_conn)
    target = {t: read_database(dst_conn, t) for _, t in plan.databases}
    statements, notes = diff_databases(plan.source, target, plan.databases, Renames(),
                                       definer=plan.definer)
    return SchemaPlan(statements=statements, databases=plan.databases, source=plan.source, notes=notes,
                      definer=plan.definer)


def apply_schema(
    dst_conn: Any,
    plan: SchemaPlan,
    *,
    allow_destructive: bool = False,
    dry_run: bool = False,
    verify: bool = True,
    lock_wait_timeout: int = DEFAULT_LOCK_WAIT_TIMEOUT,
    progress: Callable[[int, Statement], None] | None = None,
    blocking_limit: int = DEFAULT_BLOCKING_LIMIT,
    allow_blocking: bool = False,
    online_tool: Any = None,
    remaining: Callable[[], float] | None = None,
    statement_timeout: float | None = None,
) -> SchemaResult:
    """Run the plan's DDL in order, then re-diff: the target must now equal the source.

    Destructive clauses without `allow_destructive` raise DestructiveChangeRefused, naming
    each, before any statement runs; so do ALTERs needing COPY or LOCK=SHARED/EXCLUSIVE on a
    table above `blocking_limit` bytes without `allow_blocking` (BlockingChangeRefused), unless
    `online_tool` (ptosc.OnlineTool) takes them. `remaining()` (the function's seconds left)
    refuses statements that may outlive it (MayOutliveFunction). Every ALTER runs with the
    ALGORITHM and LOCK of the plan; the session waits at most `lock_wait_timeout` s for a lock
    (and, on MariaDB, `statement_timeout` s or the function's remaining time for a statement).
    `dry_run` runs nothing but the preflight's reads and returns the plan with what they found
    in the way (`blocked`, `would_block()`) and the blocking refusals (`blocking`).
    `progress` is called with (index, statement) before each statement runs.
    """
    started = time.monotonic()
    online_ids, blocking = _blocking_split(dst_conn, plan, blocking_limit, allow_blocking, online_tool)
    if dry_run:
        # The preflight is read-only: a dry run reports what a run would refuse, before any DDL.
        result = SchemaResult(plan=plan, dry_run=True, blocking=[c.label() for c in blocking],
                              online=[plan.statements[i].description for i in sorted(online_ids)])
        try:
            preflight(dst_conn, plan)
        except RowsPreventChange as exc:
            result.blocked = exc.blocked
        return result
    refused = plan.destructive_clauses()
    if refused and not allow_destructive:
        raise DestructiveChangeRefused(refused)
    if blocking:
        raise BlockingChangeRefused(blocking, blocking_limit)
    if remaining is not None:
        check_remaining([st for i, st in enumerate(plan.statements) if i not in online_ids], remaining())
    # Read-only: rows that would make a statement fail (or invent values) refuse the run
    # before any DDL, rather than leave it half done.
    preflight(dst_conn, plan)
    executed: list[Statement] = []
    with dst_conn.cursor() as cur:
        try:
            mariadb = server_is_mariadb(dst_conn)
            cur.execute("SELECT @@SESSION.foreign_key_checks")
            fk_checks = cur.fetchone()[0]
            limit = statement_timeout
            if remaining is not None:
                left = remaining() - FUNCTION_MARGIN_SECONDS
                limit = left if limit is None else min(limit, left)
            prepare_ddl_session(cur, lock_wait_timeout, limit, mariadb)
            # Until the foreign keys are re-added, tables are created and altered without
            # reference checks (parents may not exist yet); the added keys are checked.
            cur.execute("SET SESSION foreign_key_checks = 0")
        except pymysql.err.MySQLError as exc:
            raise DatabaseError(f"Failed to prepare the target session: {exc}") from exc
        try:
            for index, st in enumerate(plan.statements):
                if progress is not None:
                    progress(index, st)
                if st.phase in ("add foreign keys", "create views"):
                    cur.execute("SET SESSION foreign_key_checks = 1")
                try:
                    if index in online_ids:
                        online_tool.run(st, dst_conn)  # pt-online-schema-change: its failure leaves the table as it was
                    else:
                        if remaining is not None and estimated_seconds(st) > remaining() - FUNCTION_MARGIN_SECONDS:
                            # Later than planned (slow statements before it): stop here, saying what ran.
                            try:
                                check_remaining([st], remaining())
                            except MayOutliveFunction as exc:
                                raise SchemaApplyFailed(st, executed, exc, plan.statements[index + 1:]) from exc
                        execute_statement(cur, st)  # with its own sql_mode if it has one
                except pymysql.err.MySQLError as exc:
                    raise SchemaApplyFailed(st, executed, _explained(cur, st, exc, lock_wait_timeout),
                                            plan.statements[index + 1:]) from exc
                except SchemaApplyFailed:
                    raise
                except DatabaseError as exc:  # the online tool failed
                    raise SchemaApplyFailed(st, executed, exc, plan.statements[index + 1:]) from exc
                executed.append(st)
        finally:
            # If the connection is gone the original error matters more than this one.
            with contextlib.suppress(pymysql.err.MySQLError):
                cur.execute("SET SESSION foreign_key_checks = %s", (fk_checks,))
    result = SchemaResult(plan=plan, executed=executed, seconds=time.monotonic() - started)
    if verify:
        left_over = diff_against(dst_conn, plan)
        if left_over.statements or any("does not handle" in n for n in left_over.notes):
            result.converged = False
            raise SchemaNotConverged(left_over)
        result.converged = True
    result.seconds = time.monotonic() - started
    return result


def _blocking_split(conn: Any, plan: SchemaPlan, limit: int, allow_blocking: bool,
                    online_tool: Any) -> tuple[set[int], list[Any]]:
    """(statements the online tool takes, refusals) among the blocking ALTERs above the limit."""
    if allow_blocking:
        return set(), []
    taken, refused = set(), []
    for i, st in enumerate(plan.statements):
        if not is_blocking_over(st, limit):
            continue
        why = online_tool.refusal(st, conn) if online_tool is not None else None
        if online_tool is not None and why is None:
            taken.add(i)
        else:
            refused.append(blocking_clause(st, limit) if why is None else
                           blocking_clause(st, limit, f"{blocking_clause(st, limit).reasons[0]}; "
                                                      f"{online_tool.name} cannot take it: {why}"))
    return taken, refused


def _explained(cur: Any, st: Statement, exc: pymysql.err.MySQLError, lock_wait_timeout: int) -> Exception:
    """The server's error, or what it means for the run when it is a lock wait, a statement
    timeout or a refusal of the plan's ALGORITHM/LOCK."""
    code = exc.args[0] if exc.args else None
    if code == LOCK_WAIT_TIMEOUT:
        return LockWaitTimedOut(lock_wait_message(cur, st, exc, lock_wait_timeout))
    if code == STATEMENT_TIMEOUT:
        return LockWaitTimedOut(f"the server stopped the statement at max_statement_time ({exc.args[-1]}); "
                                "it was rolled back. Run it with --direct from a host, or with the online tool")
    if code in REFUSED and st.online is not None and st.online.clauses:
        return ClausesRefused(f"the target no longer accepts {st.online.clauses} for this ALTER ({exc.args[-1]}); "
                              "the table changed since the plan was made. The statement did not run: plan again")
    return exc


def sync_schema(
    src_conn: Any,
    dst_conn: Any,
    databases: Sequence[DatabaseSpec],
    *,
    renames: Renames | Iterable[str] | None = None,
    allow_destructive: bool = False,
    dry_run: bool = False,
    definer: str = "omit",
) -> SchemaResult:
    """plan_schema then apply_schema."""
    started = time.monotonic()
    plan = plan_schema(src_conn, dst_conn, databases, renames, definer=definer)
    result = apply_schema(dst_conn, plan, allow_destructive=allow_destructive, dry_run=dry_run)
    result.seconds = time.monotonic() - started
    return result
