"""Versioned migration scripts applied exactly once, in order, with a history table.

Scripts are named `V<version>__<words>.sql` (version: digits with `.` or `_` between parts,
e.g. V1, V1.2, V2_1). Each target database keeps `dbrepl_schema_history`; a script whose
content changed after it was applied stops the run before anything runs, and a failing
script is recorded as failed and stops the run (MySQL DDL cannot be rolled back).

The checksum is SHA-256 of the script's statements, each normalised by the splitter
(comments dropped, whitespace collapsed outside quotes): re-indenting or commenting an
applied script is not a change, altering anything the server would run is.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pymysql

from dbrepl.sync.errors import DatabaseError, InvalidInput, SyncError
from dbrepl.sync.ident import qualified
from dbrepl.sync.schema.introspect import check_database_name
from dbrepl.sync.schema.model import HISTORY_TABLE
from dbrepl.sync.splitter import normalise_statement, split_statements

CHECKSUM_ALGORITHM = "sha256-statements-v1"
DEFAULT_PREFIX = "migrations/"
_NAME = re.compile(r"^V(\d+(?:[._]\d+)*)__([A-Za-z0-9][A-Za-z0-9_-]{0,150})\.sql$")


class MigrationChecksumChanged(SyncError):
    """An applied script's content changed; nothing was run."""


class MigrationOrderError(SyncError):
    """A pending script is older than one already applied, or a failure blocks the run."""


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


# ---- where scripts come from ---------------------------------------------------------------


class ScriptSource(Protocol):
    def names(self) -> list[str]: ...

    def read(self, name: str) -> str: ...


class LocalScripts:
    """Scripts from a mapping of name -> content, or from the .sql files of a directory."""

    def __init__(self, scripts: Mapping[str, str] | str | os.PathLike):
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
        return body.decode("utf-8")


def push_scripts(s3_client: Any, bucket: str, paths: Iterable[str | os.PathLike],
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


def _create_history_sql(database: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, HISTORY_TABLE)} ("
        "installed_rank INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "version VARCHAR(50) NOT NULL, description VARCHAR(200) NOT NULL, "
        "script VARCHAR(255) NOT NULL, checksum CHAR(64) NOT NULL, "
        "checksum_algorithm VARCHAR(32) NOT NULL, installed_by VARCHAR(100) NOT NULL, "
        "installed_on TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), "
        "execution_ms INT NOT NULL, success TINYINT(1) NOT NULL, KEY version_idx (version)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


def read_history(conn: Any, database: str) -> list[HistoryRow]:
    """The history table's rows in installation order; none when it does not exist yet."""
    database = check_database_name(database)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
                    (database, HISTORY_TABLE))
        if cur.fetchone() is None:
            return []
        cur.execute(
            "SELECT installed_rank, version, description, script, checksum, checksum_algorithm, "
            f"installed_by, installed_on, execution_ms, success FROM {qualified(database, HISTORY_TABLE)} "
            "ORDER BY installed_rank")
        return [HistoryRow(*row[:9], bool(row[9])) for row in cur.fetchall()]


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@dataclass(frozen=True)
class ScriptStatus:
    version: str
    script: str
    state: str  # applied, pending, failed, changed, missing (applied but no longer in the source)
    installed_on: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "script": self.script, "state": self.state,
                "installed_on": str(self.installed_on) if self.installed_on else None}


def migration_status(conn: Any, database: str, source: ScriptSource) -> list[ScriptStatus]:
    """Every script's state in `database` (for `dbrepl migrate status`)."""
    scripts = {s.version_text: s for s in load_scripts(source)}
    history = read_history(conn, database)
    out = []
    latest: dict[str, HistoryRow] = {h.version: h for h in history}
    for version, row in latest.items():
        script = scripts.get(version)
        if script is None:
            state = "missing" if row.success else "failed"
        elif not row.success:
            state = "failed"
        else:
            state = "changed" if script.checksum != row.checksum else "applied"
        out.append(ScriptStatus(version, row.script, state, row.installed_on))
    for version, script in scripts.items():
        if version not in latest:
            out.append(ScriptStatus(version, script.name, "pending"))
    out.sort(key=lambda s: _version_key(s.version))
    return out


# ---- apply ---------------------------------------------------------------------------------


@dataclass
class MigrationResult:
    database: str
    applied: list[str] = field(default_factory=list)  # script names run now
    pending: list[str] = field(default_factory=list)  # what would run (dry run) or is left
    failed: str | None = None
    error: str | None = None
    dry_run: bool = False

    @property
    def status(self) -> str:
        return "error" if self.failed else "success"

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "status": self.status, "applied": self.applied,
                "pending": self.pending, "failed": self.failed, "error": self.error,
                "dry_run": self.dry_run}


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


def _apply(conn: Any, database: str, scripts: list[Script], dry_run: bool,
           installed_by: str | None) -> MigrationResult:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (database,))
        if cur.fetchone() is None:
            raise InvalidInput(f"database {database!r} does not exist on the target (run a schema sync first)")
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
            "restore the original or add a new script (nothing was run)")
    retry = []
    for v, h in failed.items():
        script = by_version.get(v)
        if script is None or script.checksum == h.checksum:
            raise MigrationOrderError(
                f"{database}: {h.script} failed earlier; repair the database and fix the script "
                "(a changed script is retried), nothing was run")
        retry.append(v)
    pending = [s for s in scripts if s.version_text not in done]
    newest = max((_version_key(v) for v in done), default=())
    older = [s.name for s in pending if s.version < newest]
    if older:
        raise MigrationOrderError(
            f"{database}: {', '.join(older)} older than the applied version "
            f"{'.'.join(map(str, newest))}; give it a newer version (nothing was run)")
    result = MigrationResult(database=database, pending=[s.name for s in pending], dry_run=dry_run)
    if dry_run or not pending:
        return result

    with conn.cursor() as cur:
        cur.execute(_create_history_sql(database))
        if installed_by is None:
            cur.execute("SELECT CURRENT_USER()")
            installed_by = cur.fetchone()[0]
        for v in retry:
            cur.execute(f"DELETE FROM {qualified(database, HISTORY_TABLE)} WHERE version=%s AND success=0", (v,))
        conn.select_db(database)
        for script in pending:
            started = time.monotonic()
            error = None
            for statement in script.statements():
                try:
                    cur.execute(statement)
                    while cur.nextset():  # stored-program calls may return several results
                        pass
                except pymysql.err.MySQLError as exc:
                    error = f"{exc.args[-1] if exc.args else exc}"
                    break
            if error is None:
                conn.commit()  # scripts holding DML without autocommit
            else:
                conn.rollback()
            ms = int((time.monotonic() - started) * 1000)
            cur.execute(
                f"INSERT INTO {qualified(database, HISTORY_TABLE)} (version, description, script, "
                "checksum, checksum_algorithm, installed_by, execution_ms, success) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (script.version_text, script.description[:200], script.name, script.checksum,
                 CHECKSUM_ALGORITHM, installed_by[:100], ms, error is None))
            conn.commit()
            result.pending.remove(script.name)
            if error is not None:
                result.failed, result.error = script.name, error
                raise MigrationFailed(f"{database}: {script.name} failed: {error}; later scripts not applied",
                                      result)
            result.applied.append(script.name)
    return result


__all__ = [
    "CHECKSUM_ALGORITHM", "HISTORY_TABLE", "LocalScripts", "MigrationChecksumChanged",
    "MigrationFailed", "MigrationOrderError", "MigrationResult", "S3Scripts", "Script",
    "ScriptStatus", "apply_migrations", "load_scripts", "migration_status", "parse_script_name",
    "push_scripts", "read_history",
]
