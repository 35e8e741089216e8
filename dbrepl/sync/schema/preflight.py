"""Read-only checks, before any DDL, for changes the target's existing rows make impossible.

The diff attaches a `Precheck` to each clause the rows can block (a new CHECK the rows
violate, an enum member removed that rows use, a column narrowed below its data, NULLs under
a new NOT NULL, a zero date the session's NO_ZERO_DATE refuses, a new unique or primary key
over duplicates, a new foreign key with rows whose parent row is missing), and an
`ExpressionCheck` to each generated column the ALTER computes over the rows. `preflight`
counts the rows in the way with one `SELECT COUNT(*)` per check (an expression: one pass and
its warnings) and raises `RowsPreventChange` naming the table, the clause and the count, so
nothing half-runs. A NOT NULL column without DEFAULT is added as the server adds it: its rows
get the type's implicit default (`implicit_default`), counted for the plan.

Every query here reads a user's table, so it is written capture-proof: only `COUNT(*)` and
fully qualified, quoted column names (`db`.`t`.`c`); the one alias (a derived table's count
column) is read through its derived table's name, where no user column can be in scope;
values (enum members) are bound as parameters. A CHECK expression is the user's own text
over its own table, run against that table alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import pymysql

from dbrepl.sync.errors import DatabaseError
from dbrepl.sync.ident import qualified, quote
from dbrepl.sync.schema.classify import _int, _parse
from dbrepl.sync.schema.model import Column, ForeignKey, Index
from dbrepl.sync.schema.plan import Clause, DestructiveChangeRefused, SchemaPlan, Statement
from dbrepl.sync.splitter import matching_paren, split_top_level, tokenize


@dataclass(frozen=True)
class Precheck:
    """Rows of `database`.`table` (its name on the target now) that block one clause.

    `where` is a condition over the table's columns, written with `col()` names; with
    `group_by` the rows counted are those sharing one value of these expressions with
    another row (duplicates for a new unique key).
    """

    database: str
    table: str
    what: str  # e.g. "add check `c` (CHECK (`a` > 0))"
    why: str  # e.g. "violate the new CHECK"
    where: str = "1 = 1"
    params: tuple[Any, ...] = ()
    group_by: tuple[str, ...] = ()

    def sql(self) -> str:
        """The query; with `params`, a `%` inside a quoted name is doubled (pymysql formats
        the text with the parameters, and a column may be called `100 %s`)."""
        source = qualified(self.database, self.table)
        if not self.group_by:
            text = f"SELECT COUNT(*) FROM {source} WHERE {self.where}"
        else:
            groups = ", ".join(self.group_by)
            text = (f"SELECT COALESCE(SUM(`dbrepl_dups`.`dbrepl_n`), 0) FROM (SELECT COUNT(*) AS `dbrepl_n` "
                    f"FROM {source} WHERE {self.where} GROUP BY {groups} HAVING COUNT(*) > 1) AS `dbrepl_dups`")
        if not self.params:
            return text
        return "".join(t.text.replace("%", "%%") if t.kind == "ident" else t.text for t in tokenize(text))


def col(database: str, table: str, column: str) -> str:
    """A column name no alias can capture: database, table and column, each quoted."""
    return f"{qualified(database, table)}.{quote(column)}"


@dataclass(frozen=True)
class ExpressionCheck:
    """A generated column's expression computed over every row of `database`.`table`, as the
    ALTER that stores it (or indexes it) will: the server's warnings on the way are errors
    there in strict mode ("Truncated incorrect DOUBLE value", "Division by 0"), so the
    statement would fail after the run's earlier statements. One pass, read-only."""

    database: str
    table: str
    what: str
    expr: str  # over the target's current columns, unqualified (a single-table query)

    def sql(self) -> str:
        return f"SELECT COUNT(*), COUNT({self.expr}) FROM {qualified(self.database, self.table)}"

    def blocked(self, rows: int, warnings: list[tuple[str, int, str]], sql_mode: str) -> Precheck | None:
        """The refusal (as a Precheck naming the first warning), or None when the store succeeds."""
        modes = set(sql_mode.upper().split(","))
        if not modes & {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"}:
            return None  # not strict: the server stores what it computed, with warnings
        # Division by zero is an error only with ERROR_FOR_DIVISION_BY_ZERO; notes never are.
        errors = [w for w in warnings if w[0] in ("Warning", "Error")
                  and (w[1] != 1365 or "ERROR_FOR_DIVISION_BY_ZERO" in modes)]
        if not rows or not errors:
            return None
        level, code, message = errors[0]
        return Precheck(self.database, self.table, self.what,
                        f"are computed by its expression, which warns on some of them and the target's "
                        f"strict sql_mode makes that an error (first: {level} {code} {message}; "
                        f"{len(errors)} warning(s) in all)")


class RowsPreventChange(DestructiveChangeRefused):
    """Rows on the target make clauses of the plan impossible; nothing was run.

    A refusal like DestructiveChangeRefused (the CLI and the function report it as
    `refused`, exit 1), but --allow-destructive does not lift it: the server would fail
    the statement half-way through the run, or invent values for the rows.
    """

    def __init__(self, blocked: list[tuple[Precheck, int]]):
        self.blocked = blocked
        self.clauses = [Clause(f"table {qualified(p.database, p.table)}: {p.what}", True,
                               (f"{n} row(s) in the way: they {p.why}",)) for p, n in blocked]
        lines = "\n".join(f"  - {c.label()}" for c in self.clauses)
        super(DestructiveChangeRefused, self).__init__(
            f"refusing {len(blocked)} change(s) the target's rows make impossible (no DDL was run); "
            f"fix those rows on the target (or the source schema), then run again:\n{lines}")

    def to_dict(self) -> dict[str, Any]:
        return {"blocked": [{"database": p.database, "table": p.table, "clause": p.what, "rows": n,
                             "why": p.why} for p, n in self.blocked]}


def prechecks(plan: SchemaPlan) -> list[Precheck]:
    seen: list[Precheck] = []
    for st in plan.statements:
        for clause in st.clauses:
            for p in clause.prechecks:
                if p not in seen:
                    seen.append(p)
    return seen


def preflight(conn: Any, plan: SchemaPlan) -> list[tuple[Precheck, int]]:
    """Count the rows in the way of every precheck of the plan; raise if any. Read-only."""
    blocked = []
    try:
        with conn.cursor() as cur:
            sql_mode = None
            for p in prechecks(plan):
                if isinstance(p, ExpressionCheck):
                    if sql_mode is None:
                        cur.execute("SELECT @@SESSION.sql_mode")
                        sql_mode = cur.fetchone()[0] or ""
                    cur.execute(p.sql())
                    rows = int(cur.fetchone()[0] or 0)
                    cur.execute("SHOW WARNINGS")
                    refusal = p.blocked(rows, [(w[0], int(w[1]), w[2]) for w in cur.fetchall()], sql_mode)
                    if refusal is not None:
                        blocked.append((refusal, rows))
                    continue
                cur.execute(p.sql(), p.params or None)
                n = int(cur.fetchone()[0] or 0)
                if n:
                    blocked.append((p, n))
    except pymysql.err.MySQLError as exc:
        raise DatabaseError(f"Failed to check the target's rows before the schema change: {exc}") from exc
    if blocked:
        raise RowsPreventChange(blocked)
    return blocked


# ---- building the checks (called by the diff) ----------------------------------------------

_INT_RANGE = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64}
_TEXT_BYTES = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "tinyblob": 255, "blob": 65535,
               "mediumblob": 16777215}


def _members(args: list[str]) -> list[str]:
    """ENUM/SET members as the server prints them ('a','it''s') -> plain strings."""
    out = []
    for a in args:
        a = a.strip()
        if len(a) >= 2 and a[0] == a[-1] == "'":
            out.append(a[1:-1].replace("''", "'").replace("\\\\", "\\"))
    return out


def _words_at_top(definition: str) -> list[tuple[int, Any]]:
    """(depth, token) for every token of a column definition."""
    out = []
    depth = 0
    for tok in tokenize(definition):
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
        out.append((depth, tok))
    return out


def top_words(definition: str) -> set[str]:
    """Upper-cased words of a definition outside parentheses, strings and comments."""
    return {tok.text.upper() for depth, tok in _words_at_top(definition) if depth == 0 and tok.kind == "word"}


def inline_check(definition: str) -> str | None:
    """The `(expr)` of a column-level CHECK in a column definition, or None."""
    toks = list(tokenize(definition))
    depth = 0
    pos = 0
    for tok in toks:
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
        elif depth == 0 and tok.kind == "word" and tok.text.upper() == "CHECK":
            rest = definition[pos + len(tok.text):]
            start = rest.index("(")
            return rest[start:matching_paren(rest, start) + 1]
        pos += len(tok.text)
    return None


def has_default(definition: str) -> bool:
    """Does a column definition give the column a value for existing rows?

    DEFAULT, AUTO_INCREMENT and generated columns (MariaDB `AS (...)`, MySQL and MariaDB
    `GENERATED ALWAYS AS (...)`) all do.
    """
    return bool(top_words(definition) & {"DEFAULT", "AUTO_INCREMENT", "AS", "GENERATED"})


def map_idents(expr: str, names: dict[str, str], values: dict[str, str] | None = None) -> str | None:
    """Rename the quoted names of an expression; None if one is not a current column.

    `values` replaces a name by an SQL expression instead (a generated column's new one).
    """
    out = []
    for tok in tokenize(expr):
        if tok.kind == "ident":
            name = tok.text[1:-1].replace("``", "`")
            if values and name in values:
                out.append(values[name])
                continue
            if name not in names:
                return None
            out.append(quote(names[name]))
        else:
            out.append(tok.text)
    return "".join(out)


def check_precheck(database: str, table: str, what: str, expr: str, names: dict[str, str],
                   values: dict[str, str] | None = None, why: str = "violate it") -> Precheck | None:
    """Rows for which a CHECK `(expr)` is false (NULL passes a CHECK, as on the server).

    `names` maps the source's column names to the target's current ones; an expression over
    a column the target does not have yet cannot be checked before the run (None), unless
    `values` gives it (a generated column's new expression).
    """
    mapped = map_idents(expr, names, values)
    if mapped is None:
        return None
    return Precheck(database, table, what, why, where=f"NOT {mapped}")


def generated_expr(definition: str) -> str | None:
    """The `(expr)` of a generated column's definition (`AS (...)`, `GENERATED ALWAYS AS (...)`)."""
    pos, depth, after_as = 0, 0, False
    for tok in tokenize(definition):
        if tok.kind == "punct" and tok.text == "(":
            if after_as and depth == 0:
                return definition[pos:matching_paren(definition, pos) + 1]
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
        elif depth == 0 and tok.kind == "word":
            after_as = tok.text.upper() == "AS"
        pos += len(tok.text)
    return None


def column_prechecks(database: str, table: str, what: str, old: Column, new: Column,
                     current: str) -> list[Precheck]:
    """Rows a MODIFY/CHANGE of `old` (named `current` on the target now) into `new` cannot keep."""
    c = col(database, table, current)
    checks: list[Precheck] = []
    if old.nullable and not new.nullable and not new.generated:
        checks.append(Precheck(database, table, what, "are NULL", where=f"{c} IS NULL"))
    if new.generated:
        return checks
    if "AUTO_INCREMENT" in top_words(new.definition) and "AUTO_INCREMENT" not in top_words(old.definition):
        # The server renumbers a 0 while copying (silently, or error 1062 on a collision).
        checks.append(Precheck(database, table, what, "hold 0, which becoming AUTO_INCREMENT renumbers",
                               where=f"{c} = 0"))
    ob, oa, _ = _parse(old.column_type)
    nb, na, nattr = _parse(new.column_type)
    if old.column_type.lower() != new.column_type.lower():
        checks += _conversion_prechecks(database, table, what, c, ob, nb, na)
        checks += _fits_prechecks(database, table, what, c, nb, na, nattr)
        if nb == "enum" and ob == "enum":
            kept = {m.lower() for m in _members(na)}
            gone = [m for m in _members(oa) if m.lower() not in kept]
            if gone:
                marks = ", ".join(["%s"] * len(gone))
                checks.append(Precheck(database, table, what, "use the removed member(s) "
                                       + ", ".join(repr(m) for m in gone),
                                       where=f"{c} IN ({marks})", params=tuple(gone)))
        elif nb == "set" and ob == "set":
            kept = {m.lower() for m in _members(na)}
            gone = [m for m in _members(oa) if m.lower() not in kept]
            if gone:
                cond = " OR ".join(f"FIND_IN_SET(%s, {c}) > 0" for _ in gone)
                checks.append(Precheck(database, table, what, "use the removed member(s) "
                                       + ", ".join(repr(m) for m in gone), where=cond, params=tuple(gone)))
    return checks


def _fits_prechecks(database: str, table: str, what: str, c: str, nb: str, na: list[str],
                    nattr: set[str]) -> list[Precheck]:
    """Rows whose value of `c` (a column or an expression) does not fit type `nb(na) nattr`."""
    checks: list[Precheck] = []
    unsigned = "unsigned" in nattr
    if nb in _INT_RANGE:
        bits = _INT_RANGE[nb]
        lo, hi = (0, 2 ** bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        checks.append(Precheck(database, table, what, f"hold values outside {lo}..{hi}",
                               where=f"{c} NOT BETWEEN {lo} AND {hi}"))
    elif nb in ("decimal", "numeric"):
        p, s = (_int(na[0], 10) if na else 10), (_int(na[1]) if len(na) > 1 else 0)
        limit = "1" + "0" * (p - s)
        cond = f"ABS({c}) >= {limit}" + (f" OR {c} < 0" if unsigned else "")
        checks.append(Precheck(database, table, what, f"hold values that need more than {p - s} "
                               f"integer digit(s)" + (" or are negative" if unsigned else ""), where=cond))
    elif nb in ("char", "varchar") and na:
        n = _int(na[0])
        checks.append(Precheck(database, table, what, f"hold values longer than {n} character(s)",
                               where=f"CHAR_LENGTH({c}) > {n}"))
    elif nb in ("binary", "varbinary") and na:
        n = _int(na[0])
        checks.append(Precheck(database, table, what, f"hold values longer than {n} byte(s)",
                               where=f"LENGTH({c}) > {n}"))
    elif nb in _TEXT_BYTES:
        n = _TEXT_BYTES[nb]
        checks.append(Precheck(database, table, what, f"hold values longer than {n} byte(s)",
                               where=f"LENGTH({c}) > {n}"))
    return checks


_NUMERIC = {*_INT_RANGE, "decimal", "numeric", "float", "double", "real", "bit"}
_STRINGS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_TEMPORAL = {"date": "DATE", "datetime": "DATETIME(6)", "timestamp": "DATETIME(6)", "time": "TIME(6)"}
# A number as the server reads one from a string while converting a column (spaces allowed).
NUMBER_PATTERN = "^ *[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)? *$"


def _conversion_prechecks(database: str, table: str, what: str, c: str, ob: str, nb: str,
                          na: list[str]) -> list[Precheck]:
    """Rows whose value the server cannot convert into the new type (strict mode fails)."""
    if ob in _STRINGS and nb in _NUMERIC - {"bit"}:
        return [Precheck(database, table, what, "hold text that is not a number",
                         where=f"{c} NOT REGEXP %s", params=(NUMBER_PATTERN,))]
    if nb in _TEMPORAL and ob not in _TEMPORAL:
        return [Precheck(database, table, what, f"hold values that are not a valid {nb}",
                         where=f"{c} IS NOT NULL AND CAST({c} AS {_TEMPORAL[nb]}) IS NULL")]
    if nb == "enum" and ob != "enum":
        members = _members(na)
        if ob in _NUMERIC:  # a number is read as a member's position
            return [Precheck(database, table, what, f"hold numbers that are not a member position "
                             f"1..{len(members)}", where=f"{c} NOT BETWEEN 1 AND {len(members)} OR {c} <> FLOOR({c})")]
        marks = ", ".join(["%s"] * len(members))
        return [Precheck(database, table, what, "hold values that are not a member of the new ENUM",
                         where=f"CAST({c} AS CHAR) NOT IN ({marks})", params=tuple(members))]
    return []


# The value existing rows get when a NOT NULL column without DEFAULT is added: the rule of the
# MySQL and MariaDB manuals ("Data Type Default Values": 0 for numbers, '' for strings other
# than ENUM, the first member of an ENUM, the "zero" value of a date or time type), which both
# servers apply in every SQL mode. The server has no read-only way to tell it (`DEFAULT(col)`
# refuses such a column, error 1364), so it is computed here from the column's type, and
# tests/sync/test_schema_implicit_defaults.py checks every kind against the server's own ALTER.
_ZERO_TEMPORAL = {"date": "0000-00-00", "datetime": "0000-00-00 00:00:00",
                  "timestamp": "0000-00-00 00:00:00", "time": "00:00:00"}
_FLOATS = {"float", "double", "real"}
_GEOMETRY = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
             "geometrycollection"}
_EMPTY = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "varbinary", "tinyblob", "blob",
          "mediumblob", "longblob", "json", "set", *_GEOMETRY}


def implicit_default(new: Column) -> tuple[str | None, str] | None:
    """(SQL expression, as shown) of the value every existing row gets when `new` is added;
    None when the column gives its own value (NULL, DEFAULT, AUTO_INCREMENT, generated).

    The expression stands in for the column in the checks of keys and CHECKs over it (never a
    bare number, which GROUP BY would read as a position); None for a type not known here.
    """
    if new.nullable or new.generated or has_default(new.definition):
        return None
    base, args, _ = _parse(new.column_type)
    if base in _INT_RANGE or base in ("bit", "year", "bool", "boolean"):
        shown = {"bit": "b'0'", "year": "0000"}.get(base, "0")
        return "CAST(0 AS SIGNED)", shown
    if base in ("decimal", "numeric"):
        p, scale = (_int(args[0], 10) if args else 10), (_int(args[1]) if len(args) > 1 else 0)
        return f"CAST(0 AS DECIMAL({p},{scale}))", "0" + ("." + "0" * scale if scale else "")
    if base in _FLOATS:
        return "CAST(0 AS DOUBLE)", "0"
    if base in _ZERO_TEMPORAL:
        digits = _int(args[0]) if args and base != "date" else 0
        zero = _ZERO_TEMPORAL[base] + ("." + "0" * digits if digits else "")
        return f"'{zero}'", f"'{zero}'"
    if base == "enum":
        return (args[0].strip(), args[0].strip()) if args else None
    if base == "binary":
        n = _int(args[0], 1) if args else 1
        return f"X'{'00' * n}'", "0x" + "00" * n
    if base in _EMPTY:
        return "''", "''" + (" (not a valid geometry)" if base in _GEOMETRY else "")
    if base == "inet6":
        return "CAST('::' AS INET6)", "'::'"
    if base == "uuid":
        zero = "00000000-0000-0000-0000-000000000000"
        return f"CAST('{zero}' AS UUID)", f"'{zero}'"
    return None, f"the implicit default of {new.column_type}"


@dataclass(frozen=True)
class ImplicitDefault:
    """A NOT NULL column without DEFAULT added to a table that may hold rows: each row gets
    the type's implicit default, as on the source when the column was added there.
    `rows` is counted when planning (`count_implicit_defaults`)."""

    database: str
    table: str  # its name on the target now
    column: str
    value: str  # as shown, e.g. "0", "''", "'0000-00-00'"
    rows: int | None = None

    def sql(self) -> str:
        return f"SELECT COUNT(*) FROM {qualified(self.database, self.table)}"

    def reason(self) -> str:
        return f"{self.rows} existing row(s) get the implicit default {self.value}"

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "table": self.table, "column": self.column,
                "value": self.value, "rows": self.rows}


def added_column_prechecks(database: str, table: str, what: str, new: Column) -> list[Precheck]:
    """What the server refuses when `new` (NOT NULL without DEFAULT) is added to a table with rows.

    MariaDB 10.11 adds such a column in every SQL mode, except a DATE or DATETIME under
    NO_ZERO_DATE (strict or not): the implicit zero date is refused (error 1292). The check
    reads the session's sql_mode, so it counts the rows only where the apply would fail.
    """
    implicit = implicit_default(new)
    if implicit is None:
        return []
    base = _parse(new.column_type)[0]
    if base in ("date", "datetime"):
        return [Precheck(database, table, what, f"would get the implicit default {implicit[1]}, which the "
                         "target session's sql_mode refuses (NO_ZERO_DATE, error 1292): give the column a "
                         "DEFAULT on the source, or add it as NULL and fill it first",
                         where="FIND_IN_SET('NO_ZERO_DATE', @@SESSION.sql_mode) > 0")]
    return []


def generated_prechecks(database: str, table: str, what: str, new: Column,
                        expr: str) -> list[Precheck | ExpressionCheck]:
    """Rows over which storing (or indexing) generated column `new`, computed by `expr` (over
    the target's current columns), fails: the expression warns, or its value does not fit."""
    nb, na, nattr = _parse(new.column_type)
    return [ExpressionCheck(database, table, what, expr),
            *(replace(p, why=p.why.replace("hold ", "would compute ", 1))
              for p in _fits_prechecks(database, table, what, expr, nb, na, nattr))]


def count_implicit_defaults(conn: Any, statements: list[Statement]) -> list[Statement]:
    """The statements with each implicit default's row count in its clause (one COUNT(*) per table)."""
    counts: dict[tuple[str, str], int] = {}
    out = []
    try:
        with conn.cursor() as cur:
            for st in statements:
                if not any(c.implicit for c in st.clauses):
                    out.append(st)
                    continue
                clauses = []
                for clause in st.clauses:
                    found = []
                    for imp in clause.implicit:
                        if (imp.database, imp.table) not in counts:
                            cur.execute(imp.sql())
                            counts[(imp.database, imp.table)] = int(cur.fetchone()[0] or 0)
                        found.append(replace(imp, rows=counts[(imp.database, imp.table)]))
                    if found:
                        clause = replace(clause, reasons=clause.reasons + tuple(i.reason() for i in found),
                                         implicit=tuple(found))
                    clauses.append(clause)
                out.append(replace(st, clauses=tuple(clauses)))
    except pymysql.err.MySQLError as exc:
        raise DatabaseError(f"Failed to count the target's rows for the implicit defaults: {exc}") from exc
    return out


def _key_parts(definition: str) -> list[tuple[str, int | None]] | None:
    """(column, prefix length) of an index's key parts; None for functional parts."""
    open_at = definition.index("(")
    inner = definition[open_at + 1:matching_paren(definition, open_at)]
    parts = []
    for part in split_top_level(inner):
        toks = [t for t in tokenize(part) if t.kind not in ("space", "comment")]
        if not toks or toks[0].kind != "ident":
            return None
        length = None
        if len(toks) >= 4 and toks[1].text == "(" and toks[2].text.isdigit():
            length = int(toks[2].text)
        parts.append((toks[0].text[1:-1].replace("``", "`"), length))
    return parts


def unique_precheck(database: str, table: str, what: str, index: Index, names: dict[str, str],
                    collations: dict[str, tuple[str | None, str]] | None = None,
                    why: str = "share a value of the new key with another row",
                    values: dict[str, str] | None = None) -> Precheck | None:
    """Rows sharing a value of a unique (or primary) key; NULLs never collide.

    `collations` gives the new (charset, collation) of columns the run converts: values are
    compared as they will be (`'a'` and `'A'` collide once `_bin` becomes `_ci`).
    """
    values = values or {}
    parts = _key_parts(index.definition)
    if not parts or any(name not in names and name not in values for name, _ in parts):
        return None
    exprs, present = [], []
    for name, length in parts:
        c = values[name] if name in values else col(database, table, names[name])
        present.append(f"{c} IS NOT NULL")
        charset, collation = (collations or {}).get(name, (None, None))
        if charset and collation and _PLAIN.match(charset) and _PLAIN.match(collation):
            c = f"CONVERT({c} USING {charset}) COLLATE {collation}"
        exprs.append(f"LEFT({c}, {length})" if length else c)
    return Precheck(database, table, what, why, where=" AND ".join(present), group_by=tuple(exprs))


_PLAIN = re.compile(r"^[A-Za-z0-9_]+$")  # charset and collation names go into the query unquoted


def foreign_key_precheck(database: str, table: str, what: str, fk: ForeignKey, names: dict[str, str],
                         parent: tuple[str, str] | None, parent_names: dict[str, str],
                         values: dict[str, str] | None = None) -> Precheck | None:
    """Rows whose parent row is missing: `parent` is the referenced table's current
    (database, name) on the target, None when this run creates it (then it has no rows).
    `values` gives columns the run adds with a value for every row (an implicit default)."""
    values = values or {}
    if any(c not in names and c not in values for c in fk.columns):
        return None
    child_cols = [values[c] if c in values else col(database, table, names[c]) for c in fk.columns]
    where = " AND ".join(f"{c} IS NOT NULL" for c in child_cols)
    if parent is not None:
        if any(c not in parent_names for c in fk.ref_columns):
            return None
        # The parent is read under an alias, so the child's qualified names (even of a
        # self-referencing key) can only mean the outer row.
        match = " AND ".join(f"`dbrepl_parent`.{quote(parent_names[r])} = {c}"
                             for r, c in zip(fk.ref_columns, child_cols, strict=True))
        where += (f" AND NOT EXISTS (SELECT 1 FROM {qualified(*parent)} AS `dbrepl_parent` "
                  f"WHERE {match})")
    return Precheck(database, table, what, "reference a parent row that does not exist", where=where)
