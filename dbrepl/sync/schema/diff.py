"""Compare two normalised schemas and emit ordered DDL with every clause classed.

Order across the whole run (docs/schema-sync.md): foreign keys are dropped first and added last, so
tables can be created, altered and dropped in any state of their references (a table to be
dropped loses its keys first when what they reference is altered); new tables are created
in dependency order; views come last because they read the final tables. Clauses the
target's rows can block carry a `preflight.Precheck`, run read-only before any DDL.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.ident import check_plain_name, qualified, quote
from dbrepl.sync.schema.classify import column_loss, engine_loss
from dbrepl.sync.schema.model import Column, Database, ForeignKey, Index, Table, View
from dbrepl.sync.schema.objects import diff_objects
from dbrepl.sync.schema.plan import Clause, Renames, Statement
from dbrepl.sync.schema.preflight import (
    ExpressionCheck,
    ImplicitDefault,
    Precheck,
    added_column_prechecks,
    check_precheck,
    column_prechecks,
    foreign_key_precheck,
    generated_expr,
    generated_prechecks,
    implicit_default,
    inline_check,
    map_idents,
    top_words,
    unique_precheck,
)
from dbrepl.sync.splitter import Token, matching_paren, tokenize

PHASES = (
    "databases", "drop foreign keys", "drop views", "drop objects", "rename tables",
    "remove partitioning", "create tables", "alter tables", "finish tables", "partition tables",
    "drop tables", "add foreign keys", "create routines", "create views", "create objects",
)  # the "objects" and "routines" phases (triggers, routines, events) are filled by objects.py

# Values that put a table option back to "not set" (the server then omits it).
_OPTION_RESET = {
    "ROW_FORMAT": "DEFAULT", "COMMENT": "''", "KEY_BLOCK_SIZE": "0", "CHECKSUM": "0",
    "DELAY_KEY_WRITE": "0", "MAX_ROWS": "0", "MIN_ROWS": "0", "AVG_ROW_LENGTH": "0",
    "PAGE_CHECKSUM": "DEFAULT", "TRANSACTIONAL": "DEFAULT",
}

Check = Precheck | ExpressionCheck  # what a clause runs read-only before any DDL


def _option_sql(key: str, value: str) -> str:
    return f"DEFAULT CHARSET={value}" if key == "CHARSET" else f"{key}={value}"


def options_sql(options: Iterable[tuple[str, str]]) -> str:
    return " ".join(_option_sql(k, v) for k, v in options)


@dataclass
class _Out:
    """Statements collected per phase, flattened in PHASES order at the end."""

    phases: dict[str, list[Statement]] = field(default_factory=lambda: {p: [] for p in PHASES})
    notes: list[str] = field(default_factory=list)
    # (target database, name after renames) -> the table's name on the target now
    current: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, phase: str, sql: str, database: str, *clauses: Clause) -> None:
        self.phases[phase].append(Statement(sql=sql, database=database, clauses=clauses, phase=phase))

    def statements(self) -> list[Statement]:
        return [s for p in PHASES for s in self.phases[p]]


@dataclass
class _TableChange:
    """What altering one table touches, for deciding which foreign keys must be rebuilt."""

    changed_columns: set[str] = field(default_factory=set)  # target-side names
    dropped_indexes: list[Index] = field(default_factory=list)
    # For the preflight: the table's name on the target now, and source column name -> the
    # name of that column on the target now (columns the target has before the run).
    current_table: str = ""
    names: dict[str, str] = field(default_factory=dict)
    # Columns added NOT NULL without DEFAULT: source name -> their implicit value (SQL).
    values: dict[str, str] = field(default_factory=dict)


def diff_databases(
    source: dict[str, Database],
    target: dict[str, Database],
    pairs: list[tuple[str, str]],
    renames: Renames | None = None,
    definer: str = "omit",
    ahead: Mapping[tuple[str, str], TableAlter] | None = None,
) -> tuple[list[Statement], list[str]]:
    """Statements making each target database of `pairs` equal to its source, and notes.

    `definer` ("omit" or "keep") is how triggers, routines and events treat DEFINER.
    `ahead`: (target database, table) -> that table's diff made ahead (table_alters), taken
    when it was made from these very two tables and nothing renames the table."""
    renames = renames or Renames()
    out = _Out()
    db_map = dict(pairs)
    # Per target database: the tables as they will be after renames, keyed by name.
    after_rename: dict[str, dict[str, Table]] = {}
    for sdb, tdb in pairs:
        src, dst = source[sdb], target[tdb]
        if not dst.exists:
            out.add("databases",
                    f"CREATE DATABASE {quote(tdb)} CHARACTER SET {src.charset} COLLATE {src.collation}",
                    tdb, Clause(f"create database {quote(tdb)}"))
        elif (dst.charset, dst.collation) != (src.charset, src.collation):
            out.add("databases",
                    f"ALTER DATABASE {quote(tdb)} CHARACTER SET {src.charset} COLLATE {src.collation}",
                    tdb, Clause(f"alter database {quote(tdb)} default charset/collation"))
        after_rename[tdb] = _rename_tables(src, dst, sdb, tdb, renames, out)

    changes: dict[tuple[str, str], _TableChange] = {}
    dropped_tables: set[tuple[str, str]] = set()
    for sdb, tdb in pairs:
        src, dst_tables = source[sdb], after_rename[tdb]
        for name in _creation_order(src.tables, sdb):
            if name not in dst_tables:
                _create_table(src.tables[name], tdb, out)
        created = [n for n in sorted(src.tables) if n not in dst_tables]
        for name in sorted(dst_tables):
            if name not in src.tables:
                dropped_tables.add((tdb, name))
                # A table created with the same columns may be this one renamed.
                shape = [(c.name, c.key()) for c in dst_tables[name].columns]
                twins = [n for n in created if [(c.name, c.key()) for c in src.tables[n].columns] == shape]
                hint = (rename_hint(sdb, (name,), twins[0]),) if len(twins) == 1 else ()
                out.add("drop tables", f"DROP TABLE {qualified(tdb, name)}", tdb,
                        Clause(f"drop table {qualified(tdb, name)}", True, ("its rows are lost", *hint)))
        for name in sorted(set(src.tables) & set(dst_tables)):
            col_renames = _column_renames(renames, sdb, name)
            made = (ahead or {}).get((tdb, name))
            if made is not None and made.src is src.tables[name] and made.dst is dst_tables[name] \
                    and made.sdb == sdb and made.col_renames == col_renames and (tdb, name) not in out.current:
                for phase, statements in made.out.phases.items():
                    out.phases[phase].extend(statements)
                out.notes.extend(made.out.notes)
                changes[(tdb, name)] = made.change
            else:
                changes[(tdb, name)] = _alter_table(src.tables[name], dst_tables[name], tdb, col_renames, out, sdb)
        _diff_views(src.views, target[tdb].views, sdb, tdb, db_map, out)
        for st in diff_objects(src, target[tdb], sdb, tdb, db_map, renames, definer):
            out.phases[st.phase].append(st)

    _diff_foreign_keys(source, after_rename, pairs, db_map, changes, dropped_tables, out)
    return out.statements(), out.notes


@dataclass
class TableAlter:
    """One table's part of a diff, made ahead of diff_databases (table_alters)."""

    src: Table
    dst: Table
    sdb: str
    tdb: str
    col_renames: dict[str, str]
    out: _Out
    change: _TableChange

    @property
    def statements(self) -> list[Statement]:
        return self.out.statements()


def table_alters(src: Table, dst: Table, sdb: str, tdb: str, renames: Renames | None = None) -> TableAlter:
    """What diff_databases makes of a table both sides have under one name, before the foreign
    keys are weighed: plan_schema makes it as soon as both sides of the table are read, hands
    its ALTERs to the ALGORITHM/LOCK probe while the other tables are read, and passes it to
    diff_databases (`ahead`), which takes it instead of diffing the table again."""
    out = _Out()
    col_renames = _column_renames(renames or Renames(), sdb, src.name)
    change = _alter_table(src, dst, tdb, col_renames, out, sdb)
    return TableAlter(src, dst, sdb, tdb, col_renames, out, change)


def _column_renames(renames: Renames, sdb: str, table: str) -> dict[str, str]:
    return {old: new for (d, t, old), new in renames.columns.items() if d == sdb and t == table}


# ---- tables -------------------------------------------------------------------------------


def _rename_tables(src: Database, dst: Database, sdb: str, tdb: str, renames: Renames,
                   out: _Out) -> dict[str, Table]:
    tables = dict(dst.tables)
    for (db, old), new in sorted(renames.tables.items()):
        if db != sdb:
            continue
        if old in tables and new not in tables and new in src.tables and old not in src.tables:
            out.add("rename tables", f"RENAME TABLE {qualified(tdb, old)} TO {qualified(tdb, new)}",
                    tdb, Clause(f"rename table {qualified(tdb, old)} to {quote(new)}"))
            tables[new] = replace(tables.pop(old), name=new)
            out.current[(tdb, new)] = old
            # InnoDB points the children's foreign keys at the new name.
            for name, table in tables.items():
                fks = tuple(
                    replace(fk, ref_table=new) if fk.ref_table == old and fk.ref_database in (None, tdb) else fk
                    for fk in table.foreign_keys)
                tables[name] = replace(table, foreign_keys=fks)
        else:
            out.notes.append(f"rename hint {db}.{old}={new} not used: the target has no table {old} "
                             f"to rename, or already has {new}")
    return tables


def _creation_order(tables: dict[str, Table], sdb: str) -> list[str]:
    """Table names, parents before the children that reference them (cycles by name)."""
    deps = {
        name: {fk.ref_table for fk in t.foreign_keys
               if fk.ref_database in (None, sdb) and fk.ref_table in tables and fk.ref_table != name}
        for name, t in tables.items()
    }
    order: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name in visiting:
            return  # a cycle: its foreign keys are added after both tables exist
        visiting.add(name)
        for dep in sorted(deps[name]):
            visit(dep)
        visiting.discard(name)
        done.add(name)
        order.append(name)

    for name in sorted(tables):
        visit(name)
    return order


def _create_table(table: Table, tdb: str, out: _Out) -> None:
    # Foreign keys are left out here and added in the last phase.
    parts = [c.sql() for c in table.columns]
    parts += [i.definition for i in table.indexes]
    parts += [c.definition for c in table.checks]
    sql = f"CREATE TABLE {qualified(tdb, table.name)} (\n  " + ",\n  ".join(parts) + "\n) " + options_sql(table.options)
    if table.partitioning:
        sql += "\n" + table.partitioning
    out.add("create tables", sql, tdb, Clause(f"create table {qualified(tdb, table.name)}"))


def _rename_in_column_list(text: str, mapping: dict[str, str]) -> str:
    """Rename columns inside the first parenthesised list of an index or check text."""
    if not mapping:
        return text
    out = []
    depth = 0
    done = False
    for tok in tokenize(text):
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
            done = done or depth == 0
        if tok.kind == "ident" and depth > 0 and not done:
            name = tok.text[1:-1].replace("``", "`")
            if name in mapping:
                out.append(quote(mapping[name]))
                continue
        out.append(tok.text)
    return "".join(out)


def _lis(seq: list[int]) -> set[int]:
    """Indexes (into seq) of one longest increasing subsequence."""
    tails: list[int] = []
    tails_at: list[int] = []
    prev = [-1] * len(seq)
    for i, v in enumerate(seq):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tails_at.append(i)
        else:
            tails[k] = v
            tails_at[k] = i
        prev[i] = tails_at[k - 1] if k else -1
    keep = set()
    i = tails_at[-1] if tails_at else -1
    while i >= 0:
        keep.add(i)
        i = prev[i]
    return keep


def rename_hint(sdb: str, old: tuple[str, ...], new: str) -> str:
    """The --rename hint that would turn a drop plus an add into a rename (old: table[, column])."""
    what = "column" if len(old) == 2 else "table"
    try:
        hint = f"{'.'.join(check_plain_name(n) for n in (sdb, *old))}={check_plain_name(new)}"
    except InvalidInput:
        return (f"if {what} {quote(old[-1])} was renamed to {quote(new)}, rename it in a migration: "
                f"a --rename hint cannot name it")
    return f"if {what} {quote(old[-1])} was renamed to {quote(new)}, pass --rename {hint}"


def _alter_table(src: Table, dst: Table, tdb: str, col_renames: dict[str, str], out: _Out,
                 sdb: str = "") -> _TableChange:
    t = _TableDiff(src, dst, tdb, col_renames, out, sdb)
    t.columns()
    t.indexes()
    t.checks()
    t.options()
    t.emit(out)
    return t.change


class _TableDiff:
    """One table's ALTER, built section by section (columns, indexes, CHECKs, options) from
    the source's definition and the target's, with the target's columns under the names
    they will have (rename hints) and the preflight checks of every clause."""

    def __init__(self, src: Table, dst: Table, tdb: str, col_renames: dict[str, str], out: _Out,
                 sdb: str = "") -> None:
        self.src, self.dst, self.tdb, self.sdb = src, dst, tdb, sdb
        self.qname = qualified(self.tdb, self.src.name)
        self.change = _TableChange()
        self.clauses: list[tuple[str, Clause]] = []
        self.second: list[tuple[str, Clause]] = []

        # Column renames from hints apply only when the target still has the old name.
        self.renamed = {old: new for old, new in col_renames.items()
                        if dst.column(old) and not dst.column(new) and src.column(new) and not src.column(old)}
        self.dst_cols = [replace(c, name=self.renamed.get(c.name, c.name)) for c in self.dst.columns]
        self.src_names = [c.name for c in self.src.columns]
        self.dst_by_name = {c.name: c for c in self.dst_cols}
        self.back = {new: old for old, new in self.renamed.items()}
        self.readded: set[str] = set()  # columns dropped and re-added (source names)
        self.table_now = out.current.get((self.tdb, self.src.name), self.src.name)
        self.names = {n: self.back.get(n, n) for n in self.dst_by_name}
        self.change.current_table, self.change.names = self.table_now, self.names
        # Columns converted to another charset or collation: unique keys over them are checked
        # for values that collide once compared the new way.
        by_name = self.dst_by_name
        self.recollated = {c.name: (c.charset, c.collation) for c in src.columns
                           if c.name in by_name and c.collation
                           and (c.charset, c.collation) != (by_name[c.name].charset, by_name[c.name].collation)}
        self.dst_index_defs = {i.definition for i in self.dst.indexes}
        self.dst_check_defs_all = {c.definition for c in self.dst.checks}
        # Generated columns added or changed: their values after the run, as an expression over
        # the target's current columns, for checking the keys and CHECKs over them.
        self.new_values: dict[str, str] = {}
        # Columns added NOT NULL without DEFAULT: every existing row gets the type's implicit
        # default, so keys, CHECKs and foreign keys over them are checked with that value.
        self.implicit: dict[str, tuple[str | None, str]] = {}
        for c in self.src.columns:
            if c.name not in self.dst_by_name and (imp := implicit_default(c)) is not None:
                self.implicit[c.name] = imp
                if imp[0] is not None:
                    self.new_values[c.name] = self.change.values[c.name] = imp[0]
        for c in self.src.columns:
            old = self.dst_by_name.get(c.name)
            expr = generated_expr(c.definition) if c.generated else None
            if expr and (old is None or generated_expr(old.definition) != expr):
                mapped = map_idents(expr, self.names, self.change.values)
                if mapped:
                    self.new_values[c.name] = mapped

    def dependents_prechecks(self, name: str, what: str) -> tuple[Check, ...]:
        """Kept unique keys and CHECKs over a generated column whose values change."""
        if name not in self.new_values:
            return ()
        found = []
        for i in self.src.indexes:
            if i.kind in ("primary", "unique") and name in i.columns and i.definition in self.dst_index_defs:
                found.append(unique_precheck(self.tdb, self.table_now, f"{what}, under {i.definition}", i,
                                             self.names, None, "would share a value of that key with another row",
                                             self.new_values))
        for c in self.src.checks:
            expr = _check_expr(c.definition)
            if expr and c.definition in self.dst_check_defs_all and name in _idents(expr):
                found.append(check_precheck(self.tdb, self.table_now, f"{what}, under {c.definition}", expr, self.names,
                                            self.new_values, "would violate it"))
        return tuple(p for p in found if p)

    def implicit_check_prechecks(self, s: Column, what: str) -> tuple[Check, ...]:
        """An added column's own CHECK, computed with the implicit default its rows get.

        The server refuses the ALTER when it copies the table (error 4025) and otherwise
        keeps rows that violate the column's CHECK (MariaDB's JSON is `longtext ... CHECK
        (json_valid(...))`, and '' is not JSON): refused either way."""
        expr = inline_check(s.definition)
        if s.name not in self.new_values or not expr:
            return ()
        pre = check_precheck(self.tdb, self.table_now, what, expr, self.names, self.new_values,
                             f"would get the implicit default {self.implicit[s.name][1]}, which violates "
                             f"the column's CHECK")
        return (pre,) if pre else ()

    def generated_prechecks(self, s: Column, d: Column | None, what: str, indexed: bool = False) -> tuple[Check, ...]:
        """Generated column `s` (was `d` on the target) computed over the rows by the ALTER:
        stored, or virtual under an index, and new or changed in kind, expression or type;
        `indexed`: a virtual one gets a new index (its values are computed for it)."""
        if not s.generated:
            return ()
        if not indexed:
            if s.generated != "STORED" and not any(s.name in i.columns for i in self.src.indexes):
                return ()
            if d is not None and d.generated == s.generated and d.column_type == s.column_type \
                    and generated_expr(d.definition) == generated_expr(s.definition):
                return ()
        expr = generated_expr(s.definition)
        values = {k: v for k, v in self.change.values.items() if k != s.name}
        mapped = map_idents(expr, self.names, values) if expr else None
        if mapped is None:
            return ()  # over a column this run adds with a default: not checkable before the run
        return tuple(generated_prechecks(self.tdb, self.table_now, what, s, mapped))

    def columns(self) -> None:
        """Columns: dropped, added, renamed, modified or moved to the source's order."""
        self._dropped_columns()
        common = [c.name for c in self.dst_cols if c.name in self.src_names]
        src_pos = {n: i for i, n in enumerate(self.src_names)}
        in_place = {common[i] for i in _lis([src_pos[n] for n in common])}
        for i, s in enumerate(self.src.columns):
            position = "FIRST" if i == 0 else f"AFTER {quote(self.src_names[i - 1])}"
            d = self.dst_by_name.get(s.name)
            if d is None:
                what = f"add column {quote(s.name)} {s.definition}"
                pre = (*added_column_prechecks(self.tdb, self.table_now, what, s),
                       *self.implicit_check_prechecks(s, what), *self.generated_prechecks(s, None, what))
                implicit = (ImplicitDefault(self.tdb, self.table_now, s.name, self.implicit[s.name][1]),) \
                    if s.name in self.implicit else ()
                self.clauses.append((f"ADD COLUMN {s.sql()} {position}",
                                     Clause(f"add column {self.qname}.{quote(s.name)}",
                                            prechecks=pre, implicit=implicit)))
            else:
                self._kept_column(s, d, position, moved=s.name not in in_place)

    def _dropped_columns(self) -> None:
        for pos, c in enumerate(self.dst_cols):
            if c.name in self.src_names:
                continue
            self.change.changed_columns.add(c.name)
            # An added column of the same definition at the same place may be this one renamed.
            twin = self.src.columns[pos] if pos < len(self.src.columns) else None
            hint: tuple[str, ...] = ()
            if twin is not None and twin.name not in self.dst_by_name and twin.key() == c.key():
                hint = (rename_hint(self.sdb or self.tdb, (self.src.name, c.name), twin.name),)
            self.clauses.append((f"DROP COLUMN {quote(c.name)}",
                                 Clause(f"drop column {self.qname}.{quote(c.name)}", True,
                                        ("its values are lost", *hint))))

    def _column_prechecks(self, s: Column, d: Column) -> tuple[Check, ...]:
        """Read-only checks that the target's rows allow column `d` to become `s`."""
        old = self.back.get(s.name, s.name)
        what = f"{'change' if s.name in self.back else 'modify'} column {quote(old)} to {quote(s.name)} " \
               f"{s.definition}"
        found: tuple[Check, ...] = tuple(column_prechecks(self.tdb, self.table_now, what, d, s, old))
        new_check = inline_check(s.definition)
        if new_check and new_check != inline_check(d.definition) \
                and (cp := check_precheck(self.tdb, self.table_now, what, new_check, self.names)):
            found += (cp,)
        found += self.dependents_prechecks(s.name, what)
        found += self.generated_prechecks(s, d, what)
        for i in self.src.indexes if s.name in self.recollated else ():
            if i.kind in ("primary", "unique") and s.name in i.columns and i.definition in self.dst_index_defs \
                    and (up := unique_precheck(self.tdb, self.table_now, f"{what}, under {i.definition}", i,
                                               self.names, self.recollated,
                                               "share a value of that key with another row "
                                               "once compared with the new collation")):
                found += (up,)
        return found

    def _kept_column(self, s: Column, d: Column, position: str, moved: bool) -> None:
        """A column on both sides (`d` the target's, under its new name): renamed, re-added, modified or moved."""
        modified = d.key() != s.key()
        col_pre = self._column_prechecks(s, d) if modified or s.name in self.back else ()
        if s.name in self.back:
            self.change.changed_columns.update({self.back[s.name], s.name})
            reasons = tuple(column_loss(d, s))
            self.clauses.append((f"CHANGE COLUMN {quote(self.back[s.name])} {s.sql()}"
                                 + (f" {position}" if moved else ""),
                                 Clause(f"rename column {self.qname}.{quote(self.back[s.name])} to {quote(s.name)}",
                                        bool(reasons), reasons, prechecks=col_pre)))
        elif modified and d.generated != s.generated:
            # The server cannot MODIFY a column between stored, virtual and generated kinds:
            # drop and re-add it (generated values are recomputed from the row). Indexes and
            # CHECKs over it are dropped and re-added around it (below): the server would
            # silently shrink the indexes and refuses the drop under a CHECK (error 1054).
            self.change.changed_columns.add(s.name)
            self.readded.add(s.name)
            reasons = tuple(column_loss(d, s))
            self.clauses.append((f"DROP COLUMN {quote(s.name)}",
                                 Clause(f"drop column {self.qname}.{quote(s.name)} to re-add it", bool(reasons),
                                        reasons)))
            what = f"re-add column {quote(s.name)} {s.definition}"
            pre = self.dependents_prechecks(s.name, what) + self.generated_prechecks(s, d, what)
            # A generated column re-added as a plain NOT NULL one without DEFAULT: its implicit default.
            imp = implicit_default(s)
            implicit = (ImplicitDefault(self.tdb, self.table_now, s.name, imp[1]),) if imp else ()
            self.clauses.append((f"ADD COLUMN {s.sql()} {position}",
                                 Clause(f"re-add column {self.qname}.{quote(s.name)} as {s.generated or 'stored'}",
                                        prechecks=pre, implicit=implicit)))
        elif modified or moved:
            reasons = tuple(column_loss(d, s)) if modified else ()
            if modified:
                self.change.changed_columns.add(s.name)
            self.clauses.append((f"MODIFY COLUMN {s.sql()}" + (f" {position}" if moved else ""),
                                 Clause(f"{'modify' if modified else 'move'} column {self.qname}.{quote(s.name)}",
                                        bool(reasons), reasons, prechecks=col_pre)))

    def indexes(self) -> None:
        """Indexes, the primary key first (see the comments for the order rules)."""
        # Indexes: the server keeps each group (unique, plain, fulltext) in creation order, so a
        # group must match the source from its first difference on; an identical index dropped and
        # re-added in one statement keeps its old place, so moves go to a second statement.
        dst_indexes = [replace(i, definition=_rename_in_column_list(i.definition, self.renamed),
                               columns=tuple(self.renamed.get(c, c) for c in i.columns)) for i in self.dst.indexes]

        def over_readded(i: Index) -> bool:
            return bool(self.readded.intersection(i.columns))

        # The primary key always prints first: its drop and add go in this one statement, or an
        # AUTO_INCREMENT column would be left without a key in between (error 1075).
        s_pk = next((i for i in self.src.indexes if i.kind == "primary"), None)
        d_pk = next((i for i in dst_indexes if i.kind == "primary"), None)
        pk_changed = (s_pk and s_pk.definition) != (d_pk and d_pk.definition)
        if d_pk and (pk_changed or over_readded(d_pk)):
            self.change.dropped_indexes.append(d_pk)
            self.clauses.append((d_pk.drop_sql(), Clause(f"drop primary key on {self.qname}")))
        if s_pk and (pk_changed or over_readded(s_pk)):
            pre = unique_precheck(self.tdb, self.table_now, f"add {s_pk.definition}", s_pk, self.names,
                                  self.recollated, values=self.new_values) \
                if pk_changed else None
            self.clauses.append((f"ADD {s_pk.definition}",
                            Clause(f"add primary key on {self.qname}", prechecks=(pre,) if pre else ())))
        first_adds: list[Index] = [s_pk] if s_pk and (pk_changed or over_readded(s_pk)) else []
        src_index_names = {i.name.lower() for i in self.src.indexes}
        dst_index_names = {i.name.lower() for i in dst_indexes}
        for group in (0, 1, 2):
            s_g = [i for i in self.src.indexes if i.group == group and i.kind != "primary"]
            d_g = [i for i in dst_indexes if i.group == group and i.kind != "primary"]
            p = 0
            while p < min(len(s_g), len(d_g)) and not over_readded(s_g[p]):
                a, b = s_g[p], d_g[p]
                if a.definition != b.definition:
                    # Same place, same key parts, another name: renamed in place (no rebuild).
                    if _unnamed(a) != _unnamed(b) or a.name.lower() in dst_index_names \
                            or b.name.lower() in src_index_names:
                        break
                    self.clauses.append((f"RENAME INDEX {quote(b.name)} TO {quote(a.name)}",
                                    Clause(f"rename index {quote(b.name)} on {self.qname} to {quote(a.name)}")))
                p += 1
            src_defs = {i.definition for i in s_g[p:]}
            moves = any(i.definition in src_defs for i in d_g[p:])
            dropped_defs = {i.definition for i in d_g[p:]}
            for i in d_g[p:]:
                self.change.dropped_indexes.append(i)
                what = "move" if i.definition in src_defs else "drop"
                self.clauses.append((i.drop_sql(), Clause(f"{what} index {quote(i.name)} on {self.qname}")))
            # New indexes ahead of the first moved one are added in this statement (in order, and
            # an AUTO_INCREMENT column keeps a key); from the first moved one on, in the next.
            deferred = False
            for i in s_g[p:]:
                deferred = deferred or (moves and i.definition in dropped_defs)
                pres: list[Check | None] = []
                if i.kind == "unique" and i.definition not in dropped_defs:
                    pres.append(unique_precheck(self.tdb, self.table_now, f"add {i.definition}", i, self.names,
                                                self.recollated, values=self.new_values))
                if i.definition not in dropped_defs:
                    # A new index over an unchanged virtual column computes its values.
                    for name in i.columns:
                        s_col, d_col = self.src.column(name), self.dst_by_name.get(name)
                        if s_col is not None and s_col.generated == "VIRTUAL" and d_col is not None \
                                and d_col.key() == s_col.key():
                            pres += self.generated_prechecks(
                                s_col, d_col, f"add {i.definition} (computes column {quote(name)})", indexed=True)
                if i.kind == "spatial" and (empty := [c for c in i.columns if c in self.implicit]):
                    # The implicit default of a geometry column is '', which no SPATIAL key can
                    # index (error 1416 "Cannot get geometry object").
                    pres.append(Precheck(self.tdb, self.table_now, f"add {i.definition}",
                                         f"would get the implicit default '' in column {quote(empty[0])} (not "
                                         f"a geometry), which a SPATIAL key cannot index (error 1416)"))
                (self.second if deferred else self.clauses).append(
                    (f"ADD {i.definition}",
                     Clause(f"add index {quote(i.name)} on {self.qname}", prechecks=tuple(p for p in pres if p))))
                if not deferred:
                    first_adds.append(i)
        _bridge_auto_increment(self.src, dst_indexes, self.change.dropped_indexes, first_adds, self.qname,
                               self.clauses, self.second)


    def checks(self) -> None:
        """Table-level CHECK constraints."""
        # Table-level CHECK constraints: appended in order, even when re-added unchanged.
        dst_checks = [replace(c, definition=_rename_in_column_list(c.definition, self.renamed))
                      for c in self.dst.checks]
        p = 0
        src_checks = self.src.checks
        while p < min(len(src_checks), len(dst_checks)) and src_checks[p].definition == dst_checks[p].definition \
                and not self.readded.intersection(_idents(src_checks[p].definition)):
            p += 1
        for c in dst_checks[p:]:
            self.clauses.append((f"DROP CONSTRAINT {quote(c.name)}",
                                 Clause(f"drop check {quote(c.name)} on {self.qname}")))
        dst_check_defs = {c.definition for c in dst_checks[p:]}
        for c in self.src.checks[p:]:
            pre = None
            expr = _check_expr(c.definition)
            if c.definition not in dst_check_defs and expr:
                pre = check_precheck(self.tdb, self.table_now, f"add {c.definition}", expr, self.names, self.new_values)
            self.clauses.append((f"ADD {c.definition}",
                            Clause(f"add check {quote(c.name)} on {self.qname}", prechecks=(pre,) if pre else ())))


    def options(self) -> None:
        """Table options (charset and collation, engine, the rest)."""
        # Table options.
        s_opts, d_opts = dict(self.src.options), dict(self.dst.options)
        opt_sql = []
        reasons: list[str] = []
        if (s_opts.get("CHARSET"), s_opts.get("COLLATE")) != (d_opts.get("CHARSET"), d_opts.get("COLLATE")):
            if s_opts.get("CHARSET"):
                opt_sql.append(_option_sql("CHARSET", s_opts["CHARSET"]))
            if s_opts.get("COLLATE"):
                opt_sql.append(_option_sql("COLLATE", s_opts["COLLATE"]))
        for key, value in self.src.options:
            if key not in ("CHARSET", "COLLATE") and d_opts.get(key) != value:
                opt_sql.append(_option_sql(key, value))
                if key == "ENGINE" and (why := engine_loss(d_opts.get(key), value)):
                    reasons.append(why)
        resets = [f"{key}={_OPTION_RESET.get(key, 'DEFAULT')}" for key in d_opts
                  if key not in s_opts and key not in ("CHARSET", "COLLATE", "ENGINE")]
        if resets and s_opts.get("ENGINE") != d_opts.get("ENGINE"):
            # With an engine change in the same statement the server keeps the old engine's
            # options (Aria's PAGE_CHECKSUM=1): reset them in a statement of their own.
            self.second.append((", ".join(resets), Clause(f"reset table options of {self.qname}: {' '.join(resets)}")))
        else:
            opt_sql += resets
        if opt_sql:
            self.clauses.append((", ".join(opt_sql),
                                 Clause(f"table options of {self.qname}: {' '.join(opt_sql)}", bool(reasons),
                                        tuple(reasons))))


    def emit(self, out: _Out) -> None:
        """The statements: this ALTER, a second one when needed, partitioning."""
        if self.clauses:
            out.add("alter tables", f"ALTER TABLE {self.qname} " + ", ".join(sql for sql, _ in self.clauses), self.tdb,
                    *(c for _, c in self.clauses))
        if self.second:
            out.add("finish tables", f"ALTER TABLE {self.qname} " + ", ".join(sql for sql, _ in self.second), self.tdb,
                    *(c for _, c in self.second))

        if _norm(self.src.partitioning) != _norm(self.dst.partitioning):
            if self.dst.partitioning:
                out.add("remove partitioning", f"ALTER TABLE {self.qname} REMOVE PARTITIONING", self.tdb,
                        Clause(f"remove partitioning of {self.qname} (rows kept)"))
            if self.src.partitioning:
                out.add("partition tables", f"ALTER TABLE {self.qname} {self.src.partitioning}", self.tdb,
                        Clause(f"partition {self.qname} as the source (rows kept)"))

        if not self.clauses and not self.second and _norm(self.src.partitioning) == _norm(self.dst.partitioning) \
                and not self.renamed and _without_fks(self.src) != _without_fks(self.dst):
            out.notes.append(f"table {self.qname}: a difference this engine does not handle remains")


_BRIDGE = "dbrepl_auto_increment_key"


def _bridge_auto_increment(src: Table, dst_indexes: list[Index], dropped: list[Index], first_adds: list[Index],
                           qname: str, clauses: list[tuple[str, Clause]], second: list[tuple[str, Clause]]) -> None:
    """Keep a key on the AUTO_INCREMENT column while its own key moves to the next statement.

    A moved index is dropped in the table's first ALTER and re-added in the second; when it
    is the only key leading with the AUTO_INCREMENT column, the first ALTER would leave that
    column without one (error 1075). A temporary key bridges the two statements.
    """
    auto = next((c.name for c in src.columns if "AUTO_INCREMENT" in top_words(c.definition)), None)
    if auto is None or not second:
        return
    dropped_names = {i.name for i in dropped}
    after_first = [i for i in dst_indexes if i.name not in dropped_names] + first_adds
    if any(i.columns[:1] == (auto,) for i in after_first):
        return
    taken = {i.name.lower() for i in [*src.indexes, *dst_indexes]}
    name = next(n for n in (f"{_BRIDGE}{k or ''}" for k in range(len(taken) + 1)) if n not in taken)
    clauses.append((f"ADD KEY {quote(name)} ({quote(auto)})",
                    Clause(f"add temporary key {quote(name)} on {qname} (the AUTO_INCREMENT column's "
                           f"key moves in the next statement)")))
    second.append((f"DROP INDEX {quote(name)}", Clause(f"drop temporary key {quote(name)} on {qname}")))


def _unnamed(index: Index) -> str:
    """An index definition without its name (the first quoted name in it)."""
    out, named = [], False
    for tok in tokenize(index.definition):
        if tok.kind == "ident" and not named:
            named = True
            continue
        out.append(tok.text)
    return "".join(out)


def _check_expr(definition: str) -> str | None:
    """The `(expr)` of "CONSTRAINT `c` CHECK (expr)", or None for a check the server does
    not enforce (MySQL 8.0 prints `CHECK ((expr)) /*!80016 NOT ENFORCED */`)."""
    pos = 0
    for tok in tokenize(definition):
        if tok.kind == "word" and tok.text.upper() == "CHECK":
            start = definition.index("(", pos)
            end = matching_paren(definition, start) + 1
            if "ENFORCED" in definition[end:].upper():
                return None
            return definition[start:end]
        pos += len(tok.text)
    return None


def _idents(text: str) -> set[str]:
    """Every backtick-quoted name in an expression or definition, unquoted."""
    return {tok.text[1:-1].replace("``", "`") for tok in tokenize(text) if tok.kind == "ident"}


def _without_fks(table: Table) -> str:
    """SHOW CREATE text minus foreign keys (compared separately, across databases)."""
    text = table.create_sql
    for fk in table.foreign_keys:
        text = text.replace(",\n  " + fk.definition, "")
    return text


def _norm(text: str | None) -> str:
    return " ".join(text.split()) if text else ""


# ---- foreign keys --------------------------------------------------------------------------


def _fk_key(fk: ForeignKey, ref_db: str) -> tuple[object, ...]:
    return (fk.name, fk.columns, ref_db, fk.ref_table, fk.ref_columns, fk.actions)


def _diff_foreign_keys(
    source: dict[str, Database], after_rename: dict[str, dict[str, Table]],
    pairs: list[tuple[str, str]], db_map: dict[str, str],
    changes: dict[tuple[str, str], _TableChange], dropped_tables: set[tuple[str, str]], out: _Out,
) -> None:
    _ForeignKeyDiff(source, after_rename, db_map, changes, dropped_tables, out).run(pairs)


class _ForeignKeyDiff:
    """The foreign keys to drop first and add last, table by table: of tables dropped later,
    of tables kept (changed or re-validated keys), of tables created in this run."""

    def __init__(self, source: dict[str, Database], after_rename: dict[str, dict[str, Table]],
                 db_map: dict[str, str], changes: dict[tuple[str, str], _TableChange],
                 dropped_tables: set[tuple[str, str]], out: _Out) -> None:
        self.source, self.after_rename, self.db_map = source, after_rename, db_map
        self.changes, self.dropped_tables, self.out = changes, dropped_tables, out

    def run(self, pairs: list[tuple[str, str]]) -> None:
        for sdb, tdb in pairs:
            src_tables = self.source[sdb].tables
            for name, dst_table in sorted(self.after_rename[tdb].items()):
                if (tdb, name) in self.dropped_tables:
                    self._dropped_table(tdb, name, dst_table)
                else:
                    self._kept_table(sdb, tdb, name, src_tables.get(name), dst_table)
            self._created_tables(sdb, tdb, src_tables)

    def _ref_db(self, fk: ForeignKey, sdb: str) -> str:
        """The target database a source key's referenced table is in."""
        return self.db_map.get(fk.ref_database or sdb, fk.ref_database or sdb)

    def _rebuilt(self, tdb: str, table: str, columns: tuple[str, ...]) -> bool:
        """Does altering (tdb, table) touch these columns or an index starting with them?"""
        ch = self.changes.get((tdb, table))
        if ch is None:
            return False
        if ch.changed_columns & set(columns):
            return True
        return any(i.columns[: len(columns)] == columns for i in ch.dropped_indexes)

    def _prechecks(self, sdb: str, tdb: str, name: str, fk: ForeignKey) -> tuple[Check, ...]:
        """Orphan rows of a key added to an existing table. Even a key the target had is
        checked again: rows loaded with foreign_key_checks=0 can break it, and re-adding it
        validates every row."""
        ch = self.changes.get((tdb, name))
        ref_db = self._ref_db(fk, sdb)
        if ch is None:
            return ()
        parent_ch = self.changes.get((ref_db, fk.ref_table))
        if parent_ch is not None:
            parent: tuple[str, str] | None = (ref_db, parent_ch.current_table)
            parent_names = parent_ch.names
        elif ref_db in self.after_rename and fk.ref_table not in self.after_rename[ref_db]:
            parent, parent_names = None, {}  # created by this run: no rows yet
        else:
            return ()
        what = f"add {fk.sql(ref_db)}"
        pre = foreign_key_precheck(tdb, ch.current_table, what, fk, ch.names, parent, parent_names, ch.values)
        return (pre,) if pre else ()

    def _dropped_table(self, tdb: str, name: str, dst_table: Table) -> None:
        # The table goes in "drop tables", but its foreign keys first when the columns
        # or key they reference are altered before that (error 1829 otherwise).
        for fk in dst_table.foreign_keys:
            ref_db = fk.ref_database or tdb
            if (ref_db, fk.ref_table) not in self.dropped_tables \
                    and self._rebuilt(ref_db, fk.ref_table, fk.ref_columns):
                self.out.add("drop foreign keys",
                             f"ALTER TABLE {qualified(tdb, name)} DROP FOREIGN KEY {quote(fk.name)}", tdb,
                             Clause(f"drop foreign key {quote(fk.name)} on {qualified(tdb, name)} "
                                    f"(its table is dropped later)"))

    def _kept_table(self, sdb: str, tdb: str, name: str, src_table: Table | None, dst_table: Table) -> None:
        wanted: dict[str, tuple[object, ...]] = {}
        if src_table is not None:
            for fk in src_table.foreign_keys:
                wanted[fk.name] = _fk_key(fk, self._ref_db(fk, sdb))
        for fk in dst_table.foreign_keys:
            ref_db = fk.ref_database or tdb
            keep = wanted.get(fk.name) == _fk_key(fk, ref_db) and not (
                self._rebuilt(tdb, name, fk.columns) or self._rebuilt(ref_db, fk.ref_table, fk.ref_columns)
                or (ref_db, fk.ref_table) in self.dropped_tables)
            if not keep:
                what = "rebuild" if fk.name in wanted else "drop"
                self.out.add("drop foreign keys",
                             f"ALTER TABLE {qualified(tdb, name)} DROP FOREIGN KEY {quote(fk.name)}", tdb,
                             Clause(f"{what} foreign key {quote(fk.name)} on {qualified(tdb, name)}"))
            else:
                wanted.pop(fk.name)
        if src_table is not None:
            adds = [fk for fk in src_table.foreign_keys if fk.name in wanted]
            _keep_index_names(src_table, dst_table, adds, self.changes.get((tdb, name)), tdb, self.out)
            if adds:
                self.out.add("add foreign keys",
                             f"ALTER TABLE {qualified(tdb, name)} " + ", ".join(
                                 "ADD " + fk.sql(self._ref_db(fk, sdb)) for fk in adds), tdb,
                             *(Clause(f"add foreign key {quote(fk.name)} on {qualified(tdb, name)}",
                                      prechecks=self._prechecks(sdb, tdb, name, fk)) for fk in adds))

    def _created_tables(self, sdb: str, tdb: str, src_tables: dict[str, Table]) -> None:
        # Tables created in this run get all their foreign keys here.
        for name, src_table in sorted(src_tables.items()):
            if name in self.after_rename[tdb] or not src_table.foreign_keys:
                continue
            self.out.add("add foreign keys",
                         f"ALTER TABLE {qualified(tdb, name)} " + ", ".join(
                             "ADD " + fk.sql(self._ref_db(fk, sdb)) for fk in src_table.foreign_keys), tdb,
                         *(Clause(f"add foreign key {quote(fk.name)} on {qualified(tdb, name)}")
                           for fk in src_table.foreign_keys))


def _keep_index_names(src: Table, dst: Table, adds: list[ForeignKey], change: _TableChange | None,
                      tdb: str, out: _Out) -> None:
    """Re-create explicitly the kept indexes that foreign keys about to be added will use.

    An index the server created implicitly for a foreign key (`KEY author_id`) is renamed
    after the next foreign key added under a name over the same columns (`KEY posts_ibfk_1`),
    so a dropped and re-added key would leave the index name different. SHOW CREATE does not
    tell implicit indexes apart: every kept index a re-added key can use is dropped and
    re-added in one statement (it keeps its place and becomes explicit).
    """
    dropped = {i.name for i in change.dropped_indexes} if change else set()
    dst_defs = {i.name: i.definition for i in dst.indexes}
    redo: list[Index] = []
    for fk in adds:
        for i in src.indexes:
            if i.kind in ("primary", "fulltext", "spatial") or i.name == fk.name or i in redo:
                continue
            if i.columns[: len(fk.columns)] == fk.columns and i.name not in dropped \
                    and dst_defs.get(i.name) == i.definition:
                redo.append(i)
    if redo:
        qname = qualified(tdb, src.name)
        out.add("finish tables", f"ALTER TABLE {qname} " + ", ".join(
            f"{i.drop_sql()}, ADD {i.definition}" for i in redo), tdb,
            *(Clause(f"re-create index {quote(i.name)} on {qname} explicitly (a re-added foreign key "
                     f"would rename an implicit one)") for i in redo))


# ---- views ---------------------------------------------------------------------------------


_TABLE_REF_BEFORE = {"FROM", "JOIN", "STRAIGHT_JOIN"}
_TABLE_REF_AFTER = {"JOIN", "STRAIGHT_JOIN", "LEFT", "RIGHT", "INNER", "CROSS", "NATURAL", "ON", "USING",
                    "WHERE", "GROUP", "ORDER", "HAVING", "LIMIT", "UNION", "WINDOW"}


def map_databases(definition: str, db_map: dict[str, str]) -> str:
    """Rewrite `db`. qualifiers of a view definition from source to target database names.

    The server prints every table as `db`.`t` and every column as `db`.`t`.`c` or, under a
    table alias, `alias`.`c`; an alias spelled like a synced database must not be rewritten
    (it would capture the alias). Aliases are the names printed right after a table or a
    derived table (`db`.`t` `alias`, `(select ...) `alias``); a two-part name under such a
    name is rewritten only where a table stands (after FROM/JOIN, before its alias or a
    join keyword).
    """
    if all(k == v for k, v in db_map.items()):
        return definition
    toks = list(tokenize(definition))
    sig = [i for i, t in enumerate(toks) if t.kind not in ("space", "comment")]
    at = {i: n for n, i in enumerate(sig)}

    def tok(n: int) -> Token | None:
        return toks[sig[n]] if 0 <= n < len(sig) else None

    def is_dot(n: int) -> bool:
        t = tok(n)
        return t is not None and t.text == "."

    def word(n: int) -> str:
        t = tok(n)
        return t.text.upper() if t is not None and t.kind == "word" else ""

    aliases = set()
    for n in range(len(sig)):
        t, prev = toks[sig[n]], tok(n - 1)
        if t.kind == "ident" and not is_dot(n + 1) and prev is not None and not is_dot(n - 1) \
                and (prev.kind == "ident" or prev.text == ")"):
            aliases.add(t.text[1:-1].replace("``", "`"))
    out = []
    for i, t in enumerate(toks):
        pos = at.get(i)
        if pos is not None and t.kind == "ident" and is_dot(pos + 1) and not is_dot(pos - 1):
            name = t.text[1:-1].replace("``", "`")
            three_part = is_dot(pos + 3)
            after = tok(pos + 3)
            table_ref = (word(pos - 1) in _TABLE_REF_BEFORE or (after is not None and after.kind == "ident")
                         or word(pos + 3) in _TABLE_REF_AFTER or after is None)
            if name in db_map and (three_part or name not in aliases or table_ref):
                out.append(quote(db_map[name]))
                continue
        out.append(t.text)
    return "".join(out)


def _view_sql(view: View, tdb: str) -> str:
    check = "" if view.check_option in ("NONE", "") else f" WITH {view.check_option} CHECK OPTION"
    # DEFINER is left to the connecting user: accounts differ between environments.
    return (f"CREATE OR REPLACE ALGORITHM={view.algorithm} SQL SECURITY {view.security} "
            f"VIEW {qualified(tdb, view.name)} AS {view.definition}{check}")


def _diff_views(src: dict[str, View], dst: dict[str, View], sdb: str, tdb: str,
                db_map: dict[str, str], out: _Out) -> None:
    mapped = {n: replace(v, definition=map_databases(v.definition, db_map)) for n, v in src.items()}
    for name in sorted(set(dst) - set(mapped)):
        out.add("drop views", f"DROP VIEW {qualified(tdb, name)}", tdb,
                Clause(f"drop view {qualified(tdb, name)} (a definition, no rows)"))
    changed = [n for n, v in mapped.items() if n not in dst or dst[n].key() != v.key()]
    # A view reading another view is created after it.
    order: list[str] = []
    pending = sorted(changed)

    def visit(name: str, seen: set[str]) -> None:
        if name in order or name in seen:
            return
        seen.add(name)
        for other in pending:
            if other != name and qualified(tdb, other) in mapped[name].definition:
                visit(other, seen)
        order.append(name)

    for name in pending:
        visit(name, set())
    for name in order:
        what = "replace" if name in dst else "create"
        out.add("create views", _view_sql(mapped[name], tdb), tdb, Clause(f"{what} view {qualified(tdb, name)}"))

