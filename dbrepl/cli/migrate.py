"""`dbrepl migrate push|apply|status`: versioned migration scripts, applied once, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from dbrepl.app import sync as runner
from dbrepl.cli.common import (
    ConfigOpt,
    DirectOpt,
    DryRunOpt,
    JsonOpt,
    SuffixOpt,
    YesOpt,
    err,
    estate,
    handled,
    out,
)
from dbrepl.cli.sync import confirm_target, exit_for, run_env, show

migrate_app = typer.Typer(no_args_is_help=True, help="Versioned migration scripts: push, apply once, in order.")


@migrate_app.command("push")
@handled
def migrate_push(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Scripts named V<version>__<words>.sql.")],
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Upload migration scripts to the estate's bucket (names checked first, all or nothing)."""
    paths = runner.check_script_files(files)
    warnings = runner.script_warnings(paths)
    spec = runner.load_spec(config)
    sfx = runner.check_suffix(suffix)
    bucket, keys = estate(ctx, spec, sfx).functions.push(paths)
    for key in keys:
        out.print(f"Uploaded s3://{escape(bucket)}/{escape(key)}")
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print(f"{len(keys)} script(s) pushed; apply them with: dbrepl migrate apply ENV --suffix {sfx}")


def _migrate_target(env: str, config: Path | None, suffix: str | None) -> tuple[Any, str]:
    spec = runner.load_spec(config)
    runner.check_environment(spec, env)
    return spec, runner.check_suffix(suffix)


@migrate_app.command("apply")
@handled
def migrate_apply(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(metavar="ENV", help="Target environment.")],
    dry_run: DryRunOpt = False,
    direct: DirectOpt = False,
    database: Annotated[list[str] | None, typer.Option("--database", "-d", help="Only this database "
                                                       "(default: sync.databases); repeatable.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Apply up to this script (V<version>__<words>.sql).")] = None,
    json_: JsonOpt = False,
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Apply the bucket's pending scripts to ENV's databases, in version order, each once."""
    spec, sfx = _migrate_target(env, config, suffix)
    databases = runner.check_databases(database) if database else None
    if to is not None:
        runner.check_script_name(to)
    if not dry_run:
        confirm_target(spec, env, f"apply migrations to {env}", yes)
    event = runner.migrate_event(env, "migrate", databases=databases, dry_run=dry_run, to=to)
    result = run_env(ctx, spec, sfx, "schema", event, direct)
    show(result, json_, lambda: _render_apply(result, env, dry_run))
    exit_for(result, False, False)


def _render_apply(result: dict[str, Any], env: str, dry_run: bool) -> None:
    for run in result.get("migrations") or []:
        db = escape(str(run.get("database")))
        for warning in run.get("warnings") or []:
            err.print(f"  {db}: [yellow]warning:[/] {escape(str(warning))}")
        for name in run.get("applied") or []:
            out.print(f"  {db}: applied {escape(name)}")
        if run.get("failed"):
            where = ""
            if run.get("failed_statement"):
                where = f" at statement {run['failed_statement']} ({run.get('failed_excerpt')})"
            err.print(f"  {db}: [red]failed[/] {escape(run['failed'])}{escape(where)}: "
                      f"{escape(str(run.get('error')))}")
            if run.get("atomic"):
                err.print(f"  {db}: rolled back: none of its changes remain")
            elif run.get("statements_run") is not None:
                err.print(f"  {db}: {run['statements_run']} statement(s) of it ran and stay applied "
                          "(not atomic)")
        for name in run.get("pending") or []:
            out.print(f"  {db}: {'would apply' if dry_run else 'not applied'} {escape(name)}")
        for d in run.get("ddl") or []:  # each ALTER's ALGORITHM/LOCK on the target (issue 20)
            out.print(f"  {db}: {escape(d['script'])} statement {d['statement']}: {escape(d['online'])}")
    if result.get("status") == "success":
        c = result.get("counts") or {}
        if dry_run:
            out.print(f"{c.get('pending', 0)} script(s) pending on {escape(env)}; nothing was changed.")
        elif c.get("applied"):
            out.print(f"Applied {c['applied']} script(s) to {escape(env)}.")
        else:
            out.print(f"Nothing to apply: {escape(env)} is up to date.")


@migrate_app.command("status")
@handled
def migrate_status(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(metavar="ENV", help="Target environment.")],
    database: Annotated[list[str] | None, typer.Option("--database", "-d", help="Only this database "
                                                       "(default: sync.databases); repeatable.")] = None,
    direct: DirectOpt = False,
    json_: JsonOpt = False,
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Every script's state in ENV's databases: applied, pending, failed, changed, missing. Reads only."""
    spec, sfx = _migrate_target(env, config, suffix)
    databases = runner.check_databases(database) if database else None
    event = runner.migrate_event(env, "migrate_status", databases=databases)
    result = run_env(ctx, spec, sfx, "schema", event, direct)
    show(result, json_, lambda: _render_status(result))
    exit_for(result, False, False)


def _render_status(result: dict[str, Any]) -> None:
    colours = {"applied": "green", "pending": "yellow", "failed": "red", "changed": "red", "missing": "red"}
    for db, scripts in (result.get("status_by_database") or {}).items():
        out.print(f"{escape(db)}:")
        if not scripts:
            out.print("  no scripts in the bucket and no history")
        for s in scripts:
            state = s.get("state", "")
            when = f"  {s['installed_on']}" if s.get("installed_on") else ""
            atomic = {True: "atomic", False: "not atomic"}.get(s.get("atomic"), "")
            out.print(f"  {escape(str(s.get('version'))):<8} [{colours.get(state, 'white')}]{state:<8}[/] "
                      f"{atomic:<10} {escape(str(s.get('script')))}{escape(when)}")
            if state == "pending" and s.get("not_atomic_because"):
                out.print(f"           {escape(str(s['not_atomic_because']))}")
            if state == "failed" and s.get("failed_statement"):
                after = ("rolled back" if s.get("rolled_back")
                         else f"{s.get('statements_run')} statement(s) ran and stay applied")
                out.print(f"           failed at statement {s['failed_statement']} "
                          f"({escape(str(s.get('failed_excerpt')))}), {after}: {escape(str(s.get('error')))}")
