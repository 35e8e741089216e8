"""What a schema sync will do: ordered statements, each made of classed clauses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dbrepl.sync.errors import InvalidInput, SyncError
from dbrepl.sync.ident import check_plain_name, quote
from dbrepl.sync.schema.model import Database
from dbrepl.sync.schema.online import with_clauses
from dbrepl.sync.splitter import tokenize


@dataclass(frozen=True)
class Clause:
    """One change inside a statement, e.g. "drop column `app`.`t`.`c`"."""

    description: str
    destructive: bool = False
    reasons: tuple[str, ...] = ()
    # Read-only row checks run before any DDL (preflight.Precheck): rows in the way refuse the run.
    prechecks: tuple[Any, ...] = field(default=(), compare=False)
    # Columns this clause adds NOT NULL without DEFAULT (preflight.ImplicitDefault): existing
    # rows get the type's implicit default, counted when planning and named in `reasons`.
    implicit: tuple[Any, ...] = field(default=(), compare=False)

    def label(self) -> str:
        return self.description + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


@dataclass(frozen=True)
class Statement:
    sql: str
    database: str
    clauses: tuple[Clause, ...]
    phase: str = ""
    # (variable, value) set for this statement only, e.g. a trigger's sql_mode (objects.py)
    session: tuple[tuple[str, str], ...] = ()
    # An ALTER's ALGORITHM and LOCK as the target accepts them, its table's size (online.py)
    online: Any = field(default=None, compare=False)

    @property
    def destructive(self) -> bool:
        return any(c.destructive for c in self.clauses)

    @property
    def description(self) -> str:
        return "; ".join(c.label() for c in self.clauses)

    @property
    def run_sql(self) -> str:
        """The SQL as it runs: an ALTER with the ALGORITHM and LOCK the target accepted."""
        return with_clauses(self.sql, self.online)

    def script(self) -> str:
        """The statement as the mysql client runs it: DELIMITER around a body holding `;`,
        its session settings set before and restored after."""
        text = f"{self.run_sql};\n"
        tokens = list(tokenize(self.sql))
        if any(t.kind == "punct" and t.text == ";" for t in tokens):
            delimiter = next(d for d in ("$$", "//", ";;", "$$$$$$") if d not in self.sql)
            text = f"DELIMITER {delimiter}\n{self.sql}{delimiter}\nDELIMITER ;\n"
        if self.session and any(t.kind == "comment" for t in tokens):
            text = "-- (run with mysql --comments: the client drops comments from the body otherwise)\n" + text
        for name, value in self.session:
            literal = "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
            text = (f"SET @dbrepl_saved_{name} = @@SESSION.{name}, SESSION {name} = {literal};\n"
                    f"{text}SET SESSION {name} = @dbrepl_saved_{name};\n")
        if self.phase == "create views":  # see objects.execute_statement
            text = f"USE {quote(self.database)};\n{text}"
        return text

    def to_dict(self) -> dict[str, Any]:
        out = {"sql": self.sql, "database": self.database, "destructive": self.destructive,
               "description": self.description, "phase": self.phase, "script": self.script()}
        if self.online is not None:
            out.update(self.online.to_dict(), online=self.online.label())
        return out


@dataclass
class SchemaPlan:
    """Ordered DDL to make the target's databases equal to the source's; planning wrote nothing."""

    statements: list[Statement]
    # (source database, target database) pairs, and the source schema the plan was made from:
    # apply verifies the target against it.
    databases: list[tuple[str, str]]
    source: dict[str, Database] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)
    definer: str = "omit"  # triggers, routines, events: "omit" or "keep" the source's DEFINER

    @property
    def empty(self) -> bool:
        return not self.statements

    def destructive_clauses(self) -> list[Clause]:
        return [c for s in self.statements for c in s.clauses if c.destructive]

    def sql(self) -> str:
        """The whole plan as a script (for --dry-run)."""
        return "".join(f"-- {s.description}\n" + (f"-- {s.online.label()}\n" if s.online else "") + s.script()
                       for s in self.statements)

    def implicit_defaults(self) -> list[Any]:
        """Every column added NOT NULL without DEFAULT (preflight.ImplicitDefault), with its rows."""
        return [i for s in self.statements for c in s.clauses for i in c.implicit]

    def counts(self) -> dict[str, int]:
        return {
            "statements": len(self.statements),
            "clauses": sum(len(s.clauses) for s in self.statements),
            "destructive": len(self.destructive_clauses()),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "databases": [{"source": s, "target": t} for s, t in self.databases],
            "statements": [s.to_dict() for s in self.statements],
            "counts": self.counts(),
            "implicit_defaults": [i.to_dict() for i in self.implicit_defaults()],
            "notes": list(self.notes),
        }


class DestructiveChangeRefused(SyncError):
    """The plan holds destructive clauses and --allow-destructive was not given."""

    def __init__(self, clauses: list[Clause]):
        self.clauses = clauses
        names = "\n".join(f"  - {c.label()}" for c in clauses)
        super().__init__(
            f"refusing {len(clauses)} destructive change(s) without --allow-destructive "
            f"(no DDL was run):\n{names}")


class SchemaNotConverged(SyncError):
    """After applying, the target still differs from the source."""

    def __init__(self, remaining: SchemaPlan):
        self.remaining = remaining
        left = "\n".join(f"  - {s.description}" for s in remaining.statements) or "  - " + "; ".join(remaining.notes)
        super().__init__(f"schema did not converge; still different:\n{left}")


@dataclass(frozen=True)
class Renames:
    """Explicit rename hints (a state diff cannot see renames)."""

    # (database, old table) -> new table
    tables: dict[tuple[str, str], str] = field(default_factory=dict)
    # (database, table, old column) -> new column; table is the source (new) table name
    columns: dict[tuple[str, str, str], str] = field(default_factory=dict)


def parse_renames(hints: Iterable[str] | None) -> Renames:
    """Parse `db.old=new` (table) and `db.table.old=new` (column) hints; names are checked."""
    tables: dict[tuple[str, str], str] = {}
    columns: dict[tuple[str, str, str], str] = {}
    for hint in hints or ():
        if not isinstance(hint, str) or hint.count("=") != 1:
            raise InvalidInput(f"rename hint {hint!r} must be db.old=new or db.table.old=new")
        left, new = hint.split("=")
        parts = left.split(".")
        names = [check_plain_name(p, "name in rename hint") for p in parts]
        check_plain_name(new, "name in rename hint")
        if len(names) == 2:
            tables[(names[0], names[1])] = new
        elif len(names) == 3:
            columns[(names[0], names[1], names[2])] = new
        else:
            raise InvalidInput(f"rename hint {hint!r} must be db.old=new or db.table.old=new")
    return Renames(tables=tables, columns=columns)
