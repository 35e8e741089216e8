"""The target's triggers on the synced tables: what the sync's writes make them do.

A data sync writes with DELETE and INSERT (a changed row is deleted and inserted again), and
MySQL and MariaDB fire triggers on every row of those statements; no session switch turns
them off. Before any change the run reads the target's triggers on the synced tables (one
query; a second only when a trigger writes a table in another database) and decides, per
trigger, what its firing means for the result:

- "corrected": a BEFORE INSERT trigger that assigns its own row's columns (`SET NEW.x =`).
  The table's inserts go through a temporary table; after them, the rows the trigger
  rewrote are set back to the source's values with one UPDATE joined on the key, in the
  same transaction (the verification before COMMIT then proves it).
- "ordered": it writes another synced table. Tables are synced writers first, so the
  written table is compared after everything that writes it and ends equal to the source.
- "external": it writes tables outside the synced set (an audit log). The target's rule,
  applied as to any writer; the result reports it.
- "fires": it fires but writes nothing the run can see (a check, a variable).
- "not fired": its event is one the run does not cause (UPDATE, when nothing is corrected).

Refused before any change (`TriggersRefused`, naming each trigger, its table, timing and
event, and why) unless `triggers="allow"`: a fired trigger that raises SIGNAL, one that
CALLs a procedure (what it writes cannot be known), a BEFORE UPDATE trigger that assigns
NEW on a table whose inserts need correcting (the correction would be rewritten again), and
triggers that write a synced table back into a table that writes them (a cycle, no order).
`triggers="refuse"` refuses every trigger the sync's own writes would fire, as
pt-table-sync does. `triggers="allow"` refuses nothing: the triggers fire, corrections are
still applied, and the verification before COMMIT decides.

Trigger bodies are read as text: comments and string literals are blanked, then INSERT,
REPLACE, UPDATE and DELETE statements name what is written, `SET NEW.x =` what is rewritten.
A user's trigger is never dropped, altered or re-created.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbrepl.sync.errors import InvalidInput, SyncError

TRIGGER_MODES = ("correct", "refuse", "allow")
DEFAULT_TRIGGERS = "correct"

TableName = tuple[str, str]  # (database, table) on the target


class TriggersRefused(SyncError):
    """The target's triggers would keep the run from making the tables equal: nothing ran."""

    def __init__(self, message: str, triggers: Sequence[dict[str, str]]):
        super().__init__(message)
        self.triggers = list(triggers)


def check_triggers(mode: object) -> str:
    if mode not in TRIGGER_MODES:
        raise InvalidInput(
            f"invalid triggers {mode!r}: use one of {', '.join(TRIGGER_MODES)} (default {DEFAULT_TRIGGERS})"
        )
    return str(mode)


@dataclass(frozen=True)
class Trigger:
    schema: str
    name: str
    table: TableName
    timing: str  # BEFORE | AFTER
    event: str  # INSERT | UPDATE | DELETE
    rewrites: tuple[str, ...]  # NEW columns it assigns
    signals: bool
    calls: tuple[str, ...]
    writes: tuple[tuple[TableName, str], ...]  # (table, INSERT|UPDATE|DELETE|REPLACE)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def when(self) -> str:
        return f"{self.timing} {self.event}"

    def describe(self) -> str:
        return f"trigger {self.label} ({self.when} on {'.'.join(self.table)})"


@dataclass
class TriggerEffect:
    """What one trigger did (or would do) in a run: the result's report of it."""

    trigger: str
    table: str
    timing: str
    event: str
    treatment: str
    fired: int | None = None  # rows of the sync's own writes it fired on (None: nested)
    corrected: int = 0
    writes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger, "table": self.table, "timing": self.timing,
            "event": self.event, "treatment": self.treatment, "fired": self.fired,
            "corrected": self.corrected, "writes": self.writes,
        }


# -- reading bodies -------------------------------------------------------------------------

_IDENT = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_NAME = rf"({_IDENT}(?:\s*\.\s*{_IDENT})?)"
_WRITE_PATTERNS = (
    ("INSERT",
     re.compile(rf"\bINSERT\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?{_NAME}", re.I)),
    ("REPLACE", re.compile(rf"\bREPLACE\s+(?:(?:LOW_PRIORITY|DELAYED)\s+)*(?:INTO\s+)?{_NAME}", re.I)),
    ("UPDATE", re.compile(rf"\bUPDATE\s+(?:(?:LOW_PRIORITY|IGNORE)\s+)*{_NAME}", re.I)),
    ("DELETE", re.compile(rf"\bDELETE\s+(?:(?:LOW_PRIORITY|QUICK|IGNORE)\s+)*FROM\s+{_NAME}", re.I)),
)
# `ON DUPLICATE KEY UPDATE c=...`, `SELECT ... FOR UPDATE`, `ON UPDATE`: not statements.
_NOT_A_STATEMENT = re.compile(r"\b(?:KEY|FOR|ON)\s*$", re.I)
_SIGNAL = re.compile(r"\b(?:RE)?SIGNAL\b", re.I)
_CALL = re.compile(rf"\bCALL\s+{_NAME}", re.I)
_ASSIGN_NEW = re.compile(rf"(?:\bSET\s+|,\s*|\bINTO\s+)NEW\s*\.\s*({_IDENT})\s*:?=(?!=)", re.I)
_SELECT_INTO_NEW = re.compile(rf"\bINTO\s+NEW\s*\.\s*({_IDENT})", re.I)
_BLANK = re.compile(
    r"""(--[ \t][^\n]*|\#[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")""", re.S
)


def _blank(body: str) -> str:
    """The body with comments and string literals blanked (they hold no statements)."""

    def one(m: re.Match[str]) -> str:
        s = m.group(0)
        return "''" if s[0] in "'\"" else " "

    return _BLANK.sub(one, body)


def _unquote(ident: str) -> str:
    ident = ident.strip()
    return ident[1:-1].replace("``", "`") if ident.startswith("`") else ident


def _table_name(text: str, schema: str) -> TableName:
    parts = re.findall(_IDENT, text)
    if len(parts) >= 2:
        return _unquote(parts[0]), _unquote(parts[1])
    return schema, _unquote(parts[0])


def parse_trigger(schema: str, name: str, table: TableName, timing: str, event: str, body: str) -> Trigger:
    text = _blank(body)
    writes: list[tuple[TableName, str]] = []
    for kind, pattern in _WRITE_PATTERNS:
        for m in pattern.finditer(text):
            if kind == "UPDATE" and _NOT_A_STATEMENT.search(text[:m.start()]):
                continue
            if kind == "INSERT" and text[m.end(1):m.end(1) + 1] == "(" and not re.search(r"\s", m.group(0)[6:7]):
                continue  # the INSERT() string function
            writes.append((_table_name(m.group(1), schema), kind))
    rewrites: list[str] = []
    if timing.upper() == "BEFORE":
        for m in list(_ASSIGN_NEW.finditer(text)) + list(_SELECT_INTO_NEW.finditer(text)):
            col = _unquote(m.group(1))
            if col not in rewrites:
                rewrites.append(col)
    return Trigger(
        schema=schema, name=name, table=table, timing=timing.upper(), event=event.upper(),
        rewrites=tuple(rewrites), signals=bool(_SIGNAL.search(text)),
        calls=tuple(_unquote(m.group(1)) for m in _CALL.finditer(text)),
        writes=tuple(dict.fromkeys(writes)),
    )


def read_triggers(conn: Any, databases: Iterable[str]) -> list[Trigger]:
    """Every trigger on a table of `databases` (one information_schema query)."""
    dbs = sorted(set(databases))
    if not dbs:
        return []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE,"
            " ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT FROM information_schema.TRIGGERS"
            f" WHERE EVENT_OBJECT_SCHEMA IN ({', '.join(['%s'] * len(dbs))}) ORDER BY 3, 4, ACTION_ORDER",
            dbs,
        )
        rows = cur.fetchall()
    return [
        parse_trigger(_text(r[0]), _text(r[1]), (_text(r[2]), _text(r[3])), _text(r[4]), _text(r[5]), _text(r[6]))
        for r in rows
    ]


def _text(v: object) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)


# -- planning -------------------------------------------------------------------------------


def _key(t: TableName) -> TableName:
    return t[0].lower(), t[1].lower()


_EVENTS_OF_WRITE = {
    "INSERT": ("INSERT",), "REPLACE": ("INSERT", "DELETE"), "UPDATE": ("UPDATE",), "DELETE": ("DELETE",),
}


@dataclass
class TriggerPlan:
    """What the run does about the target's triggers (see the module's docstring)."""

    mode: str
    triggers: list[Trigger]
    synced: list[TableName]
    correct: set[TableName] = field(default_factory=set)  # synced tables whose inserts are corrected
    fired: set[tuple[str, str]] = field(default_factory=set)  # (schema, name) of triggers that fire
    edges: set[tuple[TableName, TableName]] = field(default_factory=set)  # writer -> written (synced)

    def on(self, table: TableName) -> list[Trigger]:
        return [t for t in self.triggers if _key(t.table) == _key(table)]

    def needs_correction(self, table: TableName) -> bool:
        return _key(table) in self.correct

    def report(self, counts: dict[TableName, tuple[int, int, int, int]], dry_run: bool) -> list[TriggerEffect]:
        """Per trigger on a synced table (or fired by one): what it did. `counts` maps a
        synced table to (inserted, updated, deleted, corrected)."""
        synced = {_key(s) for s in self.synced}
        by_key = {_key(k): v for k, v in counts.items()}
        out = []
        for t in self.triggers:
            on_synced = _key(t.table) in synced
            fired = (t.schema, t.name) in self.fired
            if not on_synced and not fired:
                continue
            writes_synced = [w for w, _ in t.writes if _key(w) in synced]
            if not fired:
                treatment = "not fired"
            elif t.rewrites and t.event == "INSERT" and _key(t.table) in self.correct:
                treatment = "corrected"
            elif writes_synced:
                treatment = "ordered"
            elif t.writes:
                treatment = "external"
            else:
                treatment = "fires"
            n: int | None = 0
            corrected = 0
            if not on_synced:
                n = None
            elif fired:
                ins, upd, dele, cor = by_key.get(_key(t.table), (0, 0, 0, 0))
                n = {"INSERT": ins + upd, "DELETE": dele + upd, "UPDATE": cor}[t.event]
                if treatment == "corrected":
                    corrected = cor
            out.append(TriggerEffect(
                trigger=t.label, table=".".join(t.table), timing=t.timing, event=t.event,
                treatment=treatment, fired=n, corrected=0 if dry_run else corrected,
                writes=[".".join(w) for w, _ in t.writes],
            ))
        return out


def plan_triggers(triggers: Sequence[Trigger], synced: Sequence[TableName], mode: str) -> TriggerPlan:
    """Decide what each trigger's firing means; TriggersRefused when equality is impossible."""
    plan = TriggerPlan(mode=mode, triggers=list(triggers), synced=list(synced))
    synced_keys = {_key(s) for s in synced}
    by_event: dict[tuple[TableName, str], list[Trigger]] = {}
    for t in triggers:
        by_event.setdefault((_key(t.table), t.event), []).append(t)

    # Tables whose inserts need setting back: a BEFORE INSERT trigger assigns NEW.
    for s in synced:
        if any(t.rewrites and t.timing == "BEFORE" for t in by_event.get((_key(s), "INSERT"), [])):
            plan.correct.add(_key(s))

    # Which (table, event) happen: the sync's own DELETE/INSERT, the corrections' UPDATE,
    # and whatever the fired triggers write, to a fixed point.
    todo = [(k, e) for k in synced_keys for e in ("INSERT", "DELETE")]
    todo += [(k, "UPDATE") for k in plan.correct]
    seen: set[tuple[TableName, str]] = set()
    while todo:
        item = todo.pop()
        if item in seen:
            continue
        seen.add(item)
        for t in by_event.get(item, []):
            plan.fired.add((t.schema, t.name))
            for w, kind in t.writes:
                todo += [(_key(w), e) for e in _EVENTS_OF_WRITE[kind]]

    # Writer -> written among synced tables, through any chain of fired triggers.
    writes_of: dict[TableName, set[TableName]] = {}
    for t in triggers:
        if (t.schema, t.name) in plan.fired:
            writes_of.setdefault(_key(t.table), set()).update(_key(w) for w, _ in t.writes)
    cycles: list[TableName] = []
    for s in synced_keys:
        reach: set[TableName] = set()
        stack = list(writes_of.get(s, ()))
        while stack:
            w = stack.pop()
            if w in reach:
                continue
            reach.add(w)
            stack.extend(writes_of.get(w, ()))
        if s in reach:
            cycles.append(s)
        plan.edges.update((s, w) for w in reach if w in synced_keys and w != s)

    if mode != "allow":
        refusals = _refusals(plan, by_event, synced_keys, cycles)
        if refusals:
            lines = [f"{t.describe()}: {why}" for t, why in refusals]
            raise TriggersRefused(
                "the target's triggers keep this sync from making the tables equal; nothing was"
                " changed:\n  " + "\n  ".join(lines) + "\n(" + _ways_out(mode) + ")",
                [{"trigger": t.label, "table": ".".join(t.table), "timing": t.timing,
                  "event": t.event, "reason": why} for t, why in refusals],
            )
    return plan


def _refusals(
    plan: TriggerPlan, by_event: dict[tuple[TableName, str], list[Trigger]],
    synced: set[TableName], cycles: list[TableName],
) -> list[tuple[Trigger, str]]:
    out: list[tuple[Trigger, str]] = []
    for t in plan.triggers:
        if (t.schema, t.name) not in plan.fired:
            continue
        if plan.mode == "refuse":
            if _key(t.table) in synced:
                verb = {"INSERT": "inserts", "DELETE": "deletes"}.get(t.event, "updates")
                out.append((t, f"fires on every row the sync {verb} (--triggers refuse)"))
            continue
        if t.signals:
            out.append((t, "raises SIGNAL, which would reject rows the sync writes"))
        elif t.calls:
            out.append((t, f"calls {', '.join(t.calls)}: what a procedure writes cannot be known"))
        elif t.event == "UPDATE" and t.rewrites and _key(t.table) in plan.correct:
            fixers = [x.label for x in by_event.get((_key(t.table), "INSERT"), []) if x.rewrites]
            out.append((t, f"assigns NEW.{', NEW.'.join(t.rewrites)} on UPDATE, so the correction of what"
                           f" {', '.join(fixers)} rewrites would be rewritten again"))
    for s in cycles:
        for t in plan.on(s):
            if (t.schema, t.name) in plan.fired and t.writes and all(t is not x for x, _ in out):
                out.append((t, "its writes come back to its own table through other triggers,"
                               " so no order of the tables ends with both equal"))
    return out


def _ways_out(mode: str) -> str:
    if mode == "refuse":
        return ("--triggers correct lets dbrepl sync tables with triggers and correct what they rewrite;"
                " docs/data-sync.md, \"The target's rules: triggers\"")
    return ("--triggers allow runs anyway and lets the verification before COMMIT decide; the triggers"
            " themselves are never changed; docs/data-sync.md, \"The target's rules: triggers\"")


def order_tables(tables: Sequence[TableName], hard: Iterable[tuple[TableName, TableName]],
                 soft: Iterable[tuple[TableName, TableName]] = ()) -> list[int]:
    """Indexes of `tables` in an order that puts every `a` before `b` for (a, b) in `hard`
    (and in `soft` where that makes no cycle), otherwise keeping the given order."""
    keys = [_key(t) for t in tables]
    hard = {(_key(a), _key(b)) for a, b in hard}
    soft = {(_key(a), _key(b)) for a, b in soft}
    for edges in (hard | soft, hard):
        order = _topo(keys, edges)
        if order is not None:
            return order
    return list(range(len(tables)))


def _topo(keys: list[TableName], edges: set[tuple[TableName, TableName]]) -> list[int] | None:
    index = {k: i for i, k in enumerate(keys)}
    preds: dict[int, set[int]] = {i: set() for i in range(len(keys))}
    for a, b in edges:
        if a in index and b in index and a != b:
            preds[index[b]].add(index[a])
    done: list[int] = []
    left = list(range(len(keys)))
    while left:
        ready = [i for i in left if not (preds[i] - set(done))]
        if not ready:
            return None
        done.append(ready[0])
        left.remove(ready[0])
    return done
