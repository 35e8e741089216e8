"""The online path: a blocking ALTER on a big table handed to pt-online-schema-change.

The tool copies the table into a new one in chunks while triggers carry the writes made
meanwhile, then swaps the two with an atomic RENAME TABLE: writes go on throughout, paced
by `--chunk-time`, paused above `--max-load`, stopped above `--critical-load`. When it fails
it drops its new table and its triggers; the original table is untouched.

Only outside the function (a DSN run, or `--direct`): the function's bundle has no Perl.
Credentials go in a defaults file (mode 0600, in a private directory, removed afterwards),
never on the command line, where `ps` would show them; the output shown is the tool's own,
which never prints the password.

Refused, with the reason, before any DDL:
- tables with foreign keys, either way: the tool renames the copy's constraints (a leading
  `_`) and needs `--alter-foreign-keys-method` for the referencing tables, so the schema
  would not equal the source's;
- statements dropping the primary key (the tool's triggers and chunks follow that key) and
  partitioning statements;
- tables with triggers when the tool's version has no `--preserve-triggers` (3.0.4+).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbrepl.sync.errors import DatabaseError, InvalidInput
from dbrepl.sync.schema.online import ALTER_RE, _unquote

TOOL = "pt-online-schema-change"
MIN_VERSION = (3, 0, 4)  # --preserve-triggers
DEFAULT_CHUNK_TIME = 0.5
DEFAULT_MAX_LOAD = "Threads_running=25"
DEFAULT_CRITICAL_LOAD = "Threads_running=50"


def tool_version(executable: str) -> tuple[int, ...]:
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InvalidInput(f"{TOOL} at {executable} does not run ({exc})") from None
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", done.stdout + done.stderr)
    if done.returncode != 0 or m is None:
        raise InvalidInput(f"{TOOL} at {executable} does not say its version: {(done.stdout + done.stderr)[:200]}")
    return tuple(int(x) for x in m.groups())


@dataclass
class OnlineTool:
    """pt-online-schema-change for the target `endpoint` (dbrepl.sync.connection.Endpoint)."""

    endpoint: Any
    chunk_time: float = DEFAULT_CHUNK_TIME
    max_load: str = DEFAULT_MAX_LOAD
    critical_load: str = DEFAULT_CRITICAL_LOAD
    output: Callable[[str], None] | None = None  # each line the tool prints (progress)
    executable: str = ""
    version: tuple[int, ...] = ()
    name: str = TOOL
    lines: list[str] = field(default_factory=list)  # everything it printed, for the result

    @classmethod
    def find(cls, endpoint: Any, **kw: Any) -> OnlineTool:
        """The tool on PATH, version checked; InvalidInput (nothing run) when missing or too old."""
        executable = shutil.which(TOOL)
        if executable is None:
            raise InvalidInput(f"{TOOL} is not on PATH (Debian/Ubuntu: apt-get install percona-toolkit)")
        version = tool_version(executable)
        if version < MIN_VERSION:
            raise InvalidInput(f"{TOOL} {'.'.join(map(str, version))} is too old: dbrepl needs "
                               f"{'.'.join(map(str, MIN_VERSION))}+ (--preserve-triggers)")
        return cls(endpoint, executable=executable, version=version, **kw)

    # -- what it can take

    def refusal(self, st: Any, conn: Any) -> str | None:
        """Why the tool must not run `st`, or None."""
        m = ALTER_RE.match(st.sql)
        if m is None:
            return "not an ALTER TABLE"
        rest = st.sql[m.end():]
        if re.search(r"\bDROP\s+PRIMARY\s+KEY\b", rest, re.IGNORECASE):
            return "it drops the primary key, which the tool's chunks and triggers follow"
        if re.match(r"(PARTITION\s+BY|REMOVE\s+PARTITIONING)\b", rest, re.IGNORECASE):
            return "partitioning statements are not for the tool"
        db, table = _unquote(m.group(1)), _unquote(m.group(2))
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE "
                        "WHERE REFERENCED_TABLE_NAME IS NOT NULL AND ((TABLE_SCHEMA = %s AND TABLE_NAME = %s) OR "
                        "(REFERENCED_TABLE_SCHEMA = %s AND REFERENCED_TABLE_NAME = %s))", (db, table, db, table))
            if cur.fetchone()[0]:
                return ("the table has foreign keys (or is referenced by some): the tool renames the copy's "
                        "constraints and would need --alter-foreign-keys-method, so the result would not equal "
                        "the source")
        return None

    def has_triggers(self, conn: Any, db: str, table: str) -> bool:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s "
                        "AND EVENT_OBJECT_TABLE = %s", (db, table))
            return bool(cur.fetchone()[0])

    # -- running it

    def argv(self, st: Any, defaults_file: str, triggers: bool) -> list[str]:
        m = ALTER_RE.match(st.sql)
        assert m is not None
        db, table = _unquote(m.group(1)), _unquote(m.group(2))
        dsn = f"h={self.endpoint.host},P={self.endpoint.port},F={defaults_file},D={db},t={table},A=utf8mb4"
        args = [self.executable or TOOL, "--execute", "--alter", st.sql[m.end():], "--noversion-check",
                # Aurora replicas share the cluster's storage: there is no replication lag to watch.
                "--recursion-method", "none",
                "--chunk-time", str(self.chunk_time), "--max-load", self.max_load,
                "--critical-load", self.critical_load, "--print"]
        if triggers:
            args.append("--preserve-triggers")
        return [*args, dsn]

    def run(self, st: Any, conn: Any) -> None:
        """Run the tool on `st`; DatabaseError (with its last lines) when it fails."""
        m = ALTER_RE.match(st.sql)
        assert m is not None
        triggers = self.has_triggers(conn, _unquote(m.group(1)), _unquote(m.group(2)))
        with tempfile.TemporaryDirectory(prefix="dbrepl-ptosc-") as tmp:
            path = Path(tmp) / "client.cnf"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(_defaults(self.endpoint))
            tail: deque[str] = deque(maxlen=15)
            try:
                proc = subprocess.Popen(self.argv(st, str(path), triggers), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, errors="replace",
                                        env={k: v for k, v in os.environ.items() if k != "MYSQL_PWD"})
            except OSError as exc:
                raise DatabaseError(f"{TOOL} did not start ({exc})") from exc
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                self.lines.append(line)
                if self.output is not None:
                    self.output(line)
            code = proc.wait()
        if code != 0:
            raise DatabaseError(f"{TOOL} failed (exit {code}); it leaves the original table as it was. "
                                "Its last lines:\n    " + "\n    ".join(tail))


def _defaults(endpoint: Any) -> str:
    def value(v: str) -> str:
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[client]", f"user={value(endpoint.user)}", f"password={value(endpoint.password)}"]
    ca = getattr(endpoint.tls, "ca_bundle", None)
    if ca:
        lines.append(f"ssl-ca={value(ca)}")
    return "\n".join(lines) + "\n"
