"""Normalised schema of a database, parsed from SHOW CREATE TABLE and information_schema.

SHOW CREATE TABLE is the server's own canonical text, so each element keeps its exact line
(what the server prints is what must match on both sides); information_schema adds what the
text leaves implicit (the effective charset and collation of every string column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrepl.sync.errors import SyncError
from dbrepl.sync.ident import qualified, quote
from dbrepl.sync.splitter import Token, matching_paren, split_top_level, tokenize

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
# The migrations history belongs to each environment, not to the schema being synced.
HISTORY_TABLE = "dbrepl_schema_history"


class UnsupportedSchema(SyncError):
    """The server printed something this engine does not understand."""


@dataclass(frozen=True)
class Column:
    name: str
    # SHOW CREATE TABLE text after the name, with CHARACTER SET / COLLATE taken out: the
    # server omits them when they equal the table default, so they are compared as values.
    definition: str
    charset: str | None
    collation: str | None
    column_type: str  # information_schema COLUMN_TYPE, e.g. "int(10) unsigned"
    nullable: bool
    generated: str | None = None  # "VIRTUAL" / "STORED" / None

    def key(self) -> tuple[str, str | None, str | None]:
        return (self.definition, self.charset, self.collation)

    def sql(self, name: str | None = None) -> str:
        """Column definition for ADD/MODIFY/CHANGE, with charset and collation explicit."""
        return f"{quote(name or self.name)} {with_charset(self.definition, self.charset, self.collation)}"


@dataclass(frozen=True)
class Index:
    name: str  # "PRIMARY" for the primary key
    kind: str  # primary, unique, key, fulltext, spatial
    definition: str  # e.g. "UNIQUE KEY `uk` (`x`(5),`y` DESC)"
    columns: tuple[str, ...]

    @property
    def group(self) -> int:
        """The server sorts unique keys first and fulltext keys last; order counts within."""
        return {"primary": 0, "unique": 0, "fulltext": 2}.get(self.kind, 1)

    def drop_sql(self) -> str:
        return "DROP PRIMARY KEY" if self.kind == "primary" else f"DROP INDEX {quote(self.name)}"


@dataclass(frozen=True)
class ForeignKey:
    name: str
    definition: str
    columns: tuple[str, ...]
    ref_database: str | None  # None: same database as the table
    ref_table: str
    ref_columns: tuple[str, ...]
    actions: str = ""  # "ON DELETE CASCADE ON UPDATE ..." as printed

    def sql(self, ref_database: str) -> str:
        cols = ",".join(quote(c) for c in self.columns)
        ref_cols = ",".join(quote(c) for c in self.ref_columns)
        text = (f"CONSTRAINT {quote(self.name)} FOREIGN KEY ({cols}) REFERENCES "
                f"{quote(ref_database)}.{quote(self.ref_table)} ({ref_cols})")
        return f"{text} {self.actions}" if self.actions else text


@dataclass(frozen=True)
class Check:
    name: str
    definition: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...]
    foreign_keys: tuple[ForeignKey, ...]
    checks: tuple[Check, ...]
    options: tuple[tuple[str, str], ...]  # ("ENGINE", "InnoDB"), ... without AUTO_INCREMENT
    partitioning: str | None
    create_sql: str  # SHOW CREATE TABLE from the "(" on, without the AUTO_INCREMENT counter

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)


@dataclass(frozen=True)
class View:
    name: str
    definition: str  # information_schema VIEW_DEFINITION: every table fully qualified
    algorithm: str
    security: str
    check_option: str

    def key(self) -> tuple[str, str, str, str]:
        return (self.definition, self.algorithm, self.security, self.check_option)


@dataclass(frozen=True)
class StoredObject:
    """One trigger, procedure, function or event of a database (read, diffed and created in
    objects.py)."""

    kind: str  # "trigger", "procedure", "function", "event"
    name: str
    # trigger: its body; routine and event: the SHOW CREATE text after the name
    definition: str
    sql_mode: str
    definer: str  # as information_schema prints it: user@host
    keyword: str = ""  # what follows CREATE [DEFINER=..]: "PROCEDURE", "AGGREGATE FUNCTION", ...
    time_zone: str = ""  # events
    table: str = ""  # triggers
    timing: str = ""  # triggers: BEFORE / AFTER
    event: str = ""  # triggers: INSERT / UPDATE / DELETE
    order: int = 0  # triggers: ACTION_ORDER within (table, timing, event)
    # events: past its AT or ENDS time, so the server would drop or disable it on creation
    # (it still exists on a source whose event scheduler is off): not synced
    expired: bool = False

    def key(self, definer: str) -> tuple[str, ...]:
        return (self.kind, self.keyword, self.definition, self.sql_mode, self.time_zone,
                self.table, self.timing, self.event, self.definer if definer == "keep" else "")

    def label(self, database: str) -> str:
        return f"{self.kind} {qualified(database, self.name)}"

    def create_sql(self, database: str, definer: str) -> str:
        head = "CREATE" + (f" DEFINER={definer_sql(self.definer)}" if definer == "keep" else "")
        if self.kind == "trigger":
            return (f"{head} TRIGGER {qualified(database, self.name)} {self.timing} {self.event} "
                    f"ON {qualified(database, self.table)} FOR EACH ROW {self.definition}")
        return f"{head} {self.keyword} {qualified(database, self.name)}{self.definition}"

    def drop_sql(self, database: str) -> str:
        return f"DROP {self.kind.upper()} {qualified(database, self.name)}"

    def session(self) -> tuple[tuple[str, str], ...]:
        settings = [("sql_mode", self.sql_mode)]
        if self.kind == "event":
            settings.append(("time_zone", self.time_zone))
        return tuple(settings)


def definer_sql(definer: str) -> str:
    """`user`@`host` from information_schema's user@host (a MariaDB role has no @)."""
    user, at, host = definer.rpartition("@")
    return f"{quote(user)}@{quote(host)}" if at else quote(definer)


@dataclass
class Database:
    name: str
    charset: str
    collation: str
    tables: dict[str, Table] = field(default_factory=dict)
    views: dict[str, View] = field(default_factory=dict)
    # triggers, procedures, functions, events keyed (kind, name)
    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    exists: bool = True
    skipped: list[str] = field(default_factory=list)  # objects seen but not synced


# ---- parsing SHOW CREATE TABLE -------------------------------------------------------------


def _words(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.kind not in ("space", "comment")]


def unquote_ident(text: str) -> str:
    if text.startswith("`") and text.endswith("`"):
        return text[1:-1].replace("``", "`")
    return text


def _ident_list(text: str) -> tuple[str, ...]:
    """Column names of an index/FK column list "(`a`(10),`b` DESC)"."""
    inner = text.strip()[1:-1]
    names = []
    for part in split_top_level(inner):
        toks = _words(list(tokenize(part)))
        if toks and toks[0].kind == "ident":
            names.append(unquote_ident(toks[0].text))
        elif toks:  # functional key part (MySQL 8 "((expr))"): its text stands for a name
            names.append(part.strip())
    return tuple(names)


def strip_charset(definition: str) -> str:
    """Remove top-level CHARACTER SET x / CHARSET x / COLLATE x clauses from a column text."""
    toks = list(tokenize(definition))
    out: list[Token] = []
    depth = 0
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "punct" and t.text == "(":
            depth += 1
        elif t.kind == "punct" and t.text == ")":
            depth -= 1
        if depth == 0 and t.kind == "word":
            upper = t.text.upper()
            skip = 0
            if upper == "CHARACTER" and _next_word(toks, i, 1).upper() == "SET":
                skip = 3
            elif upper in ("CHARSET", "COLLATE"):
                skip = 2
            if skip:
                # drop this word and the next skip-1 words, plus the whitespace before them
                while out and out[-1].kind == "space":
                    out.pop()
                seen = 0
                i += 1
                while i < len(toks) and seen < skip - 1:
                    if toks[i].kind not in ("space", "comment"):
                        seen += 1
                    i += 1
                continue
        out.append(t)
        i += 1
    return "".join(t.text for t in out).strip()


def _next_word(toks: list[Token], i: int, n: int) -> str:
    seen = 0
    for t in toks[i + 1:]:
        if t.kind in ("space", "comment"):
            continue
        seen += 1
        if seen == n:
            return t.text
    return ""


def with_charset(definition: str, charset: str | None, collation: str | None) -> str:
    """Insert CHARACTER SET/COLLATE right after the column type (and its parenthesised args)."""
    if not charset:
        return definition
    toks = list(tokenize(definition))
    pos = 0
    for t in toks:  # the type name
        pos += len(t.text)
        if t.kind not in ("space", "comment"):
            break
    rest = definition[pos:]
    if rest.startswith("("):
        pos += matching_paren(rest, 0) + 1
    clause = f" CHARACTER SET {charset}" + (f" COLLATE {collation}" if collation else "")
    return definition[:pos] + clause + definition[pos:]


def _parse_index(text: str) -> Index:
    toks = _words(list(tokenize(text)))
    head = toks[0].text.upper()
    if head == "PRIMARY":
        kind, name = "primary", "PRIMARY"
    else:
        kind = {"UNIQUE": "unique", "FULLTEXT": "fulltext", "SPATIAL": "spatial"}.get(head, "key")
        ident = next((t for t in toks if t.kind == "ident"), None)
        if ident is None:
            raise UnsupportedSchema(f"cannot read index {text!r}")
        name = unquote_ident(ident.text)
    open_at = text.index("(")
    cols = _ident_list(text[open_at:matching_paren(text, open_at) + 1])
    return Index(name=name, kind=kind, definition=text, columns=cols)


def _parse_constraint(text: str) -> ForeignKey | Check:
    toks = _words(list(tokenize(text)))
    name = unquote_ident(toks[1].text)
    kind = toks[2].text.upper()
    if kind == "CHECK":
        return Check(name=name, definition=text)
    if kind != "FOREIGN":
        raise UnsupportedSchema(f"cannot read constraint {text!r}")
    open_at = text.index("(")
    close_at = matching_paren(text, open_at)
    cols = _ident_list(text[open_at:close_at + 1])
    after = text[close_at + 1:]
    ref_toks = _words(list(tokenize(after)))
    # REFERENCES `db`.`t` (...) or REFERENCES `t` (...)
    idents = []
    for t in ref_toks[1:]:
        if t.kind == "ident":
            idents.append(unquote_ident(t.text))
        elif t.text != ".":
            break
    ref_db, ref_table = (idents[0], idents[1]) if len(idents) == 2 else (None, idents[0])
    ref_open = after.index("(")
    ref_close = matching_paren(after, ref_open)
    ref_cols = _ident_list(after[ref_open:ref_close + 1])
    return ForeignKey(name=name, definition=text, columns=cols, ref_database=ref_db,
                      ref_table=ref_table, ref_columns=ref_cols,
                      actions=" ".join(after[ref_close + 1:].split()))


def _parse_options(text: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Split the text after the closing parenthesis into options and partitioning."""
    toks = list(tokenize(text))
    options: list[tuple[str, str]] = []
    names: list[str] = []
    pos = 0
    partitioning = None
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind in ("space", "comment"):
            pos += len(t.text)
            i += 1
            continue
        if t.kind == "word" and t.text.upper() == "PARTITION" and not names:
            partitioning = text[pos:].strip()
            break
        if t.kind == "vcomment" and "PARTITION" in t.text.upper() and not names:
            partitioning = text[pos:].strip()  # MySQL 5.7 wraps it in /*!50100 ... */
            break
        if t.text == "=":
            j = i + 1
            while toks[j].kind == "space":
                pos += len(toks[j].text)
                j += 1
            key = " ".join(names).upper()
            if key == "DEFAULT CHARSET":
                key = "CHARSET"
            elif key == "DEFAULT COLLATE":
                key = "COLLATE"
            options.append((key, toks[j].text))
            names = []
            pos += len(t.text) + len(toks[j].text)
            i = j + 1
            continue
        names.append(t.text)
        pos += len(t.text)
        i += 1
    if names:
        # e.g. WITH SYSTEM VERSIONING: copying the table without it would lose its meaning.
        raise UnsupportedSchema(f"table option {' '.join(names)!r} is not supported")
    options = [(k, v) for k, v in options if k != "AUTO_INCREMENT"]
    return tuple(options), partitioning


def parse_create_table(create_sql: str, column_info: dict[str, dict[str, Any]]) -> Table:
    """Parse one SHOW CREATE TABLE text; `column_info` is information_schema per column."""
    open_at = create_sql.index("(")
    name_part = create_sql[:open_at]
    name_tok = [t for t in tokenize(name_part) if t.kind == "ident"]
    if not name_tok:
        raise UnsupportedSchema(f"cannot read table name in {create_sql[:80]!r}")
    name = unquote_ident(name_tok[-1].text)
    close_at = matching_paren(create_sql, open_at)
    body = create_sql[open_at + 1:close_at]
    columns: list[Column] = []
    indexes: list[Index] = []
    fks: list[ForeignKey] = []
    checks: list[Check] = []
    for element in split_top_level(body):
        first = _words(list(tokenize(element)))[0]
        if first.kind == "ident":
            col_name = unquote_ident(first.text)
            rest = element[element.index(first.text) + len(first.text):].strip()
            info = column_info.get(col_name, {})
            columns.append(Column(
                name=col_name, definition=strip_charset(rest),
                charset=info.get("charset"), collation=info.get("collation"),
                column_type=info.get("column_type", ""), nullable=info.get("nullable", True),
                generated=info.get("generated"),
            ))
        elif first.text.upper() == "CONSTRAINT":
            item = _parse_constraint(element)
            if isinstance(item, Check):
                checks.append(item)
            else:
                fks.append(item)
        elif first.text.upper() in ("PRIMARY", "UNIQUE", "KEY", "INDEX", "FULLTEXT", "SPATIAL"):
            indexes.append(_parse_index(element))
        else:
            raise UnsupportedSchema(f"table {name}: cannot read {element[:60]!r}")
    try:
        options, partitioning = _parse_options(create_sql[close_at + 1:])
    except UnsupportedSchema as exc:
        raise UnsupportedSchema(f"table {name}: {exc}") from None
    fks.sort(key=lambda f: f.name)
    return Table(
        name=name, columns=tuple(columns), indexes=tuple(indexes), foreign_keys=tuple(fks),
        checks=tuple(checks), options=options, partitioning=partitioning,
        # Without "CREATE TABLE `name`": a renamed table compares equal to its source.
        create_sql=strip_auto_increment(create_sql)[open_at:],
    )


def strip_auto_increment(create_sql: str) -> str:
    """SHOW CREATE TABLE without the table's AUTO_INCREMENT=n counter (it is data, not schema)."""
    open_at = create_sql.index("(")
    close_at = matching_paren(create_sql, open_at)
    head, tail = create_sql[:close_at + 1], create_sql[close_at + 1:]
    out: list[str] = []
    skip = 0
    for t in tokenize(tail):
        if skip:
            if t.kind != "space":
                skip -= 1
            continue
        if t.kind == "word" and t.text.upper() == "AUTO_INCREMENT":
            skip = 2  # "=" and the number
            if out and out[-1].isspace():
                out.pop()
            continue
        out.append(t.text)
    return head + "".join(out)
