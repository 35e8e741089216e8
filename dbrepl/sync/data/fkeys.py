"""The target's foreign keys around the synced tables: no run leaves a row pointing at nothing.

A data sync writes with foreign key checks off (tables synced together may be applied in any
order), and with checks off InnoDB neither checks a reference nor performs an ON DELETE / ON
UPDATE action. So before COMMIT the run checks every foreign key on the target whose parent
or child is a synced table, including children and parents outside the synced set, for the
keys that changed:

- parent side: the referenced values of every row the run deleted (or deleted to insert
  again) are remembered before the DELETE; after applying, child rows still holding a value
  that no parent row has any more are orphans;
- child side: every row the run inserted into a synced child (a whole copied table) must
  find its parent.

`on_delete="refuse"` (default): any orphan rolls the run back before COMMIT
(ForeignKeyViolation naming the constraint, the table outside the set and how many rows).
`on_delete="apply"`: rows the source deleted are deleted with foreign key checks on, so the
target's own CASCADE / SET NULL / RESTRICT happen as declared (a RESTRICT refuses the run),
and the result reports the rows each action touched; rows that merely changed (same key)
are still deleted and re-inserted with checks off, so they never cascade. Orphans left any
other way (an ON UPDATE dependency: the source changed a referenced non-key value) still
roll the run back.

A dry run writes nothing, so it works from the differences instead: the referenced values
the run would remove (the target's values of the rows it would delete, less the source's
values of the rows it would insert) and the parents of the rows it would insert. Where
both tables of a key are synced a dry run does not check it: after the run both equal the
source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql

from dbrepl.sync.data import statements as sql
from dbrepl.sync.data.shape import Column, TableShape
from dbrepl.sync.errors import DatabaseError, InvalidInput
from dbrepl.sync.ident import qualified, quote

ON_DELETE_MODES = ("refuse", "apply")
DEFAULT_ON_DELETE = "refuse"
_BATCH = 1_000
# Past this many inserted keys a child table is checked whole instead of key by key.
_MAX_KEYS = 200_000

TableName = tuple[str, str]


def check_on_delete(mode: object) -> str:
    if mode not in ON_DELETE_MODES:
        raise InvalidInput(
            f"invalid on_delete {mode!r}: use one of {', '.join(ON_DELETE_MODES)} (default {DEFAULT_ON_DELETE})"
        )
    return str(mode)


class ForeignKeyViolation(DatabaseError):
    """Applying would leave rows referencing missing parents (or hit a RESTRICT): rolled back."""

    def __init__(self, message: str, findings: Sequence[ForeignKeyEffect]):
        super().__init__(message)
        self.findings = list(findings)


@dataclass(frozen=True)
class ForeignKey:
    schema: str
    name: str
    child: TableName
    columns: tuple[str, ...]
    parent: TableName
    referenced: tuple[str, ...]
    on_delete: str
    on_update: str

    def describe(self) -> str:
        c = ", ".join(self.columns)
        r = ", ".join(self.referenced)
        return (f"foreign key {self.name} ({'.'.join(self.child)}.{c} -> {'.'.join(self.parent)}.{r},"
                f" ON DELETE {self.on_delete}, ON UPDATE {self.on_update})")


@dataclass
class ForeignKeyEffect:
    constraint: str
    child: str
    parent: str
    on_delete: str
    rows: int
    outcome: str  # cascaded | set null | orphaned | restricted | would cascade | would set null
    synced_child: bool = True
    synced_parent: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "constraint": self.constraint, "child": self.child, "parent": self.parent,
            "on_delete": self.on_delete, "rows": self.rows, "outcome": self.outcome,
            "child_synced": self.synced_child, "parent_synced": self.synced_parent,
        }


def read_foreign_keys(conn: Any, databases: Iterable[str]) -> list[ForeignKey]:
    """Every foreign key with its child or its parent in `databases`.

    information_schema's key tables are filled by opening tables, fast for the databases a
    query names (TABLE_SCHEMA IN ...) and a scan of every table on the server otherwise (on
    MariaDB; MySQL 8 reads its data dictionary). So the databases holding children of the
    synced ones are found first in InnoDB's own dictionary (MariaDB's INNODB_SYS_FOREIGN),
    then only those databases are read, keys and rules in two queries joined here (joined
    in SQL the second table loses its lookup). Where that dictionary cannot be read (MySQL
    8, no PROCESS privilege, a name InnoDB stores encoded) one query over every table.
    """
    dbs = sorted(set(databases))
    if not dbs:
        return []
    others = _child_databases(conn, dbs)
    if others is None:
        marks = ", ".join(["%s"] * len(dbs))
        where, args = f"(TABLE_SCHEMA IN ({marks}) OR REFERENCED_TABLE_SCHEMA IN ({marks}))", dbs + dbs
        rc_where, rc_args = "TRUE", []
    else:
        read = sorted(set(dbs) | others)
        marks = ", ".join(["%s"] * len(read))
        where, args = f"TABLE_SCHEMA IN ({marks})", read
        rc_where, rc_args = f"CONSTRAINT_SCHEMA IN ({marks})", read
    with conn.cursor() as cur:
        cur.execute(
            "SELECT CONSTRAINT_SCHEMA, CONSTRAINT_NAME, TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME,"
            " REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME"
            f" FROM information_schema.KEY_COLUMN_USAGE WHERE REFERENCED_TABLE_NAME IS NOT NULL AND {where}"
            " ORDER BY 1, 3, 4, 2, ORDINAL_POSITION",
            args,
        )
        keys = [tuple(_text(v) for v in r) for r in cur.fetchall()]
        cur.execute(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, DELETE_RULE, UPDATE_RULE"
            f" FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE {rc_where}",
            rc_args,
        )
        rules = {tuple(_text(v) for v in r[:3]): (_text(r[3]), _text(r[4])) for r in cur.fetchall()}
    found: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for schema, name, cs, ct, col, ps, pt, pcol in keys:
        on_delete, on_update = rules.get((schema, ct, name), ("RESTRICT", "RESTRICT"))
        fk = found.setdefault((schema, name, cs, ct), {
            "schema": schema, "name": name, "child": (cs, ct), "columns": [], "parent": (ps, pt),
            "referenced": [], "on_delete": on_delete, "on_update": on_update,
        })
        fk["columns"].append(col)
        fk["referenced"].append(pcol)
    return [
        ForeignKey(**{**f, "columns": tuple(f["columns"]), "referenced": tuple(f["referenced"])})
        for f in found.values()
    ]


_PLAIN = re.compile(r"[A-Za-z0-9_]+")


def _child_databases(conn: Any, dbs: Sequence[str]) -> set[str] | None:
    """Databases other than `dbs` holding a foreign key to a table of `dbs`, from InnoDB's
    dictionary; None when it cannot tell (then the caller scans)."""
    if not all(_PLAIN.fullmatch(d) for d in dbs):
        return None  # InnoDB stores such names encoded (@002d...)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT DISTINCT FOR_NAME FROM information_schema.INNODB_SYS_FOREIGN WHERE "
                + " OR ".join(["REF_NAME LIKE %s"] * len(dbs)),
                [d.replace("_", "\\_") + "/%" for d in dbs],
            )
            names = [_text(r[0]) for r in cur.fetchall()]
    except pymysql.err.Error:
        return None  # MySQL 8 (no such table: its information_schema is fast), no PROCESS privilege
    out = set()
    for n in names:
        db = n.split("/", 1)[0]
        if not _PLAIN.fullmatch(db):
            return None
        out.add(db)
    return out - set(dbs)


def _text(v: object) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)


def _key(t: TableName) -> TableName:
    return t[0].lower(), t[1].lower()


def relevant(fks: Sequence[ForeignKey], synced: Iterable[TableName]) -> list[ForeignKey]:
    keys = {_key(s) for s in synced}
    return [f for f in fks if _key(f.child) in keys or _key(f.parent) in keys]


def _rows(conn: Any, statement: str | bytes) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(statement)
        return list(cur.fetchall())


def _columns(shape: TableShape, names: Sequence[str]) -> list[Column]:
    by = {c.name.lower(): c for c in shape.columns}
    return [by[n.lower()] for n in names]


def _lits(cols: Sequence[Column]) -> str:
    return ", ".join(f"CAST({c.literal()} AS BINARY)" for c in cols)


def _in(cols: Sequence[Column], values: Sequence[tuple[bytes, ...]], prefix: str = "") -> str:
    """`(c1, c2) IN ((v, v), ...)` over server-rendered literals (never a NULL)."""
    names = [prefix + c.q for c in cols]
    if len(cols) == 1:
        return f"{names[0]} IN ({', '.join(cols[0].compare_literal(v[0]).decode() for v in values)})"
    tuples = ", ".join(
        "(" + ", ".join(c.compare_literal(x).decode() for c, x in zip(cols, v, strict=True)) + ")" for v in values
    )
    return f"({', '.join(names)}) IN ({tuples})"


def _key_in(shape: TableShape, keys: Sequence[sql.Key]) -> str:
    return _in(shape.key, keys)


def _not_null(values: Iterable[tuple[bytes, ...]]) -> list[tuple[bytes, ...]]:
    return [v for v in values if all(x != b"NULL" for x in v)]


@dataclass
class _Parent:
    """Referenced values removed (or possibly removed) from one synced parent, per key."""

    fk: ForeignKey
    shape: TableShape  # the parent on the target
    src_shape: TableShape
    before: set[tuple[bytes, ...]] = field(default_factory=set)  # values of rows deleted
    after: set[tuple[bytes, ...]] = field(default_factory=set)  # dry run: values re-inserted


@dataclass
class _Child:
    fk: ForeignKey
    shape: TableShape  # the child on the target
    src_shape: TableShape
    keys: list[sql.Key] = field(default_factory=list)
    whole: bool = False


class ForeignKeyCheck:
    """Collects what a run changes around foreign keys and checks it before COMMIT."""

    def __init__(self, fks: Sequence[ForeignKey], shapes: Sequence[tuple[TableShape, TableShape]],
                 mode: str, dry_run: bool):
        self.mode = mode
        self.dry_run = dry_run
        self.fks = list(fks)
        self.synced = {_key((d.database, d.table)) for _, d in shapes}
        self.parents: dict[TableName, list[_Parent]] = {}
        self.children: dict[TableName, list[_Child]] = {}
        self.effects: list[ForeignKeyEffect] = []
        by = {_key((d.database, d.table)): (s, d) for s, d in shapes}
        for f in self.fks:
            if _key(f.parent) in by:
                s, d = by[_key(f.parent)]
                self.parents.setdefault(_key(f.parent), []).append(_Parent(f, d, s))
            if _key(f.child) in by:
                s, d = by[_key(f.child)]
                self.children.setdefault(_key(f.child), []).append(_Child(f, d, s))

    def soft_order(self) -> set[tuple[TableName, TableName]]:
        """With ON DELETE applied, synced children go before their synced parents: a child's
        own deletes then come first, and a parent's delete cascades only outside the set."""
        if self.mode != "apply":
            return set()
        return {(_key(f.child), _key(f.parent)) for f in self.fks
                if _key(f.child) in self.synced and _key(f.parent) in self.synced and f.child != f.parent}

    def is_parent(self, shape: TableShape) -> bool:
        return _key((shape.database, shape.table)) in self.parents

    # -- while applying -------------------------------------------------------------------

    def deleting(self, dst: Any, shape: TableShape, keys: Sequence[sql.Key]) -> None:
        """Before `keys` of `shape` are deleted (or, in a dry run, would be): remember the
        values its children may reference."""
        for p in self.parents.get(_key((shape.database, shape.table)), []):
            cols = _columns(shape, p.fk.referenced)
            for i in range(0, len(keys), _BATCH):
                part = keys[i:i + _BATCH]
                q = f"SELECT DISTINCT {_lits(cols)} FROM {shape.qname} WHERE {_key_in(shape, part)}"
                p.before.update(_not_null(tuple(r) for r in _rows(dst, q)))

    def inserting(self, src: Any, shape: TableShape, keys: Sequence[sql.Key] | None) -> None:
        """`keys` of the table (None: every row) are inserted (or, in a dry run, would be)."""
        name = _key((shape.database, shape.table))
        for c in self.children.get(name, []):
            if keys is None or c.whole or len(c.keys) + len(keys) > _MAX_KEYS:
                c.whole, c.keys = True, []
            else:
                c.keys.extend(keys)
        if self.dry_run:
            for p in self.parents.get(name, []):
                if keys is None:
                    continue  # an empty target table removes nothing
                cols = _columns(p.src_shape, p.fk.referenced)
                for i in range(0, len(keys), _BATCH):
                    part = keys[i:i + _BATCH]
                    q = f"SELECT DISTINCT {_lits(cols)} FROM {p.src_shape.qname} WHERE {_key_in(p.src_shape, part)}"
                    p.after.update(tuple(r) for r in _rows(src, q))

    def delete_actions(self, dst: Any, shape: TableShape, keys: Sequence[sql.Key]) -> list[ForeignKeyEffect]:
        """on_delete=apply: what deleting `keys` with checks on will do to each child; a
        RESTRICT / NO ACTION with children refuses the run here, before the DELETE."""
        out = []
        for p in self.parents.get(_key((shape.database, shape.table)), []):
            cols = _columns(shape, p.fk.referenced)
            values: set[tuple[bytes, ...]] = set()
            for i in range(0, len(keys), _BATCH):
                q = f"SELECT DISTINCT {_lits(cols)} FROM {shape.qname} WHERE {_key_in(shape, keys[i:i + _BATCH])}"
                values.update(_not_null(tuple(r) for r in _rows(dst, q)))
            n = self._children_of(dst, p.fk, cols, values)
            if n:
                out.append(self._effect(p.fk, n, _OUTCOME.get(p.fk.on_delete, "restricted")))
        restricted = [e for e in out if e.outcome == "restricted"]
        if restricted:
            raise ForeignKeyViolation(self._message(restricted), restricted)
        self.effects.extend(out)
        return out

    # -- before COMMIT --------------------------------------------------------------------

    def check(self, src: Any, dst: Any) -> list[ForeignKeyEffect]:
        """Every orphan the run leaves (or would leave); ForeignKeyViolation if any."""
        orphans = self._parent_side(dst) + self._child_side(src, dst)
        if self.dry_run and self.mode == "apply":
            actions = [e for e in orphans if e.outcome in ("would cascade", "would set null")]
            self.effects.extend(actions)
            orphans = [e for e in orphans if e not in actions]
        if orphans:
            raise ForeignKeyViolation(self._message(orphans), orphans)
        return self.effects

    def _parent_side(self, dst: Any) -> list[ForeignKeyEffect]:
        out = []
        for parents in self.parents.values():
            for p in parents:
                removed = p.before - p.after if self.dry_run else p.before
                if not removed:
                    continue
                child_synced = _key(p.fk.child) in self.synced
                if self.dry_run and child_synced:
                    continue  # both will equal the source
                cols = _columns(p.shape, p.fk.referenced)
                if self.dry_run:
                    n = self._children_of(dst, p.fk, cols, removed)
                    outcome = "orphaned"
                    if self.mode == "apply":
                        outcome = _WOULD.get(p.fk.on_delete, "restricted")
                else:
                    n = self._children_of(dst, p.fk, cols, removed, missing_parent=True)
                    outcome = "orphaned"
                if n:
                    out.append(self._effect(p.fk, n, outcome))
        return out

    def _children_of(self, dst: Any, fk: ForeignKey, cols: Sequence[Column],
                     values: Iterable[tuple[bytes, ...]], missing_parent: bool = False) -> int:
        """Child rows holding one of `values` (and, with `missing_parent`, no parent row)."""
        child = qualified(*fk.child)
        parent = qualified(*fk.parent)
        child_cols = [replace(c, name=n) for c, n in zip(cols, fk.columns, strict=True)]
        values = sorted(values)
        n = 0
        for i in range(0, len(values), _BATCH):
            where = _in(child_cols, values[i:i + _BATCH], prefix="c.")
            if missing_parent:
                where += f" AND NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE {_join(fk)})"
            n += int(_rows(dst, f"SELECT COUNT(*) FROM {child} AS c WHERE {where}")[0][0])
        return n

    def _child_side(self, src: Any, dst: Any) -> list[ForeignKeyEffect]:
        out = []
        for children in self.children.values():
            for c in children:
                if not (c.whole or c.keys):
                    continue
                parent_synced = _key(c.fk.parent) in self.synced
                if self.dry_run:
                    if parent_synced:
                        continue
                    n = self._dry_child(src, dst, c)
                else:
                    n = self._real_child(dst, c)
                if n:
                    out.append(self._effect(c.fk, n, "orphaned"))
        return out

    def _real_child(self, dst: Any, c: _Child) -> int:
        fk = c.fk
        present = " AND ".join(f"c.{quote(col)} IS NOT NULL" for col in fk.columns)
        tail = f"{present} AND NOT EXISTS (SELECT 1 FROM {qualified(*fk.parent)} AS p WHERE {_join(fk)})"
        base = f"SELECT COUNT(*) FROM {c.shape.qname} AS c WHERE "
        if c.whole:
            return int(_rows(dst, base + tail)[0][0])
        n = 0
        for i in range(0, len(c.keys), _BATCH):
            n += int(_rows(dst, base + f"{_in(c.shape.key, c.keys[i:i + _BATCH], 'c.')} AND {tail}")[0][0])
        return n

    def _dry_child(self, src: Any, dst: Any, c: _Child) -> int:
        """Rows the run would insert into the child whose parent the target lacks."""
        fk = c.fk
        cols = _columns(c.src_shape, fk.columns)
        lits = _lits(cols)
        group = ", ".join(str(i + 1) for i in range(len(cols)))
        counts: dict[tuple[bytes, ...], int] = {}
        wheres = ["TRUE"] if c.whole else [
            _key_in(c.src_shape, c.keys[i:i + _BATCH]) for i in range(0, len(c.keys), _BATCH)
        ]
        for where in wheres:
            q = f"SELECT {lits}, COUNT(*) FROM {c.src_shape.qname} WHERE {where} GROUP BY {group}"
            for r in _rows(src, q):
                v = tuple(r[:-1])
                if all(x != b"NULL" for x in v):
                    counts[v] = counts.get(v, 0) + int(r[-1])
        # The parent's columns rendered as the child's (a foreign key's columns share types).
        pcols = [replace(col, name=n) for col, n in zip(cols, fk.referenced, strict=True)]
        parent = qualified(*fk.parent)
        values = sorted(counts)
        found: set[tuple[bytes, ...]] = set()
        for i in range(0, len(values), _BATCH):
            q = f"SELECT {_lits(pcols)} FROM {parent} WHERE {_in(pcols, values[i:i + _BATCH])}"
            found.update(tuple(r) for r in _rows(dst, q))
        return sum(n for v, n in counts.items() if v not in found)

    # -- words ----------------------------------------------------------------------------

    def _effect(self, fk: ForeignKey, rows: int, outcome: str) -> ForeignKeyEffect:
        return ForeignKeyEffect(
            constraint=fk.name, child=".".join(fk.child), parent=".".join(fk.parent),
            on_delete=fk.on_delete, rows=rows, outcome=outcome,
            synced_child=_key(fk.child) in self.synced, synced_parent=_key(fk.parent) in self.synced,
        )

    def _message(self, findings: Sequence[ForeignKeyEffect]) -> str:
        by_name = {(f.name, ".".join(f.child)): f for f in self.fks}
        lines = []
        for e in findings:
            fk = by_name[(e.constraint, e.child)]
            outside = "" if e.synced_child else " (not synced)"
            if e.outcome == "restricted":
                lines.append(f"{fk.describe()}: {e.rows} row(s) of {e.child}{outside} reference rows of"
                             f" {e.parent} this sync deletes, and ON DELETE {fk.on_delete} forbids it")
            elif _key(fk.child) in self.synced and not e.synced_parent:
                lines.append(f"{fk.describe()}: {e.rows} row(s) this sync writes into {e.child} reference rows"
                             f" missing from {e.parent} (not synced)")
            else:
                lines.append(f"{fk.describe()}: {e.rows} row(s) of {e.child}{outside} would reference rows of"
                             f" {e.parent} this sync deletes or changes")
        done = ("nothing was changed (dry run)" if self.dry_run
                else "the whole run was rolled back, the target is unchanged")
        ways = ("sync the tables outside the set too, or"
                " --on-delete apply to delete with foreign key checks on so that the target's own"
                " ON DELETE actions happen; docs/data-sync.md, \"The target's rules: foreign keys\"")
        return ("this sync would leave the target's foreign keys broken; " + done + ":\n  "
                + "\n  ".join(lines) + f"\n({ways})")


_OUTCOME = {"CASCADE": "cascaded", "SET NULL": "set null"}
_WOULD = {"CASCADE": "would cascade", "SET NULL": "would set null"}


def _join(fk: ForeignKey) -> str:
    return " AND ".join(f"p.{quote(r)} = c.{quote(col)}" for col, r in zip(fk.columns, fk.referenced, strict=True))
