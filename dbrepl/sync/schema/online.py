"""How each ALTER of a plan will lock the target, in the target server's own words.

For every ALTER TABLE of a plan the target server is asked which ALGORITHM (INSTANT, then
NOCOPY on MariaDB, INPLACE, COPY) and LOCK (NONE, SHARED, EXCLUSIVE) it accepts, least
blocking first, by running the ALTER with those clauses against an empty copy of the table
(`CREATE TABLE <scratch>.<tN> LIKE <db>.<t>`) in a scratch schema the probe creates under a
fresh random name (`dbrepl_probe_<hex>`, never an existing schema) and drops at the end. The
server refuses an unsupported combination at once (errors 1845/1846, usually naming the
next one to try, which the probe follows); the accepted one runs on the empty copy, which
keeps the copy in step for the table's next ALTER of the plan.

Not probed, and why:
- a table the plan creates: it is empty when its later ALTERs run (`new table`);
- foreign key statements: `CREATE TABLE ... LIKE` copies no foreign keys, and adding one to
  the copy would reference (and lock) the user's parent table. Their answer is a rule from the
  manuals, checked against MariaDB 10.11: DROP FOREIGN KEY is metadata only (MariaDB INSTANT,
  MySQL 8.0 INPLACE, LOCK=NONE); ADD FOREIGN KEY runs with foreign_key_checks=1 (the keys
  are validated), which both servers allow only with ALGORITHM=COPY, LOCK=SHARED;
- a statement the copy cannot take (another error than a refusal): `unknown`, run without
  explicit clauses and counted as blocking for the limit.

Each answer carries the table's size (TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH from
information_schema.TABLES; InnoDB estimates) and a duration class: `instant` (metadata only),
`proportional` (an online rebuild or index build: time grows with the table, writes go on),
`blocking` (COPY or LOCK=SHARED/EXCLUSIVE: writes wait for the whole copy).

Cost: one CREATE ... LIKE and one DROP TABLE per altered table, one refused attempt or two per
ALTER and the accepted one (on an empty table, or stopped by a held lock), one CREATE and one
DROP DATABASE. Tables of the same definition given the same ALTER clauses get the same answer,
so they are probed once. With a connection factory the work runs in a ProbeSession while the
plan is still being made: plan_schema hands it each table as soon as both sides of it are
read, and the session probes it on connections of its own while the plan reads on.
"""

from __future__ import annotations

import contextlib
import queue
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql

from dbrepl.sync.contract import DEFAULT_BLOCKING_LIMIT, parse_size  # noqa: F401 - re-exported
from dbrepl.sync.errors import DatabaseError
from dbrepl.sync.ident import qualified, quote

ALGORITHMS = ("INSTANT", "NOCOPY", "INPLACE", "COPY")
LOCKS = ("NONE", "SHARED", "EXCLUSIVE")
DURATIONS = {"instant": "instant", "proportional": "proportional to size",
             "blocking": "blocking for the copy", "new table": "instant (table created by this run)",
             "unknown": "unknown (not probed)"}
PROBE_WORKERS = 4
PROBE_LOCK_WAIT = 10  # seconds a copy waits for its table's metadata lock

_NAME = r"`(?:[^`]|``)+`"
ALTER_RE = re.compile(rf"^ALTER TABLE ({_NAME})\.({_NAME}) ", re.DOTALL)
_CREATE_RE = re.compile(rf"^CREATE TABLE ({_NAME})\.({_NAME})")
_RENAME_RE = re.compile(rf"^RENAME TABLE ({_NAME})\.({_NAME}) TO ({_NAME})\.({_NAME})")
_TRY_ALGORITHM = re.compile(r"Try ALGORITHM=(\w+)")
_TRY_LOCK = re.compile(r"Try LOCK=(\w+)")
REFUSED = (1845, 1846)  # ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON)
LOCK_WAIT_TIMEOUT = 1205


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`")


@dataclass(frozen=True)
class OnlineDDL:
    """What one ALTER costs the target: the clauses the server accepts, the table's size, and
    how long the table is held (`duration`: instant, proportional, blocking, new table, unknown)."""

    algorithm: str | None
    lock: str | None
    duration: str
    table: str = ""  # `db`.`t` as the ALTER names it
    rows: int | None = None
    bytes: int | None = None
    how: str = "probed"  # probed, rule (...), new table, not probed (...)

    @property
    def blocking(self) -> bool:
        """COPY or a lock that stops writes; an unprobed statement counts as one."""
        return self.duration in ("blocking", "unknown")

    @property
    def clauses(self) -> str:
        return f"ALGORITHM={self.algorithm}, LOCK={self.lock}" if self.algorithm and self.lock else ""

    def label(self) -> str:
        size = "" if self.bytes is None else f"; {self.rows or 0} rows, {format_size(self.bytes)}"
        what = self.clauses or self.how
        return f"[{what}; {DURATIONS.get(self.duration, self.duration)}{size}]"

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "lock": self.lock, "duration": self.duration,
                "rows": self.rows, "bytes": self.bytes, "how": self.how}


def duration_of(algorithm: str, lock: str) -> str:
    if algorithm == "COPY" or lock in ("SHARED", "EXCLUSIVE"):
        return "blocking"
    return "instant" if algorithm == "INSTANT" else "proportional"


def with_clauses(sql: str, online: OnlineDDL | None) -> str:
    """The ALTER with its explicit ALGORITHM and LOCK (before the other clauses; a partition
    clause follows them without a comma, as the grammar wants)."""
    if online is None or not online.clauses:
        return sql
    m = ALTER_RE.match(sql)
    if m is None:
        return sql
    rest = sql[m.end():]
    sep = " " if re.match(r"(PARTITION\s+BY|REMOVE\s+PARTITIONING)\b", rest, re.IGNORECASE) else ", "
    return f"{sql[:m.end()]}{online.clauses}{sep}{rest}"


def format_size(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# --------------------------------------------------------------------------- the probe

Answer = tuple[str, str] | str  # (algorithm, lock) or "not probed (why)"


@dataclass
class _Job:
    """The ALTERs of one table, in plan order, probed on one empty copy."""

    database: str
    table: str  # its name on the target before the run (renames followed back)
    indexes: list[int]  # positions in the plan
    sqls: list[str]  # the ALTERs with the table name cut off (the clauses)
    answers: list[Answer] | None = None


def _plan_jobs(statements: Sequence[Any], mariadb: bool) -> tuple[
        dict[tuple[str, str], _Job], dict[int, OnlineDDL], dict[tuple[str, str], tuple[str, str]]]:
    """The tables to probe with their ALTERs, the answers given without a probe (new tables,
    foreign keys), and the plan's renames (new name -> old)."""
    created: set[tuple[str, str]] = set()
    renamed: dict[tuple[str, str], tuple[str, str]] = {}  # new -> old
    jobs: dict[tuple[str, str], _Job] = {}
    answers: dict[int, OnlineDDL] = {}
    for i, st in enumerate(statements):
        if (m := _CREATE_RE.match(st.sql)) and st.phase == "create tables":
            created.add((_unquote(m.group(1)), _unquote(m.group(2))))
        elif (m := _RENAME_RE.match(st.sql)):
            old = (_unquote(m.group(1)), _unquote(m.group(2)))
            renamed[(_unquote(m.group(3)), _unquote(m.group(4)))] = renamed.pop(old, old)
        elif (m := ALTER_RE.match(st.sql)):
            key = (_unquote(m.group(1)), _unquote(m.group(2)))
            name = qualified(*key)
            if key in created:
                answers[i] = OnlineDDL(None, None, "new table", name, 0, 0, "new table")
            elif st.phase == "drop foreign keys":
                alg = "INSTANT" if mariadb else "INPLACE"
                answers[i] = OnlineDDL(alg, "NONE", duration_of(alg, "NONE"), name,
                                       how="rule (foreign keys are not copied by CREATE TABLE ... LIKE)")
            elif st.phase == "add foreign keys":
                answers[i] = OnlineDDL("COPY", "SHARED", "blocking", name,
                                       how="rule (a key added with foreign_key_checks=1 needs COPY)")
            else:
                job = jobs.setdefault(key, _Job(*renamed.get(key, key), [], []))
                job.indexes.append(i)
                job.sqls.append(st.sql[m.end():])
    return jobs, answers, renamed


def probed_tables(statements: Sequence[Any]) -> set[tuple[str, str]]:
    """The target's tables (database, name before the run) whose ALTERs the probe tries."""
    return {(job.database, job.table) for job in _plan_jobs(statements, True)[0].values()}


def probe_statements(conn: Any, statements: Sequence[Any], *, mariadb: bool | None = None,
                     shapes: dict[tuple[str, str], str] | None = None,
                     connect: Callable[[], Any] | None = None,
                     session: ProbeSession | None = None) -> list[Any]:
    """The statements with `online` set on every ALTER TABLE (see the module's docstring).

    `shapes`: (database, table) -> the target table's definition without its name; tables of
    one shape given the same clauses are probed once. `connect`: opens another connection to
    the target, for probing a few tables at once. `session`: a ProbeSession already probing
    (plan_schema starts one before the plan is made); its answers for a table and exactly
    these ALTERs are taken, the other tables are probed in it, and the caller closes it.
    Raises DatabaseError when the scratch schema cannot be made (then nothing was created)."""
    statements = list(statements)
    if mariadb is None:
        mariadb = session.mariadb if session is not None and session.mariadb is not None else server_is_mariadb(conn)
    jobs, answers, renamed = _plan_jobs(statements, mariadb)
    sizes = table_sizes(conn, {d for d, _ in jobs} | {_split(a.table)[0] for a in answers.values()})
    if jobs:
        own = session is None
        probe = ProbeSession(conn, connect, mariadb=mariadb) if session is None else session
        try:
            tasks = [(job, probe.submit(job.database, job.table, job.sqls,
                                        (shapes or {}).get((job.database, job.table)))) for job in jobs.values()]
            for job, task in tasks:
                job.answers = probe.answers(task)
        finally:
            if own:
                probe.close()
    for job in jobs.values():
        assert job.answers is not None
        for i, answer in zip(job.indexes, job.answers, strict=True):
            m = ALTER_RE.match(statements[i].sql)
            assert m is not None
            name = f"{m.group(1)}.{m.group(2)}"  # as the ALTER names it (after a rename)
            if isinstance(answer, tuple):
                answers[i] = OnlineDDL(answer[0], answer[1], duration_of(*answer), name)
            else:
                answers[i] = OnlineDDL(None, None, "unknown", name, how=answer)
    out = []
    for i, st in enumerate(statements):
        online = answers.get(i)
        if online is not None and online.how != "new table":
            size = sizes.get(_split(online.table))
            if size is None and (jobs_key := _split(online.table)) in renamed:
                size = sizes.get(renamed[jobs_key])
            if size is not None:
                online = replace(online, rows=size[0], bytes=size[1])
        out.append(replace(st, online=online) if online is not None else st)
    return out


def unprobed(conn: Any, statements: Sequence[Any], why: str) -> list[Any]:
    """The statements with every ALTER marked `unknown` (counted as blocking), with its table's
    size where information_schema answers: what the plan carries when the probe could not run."""
    alters = {i: ALTER_RE.match(st.sql) for i, st in enumerate(statements)}
    names = {i: (_unquote(m.group(1)), _unquote(m.group(2))) for i, m in alters.items() if m is not None}
    try:
        sizes = table_sizes(conn, {d for d, _ in names.values()})
    except pymysql.err.MySQLError:
        sizes = {}
    out = []
    for i, st in enumerate(statements):
        if i in names:
            rows, size = sizes.get(names[i], (None, None))
            st = replace(st, online=OnlineDDL(None, None, "unknown", qualified(*names[i]), rows, size,
                                              f"not probed ({why})"))
        out.append(st)
    return out


def _split(name: str) -> tuple[str, str]:
    m = re.fullmatch(rf"({_NAME})\.({_NAME})", name)
    assert m is not None
    return _unquote(m.group(1)), _unquote(m.group(2))


def server_is_mariadb(conn: Any) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        return "mariadb" in str(cur.fetchone()[0]).lower()


def table_sizes(conn: Any, databases: set[str]) -> dict[tuple[str, str], tuple[int, int]]:
    """(database, table) -> (rows, bytes of data and indexes), as information_schema estimates."""
    if not databases:
        return {}
    marks = ", ".join(["%s"] * len(databases))
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0), "
                    "COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) FROM information_schema.TABLES "
                    f"WHERE TABLE_SCHEMA IN ({marks}) AND TABLE_TYPE = 'BASE TABLE'", sorted(databases))
        return {(d, t): (int(r), int(b)) for d, t, r, b in cur.fetchall()}


@dataclass(eq=False)
class _Task:
    """One table's ALTERs as the session probes them, on its copy `t<n>`."""

    database: str
    table: str
    sqls: list[str]
    n: int
    answers: list[Answer] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    leader: _Task | None = None  # a table of the same shape given the same ALTERs: its answers


class ProbeSession:
    """The probe's scratch schema and connections: tables are handed to it as soon as their
    ALTERs are known and probed while the caller goes on.

    `submit` queues one table's ALTERs; `answers` waits for them; `close` drops the scratch
    schema (the caller closes the session on every path). Each table is probed whole on one
    connection: its copy made (CREATE TABLE ... LIKE), its ALTERs tried, the copy dropped.

    With `connect`, up to `workers` connections of the session's own (each opened by its
    thread, with PROBE_LOCK_WAIT) probe a table each, from the first `submit` on, so the work
    overlaps the caller's (plan_schema: the reading of the catalogues), and on MariaDB a table
    with one ALTER is probed held (a second connection of the thread holds its copy, see
    _probe). The scratch schema is made by the first connection, after the first
    `submit`: a session given nothing creates nothing. Without `connect`, the tables are probed
    on `conn` (the caller's connection) when their answers are asked for.

    Submitting the same table with the same ALTERs again gives the same task; a table whose
    `shape` (its definition without its name) and ALTERs match a table already submitted takes
    that table's answers."""

    def __init__(self, conn: Any = None, connect: Callable[[], Any] | None = None, *,
                 mariadb: bool | None = None, workers: int | None = None) -> None:
        if conn is None and connect is None:
            raise ValueError("a ProbeSession needs a connection or a way to open them")
        self._conn, self._connect = conn, connect
        self._workers = max(1, PROBE_WORKERS if workers is None else workers)
        self.mariadb = mariadb
        self.scratch: str | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()  # the scratch schema is made, or could not be
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._tasks: dict[tuple[str, str, tuple[str, ...]], _Task] = {}
        self._leaders: dict[tuple[str, tuple[str, ...]], _Task] = {}
        self._inline: list[_Task] = []  # without connect: to run on conn
        self._opened: list[Any] = []  # the session's own connections
        self._owner: Any = None  # the connection that made the scratch schema
        self._error: BaseException | None = None  # the session cannot probe (no connection, no schema)
        self._saved_wait: Any = None
        self._closed = False  # no more submits
        self._finished = False  # closed all the way: threads joined, scratch schema dropped
        self._opening = 0  # worker threads opening their connection
        self._free = 0  # worker threads starting or waiting for a table

    def submit(self, database: str, table: str, sqls: Sequence[str], shape: str | None = None) -> _Task:
        key = (database, table, tuple(sqls))
        with self._lock:
            if self._closed:
                raise DatabaseError("the ALGORITHM/LOCK probe was already closed")
            task = self._tasks.get(key)
            if task is not None:
                return task
            task = self._tasks[key] = _Task(database, table, list(sqls), len(self._tasks))
            if shape is not None:
                task.leader = self._leaders.setdefault((shape, key[2]), task)
                if task.leader is not task:
                    return task
                task.leader = None
            if self._connect is None:
                self._inline.append(task)
            else:
                self._queue.put(task)
                # Another connection only when the tables waiting outnumber the connections free
                # (or still opening): tables handed over one by one while the plan reads are
                # probed on one or two.
                if self._queue.qsize() > self._free and len(self._threads) < self._workers:
                    self._free += 1
                    thread = threading.Thread(target=self._work, name="dbrepl-probe", daemon=True)
                    self._threads.append(thread)
                    thread.start()
        return task

    def start(self, statements: Sequence[Any], shapes: dict[tuple[str, str], str] | None = None) -> None:
        """Submits the tables the probe would try for these statements (a plan's, or a guess of
        some of them), with their shapes ((database, table) -> shape)."""
        for job in _plan_jobs(statements, True)[0].values():
            self.submit(job.database, job.table, job.sqls, (shapes or {}).get((job.database, job.table)))

    def answers(self, task: _Task) -> list[Answer]:
        """The task's answers, once probed; raises what stopped the probe."""
        if self._connect is None:
            self._run_inline()
        lead = task.leader or task
        lead.done.wait()
        if lead.error is not None:
            raise lead.error
        assert lead.answers is not None
        return list(lead.answers)

    def close(self) -> None:
        """Stops the session (tables not yet probed are given up), closes its connections and
        drops the scratch schema; raises DatabaseError when it could not be dropped. Closing
        again after that does nothing; a close that was interrupted (Ctrl-C while it waited for
        a worker) or could not drop the schema is done again."""
        with self._lock:
            if self._finished:
                return
            self._closed = True
            threads = list(self._threads)
        given_up = DatabaseError("the ALGORITHM/LOCK probe was closed before this table was probed")
        while True:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task.error = given_up
                task.done.set()
        for task in self._inline:
            task.error = given_up
            task.done.set()
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
        owner = self._owner
        for c in self._opened:
            if c is not owner:
                with contextlib.suppress(Exception):
                    c.close()
        try:
            if self.scratch is not None:
                self._drop_scratch(owner)
            self._finished = True
        finally:
            if owner is not None and owner is not self._conn:
                with contextlib.suppress(Exception):
                    owner.close()
            if self._saved_wait is not None:
                with self._conn.cursor() as cur, contextlib.suppress(pymysql.err.MySQLError):
                    cur.execute("SET SESSION lock_wait_timeout = %s", (self._saved_wait,))

    # -- inside

    def _drop_scratch(self, conn: Any) -> None:
        """On the connection that made it, or on a new one when that one fails (lost)."""
        assert self.scratch is not None
        sql = f"DROP DATABASE {quote(self.scratch)}"
        failed: Exception
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            return
        except pymysql.err.MySQLError as exc:
            failed = exc
        if self._connect is not None:
            try:
                fresh = self._connect()
                try:
                    with fresh.cursor() as cur:
                        cur.execute("SET SESSION lock_wait_timeout = %s", (PROBE_LOCK_WAIT,))
                        cur.execute(sql)
                    return
                finally:
                    with contextlib.suppress(Exception):
                        fresh.close()
            except (pymysql.err.MySQLError, DatabaseError) as exc:
                failed = exc
        raise DatabaseError(f"Failed to drop the probe's scratch schema {self.scratch} ({failed}); "
                            "drop it by hand") from failed

    def _start(self, conn: Any) -> None:
        """On the first connection: the server's kind and the scratch schema."""
        if self.mariadb is None:
            self.mariadb = server_is_mariadb(conn)
        self.scratch = _create_scratch(conn)

    def _run_inline(self) -> None:
        with self._lock:
            tasks, self._inline = self._inline, []
        if not tasks:
            return
        conn = self._conn
        try:
            if self._owner is None:
                # CREATE TABLE ... LIKE takes a shared metadata lock on the user's table: behind a
                # DDL already waiting there, the probe gives up after PROBE_LOCK_WAIT s.
                with conn.cursor() as cur:
                    cur.execute("SELECT @@SESSION.lock_wait_timeout")
                    self._saved_wait = cur.fetchone()[0]
                    cur.execute("SET SESSION lock_wait_timeout = %s", (PROBE_LOCK_WAIT,))
                self._owner = conn
                self._start(conn)
            for task in tasks:
                self._probe(conn, None, task)
                task.done.set()
        except BaseException as exc:
            for task in tasks:
                if not task.done.is_set():
                    task.error = exc
                    task.done.set()
            raise

    def _work(self) -> None:
        """A worker thread: its connection, then tables until close() says stop."""
        conn = None
        holder: list[Any] = []  # its second connection, opened for the first held copy
        with self._lock:
            self._opening += 1
        try:
            try:
                conn = self._open()
            finally:
                with self._lock:
                    self._opening -= 1
            with self._lock:
                first = self._owner is None
                if first:
                    self._owner = conn
            if first:
                self._start(conn)
                self._ready.set()
        except BaseException as exc:
            with self._lock:
                # A connection refused while another worker probes (or may: it is still
                # opening) leaves the tables to it (max_connections, max_user_connections);
                # the session fails only when no connection could be had at all.
                others = conn is None and (self._owner is not None or self._opening > 0)
                if others:
                    self._free -= 1
                else:
                    self._error = self._error or exc
            if others:
                return
            self._ready.set()
        self._ready.wait()
        while (task := self._next()) is not None:
            try:
                if self._error is not None or conn is None or self.scratch is None:
                    raise self._error or DatabaseError("the probe's scratch schema could not be made")
                self._probe(conn, holder, task)
            except BaseException as exc:
                task.error = exc
            finally:
                with self._lock:
                    self._free += 1
                task.done.set()

    def _holder(self, holder: list[Any]) -> bool:
        """The worker's second connection, opened once; without it (refused) tables are
        probed on the worker's connection alone, each accepted ALTER run on the empty copy."""
        if not holder:
            try:
                conn = self._open()
                conn.autocommit(False)  # its DELETE opens a transaction, which rollback() ends
            except (pymysql.err.MySQLError, DatabaseError):
                conn = None
            holder.append(conn)
        return holder[0] is not None

    def _next(self) -> _Task | None:
        task = self._queue.get()
        with self._lock:
            self._free -= 1
        return task

    def _open(self) -> Any:
        assert self._connect is not None
        conn = self._connect()
        with self._lock:
            self._opened.append(conn)
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %s", (PROBE_LOCK_WAIT,))
        return conn

    def _probe(self, conn: Any, holder: list[Any] | None, task: _Task) -> None:
        """One table: its copy, its ALTERs, the copy dropped (DROP DATABASE takes what is left)."""
        assert self.scratch is not None
        _copy_table(conn, self.scratch, task.n, task)
        if task.answers is not None:
            return  # no copy
        try:
            # A table with one ALTER is probed "held": another session keeps a write lock's worth
            # of metadata lock on its copy (DELETE ... WHERE 1 = 0 in an open transaction), and
            # the ALTER runs with NOWAIT (MariaDB). A refused combination fails at once, as
            # always; an accepted one passes every check and then cannot take the table (1205),
            # so the copy is never rebuilt. A table with several ALTERs runs each accepted one on
            # its copy, which keeps the copy in step for the next.
            if holder is not None and self.mariadb and len(task.sqls) == 1 and self._holder(holder):
                with holder[0].cursor() as cur:
                    try:
                        cur.execute(f"DELETE FROM {quote(self.scratch)}.`t{task.n}` WHERE 1 = 0")
                        _probe_table(conn, self.scratch, task.n, task, True, True)
                    finally:
                        holder[0].rollback()
            else:
                _probe_table(conn, self.scratch, task.n, task, bool(self.mariadb), False)
        finally:
            _drop_copy(conn, self.scratch, task.n)


def _create_scratch(conn: Any) -> str:
    """A new schema under a name no one uses: CREATE DATABASE without IF NOT EXISTS fails
    rather than adopt an existing schema."""
    with conn.cursor() as cur:
        for _ in range(5):
            name = f"dbrepl_probe_{secrets.token_hex(6)}"
            try:
                cur.execute(f"CREATE DATABASE {quote(name)}")
                return name
            except pymysql.err.MySQLError as exc:
                if exc.args and exc.args[0] == 1007:  # exists: another name
                    continue
                raise DatabaseError(f"Failed to create the scratch schema for the ALGORITHM/LOCK probe "
                                    f"({exc}); the sync account needs CREATE and DROP on it") from exc
    raise DatabaseError("Failed to find a free name for the probe's scratch schema")


def _copy_table(conn: Any, scratch: str, n: int, job: _Task) -> None:
    with conn.cursor() as cur:
        try:
            cur.execute(f"CREATE TABLE {quote(scratch)}.`t{n}` LIKE {qualified(job.database, job.table)}")
        except pymysql.err.MySQLError as exc:
            job.answers = [f"not probed (the copy could not be made: {exc.args[-1]})"] * len(job.sqls)


def _drop_copy(conn: Any, scratch: str, n: int) -> None:
    with conn.cursor() as cur, contextlib.suppress(pymysql.err.MySQLError):
        cur.execute(f"DROP TABLE IF EXISTS {quote(scratch)}.`t{n}`")  # DROP DATABASE takes what is left


def _probe_table(conn: Any, scratch: str, n: int, job: _Task, mariadb: bool, held: bool) -> None:
    if job.answers is not None:
        return  # no copy
    copy = f"{quote(scratch)}.`t{n}`"
    answers: list[Answer] = []
    with conn.cursor() as cur:
        for rest in job.sqls:
            answer = _probe_alter(cur, copy, rest, mariadb, held)
            answers.append(answer)
            if isinstance(answer, str):
                # The copy no longer follows the plan: the table's later ALTERs are not probed.
                answers += ["not probed (an earlier ALTER of the table could not be probed)"] * (
                    len(job.sqls) - len(answers))
                break
    job.answers = answers


def _probe_alter(cur: Any, copy: str, rest: str, mariadb: bool, held: bool = False) -> tuple[str, str] | str:
    algorithms = [a for a in ALGORITHMS if mariadb or a != "NOCOPY"]
    a = lk = 0
    sep = " " if re.match(r"(PARTITION\s+BY|REMOVE\s+PARTITIONING)\b", rest, re.IGNORECASE) else ", "
    wait = " NOWAIT" if held else ""
    while a < len(algorithms) and lk < len(LOCKS):
        # MySQL 8.0 refuses INSTANT with any LOCK but DEFAULT (an instant change takes no lock).
        lock = "DEFAULT" if algorithms[a] == "INSTANT" and not mariadb else LOCKS[lk]
        try:
            cur.execute(f"ALTER TABLE {copy}{wait} ALGORITHM={algorithms[a]}, LOCK={lock}{sep}{rest}")
            return algorithms[a], lock
        except pymysql.err.MySQLError as exc:
            code, message = (exc.args + ("",))[:2] if exc.args else (0, "")
            if held and code == LOCK_WAIT_TIMEOUT:
                return algorithms[a], lock  # accepted: only the held lock stopped it
            if code not in REFUSED:
                return f"not probed (the empty copy refused it: {code} {message})"
            hint_a, hint_l = _TRY_ALGORITHM.search(message), _TRY_LOCK.search(message)
            if hint_l and hint_l.group(1).upper() in LOCKS and message.startswith("LOCK="):
                lk = max(lk + 1, LOCKS.index(hint_l.group(1).upper()))
            elif hint_a and hint_a.group(1).upper() in algorithms:
                a = max(a + 1, algorithms.index(hint_a.group(1).upper()))
            elif message.startswith("LOCK="):
                lk += 1
            elif a + 1 < len(algorithms):
                a += 1
            else:
                lk += 1
    return "not probed (no ALGORITHM/LOCK combination accepted)"


# --------------------------------------------------------------------------- migration scripts

@dataclass(frozen=True)
class _ScriptAlter:
    sql: str
    phase: str = "alter tables"
    online: OnlineDDL | None = None


_PART = r"(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_SCRIPT_ALTER = re.compile(rf"ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?{_PART}"
                           rf"(?:\s*\.\s*{_PART})?\s+(.+)$", re.IGNORECASE | re.DOTALL)


def _as_qualified_alter(statement: str, database: str) -> str | None:
    """`ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] [db.]t rest` as `ALTER TABLE `db`.`t` rest`, or None."""
    from dbrepl.sync.splitter import tokenize

    tokens = list(tokenize(statement))
    start = next((i for i, t in enumerate(tokens) if t.kind not in ("space", "comment")), len(tokens))
    m = _SCRIPT_ALTER.match("".join(t.text for t in tokens[start:]).strip())
    if m is None:
        return None

    def name(part: str) -> str:
        return _unquote(part) if part.startswith("`") else part

    db, table = (database, name(m.group(1))) if m.group(2) is None else (name(m.group(1)), name(m.group(2)))
    return f"ALTER TABLE {qualified(db, table)} {m.group(3).strip()}"


def classify_script(conn: Any, database: str, statements: Sequence[str],
                    connect: Callable[[], Any] | None = None) -> list[dict[str, Any]]:
    """Each ALTER TABLE of a migration script (run in `database`) probed as a schema plan's
    ALTERs are: [{"statement": 1-based index, "sql", **OnlineDDL.to_dict(), "online"}]."""
    found = [(n, sql) for n, s in enumerate(statements, 1) if (sql := _as_qualified_alter(s, database))]
    probed = probe_statements(conn, [_ScriptAlter(sql) for _, sql in found], connect=connect)
    return [{"statement": n, "sql": sql, **st.online.to_dict(), "online": st.online.label()}
            for (n, sql), st in zip(found, probed, strict=True) if st.online is not None]
