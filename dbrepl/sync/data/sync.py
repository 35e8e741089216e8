"""Make the target's rows equal to the source's, moving only the rows that differ.

How a table is compared (both servers do the hashing; only small digests travel):
1. The source's key index is walked in chunks of `chunk_rows` keys; the same key range is
   the chunk on both sides (ranges compare by collation, so 'a' and 'A' share a chunk).
2. Per chunk each server returns, per bucket (CRC32 of the key's exact bytes modulo
   `buckets`), the row count and the XOR of 64 bits of every row's SHA1. SHA1 is not
   linear, so unlike pt-table-sync's BIT_XOR(CRC32()) two rows swapping a value (or two
   rows changing the same bits) change the digest.
3. Only buckets whose count or digest differ are read: keys and SHA1s from the target, the
   same plus rows rendered as SQL literals from the source. Keys are matched by their exact
   bytes, so a key differing only in case or trailing spaces is a different row.
4. Differing rows are deleted and re-inserted, missing ones inserted, extra ones deleted,
   all in ONE target transaction for the whole run with foreign key checks off, so related
   tables may be synced together in any order; nothing is ever truncated. Any failure rolls
   everything back.
5. Before COMMIT the run checks its own result (`verify`): each table's row count on both
   sides, and the whole-range digest of every key range that was not already proven equal
   by one ("changed", the default: every range in which rows were changed or suspected), or
   of every range from a fresh walk with another row encoding ("full"). Any difference rolls
   the whole run back (VerificationFailed names the table and the key range).
"""

from __future__ import annotations

import array
import binascii
import contextlib
import functools
import operator
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pymysql

from dbrepl.sync.data import statements as sql
from dbrepl.sync.data.fkeys import (
    DEFAULT_ON_DELETE,
    ForeignKeyCheck,
    ForeignKeyEffect,
    check_on_delete,
    read_foreign_keys,
    relevant,
)
from dbrepl.sync.data.match import SEP, unmatched, unmatched_joined
from dbrepl.sync.data.shape import TableShape, matching_shapes
from dbrepl.sync.data.tables import check_not_system
from dbrepl.sync.data.triggers import (
    DEFAULT_TRIGGERS,
    TriggerEffect,
    TriggerPlan,
    check_triggers,
    order_tables,
    plan_triggers,
    read_triggers,
)
from dbrepl.sync.errors import DatabaseError, InvalidInput
from dbrepl.sync.ident import check_name, qualified

DEFAULT_CHUNK_ROWS = 50_000
DEFAULT_BUCKETS = 2_048
# Bytes per INSERT statement. Measured on 1,000,000 rows into an empty table: 1 MiB (as
# mysqldump's net_buffer_length) was clearly faster than 4 and 12 MiB (the server parses and
# allocates per statement) and than 256 and 512 KiB (more round trips).
STATEMENT_BYTES = 1 << 20
# Empty-target copy: rows in the first key range, and at most per range afterwards.
_COPY_FIRST_RANGE = 2_000
_COPY_MAX_RANGE = 100_000
# GROUP_CONCAT limit asked for on the source session (the server caps it at max_allowed_packet).
_CONCAT_BYTES = 64 << 20

# Target session for the run: no zero-means-next-auto-increment surprise, strict so a value
# that does not fit fails the run instead of being silently changed, and without
# NO_BACKSLASH_ESCAPES because the source's QUOTE() escapes with backslashes.
_TARGET_SQL_MODE = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"

Digest = tuple[int, int]  # (row count, XOR of 64 bits of each row's hash) of a key range

_FIRST_DRILL = "rows"
# The first chunk of a comparison is chunk_rows // this (see _Table._compare).
_FIRST_CHUNK_SHARE = 8

# What a run re-checks before it commits (see the module's docstring, point 5).
VERIFY_MODES = ("changed", "full", "none")
DEFAULT_VERIFY = "changed"


class VerificationFailed(DatabaseError):
    """After applying, a key range (or the row count) still differs: the run was rolled back."""


@dataclass
class TableResult:
    database: str
    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    statements: list[str] | None = None
    target_database: str | None = None  # set when it differs from `database`
    # What the run re-checked before COMMIT: key ranges re-digested, rows counted per side.
    verified_ranges: int = 0
    verified_rows: int | None = None
    # Rows a target trigger rewrote on insert that the run set back to the source's values.
    corrected: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "database": self.database, "table": self.table, "inserted": self.inserted,
            "updated": self.updated, "deleted": self.deleted,
        }
        if self.target_database is not None:
            d["target_database"] = self.target_database
        if self.verified_rows is not None:
            d["verified"] = {"ranges": self.verified_ranges, "rows": self.verified_rows}
        if self.corrected:
            d["corrected"] = self.corrected
        if self.statements is not None:
            d["statements"] = self.statements
        return d


@dataclass
class DataSyncResult:
    tables: list[TableResult] = field(default_factory=list)
    dry_run: bool = False
    verify: str = DEFAULT_VERIFY
    # The target's rules around the synced tables: what its triggers did, what its foreign
    # keys' actions touched (docs/data-sync.md, "The target's rules").
    triggers: list[TriggerEffect] = field(default_factory=list)
    foreign_keys: list[ForeignKeyEffect] = field(default_factory=list)

    @property
    def verified(self) -> str:
        """What was checked before COMMIT, in words (for results, records and output)."""
        if self.dry_run:
            return "nothing (dry run: nothing was applied)"
        if self.verify == "none":
            return "nothing (--verify none)"
        ranges = sum(t.verified_ranges for t in self.tables)
        what = "every key range" if self.verify == "full" else "every changed key range"
        return f"row counts and {what} ({ranges} re-digested) equal before commit"

    @property
    def rows_synced(self) -> int:
        """Rows inserted, updated or deleted (or that would be, in a dry run)."""
        return sum(t.changed for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "rows_synced": self.rows_synced,
            "verify": self.verify,
            "verified": self.verified,
            "tables": [t.to_dict() for t in self.tables],
            "triggers": [t.to_dict() for t in self.triggers],
            "foreign_keys": [f.to_dict() for f in self.foreign_keys],
        }


@dataclass(frozen=True)
class Progress:
    """Reported after each chunk compared ("compare"), each statement applied ("apply") and
    each key range re-checked ("verify")."""

    database: str
    table: str
    phase: str
    rows_compared: int
    rows_estimate: int
    inserted: int
    updated: int
    deleted: int


ProgressHook = Callable[[Progress], None]


def sync_data(
    source: pymysql.Connection,
    target: pymysql.Connection,
    tables: Sequence[tuple[str, str]],
    *,
    target_databases: Mapping[str, str] | None = None,
    dry_run: bool = False,
    progress: ProgressHook | None = None,
    statements: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    buckets: int = DEFAULT_BUCKETS,
    verify: str = DEFAULT_VERIFY,
    triggers: str = DEFAULT_TRIGGERS,
    on_delete: str = DEFAULT_ON_DELETE,
) -> DataSyncResult:
    """Make `tables` ((database, table) pairs) on `target` equal to `source`, atomically.

    A table is looked for on the target in the same database unless `target_databases`
    maps the source database to another name (two databases on one server, DSNs).

    With `dry_run` nothing is written and the counts say what would change; `statements`
    also returns the SQL (unbounded memory on big differences: meant for --verbose).
    `verify` ("changed", "full" or "none") says what is re-checked before COMMIT.
    `triggers` ("correct", "refuse" or "allow") says what is done about the target's
    triggers (triggers.py), `on_delete` ("refuse" or "apply") about rows the target's
    foreign keys tie to deleted rows (fkeys.py).
    Raises InvalidInput, SchemaMismatch, NoUsableKey, TriggersRefused (nothing run) or
    DatabaseError (target rolled back; VerificationFailed when the re-check found a
    difference, ForeignKeyViolation when rows would reference missing parents).
    """
    wanted = _check_tables(tables)
    if chunk_rows < 1 or buckets < 1:
        raise InvalidInput("chunk_rows and buckets must be positive")
    check_verify(verify)
    check_triggers(triggers)
    check_on_delete(on_delete)
    renamed = {
        db: check_not_system(check_name(name, "database name"))
        for db, name in dict(target_databases or {}).items()
    }
    for conn in (source, target):
        _use_utf8mb4(conn)
    try:
        shapes = [matching_shapes(source, target, db, t, renamed.get(db)) for db, t in wanted]
        rules = _read_rules(target, shapes, triggers, on_delete, dry_run)
    except pymysql.err.Error as e:
        raise DatabaseError(f"Failed to read the catalogue: {e}") from e
    shapes = [shapes[i] for i in order_tables(
        [(d.database, d.table) for _, d in shapes], rules[0].edges, rules[1].soft_order()
    )]
    run = _Run(source, target, dry_run, progress, statements, chunk_rows, buckets, verify, rules)
    return run.all(shapes)


def _read_rules(
    target: pymysql.Connection, shapes: list[tuple[TableShape, TableShape]], triggers: str,
    on_delete: str, dry_run: bool,
) -> tuple[TriggerPlan, ForeignKeyCheck]:
    """The target's triggers and foreign keys around the synced tables, read before any
    change; TriggersRefused when a trigger makes equality impossible."""
    synced = [(d.database, d.table) for _, d in shapes]
    databases = {db for db, _ in synced}
    found = read_triggers(target, databases)
    # A trigger may write a table of another database, whose triggers fire in turn.
    while True:
        more = {w[0] for t in found for w, _ in t.writes} - databases
        if not more:
            break
        databases |= more
        found += read_triggers(target, more)
    plan = plan_triggers(found, synced, triggers)
    fks = relevant(read_foreign_keys(target, {db for db, _ in synced}), synced)
    return plan, ForeignKeyCheck(fks, shapes, on_delete, dry_run)


def check_verify(verify: object) -> str:
    if verify not in VERIFY_MODES:
        raise InvalidInput(
            f"invalid verify {verify!r}: use one of {', '.join(VERIFY_MODES)} (default {DEFAULT_VERIFY})"
        )
    return str(verify)


def _check_tables(tables: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(tables, str | bytes) or not isinstance(tables, Sequence):
        raise InvalidInput("tables must be a list of (database, table) pairs")
    seen: dict[tuple[str, str], None] = {}
    for item in tables:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InvalidInput(f"invalid table {item!r}: expected (database, table)")
        db, t = item
        seen[(check_not_system(check_name(db, "database name")), check_name(t, "table name"))] = None
    return list(seen)


def _use_utf8mb4(conn: pymysql.Connection) -> None:
    # Statements carry utf8mb4 literals rendered by the source; the target must parse them
    # as utf8mb4 and pymysql must encode our text the same way.
    if conn.charset != "utf8mb4":
        conn.set_character_set("utf8mb4")


class _Run:
    def __init__(self, source: pymysql.Connection, target: pymysql.Connection, dry_run: bool,
                 progress: ProgressHook | None, statements: bool, chunk_rows: int, buckets: int, verify: str,
                 rules: tuple[TriggerPlan, ForeignKeyCheck]) -> None:
        self.triggers: TriggerPlan = rules[0]
        self.fk: ForeignKeyCheck = rules[1]
        self.src = source
        self.dst = target
        self.dry_run = dry_run
        self.progress = progress
        self.keep_statements = statements
        self.chunk_rows = chunk_rows
        self.buckets = buckets
        self.verify = verify
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbrepl-source")
        self.packet_bytes = STATEMENT_BYTES
        self.concat_bytes = STATEMENT_BYTES
        self.then_on_source: Callable[[], None] | None = None  # see both()

    # -- run ------------------------------------------------------------------------------

    def all(self, shapes: list[tuple[TableShape, TableShape]]) -> DataSyncResult:
        result = DataSyncResult(dry_run=self.dry_run, verify=self.verify)
        src_saved = dst_saved = None
        committed = False
        try:
            src_saved = _session(self.src, "@@time_zone, @@sql_mode, @@group_concat_max_len")
            dst_saved = _session(
                self.dst, "@@time_zone, @@sql_mode, @@foreign_key_checks, @@unique_checks, @@group_concat_max_len"
            )
            src_packet = int(_rows(self.src, "SELECT @@max_allowed_packet")[0][0])
            dst_packet = int(_rows(self.dst, "SELECT @@max_allowed_packet")[0][0])
            # A statement must fit the target's packet; a joined range the source's too.
            self.packet_bytes = dst_packet - (64 << 10)
            self.concat_bytes = min(_CONCAT_BYTES, src_packet // 2, dst_packet // 2, self.packet_bytes)
            # Same time zone on both sides: TIMESTAMP values are rendered and re-read in it.
            _exec(
                self.src,
                "SET SESSION time_zone='+00:00', sql_mode='',"
                f" group_concat_max_len={int(self.concat_bytes)}",
            )
            _exec(self.src, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # One snapshot for the whole run: all tables are read as of the same instant.
            _exec(self.src, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            # unique_checks=1 whatever the caller's session says: with 0, MariaDB 10.6+ takes
            # its bulk path for a table empty at the first INSERT, and MySQL may skip the
            # duplicate check on secondary unique keys (docs/data-sync.md, "Empty target").
            _exec(
                self.dst,
                f"SET SESSION time_zone='+00:00', sql_mode='{_TARGET_SQL_MODE}',"
                f" foreign_key_checks=0, unique_checks=1, group_concat_max_len={int(self.concat_bytes)}",
            )
            _exec(self.dst, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            _exec(self.dst, "START TRANSACTION")
            tables = []
            for shape, dst_shape in shapes:
                tr = TableResult(shape.database, shape.table)
                if dst_shape.database != shape.database:
                    tr.target_database = dst_shape.database
                if self.keep_statements:
                    tr.statements = []
                result.tables.append(tr)
                table = _Table(self, shape, dst_shape, tr)
                tables.append(table)
                try:
                    table.sync()
                except pymysql.err.Error as e:
                    raise DatabaseError(
                        f"Failed to sync data of {shape.name}: {_fk_words(e)}{self._trigger_words(dst_shape)}"
                        "; the whole run was rolled back, the target is unchanged"
                    ) from e
            # Every table is applied before any is verified: a later table's triggers or
            # ON DELETE actions may have written an earlier one.
            result.foreign_keys = self.fk.check(self.src, self.dst)
            for table in tables:
                if not self.dry_run and self.verify != "none":
                    table.verify()
                table.report("done")
            result.triggers = self.triggers.report(
                {(t.dst_shape.database, t.dst_shape.table): (t.result.inserted, t.result.updated, t.result.deleted,
                                                              t.result.corrected) for t in tables},
                self.dry_run,
            )
            if self.dry_run:
                _exec(self.dst, "ROLLBACK")
            else:
                _exec(self.dst, "COMMIT")
            committed = True
            return result
        except pymysql.err.Error as e:
            raise DatabaseError(f"Failed to sync data: {_fk_words(e)}") from e
        finally:
            self.pool.shutdown(wait=True)
            if not committed:
                _quietly(self.dst, "ROLLBACK")
            _quietly(self.src, "COMMIT")
            if src_saved:
                _restore(self.src, "time_zone", "sql_mode", "group_concat_max_len", values=src_saved)
            if dst_saved:
                _restore(self.dst, "time_zone", "sql_mode", "foreign_key_checks", "unique_checks",
                         "group_concat_max_len", values=dst_saved)

    def _trigger_words(self, shape: TableShape) -> str:
        """The target's triggers that fired on a table's writes, for an error about them."""
        fired = [t for t in self.triggers.on((shape.database, shape.table))
                 if (t.schema, t.name) in self.triggers.fired]
        if not fired:
            return ""
        return " (the target's triggers fire on these writes: " + ", ".join(
            f"{t.label} ({t.when})" + (f" writes {', '.join('.'.join(w) for w, _ in t.writes)}" if t.writes else "")
            for t in fired
        ) + ")"

    def both(self, on_source: Callable[[], Any], on_target: Callable[[], Any]) -> tuple[Any, Any]:
        """Run a source query and a target query at the same time (two servers, two sockets).

        `then_on_source`, when set, is run once on the source right after its query (and
        cleared): work for later that the source can do while the target is still busy."""
        after, self.then_on_source = self.then_on_source, None
        if after is not None:
            first = on_source

            def on_source() -> Any:
                got = first()
                after()
                return got

        fut = self.pool.submit(on_source)
        try:
            dst = on_target()
        finally:
            src = fut.result()
        return src, dst


class _Table:
    def __init__(self, run: _Run, shape: TableShape, dst_shape: TableShape, result: TableResult):
        self.run = run
        self.shape = shape  # source side
        self.dst_shape = dst_shape  # same columns and key, maybe another database
        self.result = result
        self.compared = 0
        self.estimate = _estimate(run.src, shape)
        self.pending: str | None = None  # temporary table holding deferred inserts
        # Key ranges walked by the comparison that no whole-range digest proved equal, with
        # the source's digest of the range (row count, XOR of row hashes) as the comparison saw it.
        self.unproven: list[tuple[sql.Key | None, sql.Key | None, Digest | None]] = []
        self.copied = False
        self.modes: dict[str, int] = {}  # chunks compared per mode (for tests and debugging)
        # How a differing chunk is looked into after a whole-chunk digest: "rows" (see
        # _compare); tests set "bucket" to put the bucket path under a fault.
        self.first_drill = _FIRST_DRILL
        # Only verify="changed" reuses the comparison's source digests (a dry run verifies nothing).
        self.keep_digests = not run.dry_run and run.verify == "changed"
        # A target trigger rewrites inserted rows: inserts go through a temporary table so
        # that the rows it touched can be set back (triggers.py, "corrected").
        self.correct = not run.dry_run and run.triggers.needs_correction((dst_shape.database, dst_shape.table))

    def sync(self) -> None:
        """Compare and apply (verification comes later, once every table is applied)."""
        if not _rows(self.run.dst, f"SELECT 1 FROM {self.dst_shape.qname} LIMIT 1"):
            self.copied = True
            self.run.fk.inserting(self.run.src, self.dst_shape, None)
            self._copy_all()
        else:
            self._compare()
        self._finish_pending()

    def verify(self) -> None:
        self._verify()

    def report(self, phase: str) -> None:
        self._report(phase)

    # -- verify ---------------------------------------------------------------------------

    def _verify(self) -> None:
        """Re-check the applied result inside the open transaction, before COMMIT.

        The source is read in the run's snapshot, the target sees its own uncommitted
        changes. "changed": every range the comparison did not prove equal with a
        whole-range digest (an empty target's copy: every range), the target's range digest
        read afresh and compared with the source's from the comparison (the source is read
        in one snapshot: its digest cannot have moved). "full": a fresh walk of the whole
        table, both sides digested from the rows' VALUES literals (no code shared with the
        comparison's row hash). Either way the row counts of both sides.
        """
        run = self.run
        ranges = self._walk() if run.verify == "full" or self.copied else self.unproven
        digest = sql.literal_digest if run.verify == "full" else sql.chunk_digest
        for lo, hi, known in ranges:
            dq = digest(self.dst_shape, lo, hi)
            if known is None:
                sq = digest(self.shape, lo, hi)
                src_d, dst_d = run.both(functools.partial(_digest, run.src, sq),
                               functools.partial(_digest, run.dst, dq))
            else:
                src_d, dst_d = known, _digest(run.dst, dq)
            if src_d != dst_d:
                raise VerificationFailed(
                    f"verification failed for {self.shape.name}: key range"
                    f" {_describe_range(self.shape, lo, hi)} still differs after applying"
                    f" ({_what_differs(src_d[0], dst_d[0])}){self._explain(lo, hi)}; the whole run was"
                    " rolled back, the target is unchanged"
                )
            self.result.verified_ranges += 1
            self._report("verify")
        cq, dq = sql.row_count(self.shape), sql.row_count(self.dst_shape)
        n_src, n_dst = run.both(lambda: int(_rows(run.src, cq)[0][0]),
                                lambda: int(_rows(run.dst, dq)[0][0]))
        if n_src != n_dst:
            raise VerificationFailed(
                f"verification failed for {self.shape.name}: {n_src} rows on the source,"
                f" {n_dst} on the target after applying{self._explain(None, None)}; the whole run"
                " was rolled back, the target is unchanged"
            )
        self.result.verified_rows = n_src

    def _explain(self, lo: sql.Key | None, hi: sql.Key | None) -> str:
        """What a failed verification found, in words: one differing row of the range (its
        key and which columns differ; never values), and what on the target writes rows
        besides the sync (its triggers, generated columns)."""
        run = self.run
        words = []
        try:
            width = len(self.shape.key)
            src_q = sql.bucket_rows(self.shape, lo, hi, 1, None, False)
            dst_q = sql.bucket_rows(self.dst_shape, lo, hi, 1, None, False)
            src = {tuple(r[:width]): r[width] for r in _rows(run.src, src_q)}
            dst = {tuple(r[:width]): r[width] for r in _rows(run.dst, dst_q)}
            differing = sorted(k for k in src.keys() | dst.keys() if src.get(k) != dst.get(k))
            if differing:
                k = differing[0]
                key = _describe_key(self.shape, k)
                if k not in dst:
                    words.append(f"the row with key {key} is missing on the target")
                elif k not in src:
                    words.append(f"the row with key {key} is on the target only")
                else:
                    cols = self.shape.written
                    lits = ", ".join(f"CAST({c.literal()} AS BINARY)" for c in cols)
                    where = sql.keys_where(self.shape, [k]).decode()
                    dwhere = sql.keys_where(self.dst_shape, [k]).decode()
                    a = _rows(run.src, f"SELECT {lits} FROM {self.shape.qname} WHERE {where}")
                    b = _rows(run.dst, f"SELECT {lits} FROM {self.dst_shape.qname} WHERE {dwhere}")
                    names = [c.name for c, x, y in zip(cols, a[0], b[0], strict=True) if x != y] if a and b else []
                    words.append(f"the row with key {key} differs in column(s) {', '.join(names) or '(none found)'}")
                if len(differing) > 1:
                    words.append(f"{len(differing)} rows of the range differ")
        except pymysql.err.Error:
            pass  # the explanation is best effort; the failure itself stands
        triggers = run.triggers.on((self.dst_shape.database, self.dst_shape.table))
        if triggers:
            words.append("the target has triggers on the table, which fire on the rows the sync writes: "
                         + ", ".join(f"{t.label} ({t.when})" for t in triggers))
        generated = [c.name for c in self.dst_shape.columns if c.generated]
        if generated:
            words.append(f"generated column(s) {', '.join(generated)} are computed by the target")
        return ": " + "; ".join(words) if words else ""

    def _walk(self) -> list[tuple[sql.Key | None, sql.Key | None, Digest | None]]:
        """The source's key index cut into ranges of `chunk_rows` keys (no digests known)."""
        run = self.run
        out: list[tuple[sql.Key | None, sql.Key | None, Digest | None]] = []
        lo: sql.Key | None = None
        while True:
            found = _rows(run.src, sql.next_boundary(self.shape, lo, run.chunk_rows))
            hi: sql.Key | None = tuple(found[0]) if found else None
            out.append((lo, hi, None))
            if hi is None:
                return out
            lo = hi

    # -- compare --------------------------------------------------------------------------

    def _compare(self) -> None:
        """Walk the chunks; how deep to look first adapts to how dense differences are.

        "chunk": one digest per side; every row's (hash, key) only if it differs (equal
        tables: one pass). Rows rather than bucket digests first: one bucket digest pass
        costs more than reading every row's hash, which the drill into the differing
        buckets would do again (measured on MariaDB 10.11, 50,000 rows of the floor
        benchmark's table, one server: bucket digests 100 ms, every row's (hash, key) 75 ms,
        the flat digest 78 ms, the next chunk's boundary 9 ms).
        "rows": the last chunk differed: read every row's (hash, key) at once, one hashing
        pass per side (a bucket digest pass and then a drill into its buckets would be two).
        "bucket": the last chunk differed in fewer than one row per `buckets` rows: bucket
        digests first, so that only the few differing buckets' rows travel.
        """
        run, shape = self.run, self.shape
        lo: sql.Key | None = None
        mode = "chunk"
        # The first chunk is small: on a table that differs throughout, its digest (which
        # then only says "look at the rows") is spent on an eighth of a chunk, not a whole one.
        found = _rows(run.src, sql.next_boundary(shape, lo, max(1, run.chunk_rows // _FIRST_CHUNK_SHARE)))
        while True:
            hi: sql.Key | None = tuple(found[0]) if found else None
            # The next chunk's boundary (a walk of chunk_rows index entries) is looked up on the
            # source while the target still works on this chunk (every mode starts with both()).
            following: list[list[tuple[Any, ...]]] = []
            if hi is not None:
                run.then_on_source = functools.partial(self._boundary_after, hi, following)
            self.modes[mode] = self.modes.get(mode, 0) + 1
            if mode == "chunk":
                sq = sql.chunk_digest(shape, lo, hi)
                dq = sql.chunk_digest(self.dst_shape, lo, hi)
                src_c, dst_c = run.both(functools.partial(_digest, run.src, sq),
                               functools.partial(_digest, run.dst, dq))
                self.compared += src_c[0]
                if src_c != dst_c:
                    self.unproven.append((lo, hi, src_c))
                    if self.first_drill == "bucket":
                        self.modes["bucket"] = self.modes.get("bucket", 0) + 1  # the drill is a bucket pass
                        self.compared -= src_c[0]  # _buckets counts the chunk's rows
                        mode = self._next_mode(self._buckets(lo, hi)[0], src_c[0])
                    else:
                        mode = self._next_mode(self._drill(lo, hi, None)[1], src_c[0])
            elif mode == "bucket":
                changed, src_total = self._buckets(lo, hi)
                self.unproven.append((lo, hi, src_total))
                mode = self._next_mode(changed, src_total[0])
            else:
                rows, changed, src_digest = self._drill(lo, hi, None)
                self.unproven.append((lo, hi, src_digest))
                self.compared += rows
                mode = self._next_mode(changed, rows)
            run.then_on_source = None
            self._report("compare")
            if hi is None:
                return
            lo = hi
            found = following[0] if following else _rows(run.src, sql.next_boundary(shape, lo, run.chunk_rows))

    def _boundary_after(self, lo: sql.Key, out: list[list[tuple[Any, ...]]]) -> None:
        out.append(_rows(self.run.src, sql.next_boundary(self.shape, lo, self.run.chunk_rows)))

    def _next_mode(self, changed: int, rows: int) -> str:
        """After a chunk in which `changed` of `rows` rows differed: equal -> one digest;
        fewer than one row in `buckets` differing -> buckets narrow what travels; else all rows."""
        if changed == 0:
            return "chunk"
        return "bucket" if changed * self.run.buckets < rows else "rows"

    def _buckets(self, lo: sql.Key | None, hi: sql.Key | None) -> tuple[int, Digest]:
        """Compare the chunk bucket by bucket and apply what differs; returns the rows that
        differed and the source's digest of the whole chunk (the buckets' counts summed,
        their XORs combined: however rows were grouped, every row is in it)."""
        run = self.run
        sq = sql.bucket_digests(self.shape, lo, hi, run.buckets)
        dq = sql.bucket_digests(self.dst_shape, lo, hi, run.buckets)
        src_d, dst_d = run.both(lambda: _digests(run.src, sq), lambda: _digests(run.dst, dq))
        self.compared += sum(n for n, _ in src_d.values())
        total = (sum(n for n, _ in src_d.values()), functools.reduce(operator.xor, (x for _, x in src_d.values()), 0))
        differing = sorted(b for b in src_d.keys() | dst_d.keys() if src_d.get(b) != dst_d.get(b))
        if not differing:
            return 0, total
        # Past half the buckets, one scan of the chunk beats a long IN list.
        return self._drill(lo, hi, differing if len(differing) * 2 < run.buckets else None)[1], total

    def _drill(
        self, lo: sql.Key | None, hi: sql.Key | None, which: list[int] | None
    ) -> tuple[int, int, Digest | None]:
        """Match rows of the chunk (of buckets `which`, or all) by exact key bytes and
        apply the differences; returns (source rows read, rows that differed, the source
        rows' digest: count and XOR of their 64-bit hashes, as chunk_digest computes it;
        None when no verification will use it: a dry run, or verify "full" or "none").

        Both sides send (hash, key) per row; the rows are matched as whole entries
        (match.unmatched: runs equal on both sides are skipped a slice at a time, the rest
        matched as sets; no Python step per row), and only the source rows that differ are then
        read, by key: one hashing pass per side for the chunk, as close to the floor (one
        digest pass) as a comparison that must name the rows can get."""
        run, shape = self.run, self.shape
        width = len(shape.key)
        # One entry per row: its hash (16 hex digits), NUL, its key literals; the server joins
        # them with two NULs. Cut into one bytes value per row only when the hashes are needed
        # (the source's digest for verify "changed"); else matched as joined (match.py).
        src_got, dst_got = run.both(
            lambda: self._fetch_joined(run.src, shape, lo, hi, which, False),
            lambda: self._fetch_joined(run.dst, self.dst_shape, lo, hi, which, False),
        )
        digest: Digest | None = None
        if self.keep_digests or not isinstance(src_got, bytes) or not isinstance(dst_got, bytes):
            src_rows, dst_rows = _entries(src_got), _entries(dst_got)
            rows = len(src_rows)
            if self.keep_digests:
                digest = (rows, _xor_of_hashes(src_rows))
            only_src, only_dst = unmatched(src_rows, dst_rows)
            del src_rows, dst_rows
        else:
            rows = src_got.count(SEP) + 1 if src_got else 0
            only_src, only_dst = unmatched_joined(src_got, dst_got)
        del src_got, dst_got
        if not only_src and not only_dst:
            return rows, 0, digest
        # In the order the key index gave them, so statements follow the key.
        src_diff = [tuple(e[17:].split(b"\0")) for e in only_src]
        dst_diff = [tuple(e[17:].split(b"\0")) for e in only_dst]
        src_keys, dst_keys = set(src_diff), set(dst_diff)
        extra = [k for k in dst_diff if k not in src_keys]
        changed = [k for k in src_diff if k in dst_keys]
        missing = [k for k in src_diff if k not in dst_keys]
        self._delete(extra, changed)
        need = changed + missing
        if need:
            self.run.fk.inserting(run.src, self.dst_shape, need)
        self._insert(self._source_rows(lo, hi, which, need, rows, width), len(missing), len(changed))
        return rows, len(extra) + len(changed) + len(missing), digest

    def _fetch(self, conn: Any, side: TableShape, lo: sql.Key | None, hi: sql.Key | None,
               which: list[int] | None, with_rows: bool) -> list[bytes]:
        """Per row of the range (of buckets `which`): `hash NUL key... [NUL row literal]`."""
        return _entries(self._fetch_joined(conn, side, lo, hi, which, with_rows))

    def _fetch_joined(self, conn: Any, side: TableShape, lo: sql.Key | None, hi: sql.Key | None,
                      which: list[int] | None, with_rows: bool) -> bytes | list[bytes]:
        """The same entries as the server joined them (SEP between two), or, where the joined
        value was cut or does not split into its row count, as a list read row by row."""
        run = self.run
        width = len(side.key)
        n, joined = _rows(conn, sql.bucket_rows_joined(side, lo, hi, run.buckets, which, with_rows))[0]
        joined = joined or b""
        if (joined.count(SEP) + 1 if joined else 0) == int(n) and len(joined) < run.concat_bytes - 1:
            return bytes(joined)
        # Cut at GROUP_CONCAT's limit (wide rows): read this chunk row by row.
        return [
            b"\0".join((r[width][:16].encode(), *r[:width], *r[width + 1:]))
            for r in _rows(conn, sql.bucket_rows(side, lo, hi, run.buckets, which, with_rows))
        ]

    def _source_rows(self, lo: sql.Key | None, hi: sql.Key | None, which: list[int] | None,
                     keys: list[sql.Key], rows: int, width: int) -> Iterable[bytes]:
        """The source's row literals of `keys` (read lazily: a dry run that keeps no
        statements never reads them). Most of the range: one more scan of it; else by key."""
        if not keys:
            return
        run, shape = self.run, self.shape
        if len(keys) * 2 > rows:
            want = set(keys)
            found = {}
            for e in self._fetch(run.src, shape, lo, hi, which, True):
                fields = e[17:].split(b"\0")
                key = tuple(fields[:width])
                if key in want:
                    found[key] = fields[width]
            yield from (found[k] for k in keys)
            return
        step = 1_000
        for i in range(0, len(keys), step):
            part = keys[i:i + step]
            got = _rows(run.src, sql.rows_for_keys(shape, part))
            if len(got) != len(part):
                raise DatabaseError(
                    f"{shape.name}: {len(part)} differing rows were read by key and {len(got)} came back;"
                    " the source changed under its own snapshot, which should not happen"
                )
            yield from (r[0] for r in got)

    # -- apply ----------------------------------------------------------------------------

    def _delete(self, extra: list[sql.Key], changed: list[sql.Key]) -> None:
        self.result.deleted += len(extra)
        run = self.run
        if extra or changed:
            run.fk.deleting(run.dst, self.dst_shape, extra + changed)
        step = 1_000
        if extra and run.fk.mode == "apply" and run.fk.is_parent(self.dst_shape) and not run.dry_run:
            # Rows the source deleted go with foreign key checks on: the target's own ON
            # DELETE actions happen (a RESTRICT with children refused the run just before).
            run.fk.delete_actions(run.dst, self.dst_shape, extra)
            _exec(run.dst, "SET SESSION foreign_key_checks=1")
            try:
                for i in range(0, len(extra), step):
                    self._write(sql.delete_keys(self.dst_shape, extra[i:i + step]))
            finally:
                _exec(run.dst, "SET SESSION foreign_key_checks=0")
            extra = []
        # Rows that only changed are deleted and inserted again with checks off: nothing
        # cascades from a row that comes back.
        keys = extra + changed
        for i in range(0, len(keys), step):
            self._write(sql.delete_keys(self.dst_shape, keys[i:i + step]))

    def _insert(self, rows: Iterable[bytes], inserted: int, updated: int) -> None:
        self.result.inserted += inserted
        self.result.updated += updated
        if self.run.dry_run and self.result.statements is None:
            return  # nothing to write and no statement to show: the rows are not read
        target = self.dst_shape.qname
        if self.correct or (self.shape.other_unique and not self.run.dry_run):
            # Another unique key may still hold a value a later chunk frees (two rows
            # swapping a unique value): inserts wait until every delete of the table ran.
            target = self._pending_table()
        head = sql.insert_head(self.dst_shape, target)
        for group in sql.batches(rows, STATEMENT_BYTES):
            self._write(head + b",".join(group))

    def _pending_table(self) -> str:
        if self.pending is None:
            # TEMPORARY: created and dropped without committing the run's transaction. Its
            # name is one no table of the database has: a temporary table hides a base table
            # of the same name from this session, so a user's `dbrepl_pending` must not be it.
            self.pending = qualified(self.dst_shape.database, _unused_table_name(
                self.run.dst, self.dst_shape.database, "dbrepl_pending"))
            _exec(self.run.dst, f"CREATE TEMPORARY TABLE {self.pending} LIKE {self.dst_shape.qname}")
        return self.pending

    def _finish_pending(self) -> None:
        if self.pending is None:
            return
        cols = sql.column_list(self.shape)
        _exec(
            self.run.dst,
            f"INSERT INTO {self.dst_shape.qname} ({cols}) SELECT {cols} FROM {self.pending}",
        )
        if self.correct:
            # The target's BEFORE INSERT triggers ran on every row just inserted: set back
            # exactly the rows they rewrote (the temporary table has no triggers and holds
            # the source's values). The verification before COMMIT proves the result.
            with self.run.dst.cursor() as cur:
                cur.execute(sql.correct_rows(self.dst_shape, self.pending))
                self.result.corrected += max(0, cur.rowcount)
        _exec(self.run.dst, f"DROP TEMPORARY TABLE {self.pending}")
        self.pending = None

    def _write(self, statement: bytes) -> None:
        if self.result.statements is not None:
            self.result.statements.append(statement.decode("utf-8", "replace"))
        if not self.run.dry_run:
            with self.run.dst.cursor() as cur:
                # pymysql sends bytes as they are (its stubs accept str only).
                cur.execute(statement)  # type: ignore[call-overload]
            self._report("apply")

    def _copy_all(self) -> None:
        """Empty target: copy every source row, no hashing, in multi-row INSERTs.

        The source joins each key range's rows into one VALUES list (GROUP_CONCAT), so the
        client touches one value per range, not per row; a reader thread fetches the next
        range while this thread waits on the target's insert, so both servers work at once.
        """
        run, shape = self.run, self.shape
        items: queue.Queue[tuple[bytes, int] | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()
        head = sql.insert_head(self.dst_shape, self._pending_table() if self.correct else None)
        budget = min(STATEMENT_BYTES, run.packet_bytes)

        def put(item: tuple[bytes, int] | BaseException | None) -> None:
            while not stop.is_set():
                with contextlib.suppress(queue.Full):
                    items.put(item, timeout=0.1)
                    return

        def read() -> None:
            try:
                rows_per = _COPY_FIRST_RANGE
                lo: sql.Key | None = None
                while not stop.is_set():
                    found = _rows(run.src, sql.next_boundary(shape, lo, rows_per))
                    hi: sql.Key | None = tuple(found[0]) if found else None
                    n, values = _rows(run.src, sql.range_values(shape, lo, hi))[0]
                    if n and (values is None or len(values) >= run.concat_bytes - 1):
                        # Longer than GROUP_CONCAT may return: this range row by row.
                        for group in sql.batches((r[0] for r in _rows(run.src, sql.range_rows(shape, lo, hi))), budget):
                            put((head + b",".join(group), len(group)))
                    elif n:
                        put((head + values, int(n)))
                        # Next range sized so its statement lands near the budget.
                        per_row = max(1, len(values) // int(n))
                        rows_per = max(1, min(_COPY_MAX_RANGE, budget // per_row))
                    if hi is None:
                        break
                    lo = hi
                put(None)
            except BaseException as e:  # handed to the applying thread, which re-raises
                put(e)

        reader = threading.Thread(target=read, name="dbrepl-copy", daemon=True)
        reader.start()
        try:
            while True:
                item = items.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                statement, n = item
                self.result.inserted += n
                self.compared += n
                self._write(statement)
        finally:
            stop.set()
            reader.join()

    def _report(self, phase: str) -> None:
        if self.run.progress is not None:
            r = self.result
            self.run.progress(Progress(
                database=r.database, table=r.table, phase=phase, rows_compared=self.compared,
                rows_estimate=max(self.estimate, self.compared), inserted=r.inserted,
                updated=r.updated, deleted=r.deleted,
            ))


# -- small database helpers -------------------------------------------------------------


def _exec(conn: Any, statement: str | bytes) -> None:
    with conn.cursor() as cur:
        cur.execute(statement)


def _rows(conn: Any, statement: str | bytes, args: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(statement, args)
        return list(cur.fetchall())


def _digest(conn: Any, statement: str) -> Digest:
    """(row count, XOR of row hashes) of a chunk_digest/literal_digest query."""
    n, x = _rows(conn, statement)[0]
    return int(n), int(x or 0)


def _digests(conn: Any, statement: str) -> dict[int, tuple[int, int]]:
    return {int(b): (int(n), int(x)) for b, n, x in _rows(conn, statement)}


def _unused_table_name(conn: Any, database: str, stem: str) -> str:
    """`stem`, or `stem_2`, `stem_3`...: the first name no table or view of `database` has."""
    taken = {
        r[0].lower() for r in _rows(
            conn,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s"
            " AND TABLE_NAME LIKE %s",
            (database, stem.replace("_", "\\_") + "%"),
        )
    }
    name, n = stem, 1
    while name.lower() in taken:
        n += 1
        name = f"{stem}_{n}"
    return name


def _entries(got: bytes | list[bytes]) -> list[bytes]:
    """_fetch_joined's answer as one bytes value per row."""
    if isinstance(got, bytes):
        return got.split(SEP) if got else []
    return got


def _xor_of_hashes(rows: list[bytes]) -> int:
    """XOR of the 64-bit numbers the rows' leading 16 hex digits spell, as the server's
    BIT_XOR(CONV(LEFT(hash, 16), 16, 10)) computes it, without a Python step per row: the
    digits are decoded in one call and XORed as native 64-bit words, whose byte order is
    then turned to the number's (XOR works bytewise, so order commutes with it)."""
    if not rows:
        return 0
    words = array.array("Q", binascii.unhexlify(b"".join(map(operator.itemgetter(slice(0, 16)), rows))))
    if sys.byteorder == "little":
        words.byteswap()
    return functools.reduce(operator.xor, words, 0)


def _fk_words(e: pymysql.err.Error) -> str:
    """The server's error, with what its foreign key refusals mean here."""
    if e.args and e.args[0] in (1451, 1452):
        return (f"{e}: the target's foreign key refused it (--on-delete apply deletes with checks on);"
                " docs/data-sync.md, \"The target's rules: foreign keys\"")
    return str(e)


def _describe_key(shape: TableShape, key: sql.Key) -> str:
    text = ", ".join(v.decode("utf-8", "replace") for v in key)
    return f"({text})" if len(key) > 1 else text


def _what_differs(n_src: int, n_dst: int) -> str:
    if n_src != n_dst:
        return f"{n_src} rows on the source, {n_dst} on the target"
    return f"{n_src} rows on each side, with different values"


def _describe_range(shape: TableShape, lo: sql.Key | None, hi: sql.Key | None) -> str:
    """`(k1, k2) > (lo...) and <= (hi...)` with the server-rendered key literals."""
    cols = ", ".join(c.q for c in shape.key)
    cols = f"({cols})" if len(shape.key) > 1 else cols

    def lit(key: sql.Key) -> str:
        text = ", ".join(v.decode("utf-8", "replace") for v in key)
        return f"({text})" if len(key) > 1 else text

    parts = ([f"> {lit(lo)}"] if lo is not None else []) + ([f"<= {lit(hi)}"] if hi is not None else [])
    return f"{cols} {' and '.join(parts)}" if parts else f"{cols}: the whole table"


def _estimate(conn: Any, shape: TableShape) -> int:
    found = _rows(
        conn,
        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
        (shape.database, shape.table),
    )
    return int(found[0][0] or 0) if found else 0


def _session(conn: Any, variables: str) -> tuple[Any, ...]:
    return tuple(_rows(conn, f"SELECT {variables}")[0])


def _restore(conn: Any, *names: str, values: tuple[Any, ...]) -> None:
    assignments = ", ".join(f"{n}=%s" for n in names)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET SESSION {assignments}", values)
    except pymysql.err.Error:
        pass  # the connection is gone (killed or lost): nothing left to restore


def _quietly(conn: Any, statement: str) -> None:
    # A lost connection has rolled back (target) or released (source) by itself.
    with contextlib.suppress(pymysql.err.Error):
        _exec(conn, statement)
