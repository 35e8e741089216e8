"""Rendering plans, progress and status for people (rich) and machines (JSON)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter, defaultdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dbrepl.engine import Change, Plan, is_unknown

COLOURS = {"create": "green", "update": "yellow", "delete": "red", "replace": "magenta"}


# A value longer than this on one line is summarised: its kind, length and a hash to compare
# by (the full value: `plan --json`). A dashboard body is thousands of characters.
LONG_VALUE = 160


def _text(v: Any) -> str:
    return json.dumps(v, default=repr, sort_keys=True) if isinstance(v, (dict, list)) else str(v)


def _fmt(v: Any, hint: bool = True) -> str:
    if is_unknown(v) and not isinstance(v, (list, dict)):
        return "(known after apply)"
    if v is None:
        return "(none)"
    text = _text(v)
    if len(text) <= LONG_VALUE:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    kind = "JSON object" if isinstance(v, dict) else "JSON list" if isinstance(v, list) else "text"
    return f"({kind}, {len(text):,} characters, sha256 {digest}{'; in full: plan --json' if hint else ''})"


def _fmt_change(old: Any, new: Any) -> str:
    """old -> new; for long JSON objects, also which of their keys differ."""
    long = len(_text(old)) > LONG_VALUE or len(_text(new)) > LONG_VALUE
    line = f"{escape(_fmt(old, not long))} [dim]->[/] {escape(_fmt(new, not long))}"
    if not long:
        return line
    keys = sorted(str(k) for k in set(old) | set(new) if old.get(k) != new.get(k)) \
        if isinstance(old, dict) and isinstance(new, dict) else []
    differs = f"differs in: {', '.join(keys)}; " if keys else ""
    return line + f" [dim]({escape(differs)}in full: plan --json)[/]"


def render_plan(console: Console, plan: Plan, *, verb: str = "Plan") -> None:
    _render_plan_changes(console, plan, verb)  # its notes too, before the summary


def render_notes(console: Console, notes: list[str]) -> None:
    """What is no change but worth knowing (a version AWS moved forward, a reboot waiting, a key
    kept for a final snapshot)."""
    for n in notes:
        console.print(f"[yellow]note:[/] {escape(n)}")


def _render_plan_changes(console: Console, plan: Plan, verb: str) -> None:
    if not plan.changes:
        console.print("Nothing to destroy." if verb == "Destroy" else "No changes. The estate matches the spec.")
        render_notes(console, plan.notes)
        return
    groups: dict[tuple[str, str], list[Change]] = defaultdict(list)
    for c in plan.changes:
        groups[(c.step, c.env)].append(c)
    for (step, env), changes in groups.items():
        console.print(f"[bold]{escape(step)}[/] · {escape(env)}")
        for c in changes:
            col = COLOURS[c.action]
            mark = " [bold red](protected)[/]" if c.protected else ""
            if c.action == "create" and c.diff.get("RestoreFromSnapshot", (None, None))[1]:
                mark += " [bold](restored from a snapshot)[/]"
            console.print(f"  [{col}]{c.marker}[/] {escape(c.type)} [bold]{escape(c.name)}[/]{mark}")
            if c.final_snapshot:
                console.print(f"      final snapshot (kept): {escape(c.final_snapshot)}")
            for field, (old, new) in c.diff.items():
                if c.action == "create":
                    if new is not None:  # a field left to AWS's default is not a change
                        console.print(f"      {escape(field)}: {escape(_fmt(new))}")
                elif c.action == "delete":
                    continue
                else:
                    console.print(f"      {escape(field)}: {_fmt_change(old, new)}")
            if c.refused:
                console.print(f"      [bold red]refused:[/] {escape(c.refused)}; apply refuses this plan")
    s = plan.summary
    protected = sorted({c.env for c in plan.changes if c.protected})
    if protected:
        console.print(f"\n[bold red]protected:[/] this {verb.lower()} would delete or replace resources of "
                      f"{escape(', '.join(protected))}")
    render_notes(console, plan.notes)
    replace = f"{s['replace']} to replace, " if s.get("replace") else ""
    console.print(f"\n[bold]{verb}:[/] {s['create']} to create, {s['update']} to update, {replace}"
                  f"{s['delete']} to delete.")


FINDING_MARKS = {"ok": "[green]✓[/]", "fail": "[red]✗[/]", "skipped": "[dim]-[/]"}


def render_findings(console: Console, findings: list[Any]) -> None:
    """Preflight's findings, a line each: ✓ ok, ✗ fail (refuses), - skipped (the service could not say)."""
    if not findings:
        return
    console.print("[bold]Preflight[/]")
    for f in findings:
        word = " skipped:" if f.status == "skipped" else ":"
        console.print(f"  {FINDING_MARKS.get(f.status, '?')} {escape(f.check)} · {escape(f.where)}{word} "
                      f"{escape(f.message)}")


class Progress:
    """Engine reporter: a line per finished change, waits and retries with elapsed time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            if event == "done":
                c: Change = data["change"]
                word = {"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced"}[c.action]
                kept = f" (final snapshot {escape(c.final_snapshot)} kept)" if c.final_snapshot else ""
                self.console.print(
                    f"  [{COLOURS[c.action]}]{c.marker}[/] {escape(c.step)}/{escape(c.env)} {escape(c.type)} "
                    f"{escape(c.name)}{kept} [dim]{word} in {data['elapsed']:.1f}s[/]"
                )
            elif event == "waiting":
                self.console.print(f"  [dim]… waiting for {escape(data['what'])} ({data['elapsed']:.0f}s)[/]")
            elif event == "waited":
                self.console.print(f"  [dim]✓ {escape(data['what'])} after {data['elapsed']:.0f}s[/]")
            elif event == "held":
                self.console.print(f"  [yellow]‖ held: {escape(data['what'])}: {escape(str(data.get('message')))}[/]")
            elif event == "warning":
                self.console.print(f"  [yellow]! {escape(data['what'])}: {escape(str(data.get('message')))}[/]")
            elif event == "retry":
                self.console.print(
                    f"  [dim]↻ {escape(data['what'])}: {escape(str(data.get('error')))} "
                    f"(attempt {data['attempt']}, {data['elapsed']:.0f}s)[/]"
                )


def status_summary(status: dict[str, Any]) -> str:
    """One line: the resources by state, the alarms by state, the sync routes by last result."""
    s = status["summary"]
    total = sum(s.values())
    line = f"{total} resources: {s['ok']} ok, {s['drifted']} drifted, {s['missing']} missing, {s['extra']} extra"
    alarms = Counter(str(a["state"]) for a in status.get("alarms") or [])
    line += f"; alarms: {sum(alarms.values())}"
    if alarms:
        line += " (" + ", ".join(f"{n} {state}" for state, n in sorted(alarms.items())) + ")"
    if status.get("routes_error"):
        line += "; sync routes: unreadable"
    elif status.get("routes") is not None:
        routes = Counter(str(r["status"]) for r in status["routes"])
        line += f"; sync routes: {sum(routes.values())}"
        if routes:
            line += " (" + ", ".join(f"{n} {st}" for st, n in sorted(routes.items())) + ")"
    return line


def render_status(console: Console, status: dict[str, Any]) -> None:
    if not console.is_terminal:  # piped or redirected: every value whole, never cut at 80 columns
        console = Console(file=console.file, width=100_000, highlight=False, no_color=True, soft_wrap=True)
    out = Table(title="Outputs", show_lines=False)
    out.add_column("output")
    out.add_column("value")
    for k, v in status["outputs"].items():
        out.add_row(k, escape(str(v)) if v else "[dim](not created)[/]")
    console.print(out)
    t = Table(title=f"Resources (suffix {status['suffix']})")
    for col in ("env", "type", "name", "state"):
        t.add_column(col)
    for r in status["resources"]:
        colour = {"ok": "green", "missing": "red", "drifted": "yellow", "extra": "red"}.get(r["state"], "white")
        t.add_row(r["env"], r["type"], escape(r["name"]), f"[{colour}]{r['state']}[/]")
    console.print(t)
    render_notes(console, status.get("notes") or [])
    _render_routes(console, status)
    if status.get("alarms"):
        a = Table(title="Alarms")
        for col in ("alarm", "env", "state"):
            a.add_column(col)
        for al in status["alarms"]:
            colour = {"OK": "green", "ALARM": "red"}.get(al["state"], "yellow")
            a.add_row(escape(al["name"]), al["env"], f"[{colour}]{escape(str(al['state']))}[/]")
        console.print(a)
    console.print(escape(status_summary(status)))


def _render_routes(console: Console, status: dict[str, Any]) -> None:
    if status.get("routes_error"):
        why = escape(status["routes_error"])
        console.print(f"[yellow]Sync routes: the last-run records could not be read: {why}[/]")
        return
    rows = status.get("routes") or []
    if not rows:
        console.print("Sync routes: no sync has run yet and none is scheduled.")
        return
    t = Table(title="Sync routes (last run)")
    for col in ("route", "kind", "schedule", "last run (UTC)", "age", "result", "rows / statements"):
        t.add_column(col)
    for r in rows:
        colour = "green" if r["status"] == "success" else "yellow" if r["status"] == "never run" else "red"
        done = r["rows"] if r["kind"] == "data" else r["statements"]
        result = f"[{colour}]{escape(str(r['status']))}[/]" + (" (dry run)" if r["dry_run"] else "")
        t.add_row(escape(r["route"]), r["kind"], escape(r["schedule"] or "-"), escape(str(r["last_run"] or "-")),
                  _age_text(r["age_seconds"]), result, "-" if done is None else str(done))
    console.print(t)


def _age_text(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
