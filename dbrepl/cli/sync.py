"""`dbrepl sync schema|data|status`: make a target's schema or reference data equal to a source's.

Exit codes as for the rest of the CLI: 0 done, 1 failed or refused (a destructive change
without --allow-destructive, a changed migration script), 2 bad input (nothing run, no AWS
call), 3 differences found with --detailed-exitcode.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated, Any

import typer

from dbrepl.app import sync as runner
from dbrepl.cli.common import (
    ConfigOpt,
    DetailedOpt,
    DirectOpt,
    DryRunOpt,
    JsonOpt,
    SuffixOpt,
    YesOpt,
    err,
    escape,
    estate,
    handled,
    out,
    sandbox_of,
)
from dbrepl.errors import BadInput

sync_app = typer.Typer(no_args_is_help=True, help="Make a target's schema or reference data equal to a source's.")
SRC_HELP = "Source: an environment name of the spec, or mysql://user[:password]@host[:port]/database."
DST_HELP = "Target: an environment name of the spec, or a DSN (password also from MYSQL_PWD)."
METRICS_HELP = ("With environment names run here (--direct, the sandbox): also print the run's metrics line "
                "(CloudWatch EMF), which goes to the function's log, on stderr.")


def _on_terminal() -> bool:
    return sys.stdin.isatty()


def confirm_target(confirmation: runner.Confirmation | None, yes: bool) -> None:
    """A protected target needs --yes, or a 'yes' on a terminal; without a terminal: exit 2."""
    if yes or confirmation is None:
        return
    target, what = confirmation.target, confirmation.what
    if not _on_terminal():
        raise BadInput(f"{target} is protected: pass --yes to {what} (no terminal to ask on)")
    if not typer.confirm(f"{target} is a protected environment. {what[0].upper()}{what[1:]}?", default=False):
        err.print("Nothing was changed.")
        raise typer.Exit(1)


def exit_for(result: dict[str, Any], changed: bool, detailed: bool) -> None:
    status = result.get("status")
    if status != "success":
        first, *rest = str(result.get("error") or status).splitlines() or [str(status)]
        err.print(f"[red]error:[/] {escape(first)}")
        for line in rest:
            err.print(escape(line))
        raise typer.Exit(2 if status == "invalid" else 1)
    if result.get("record_error"):
        err.print(f"[yellow]warning:[/] the run's SSM record was not written: {escape(str(result['record_error']))}")
    if detailed and changed:
        raise typer.Exit(3)


def show(result: dict[str, Any], as_json: bool, render: Any) -> None:
    """The result as JSON on stdout, or rendered for people; its warnings (an unverified TLS
    connection) on stderr either way, once."""
    for warning in result.get("warnings") or []:
        err.print(f"[yellow]warning:[/] {escape(str(warning))}")
    if as_json:
        print(json.dumps(result, default=str))
    else:
        render()


def show_metrics(metrics: list[str], verbose: bool) -> None:
    """With --verbose, the EMF metrics lines a run made here, on stderr (stdout may be JSON)."""
    if verbose:
        for line in metrics:
            err.print(f"metrics: {line}", markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- sync schema

@sync_app.command("schema")
@handled
def sync_schema(
    ctx: typer.Context,
    src: Annotated[str, typer.Argument(metavar="SRC", help=SRC_HELP)],
    dst: Annotated[str, typer.Argument(metavar="DST", help=DST_HELP)],
    database: Annotated[list[str] | None, typer.Option("--database", "-d", help="Only this database (environment "
                                                       "names; default: sync.databases); repeatable.")] = None,
    dry_run: DryRunOpt = False,
    allow_destructive: Annotated[bool, typer.Option(
        "--allow-destructive", help="Allow clauses that can lose data (drops, narrowing).")] = False,
    detailed_exitcode: DetailedOpt = False,
    direct: DirectOpt = False,
    json_: JsonOpt = False,
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
    rename: Annotated[list[str] | None, typer.Option("--rename", help="Rename hint db.old=new (table) or "
                                                     "db.table.old=new (column); repeatable.")] = None,
    definer: Annotated[str, typer.Option("--definer", help="Triggers, routines, events: omit the source's "
                                         "DEFINER (the connecting user owns them) or keep it.")] = "omit",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=METRICS_HELP)] = False,
    yes: YesOpt = False,
    allow_blocking: Annotated[bool, typer.Option(
        "--allow-blocking", help="Run ALTERs that need COPY or LOCK=SHARED/EXCLUSIVE even on tables above the "
        "blocking limit (writes to the table wait for the whole change).")] = False,
    blocking_limit: Annotated[str | None, typer.Option(
        "--blocking-limit", metavar="SIZE", help="Largest table a blocking ALTER may touch, e.g. 256MB (default: "
        "schema.blocking_limit, 256 MB; protected targets: 0).")] = None,
    online_tool: Annotated[str | None, typer.Option(
        "--online-tool", metavar="pt-online-schema-change", help="Hand blocking ALTERs above the limit to this "
        "tool (DSNs or --direct; default: schema.online_tool).")] = None,
    lock_wait_timeout: Annotated[int | None, typer.Option(
        "--lock-wait-timeout", metavar="SECONDS", help="How long a DDL waits for a metadata lock before it "
        "gives up (default: schema.lock_wait_timeout, 30).")] = None,
) -> None:
    """Make DST's schema equal to SRC's: ordered DDL, destructive clauses only when allowed."""
    prepared = runner.prepare_schema(
        src, dst, config=config, suffix=suffix, databases=database, dry_run=dry_run,
        allow_destructive=allow_destructive, renames=rename, definer=definer, allow_blocking=allow_blocking,
        blocking_limit=blocking_limit, online_tool=online_tool, lock_wait_timeout=lock_wait_timeout, direct=direct,
        sandbox=sandbox_of(ctx))
    confirm_target(prepared.confirm, yes)
    ran = runner.run(prepared, tool_output=_tool_line if not json_ else None)
    show_metrics(ran.metrics, verbose)
    show(ran.result, json_, lambda: _render_schema(prepared.label, ran.result))
    exit_for(ran.result, bool(ran.result.get("statements")), detailed_exitcode)


def _tool_line(line: str) -> None:
    """A line of the online tool's output (its progress), on stderr as it comes."""
    err.print(f"  [dim]pt-online-schema-change:[/] {escape(line)}", highlight=False)


def _render_schema(label: str, result: dict[str, Any]) -> None:
    statements = result.get("statements") or []
    dry = bool(result.get("dry_run"))
    status = result.get("status")
    if status != "success":
        return  # _exit_for prints the error; a refusal's names every destructive clause
    if status == "success" and not statements:
        out.print(f"No schema differences: {escape(label)} ({', '.join(result.get('databases') or [])}).")
    elif dry or status == "success":
        if dry:
            # The DDL on stdout (a runnable script), the summary on stderr.
            for st in statements:
                _print_statement(st)
        err.print(f"{'Would run' if dry else 'Ran'} {len(statements)} statement(s) for {escape(label)}"
                  + ("; nothing was changed." if dry else
                     ("; the target now equals the source (verified)." if result.get("converged") else ".")))
        for clause in result.get("would_refuse") or []:
            err.print(f"  [yellow]destructive (needs --allow-destructive):[/] {escape(clause)}")
        for clause in result.get("would_block") or []:
            err.print(f"  [yellow]refused by the target's rows (a run stops before any DDL):[/] {escape(clause)}")
        for clause in result.get("would_refuse_blocking") or []:
            err.print(f"  [yellow]blocking above the limit (needs --allow-blocking or the online tool):[/] "
                      f"{escape(clause)}")
        for clause in result.get("online_tool") or []:
            err.print(f"  [cyan]through pt-online-schema-change:[/] {escape(clause)}")
        if not dry:
            for st in statements:
                online = f" {st['online']}" if st.get("online") else ""
                out.print(f"  {'[red]![/]' if st.get('destructive') else '+'} {escape(st.get('description', ''))}"
                          f"{escape(online)}")
    for note in result.get("notes") or []:
        err.print(f"[yellow]note:[/] {escape(str(note))}")


def _print_statement(st: dict[str, Any]) -> None:
    mark = "DESTRUCTIVE: " if st.get("destructive") else ""
    comment = f"-- {mark}{st.get('description', '')}" + (f"\n-- {st['online']}" if st.get("online") else "")
    if out.is_terminal:
        from rich.syntax import Syntax  # pygments: only for DDL shown on a terminal

        out.print(f"[{'red' if mark else 'dim'}]{escape(comment)}[/]")
        # the script: DELIMITER around stored-program bodies, their sql_mode set and restored
        out.print(Syntax(st.get("script") or f"{st['sql']};", "sql", theme="ansi_dark",
                         background_color="default", word_wrap=True))
    else:
        print(comment)
        print(st.get("script") or f"{st['sql']};\n", end="")


# --------------------------------------------------------------------------- sync data

@sync_app.command("data")
@handled
def sync_data(
    ctx: typer.Context,
    src: Annotated[str, typer.Argument(metavar="SRC", help=SRC_HELP)],
    dst: Annotated[str, typer.Argument(metavar="DST", help=DST_HELP)],
    table: Annotated[list[str] | None, typer.Option("--table", "-t", help="table or database.table (default: "
                                                    "sync.reference_tables; needed with DSNs); repeatable.")] = None,
    dry_run: DryRunOpt = False,
    direct: DirectOpt = False,
    json_: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="The statements too (meant for --dry-run); run "
                                          "here with environment names, the run's metrics line (EMF) on stderr.")
                       ] = False,
    verify: Annotated[str, typer.Option(
        "--verify", metavar="changed|full|none",
        help="What is re-checked before COMMIT: changed (default) re-digests every key range with changes and "
             "compares row counts; full re-digests every range in a second, independent pass; none checks nothing.",
    )] = "changed",
    triggers: Annotated[str, typer.Option(
        "--triggers", metavar="correct|refuse|allow",
        help="The target's triggers on the synced tables: correct (default) sets back what they rewrite, orders "
             "tables they write and refuses what cannot end equal (SIGNAL, CALL, cycles); refuse refuses every "
             "trigger the sync would fire; allow refuses nothing and lets the verification decide.",
    )] = "correct",
    on_delete: Annotated[str, typer.Option(
        "--on-delete", metavar="refuse|apply",
        help="Rows the target's foreign keys tie to rows this sync deletes: refuse (default) rolls back naming "
             "the constraint; apply deletes with foreign key checks on, so the target's CASCADE / SET NULL / "
             "RESTRICT happen as declared.",
    )] = "refuse",
    detailed_exitcode: DetailedOpt = False,
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Make DST's rows of the reference tables equal to SRC's: only differing rows move, in one transaction."""
    prepared = runner.prepare_data(src, dst, config=config, suffix=suffix, tables=table, dry_run=dry_run,
                                   verbose=verbose, verify=verify, triggers=triggers, on_delete=on_delete,
                                   direct=direct, sandbox=sandbox_of(ctx))
    confirm_target(prepared.confirm, yes)
    if not prepared.here:
        err.print(f"Invoking function {escape(str(prepared.function_name))}: no progress "
                  "is shown until it returns (--direct runs it here, with a progress bar).")
    # The handler's code here (DSNs, --direct, the sandbox) reports progress; an invoked function does not.
    with (_progress_bar() if prepared.here else contextlib.nullcontext()) as hook:
        ran = runner.run(prepared, progress=hook)
    show_metrics(ran.metrics, verbose)
    show(ran.result, json_, lambda: _render_data(prepared.label, ran.result, verbose))
    exit_for(ran.result, bool(ran.result.get("rows_synced")), detailed_exitcode)


def _render_data(label: str, result: dict[str, Any], verbose: bool) -> None:
    if result.get("status") != "success":
        return
    dry = bool(result.get("dry_run"))
    rows = result.get("per_table") or []
    width = max([len(r["table"]) for r in rows] + [5])
    verb = ("would insert", "would update", "would delete") if dry else ("inserted", "updated", "deleted")
    for r in rows:
        corrected = f"  {r['corrected']:>6} corrected after triggers" if r.get("corrected") else ""
        out.print(f"  {escape(r['table']):<{width}}  {r['inserted']:>6} {verb[0]}  {r['updated']:>6} {verb[1]}  "
                  f"{r['deleted']:>6} {verb[2]}{corrected}")
        if verbose:
            for s in r.get("statements") or []:
                print(f"    {s};")
            if r.get("statements_omitted"):
                out.print(f"    -- {r['statements_omitted']} more statement(s) not shown (the function's "
                          "result is bounded; a DSN run shows them all)")
    n = int(result.get("rows_synced") or 0)
    if n == 0:
        out.print(f"No differences: {escape(label)} ({len(rows)} table(s)).")
    elif dry:
        out.print(f"{n} row(s) would change in {escape(label)}; nothing was changed.")
    else:
        out.print(f"Synced {n} row(s) in {escape(label)}, in one transaction.")
    _render_rules(result, dry)
    if result.get("verified"):
        out.print(f"Verified: {escape(str(result['verified']))}.")


def _render_rules(result: dict[str, Any], dry: bool) -> None:
    """What the target's triggers and foreign key actions did (or would do) around the run."""
    for t in result.get("triggers") or []:
        if t.get("treatment") == "not fired":
            continue
        fired = t.get("fired")
        times = "" if fired is None else f" {'would fire' if dry else 'fired'} on {fired} row(s);"
        what = {
            "corrected": f" rewrote rows on insert, {t.get('corrected', 0)} set back to the source's values"
                         if not dry else " rewrites rows on insert; they would be set back",
            "ordered": " writes synced tables, which were synced after it",
            "external": " writes tables outside the sync",
            "fires": " writes nothing the sync compares",
        }.get(str(t.get("treatment")), f" {t.get('treatment')}")
        writes = f" ({', '.join(t['writes'])})" if t.get("writes") else ""
        out.print(f"Trigger {escape(t['trigger'])} ({t['timing']} {t['event']} on {escape(t['table'])}):"
                  f"{escape(times + what + writes)}.")
    for f in result.get("foreign_keys") or []:
        out.print(f"Foreign key {escape(f['constraint'])} ({escape(f['child'])} -> {escape(f['parent'])}, ON DELETE "
                  f"{f['on_delete']}): {f['rows']} row(s) of {escape(f['child'])} {escape(str(f['outcome']))}.")


class _progress_bar:  # noqa: N801 - used as a context manager like a function
    """A progress bar on stderr when it is a terminal; otherwise no hook at all."""

    def __enter__(self) -> Any:
        if not err.is_terminal:
            self.bar = None
            return None
        from rich.progress import BarColumn, Progress, TextColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(),
                       TextColumn("{task.completed:,}/{task.total:,}"),
                       console=err, transient=True)
        self.bar = bar
        bar.start()
        tasks: dict[str, Any] = {}

        def hook(p: Any) -> None:
            key = f"{p.database}.{p.table}"
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=max(p.rows_estimate, 1))
            bar.update(tasks[key], completed=p.rows_compared,
                       total=max(p.rows_estimate, p.rows_compared, 1),
                       description=f"{key} (verifying)" if p.phase == "verify" else key)

        return hook

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# --------------------------------------------------------------------------- sync status

@sync_app.command("status")
@handled
def sync_status(ctx: typer.Context, suffix: SuffixOpt = None, config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """The last schema and data sync records of the estate (SSM). Reads only."""
    spec = runner.load_spec(config)
    sfx = runner.check_suffix(suffix)
    records = estate(ctx, spec, sfx).functions.records()
    if json_:
        print(json.dumps(records, default=str))
        return
    if not records:
        out.print(f"No sync has been recorded for estate {escape(sfx)} yet.")
        return
    for r in records:
        colour = "green" if r.get("status") == "success" else "red"
        counts = ", ".join(f"{k} {v}" for k, v in (r.get("counts") or {}).items())
        dry = " (dry run)" if r.get("dry_run") else ""
        out.print(f"{r['kind']:<6} {escape(r['pair']):<24} [{colour}]{escape(str(r.get('status')))}[/]{dry}  "
                  f"{escape(str(r.get('timestamp', '')))}  {escape(counts)}")
        if r.get("error"):
            out.print(f"       [red]{escape(str(r['error']).splitlines()[0])}[/]")
