"""Versioned migration scripts applied exactly once, in order, with a history table.

Scripts are named `V<version>__<words>.sql` (version: digits with `.` or `_` between parts,
e.g. V1, V1.2, V2_1). Each target database keeps `dbrepl_schema_history`; a script whose
content changed after it was applied stops the run before anything runs, and a failing
script is recorded as failed and stops the run.

Atomicity (as Flyway does): a script none of whose statements commits implicitly runs in ONE
transaction together with its history row, so a failure anywhere leaves none of its changes
(the failure is recorded after the rollback). A script with a statement that commits
implicitly (DDL, GRANT, LOCK TABLES, START TRANSACTION, ...; see `statement_commits`) is
non-atomic: it is flagged before it runs, runs statement by statement with autocommit, and a
failure records which statement failed and how many had run (and stayed applied).

The checksum is SHA-256 of the script's statements, each normalised by the splitter
(comments dropped, whitespace collapsed outside quotes): re-indenting or commenting an
applied script is not a change, altering anything the server would run is.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pymysql

from dbrepl.sync.errors import DatabaseError, InvalidInput, SyncError
from dbrepl.sync.ident import qualified
from dbrepl.sync.schema.introspect import check_database_name
from dbrepl.sync.schema.model import HISTORY_TABLE
from dbrepl.sync.splitter import normalise_statement, split_statements, tokenize

CHECKSUM_ALGORITHM = "sha256-statements-v1"
DEFAULT_PREFIX = "migrations/"
_NAME = re.compile(r"^V(\d+(?:[._]\d+)*)__([A-Za-z0-9][A-Za-z0-9_-]{0,150})\.sql$")


class MigrationChecksumChanged(SyncError):
    """An applied script's content changed; nothing was run."""


class MigrationOrderError(SyncError):
    """A pending script is older than one already applied, or a failure blocks the run."""


class MigrationHistoryConflict(SyncError):
    """A table named like the history table exists but is not dbrepl's history; nothing was run."""


class MigrationFailed(DatabaseError):
    """A script failed; it is recorded as failed and later scripts were not applied."""

    def __init__(self, message: str, result: MigrationResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Script:
    name: str
    content: str

    @property
    def version(self) -> tuple[int, ...]:
        return parse_script_name(self.name)[0]

    @property
    def version_text(self) -> str:
        return ".".join(str(p) for p in self.version)

    @property
    def description(self) -> str:
        return parse_script_name(self.name)[1]

    def statements(self) -> list[str]:
        return split_statements(self.content.lstrip("\ufeff"))

    @property
    def checksum(self) -> str:
        normalised = "\n;\n".join(normalise_statement(s) for s in self.statements())
        return hashlib.sha256(normalised.encode("utf-8")).hexdigest()

    def first_commit(self) -> Commit | None:
        """The first statement that commits (or may commit) implicitly; None: the script is atomic."""
        return first_commit(self.statements())

    def atomicity_warning(self) -> str | None:
        """`V2__x.sql is not atomic: statement 1 (CREATE TABLE ...) commits implicitly; ...`."""
        c = self.first_commit()
        if c is None:
            return None
        return (f"{self.name} is not atomic: statement {c.number} ({c.excerpt}) {c.reason}; "
                "a failure part-way leaves earlier statements applied")


def parse_script_name(name: str) -> tuple[tuple[int, ...], str]:
    """(version parts, description) of `V<version>__<words>.sql`, else InvalidInput."""
    base = name.rsplit("/", 1)[-1]
    m = _NAME.match(base) if isinstance(base, str) else None
    if not m:
        raise InvalidInput(
            f"migration script name {name!r} must look like V<version>__<words>.sql "
            "(e.g. V3__add_orders_index.sql)")
    parts = [int(p) for p in re.split(r"[._]", m.group(1))]
    while len(parts) > 1 and parts[-1] == 0:  # V1.0 is V1
        parts.pop()
    return tuple(parts), m.group(2).replace("_", " ")


# ---- which statements commit implicitly -------------------------------------------------
#
# MySQL 8.0 "Statements That Cause an Implicit Commit" (refman 15.3.3) and MariaDB's "SQL
# statements That Cause an Implicit Commit"; decisions in docs/schema-sync.md (Migrations).
# Only statements known to run inside a transaction without ending it are transactional;
# anything else (unknown, ambiguous, a stored program's body) counts as committing: the
# classifier may only err on the safe side.

COMMITS = "commits implicitly"
ENDS = "ends the transaction"
MAY_COMMIT_CALL = "may commit (a called procedure's body is not checked)"
MAY_COMMIT_BLOCK = "may commit (a compound statement's body is not checked)"
NO_TRANSACTION = "cannot run inside a transaction"
UNKNOWN = "is not known to be transactional"

# Read or change rows; run inside the transaction and are rolled back with it (InnoDB).
# LOAD DATA/XML commits only for NDB tables (MySQL 8.0); Aurora and MariaDB use InnoDB.
_TRANSACTIONAL = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "WITH", "VALUES", "TABLE", "DO",
    "EXPLAIN", "DESCRIBE", "DESC", "SHOW", "HELP", "SAVEPOINT", "RELEASE", "USE",
})
# Listed by MySQL 8.0 and/or MariaDB as committing implicitly (DDL, grant tables,
# transaction control and locking, administration, replication), plus statements of the
# same families neither lists but that change server state outside a transaction.
_COMMITTING = frozenset({
    "ALTER", "RENAME", "TRUNCATE", "GRANT", "REVOKE", "LOCK", "UNLOCK", "FLUSH", "OPTIMIZE",
    "REPAIR", "CHECK", "ANALYZE", "CACHE", "RESET", "INSTALL", "UNINSTALL", "CHANGE", "STOP",
    "XA", "SHUTDOWN", "IMPORT", "PURGE", "BACKUP", "KILL", "CLONE", "RESTART",
})
_VCOMMENT = re.compile(r"/\*(M?)!(\d{5,6})?(.*)\*/\Z", re.DOTALL)


@dataclass(frozen=True)
class Commit:
    """A statement of a script that commits (or may commit) the script's transaction."""

    number: int  # 1-based position in the script
    excerpt: str  # its first characters, comments dropped, one line
    reason: str  # e.g. "commits implicitly"


def excerpt(statement: str, width: int = 60) -> str:
    """The statement on one line, comments dropped, cut to `width` characters."""
    parts = [" " if t.kind in ("space", "comment") else t.text for t in tokenize(statement)]
    text = re.sub(r"\s+", " ", "".join(parts)).strip()
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def _words(text: str, group: int | None, out: list[tuple[int | None, str]],
           groups: list[int]) -> None:
    """Append (group, WORD) for the code of `text`; words of a versioned or MariaDB-only
    executable comment get that comment's group number (the server may skip them)."""
    for tok in tokenize(text):
        if tok.kind in ("space", "comment"):
            continue
        if tok.kind == "vcomment":
            m = _VCOMMENT.match(tok.text)
            body = m.group(3) if m else ""
            inner = group
            if m and (m.group(1) or m.group(2)) and group is None:
                inner = len(groups)
                groups.append(inner)
            _words(body, inner, out, groups)
        elif tok.kind in ("string", "ident"):
            out.append((group, tok.kind))  # never a keyword
        else:
            out.append((group, tok.text.upper()))


def _readings(statement: str) -> list[list[str]]:
    """The statement's words as the server may read them: every versioned executable comment
    run; none run; and, for each one, it and the later ones run but the earlier ones not."""
    words: list[tuple[int | None, str]] = []
    groups: list[int] = []
    _words(statement, None, words, groups)
    drops = [set(groups), *({g for g in groups if g < j} for j in groups)]
    readings = [[w for _, w in words]]
    readings += [[w for g, w in words if g is None or g not in d] for d in drops]
    return readings


def _name(word: str) -> str:
    """AUTOCOMMIT of autocommit, @@autocommit, @@session.autocommit; '' for a @user variable."""
    if word.startswith("@@"):
        word = word[2:]
    elif word.startswith("@"):
        return ""
    return word.rsplit(".", 1)[-1]


def _classify(w: list[str]) -> str | None:
    """Why the statement (as upper-case words) commits, or None when it is transactional."""
    while w and w[0] == "(":
        w = w[1:]
    if not w:
        return None  # nothing the server runs in this reading
    first, rest = w[0], w[1:]
    second = rest[0] if rest else ""
    if first in _TRANSACTIONAL:
        return None
    if first == "LOAD":
        return None if second in ("DATA", "XML") else COMMITS  # LOAD INDEX INTO CACHE
    if first == "ROLLBACK":
        return None if "TO" in rest[:2] else ENDS  # ROLLBACK [WORK] TO [SAVEPOINT] sp
    if first == "COMMIT":
        return ENDS
    if first == "BEGIN":
        return MAY_COMMIT_BLOCK if second == "NOT" else COMMITS  # BEGIN NOT ATOMIC ... END
    if first == "CALL":
        return MAY_COMMIT_CALL
    if first in ("CREATE", "DROP"):
        # CREATE [OR REPLACE] TEMPORARY TABLE and DROP TEMPORARY TABLE do not commit.
        head = rest[:4]
        if "TEMPORARY" in head and head[head.index("TEMPORARY") + 1:][:1] == ["TABLE"]:
            return None
        return COMMITS
    if first == "SET":
        return _classify_set(rest)
    if first in _COMMITTING or first == "START":  # START TRANSACTION, START SLAVE/REPLICA
        return COMMITS
    return UNKNOWN


def _classify_set(rest: list[str]) -> str | None:
    if rest[:1] == ["STATEMENT"]:  # MariaDB: SET STATEMENT var=value [, ...] FOR statement
        return _classify(rest[rest.index("FOR") + 1:]) if "FOR" in rest else UNKNOWN
    if rest[:1] == ["PASSWORD"] or rest[:2] == ["DEFAULT", "ROLE"]:
        return COMMITS  # changes the grant tables
    if "TRANSACTION" in rest[:2]:
        return NO_TRANSACTION  # SET [GLOBAL|SESSION] TRANSACTION ...
    if any(_name(word) == "AUTOCOMMIT" for word in rest):
        return COMMITS  # SET autocommit = 1 commits; = 0 would leave the rest uncommitted
    return None  # user and session variables, NAMES, sql_mode, foreign_key_checks, ...


def statement_commits(statement: str) -> str | None:
    """Why `statement` commits (or may commit) an open transaction, or None if it does not.

    Classified by its leading keyword after comments; executable comments are read every way
    the server may read them and the worst reading counts.
    """
    for words in _readings(statement):
        reason = _classify(words)
        if reason is not None:
            return reason
    return None


def first_commit(statements: list[str]) -> Commit | None:
    for number, statement in enumerate(statements, 1):
        reason = statement_commits(statement)
        if reason is not None:
            return Commit(number, excerpt(statement), reason)
    return None


# ---- where scripts come from ---------------------------------------------------------------


class ScriptSource(Protocol):
    def names(self) -> list[str]: ...

    def read(self, name: str) -> str: ...


class LocalScripts:
    """Scripts from a mapping of name -> content, or from the .sql files of a directory."""

    def __init__(self, scripts: Mapping[str, str] | str | os.PathLike[str]):
        if isinstance(scripts, Mapping):
            self._scripts = dict(scripts)
        else:
            self._scripts = {p.name: p.read_text("utf-8") for p in sorted(Path(scripts).glob("*.sql"))}

    def names(self) -> list[str]:
        return list(self._scripts)

    def read(self, name: str) -> str:
        return self._scripts[name]


class S3Scripts:
    """Scripts stored as `<prefix><name>` objects in the migration bucket."""

    def __init__(self, s3_client: Any, bucket: str, prefix: str = DEFAULT_PREFIX):
        self.s3, self.bucket, self.prefix = s3_client, bucket, prefix

    def names(self) -> list[str]:
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(self.prefix):]
                if name and "/" not in name:
                    names.append(name)
        return names

    def read(self, name: str) -> str:
        body = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
        return str(body.decode("utf-8"))


def push_scripts(s3_client: Any, bucket: str, paths: Iterable[str | os.PathLike[str]],
                 prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Upload local scripts (names checked first, all or nothing) and return their keys."""
    files = [Path(p) for p in paths]
    for f in files:
        parse_script_name(f.name)
        Script(f.name, f.read_text("utf-8")).statements()  # refuses unterminated quotes early
    keys = []
    for f in files:
        key = prefix + f.name
        s3_client.put_object(Bucket=bucket, Key=key, Body=f.read_bytes(), ContentType="application/sql")
        keys.append(key)
    return keys


def load_scripts(source: ScriptSource) -> list[Script]:
    """All scripts of `source` in version order; bad names and duplicate versions refused."""
    scripts = []
    for name in source.names():
        if not name.endswith(".sql"):
            continue  # a README or similar next to the scripts
        parse_script_name(name)
        scripts.append(Script(name, source.read(name)))
    scripts.sort(key=lambda s: s.version)
    for a, b in zip(scripts, scripts[1:], strict=False):
        if a.version == b.version:
            raise InvalidInput(f"scripts {a.name} and {b.name} have the same version")
    return scripts


# ---- history -------------------------------------------------------------------------------
#
# Every statement below names the history table qualified and quoted, and only its own fixed
# columns; no alias, no unqualified table name a user's object could capture. A user table
# that happens to be called `dbrepl_schema_history` is detected by its shape and refused.

# Column -> information_schema DATA_TYPE, as created by dbrepl 1 (V1) and now (V2).
_HISTORY_V1 = {
    "installed_rank": "int", "version": "varchar", "description": "varchar", "script": "varchar",
    "checksum": "char", "checksum_algorithm": "varchar", "installed_by": "varchar",
    "installed_on": "timestamp", "execution_ms": "int", "success": "tinyint",
}
# Added for atomicity: how the script ran (1: one transaction, 0: statement by statement),
# how many statements completed, which one failed (number, excerpt) and the server's error.
_HISTORY_ADDED = {
    "atomic_run": "TINYINT(1) NULL", "statements_run": "INT NULL",
    "failed_statement": "INT NULL", "failed_excerpt": "VARCHAR(200) NULL",
    "error_message": "VARCHAR(1000) NULL",
}
_HISTORY_V2 = {**_HISTORY_V1, **{c: t.split("(")[0].split()[0].lower() for c, t in _HISTORY_ADDED.items()}}
_COLUMNS = list(_HISTORY_V2)


@dataclass(frozen=True)
class HistoryRow:
    rank: int
    version: str
    description: str
    script: str
    checksum: str
    checksum_algorithm: str
    installed_by: str
    installed_on: Any
    execution_ms: int
    success: bool
    atomic_run: bool | None = None  # None: recorded before dbrepl knew (history shape V1)
    statements_run: int | None = None
    failed_statement: int | None = None
    failed_excerpt: str | None = None
    error_message: str | None = None

    @property
    def rolled_back(self) -> bool:
        """A failure that left nothing: the script ran in one transaction, rolled back."""
        return not self.success and self.atomic_run is True


def _create_history_sql(database: str) -> str:
    added = "".join(f"{c} {t}, " for c, t in _HISTORY_ADDED.items())
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, HISTORY_TABLE)} ("
        "installed_rank INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "version VARCHAR(50) NOT NULL, description VARCHAR(200) NOT NULL, "
        "script VARCHAR(255) NOT NULL, checksum CHAR(64) NOT NULL, "
        "checksum_algorithm VARCHAR(32) NOT NULL, installed_by VARCHAR(100) NOT NULL, "
        "installed_on TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), "
        f"execution_ms INT NOT NULL, success TINYINT(1) NOT NULL, {added}KEY version_idx (version)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


def _history_shape(conn: Any, database: str) -> str | None:
    """None (no history table), "v1" (dbrepl's first shape) or "v2"; else a conflict error."""
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_TYPE FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s", (database, HISTORY_TABLE))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s", (database, HISTORY_TABLE))
        got = {str(name).lower(): str(kind).lower() for name, kind in cur.fetchall()}
    if row[0] == "BASE TABLE" and got == _HISTORY_V2:
        return "v2"
    if row[0] == "BASE TABLE" and got == _HISTORY_V1:
        return "v1"
    what = "a view" if row[0] != "BASE TABLE" else "a table"
    missing = [c for c in _HISTORY_V1 if c not in got]
    other = sorted(c for c in got if c not in _HISTORY_V2)
    typed = [c for c in _HISTORY_V2 if c in got and got[c] != _HISTORY_V2[c]]
    detail = "; ".join(p for p in (
        f"missing {', '.join(missing)}" if missing else "",
        f"unexpected {', '.join(other)}" if other else "",
        f"other types for {', '.join(typed)}" if typed else "") if p) or "another shape"
    raise MigrationHistoryConflict(
        f"{database}.{HISTORY_TABLE} is {what} that is not dbrepl's migration history ({detail}): "
        "rename or drop it, dbrepl keeps its history under that name (nothing was run)")


def read_history(conn: Any, database: str) -> list[HistoryRow]:
    """The history table's rows in installation order; none when it does not exist yet."""
    database = check_database_name(database)
    shape = _history_shape(conn, database)
    if shape is None:
        return []
    columns = _COLUMNS if shape == "v2" else list(_HISTORY_V1)
    # A TIMESTAMP is stored in UTC and shown in the session's time zone: read it as epoch seconds.
    selected = [f"UNIX_TIMESTAMP({c})" if c == "installed_on" else c for c in columns]
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(selected)} FROM {qualified(database, HISTORY_TABLE)} "
                    "ORDER BY installed_rank")
        rows = []
        for row in cur.fetchall():
            values = dict(zip(columns, row, strict=True))
            values["installed_on"] = utc_text(values["installed_on"])
            values["success"] = bool(values["success"])
            if values.get("atomic_run") is not None:
                values["atomic_run"] = bool(values["atomic_run"])
            fields: list[Any] = [values.get(c) for c in _COLUMNS]  # as the table stores them
            rows.append(HistoryRow(*fields))
        return rows


def _ensure_history(cur: Any, database: str, shape: str | None) -> None:
    """Create the history table, or bring dbrepl's first shape up to date (adds columns)."""
    if shape is None:
        cur.execute(_create_history_sql(database))
    elif shape == "v1":
        cur.execute(f"ALTER TABLE {qualified(database, HISTORY_TABLE)} "
                    + ", ".join(f"ADD COLUMN {c} {t}" for c, t in _HISTORY_ADDED.items()))


def utc_text(epoch: Any) -> str | None:
    """`2026-12-07T03:26:09.123Z`: a history timestamp (epoch seconds) in UTC, as every output shows it."""
    if epoch is None:
        return None
    when = datetime.fromtimestamp(float(epoch), tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@dataclass(frozen=True)
class ScriptStatus:
    version: str
    script: str
    state: str  # applied, pending, failed, changed, missing (applied but no longer in the source)
    installed_on: Any = None
    atomic: bool | None = None  # the script in the source; None: not in the source, not known
    not_atomic_because: str | None = None  # "statement 1 (CREATE TABLE t ...) commits implicitly"
    failed_statement: int | None = None
    failed_excerpt: str | None = None
    statements_run: int | None = None
    rolled_back: bool | None = None
    error: str | None = None
    applied_checksum: str | None = None  # changed: the checksum of what ran (repair --restore finds it)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "script": self.script, "state": self.state,
                "installed_on": str(self.installed_on) if self.installed_on else None,
                "applied_checksum": self.applied_checksum,
                "atomic": self.atomic, "not_atomic_because": self.not_atomic_because,
                "failed_statement": self.failed_statement, "failed_excerpt": self.failed_excerpt,
                "statements_run": self.statements_run, "rolled_back": self.rolled_back,
                "error": self.error}


def _atomicity(script: Script | None, row: HistoryRow | None) -> dict[str, Any]:
    if script is not None:
        c = script.first_commit()
        because = None if c is None else f"statement {c.number} ({c.excerpt}) {c.reason}"
        return {"atomic": c is None, "not_atomic_because": because}
    return {"atomic": row.atomic_run if row is not None else None}


def migration_status(conn: Any, database: str, source: ScriptSource) -> list[ScriptStatus]:
    """Every script's state in `database` (for `dbrepl migrate status`)."""
    scripts = {s.version_text: s for s in load_scripts(source)}
    history = read_history(conn, database)
    out = []
    latest: dict[str, HistoryRow] = {h.version: h for h in history}
    for version, row in latest.items():
        script = scripts.get(version)
        failure: dict[str, Any] = {}
        if script is None:
            state = "missing" if row.success else "failed"
        elif not row.success:
            state = "failed"
        else:
            state = "changed" if script.checksum != row.checksum else "applied"
            if state == "changed":
                failure = {"applied_checksum": row.checksum}
        if not row.success:
            failure = {"failed_statement": row.failed_statement, "failed_excerpt": row.failed_excerpt,
                       "statements_run": row.statements_run, "error": row.error_message,
                       "rolled_back": row.rolled_back if row.atomic_run is not None else None}
        out.append(ScriptStatus(version, row.script, state, row.installed_on,
                                **_atomicity(script, row), **failure))
    for version, script in scripts.items():
        if version not in latest:
            out.append(ScriptStatus(version, script.name, "pending", **_atomicity(script, None)))
    out.sort(key=lambda s: _version_key(s.version))
    return out


# ---- repair (as Flyway's) -------------------------------------------------------------------


@dataclass
class RepairResult:
    database: str
    removed_failed: list[str] = field(default_factory=list)  # failed entries deleted: retried next apply
    realigned: list[str] = field(default_factory=list)  # applied scripts whose checksum now is the script's
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "removed_failed": self.removed_failed, "realigned": self.realigned,
                "warnings": self.warnings, "dry_run": self.dry_run}


def repair_history(conn: Any, database: str, source: ScriptSource, *, realign: bool = True,
                   dry_run: bool = False) -> RepairResult:
    """Flyway's repair of `database`'s history: failed entries are removed (the script runs again
    on the next apply) and, with `realign`, an applied script whose content changed gets the
    current script's checksum (the new content is accepted as what ran; it is not run again)."""
    database = check_database_name(database)
    scripts = {s.version_text: s for s in load_scripts(source)}
    history = read_history(conn, database)
    result = RepairResult(database, dry_run=dry_run)
    failed = [h for h in history if not h.success]
    done = {h.version: h for h in history if h.success}
    for h in failed:
        result.removed_failed.append(h.script)
        if h.atomic_run is False and h.statements_run:
            result.warnings.append(
                f"{h.script}: {h.statements_run} statement(s) of it ran before it failed and stay applied; "
                "undo them by hand or the retry may fail on them")
    if realign:
        result.realigned = [h.script for v, h in done.items() if v in scripts and scripts[v].checksum != h.checksum]
    if dry_run or not (result.removed_failed or result.realigned):
        return result
    table = qualified(database, HISTORY_TABLE)
    try:
        with conn.cursor() as cur:
            conn.begin()
            cur.execute(f"DELETE FROM {table} WHERE success=0")
            for v, h in done.items():
                if h.script in result.realigned:
                    cur.execute(f"UPDATE {table} SET checksum=%s, checksum_algorithm=%s WHERE installed_rank=%s",
                                (scripts[v].checksum, CHECKSUM_ALGORITHM, h.rank))
            conn.commit()
    except pymysql.err.MySQLError as exc:
        with contextlib.suppress(pymysql.err.MySQLError):
            conn.rollback()
        raise DatabaseError(f"Failed to repair the migration history of {database}: {exc}") from exc
    return result


# ---- apply ---------------------------------------------------------------------------------


@dataclass
class MigrationResult:
    database: str
    applied: list[str] = field(default_factory=list)  # script names run now
    pending: list[str] = field(default_factory=list)  # what would run (dry run) or is left
    failed: str | None = None
    error: str | None = None
    dry_run: bool = False
    # The failed script: did it run in one transaction (rolled back), which statement failed
    # (1-based) and its excerpt, how many statements had completed before it.
    atomic: bool | None = None
    failed_statement: int | None = None
    failed_excerpt: str | None = None
    statements_run: int | None = None
    warnings: list[str] = field(default_factory=list)  # "V2__x.sql is not atomic: ..."
    ddl: list[dict[str, Any]] = field(default_factory=list)  # dry run: each ALTER's ALGORITHM/LOCK

    @property
    def status(self) -> str:
        return "error" if self.failed else "success"

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "status": self.status, "applied": self.applied,
                "pending": self.pending, "failed": self.failed, "error": self.error,
                "dry_run": self.dry_run, "atomic": self.atomic,
                "failed_statement": self.failed_statement, "failed_excerpt": self.failed_excerpt,
                "statements_run": self.statements_run, "warnings": self.warnings, "ddl": self.ddl}


def apply_migrations(
    conn: Any,
    database: str,
    source: ScriptSource,
    *,
    dry_run: bool = False,
    up_to: str | None = None,
    installed_by: str | None = None,
) -> MigrationResult:
    """Apply pending scripts to `database` in version order (up to script `up_to` if given)."""
    database = check_database_name(database)
    scripts = load_scripts(source)
    if up_to is not None:
        limit = parse_script_name(up_to)[0]
        if not any(s.version == limit for s in scripts):
            raise InvalidInput(f"migration script {up_to!r} is not among the stored scripts")
        scripts = [s for s in scripts if s.version <= limit]
    try:
        return _apply(conn, database, scripts, dry_run, installed_by)
    except pymysql.err.MySQLError as exc:
        raise DatabaseError(f"Failed to apply migrations to {database}: {exc}") from exc


def _blocked(database: str, h: HistoryRow) -> str:
    where = ""
    if h.failed_statement is not None:
        ran = h.statements_run or 0
        where = (f" at statement {h.failed_statement} ({h.failed_excerpt}) after {ran} statement(s) "
                 "ran and stayed applied")
    return (f"{database}: {h.script} failed earlier{where}; repair the database and fix the script "
            "(a changed script is retried), or remove the failure with dbrepl migrate repair to retry "
            "it as it is; nothing was run")


def _apply(conn: Any, database: str, scripts: list[Script], dry_run: bool,
           installed_by: str | None) -> MigrationResult:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (database,))
        if cur.fetchone() is None:
            raise InvalidInput(f"database {database!r} does not exist on the target (run a schema sync first)")
    shape = _history_shape(conn, database)
    history = read_history(conn, database)
    done = {h.version: h for h in history if h.success}
    failed = {h.version: h for h in history if not h.success and h.version not in done}
    by_version = {s.version_text: s for s in scripts}

    # Every check before anything runs: changed checksums, blocking failures, order.
    changed = [f"{h.script} (applied {h.installed_on})" for v, h in done.items()
               if v in by_version and by_version[v].checksum != h.checksum]
    if changed:
        raise MigrationChecksumChanged(
            f"{database}: applied script(s) changed since they ran: {', '.join(changed)}; "
            "dbrepl migrate repair restores the original (--restore) or accepts the new content; "
            "nothing was run")
    for v, h in failed.items():
        script = by_version.get(v)
        # A rolled-back failure left nothing: the same script may run again (after the data
        # is fixed). A non-atomic failure left statements applied: the script must change.
        if script is None or (script.checksum == h.checksum and not h.rolled_back):
            raise MigrationOrderError(_blocked(database, h))
    pending = [s for s in scripts if s.version_text not in done]
    newest = max((_version_key(v) for v in done), default=())
    older = [s.name for s in pending if s.version < newest]
    if older:
        raise MigrationOrderError(
            f"{database}: {', '.join(older)} older than the applied version "
            f"{'.'.join(map(str, newest))}; give it a newer version (nothing was run)")
    result = MigrationResult(database=database, pending=[s.name for s in pending], dry_run=dry_run)
    result.warnings = [w for s in pending if (w := s.atomicity_warning())]
    if dry_run:
        result.ddl = classify_pending(conn, database, pending)
    if dry_run or not pending:
        return result

    with conn.cursor() as cur:
        _ensure_history(cur, database, shape)
        if installed_by is None:
            cur.execute("SELECT CURRENT_USER()")
            installed_by = cur.fetchone()[0]
        conn.select_db(database)
        for script in pending:
            message = _run_script(conn, cur, database, script, installed_by, result)
            result.pending.remove(script.name)
            if message is not None:
                raise MigrationFailed(message, result)
            result.applied.append(script.name)
    return result


def _run_script(conn: Any, cur: Any, database: str, script: Script, installed_by: str,
                result: MigrationResult) -> str | None:
    """Run one script (atomic: one transaction with its history row) and record the outcome;
    on failure fill `result` and return the message saying what failed and what is left."""
    statements = script.statements()
    commit = first_commit(statements)
    atomic = commit is None
    autocommit = conn.get_autocommit()
    started = time.monotonic()
    try:
        if atomic:
            conn.begin()
        else:
            conn.autocommit(True)  # each statement is committed as it completes
        ran, failed_at, error = _execute(cur, statements)
        ms = int((time.monotonic() - started) * 1000)
        record: dict[str, Any] = {"script": script, "installed_by": installed_by, "ms": ms, "atomic": atomic,
                  "ran": ran, "failed_at": failed_at, "error": error,
                  "excerpt": excerpt(statements[failed_at - 1]) if failed_at else None}
        if atomic and error is None:
            _record(cur, database, **record)  # in the script's own transaction
            conn.commit()
            return None
        kept = ""
        if error is not None:
            # Atomic: undo the script. Not atomic: undo only a transaction the script opened
            # itself (START TRANSACTION) and had not committed when it failed.
            conn.rollback()
            kept = _rollback_warning(cur) if atomic else ""
        conn.begin()  # the failure record survives the rollback: written after it
        _record(cur, database, **record)
        conn.commit()
    except BaseException:
        if conn.open:
            with contextlib.suppress(pymysql.err.MySQLError):
                conn.rollback()
        raise
    finally:
        if conn.open and conn.get_autocommit() != autocommit:
            conn.autocommit(autocommit)
    if error is None:
        return None
    result.failed, result.atomic, result.error = script.name, atomic, error
    result.failed_statement, result.failed_excerpt = failed_at, record["excerpt"]
    result.statements_run = ran
    return _failure_message(database, script, len(statements), record, commit, kept)


def _execute(cur: Any, statements: list[str]) -> tuple[int, int | None, str | None]:
    """Run the statements in order until one fails: (how many ran, the failed one's number, its error)."""
    for number, statement in enumerate(statements, 1):
        try:
            cur.execute(statement)
            while cur.nextset():  # stored-program calls may return several results
                pass
        except pymysql.err.MySQLError as exc:
            return number - 1, number, f"{exc.args[-1] if exc.args else exc}"
    return len(statements), None, None


def _failure_message(database: str, script: Script, total: int, record: dict[str, Any], commit: Commit | None,
                     kept: str) -> str:
    """What failed, what ran and what is left, for the error and the result."""
    atomic, ran, failed_at, error = record["atomic"], record["ran"], record["failed_at"], record["error"]
    where = f"statement {failed_at} of {total} ({record['excerpt']})"
    if atomic:
        left = ("it ran in one transaction, rolled back: none of its changes remain" + kept
                + "; fix the cause and run again")
    else:
        applied = "no statement of it ran" if ran == 0 else (
            "statement 1 ran and stays applied" if ran == 1
            else f"statements 1-{ran} ran and stay applied")
        assert commit is not None  # not atomic: the script's own COMMIT was found
        left = (f"{applied} (not atomic: statement {commit.number} ({commit.excerpt}) {commit.reason}); "
                "repair the database and fix the script")
    return f"{database}: {script.name} failed at {where}: {error}; {left}; later scripts not applied"


def _rollback_warning(cur: Any) -> str:
    """Warning 1196 after ROLLBACK: a non-transactional table (MyISAM, Aria...) kept changes."""
    cur.execute("SHOW WARNINGS")
    if any(row[1] == 1196 for row in cur.fetchall()):
        return " (except in non-transactional tables such as MyISAM, Aria or MEMORY, which kept theirs)"
    return ""


def _record(cur: Any, database: str, *, script: Script, installed_by: str, ms: int, atomic: bool,
            ran: int, failed_at: int | None, error: str | None, excerpt: str | None) -> None:
    """The script's history row; an earlier failed row of the same version is replaced."""
    table = qualified(database, HISTORY_TABLE)
    cur.execute(f"DELETE FROM {table} WHERE version=%s AND success=0", (script.version_text,))
    cur.execute(
        f"INSERT INTO {table} (version, description, script, checksum, checksum_algorithm, "
        "installed_by, execution_ms, success, atomic_run, statements_run, failed_statement, "
        "failed_excerpt, error_message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (script.version_text, script.description[:200], script.name, script.checksum,
         CHECKSUM_ALGORITHM, installed_by[:100], ms, error is None, atomic, ran, failed_at,
         None if excerpt is None else excerpt[:200], None if error is None else error[:1000]))


__all__ = [
    "CHECKSUM_ALGORITHM", "HISTORY_TABLE", "Commit", "LocalScripts", "MigrationChecksumChanged",
    "MigrationFailed", "MigrationHistoryConflict", "MigrationOrderError", "MigrationResult", "RepairResult",
    "S3Scripts", "Script", "ScriptStatus", "apply_migrations", "first_commit", "load_scripts",
    "migration_status", "parse_script_name", "push_scripts", "read_history", "repair_history",
    "statement_commits", "utc_text",
]


def classify_pending(conn: Any, database: str, scripts: list[Script]) -> list[dict[str, Any]]:
    """Each ALTER TABLE of the pending scripts with the ALGORITHM and LOCK the target accepts,
    its table's size and duration class, probed as a schema plan's are (schema/online.py):
    [{"script", "statement", "sql", "algorithm", "lock", "duration", "rows", "bytes", ...}].
    An ALTER of a table an earlier statement creates is `not probed`."""
    from dbrepl.sync.schema.online import classify_script

    return [{"script": s.name, **d} for s in scripts for d in classify_script(conn, database, s.statements())]
