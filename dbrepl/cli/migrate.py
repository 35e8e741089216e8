"""`dbrepl migrate push|apply|status`: versioned migration scripts, applied once, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dbrepl.app import sync as runner
from dbrepl.cli.common import (
    ConfigOpt,
    DirectOpt,
    DryRunOpt,
    JsonOpt,
    SuffixOpt,
    YesOpt,
    ask,
    confirm,
    err,
    escape,
    estate,
    handled,
    out,
    sandbox_of,
)
from dbrepl.cli.sync import METRICS_HELP, confirm_target, exit_for, show, show_metrics
from dbrepl.errors import BadInput, DbreplError
from dbrepl.invocation import command, quote

migrate_app = typer.Typer(no_args_is_help=True, help="Versioned migration scripts: push, apply once, in order.")


@migrate_app.command("push")
@handled
def migrate_push(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Scripts named V<version>__<words>.sql.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a script even if an environment already ran it "
                                        "(then: dbrepl migrate repair ENV).")] = False,
    direct: DirectOpt = False,
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Upload migration scripts to the estate's bucket (names checked first, all or nothing).

    A script already in the bucket with other content is replaced only when no environment ran
    it (each environment's history is read, as migrate status does), or with --force."""
    paths = runner.check_script_files(files)
    warnings = runner.script_warnings(paths)
    spec = runner.load_spec(config)
    sfx = runner.check_suffix(suffix)
    functions = estate(ctx, spec, sfx).functions
    replaced = runner.replaced_scripts(paths, functions.stored_scripts([p.name for p in paths]))
    if replaced and not force:
        ran = _environments_that_ran(ctx, spec, sfx, replaced, direct)
        if ran:
            which = "; ".join(f"{name} ran on {', '.join(envs)}" for name, envs in ran.items())
            envs = list(dict.fromkeys(e for es in ran.values() for e in es))
            repairs = " and ".join(f"`{command(f'migrate repair {e}', '--direct' if direct else '', suffix=sfx)}`"
                                   for e in envs)
            raise BadInput(f"{which}: its content differs from the bucket's and an applied script must not change "
                           "(apply would stop); put the change in a new script, or pass --force to replace it "
                           f"and then run {repairs}; nothing was uploaded")
    bucket, keys = functions.push(paths)
    for key in keys:
        out.print(f"Uploaded s3://{escape(bucket)}/{escape(key)}"
                  + (" (replaced; the earlier version stays in the bucket)" if key.rsplit("/", 1)[-1] in replaced
                     else ""))
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    envs = list(spec.environments)
    then = f", then {' and '.join(envs[1:])}" if len(envs) > 1 else ""
    apply_cmd = command(f"migrate apply {envs[0]}", "--direct" if direct else "", suffix=sfx)
    out.print(f"{len(keys)} script(s) pushed; apply them with: `{escape(apply_cmd)}`{escape(then)}")


def _environments_that_ran(ctx: typer.Context, spec: Any, sfx: str, names: list[str],
                           direct: bool) -> dict[str, list[str]]:
    """{script: [environments whose history has it (applied, changed or failed)]}; a history that
    cannot be read refuses the push (exit 1): replacing blind could break that environment."""
    ran: dict[str, list[str]] = {}
    unknown: dict[str, str] = {}
    for env in spec.environments:
        result = runner.run_function(spec, sfx, "schema", runner.migrate_event(env, "migrate_status"),
                                     direct=direct, sandbox=sandbox_of(ctx)).result
        if result.get("status") != "success":
            unknown[env] = str(result.get("error") or result.get("status")).splitlines()[0]
            continue
        for scripts in (result.get("status_by_database") or {}).values():
            for s in scripts:
                if s.get("script") in names and s.get("state") != "pending" and env not in ran.get(s["script"], []):
                    ran.setdefault(s["script"], []).append(env)
    if unknown and not ran:
        env, why = next(iter(unknown.items()))
        raise DbreplError(f"cannot tell whether {env} ran {', '.join(names)} ({why}); nothing was uploaded: "
                          "fix that, or pass --force to replace the script(s) anyway")
    return ran


TARGET_HELP = "Target environment, or a DSN mysql://user@host:port/database (then --scripts DIR)."
ScriptsOpt = Annotated[Path | None, typer.Option(
    "--scripts", metavar="DIR", help="With a DSN target: the directory of the V<version>__<words>.sql scripts "
                                     "(a DSN has no bucket).")]


@migrate_app.command("apply")
@handled
def migrate_apply(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(metavar="ENV", help=TARGET_HELP)],
    dry_run: DryRunOpt = False,
    direct: DirectOpt = False,
    scripts: ScriptsOpt = None,
    database: Annotated[list[str] | None, typer.Option("--database", "-d", help="Only this database "
                                                       "(default: sync.databases); repeatable.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Apply up to this script (V<version>__<words>.sql).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=METRICS_HELP)] = False,
    json_: JsonOpt = False,
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Apply the bucket's pending scripts to ENV's databases, in version order, each once."""
    prepared = runner.prepare_migrate(env, scripts=scripts, databases=database, to=to, dry_run=dry_run,
                                      direct=direct, config=config, suffix=suffix, sandbox=sandbox_of(ctx))
    confirm_target(prepared.confirm, yes)
    ran = runner.run(prepared)
    show_metrics(ran.metrics, verbose)
    show(ran.result, json_, lambda: _render_apply(ran.result, prepared.label, dry_run))
    try:
        exit_for(ran.result, False, False)
    finally:  # after the error line
        _repair_hint(ran.result, prepared.label, prepared.suffix, scripts, direct=direct)


def _repair_hint(result: dict[str, Any], env: str, sfx: str | None, scripts: Path | None, *,
                 direct: bool) -> None:
    """After a refusal for a changed or failed script: the repair command, with this run's flags."""
    error = str(result.get("error") or "")
    if result.get("status") not in ("refused", "error") or "migrate repair" not in error:
        return
    if sfx is None:  # a DSN: no spec, no suffix, no sandbox; the password never shown
        hint = command(f"migrate repair {quote(env)}", f"--scripts {quote(scripts)}", suffix=False, config=False,
                       sandbox=False)
    else:
        hint = command(f"migrate repair {quote(env)}", "--direct" if direct else "", suffix=sfx)
    err.print(escape(f"hint: {hint}"
                     + ("   (or --restore: the bucket's original back)" if sfx is not None and "changed" in error
                        else "")))


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
    env: Annotated[str, typer.Argument(metavar="ENV", help=TARGET_HELP)],
    database: Annotated[list[str] | None, typer.Option("--database", "-d", help="Only this database "
                                                       "(default: sync.databases); repeatable.")] = None,
    direct: DirectOpt = False,
    scripts: ScriptsOpt = None,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="Exit 3 when scripts are pending, 1 when one failed, changed or is missing "
                                    "from the scripts, 0 when up to date.")] = False,
    json_: JsonOpt = False,
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Every script's state in ENV's databases: applied, pending, failed, changed, missing. Reads only."""
    if runner.is_dsn(env):
        endpoint = runner.check_migrate_dsn_target(env, scripts, database, direct)
        result = runner.migrate_on_dsn(endpoint, scripts or Path(), "migrate_status")
    else:
        runner.refuse_scripts_dir(scripts)
        spec, sfx = runner.migrate_target(env, config, suffix)
        databases = runner.check_databases(database) if database else None
        event = runner.migrate_event(env, "migrate_status", databases=databases)
        result = runner.run_function(spec, sfx, "schema", event, direct=direct, sandbox=sandbox_of(ctx)).result
    show(result, json_, lambda: _render_status(result))
    exit_for(result, False, False)
    if detailed_exitcode:
        states = {s.get("state") for scripts_ in (result.get("status_by_database") or {}).values() for s in scripts_}
        if states & {"failed", "changed", "missing"}:
            raise typer.Exit(1)
        if "pending" in states:
            raise typer.Exit(3)


def _render_status(result: dict[str, Any]) -> None:
    colours = {"applied": "green", "pending": "yellow", "failed": "red", "changed": "red", "missing": "red"}
    for db, scripts in (result.get("status_by_database") or {}).items():
        out.print(f"{escape(db)}:")
        if not scripts:
            out.print("  no scripts and no history")
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


@migrate_app.command("repair")
@handled
def migrate_repair(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(metavar="ENV", help=TARGET_HELP)],
    restore: Annotated[bool, typer.Option(
        "--restore", help="Put back in the bucket the version of each changed script that ran (from the "
                          "bucket's earlier versions) instead of accepting the new content.")] = False,
    dry_run: DryRunOpt = False,
    database: Annotated[list[str] | None, typer.Option("--database", "-d", help="Only this database "
                                                       "(default: sync.databases); repeatable.")] = None,
    direct: DirectOpt = False,
    scripts: ScriptsOpt = None,
    json_: JsonOpt = False,
    suffix: SuffixOpt = None,
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Repair ENV's migration history as Flyway does: remove failed entries (retried by the next
    apply) and accept each changed script's new content, or with --restore put the original back."""
    if runner.is_dsn(env):
        if restore:
            raise BadInput("--restore reads the bucket's earlier versions: it goes with an environment name")
        endpoint = runner.check_migrate_dsn_target(env, scripts, database, direct)
        if not dry_run:
            confirm(f"repairing the migration history of {endpoint.display()}", yes)
            if not yes:
                ask(f"Repair the migration history of {endpoint.display()}?")
        result = runner.migrate_on_dsn(endpoint, scripts or Path(), "migrate_repair", dry_run=dry_run)
        show(result, json_, lambda: _render_repair(result, [], dry_run))
        exit_for(result, False, False)
        return
    runner.refuse_scripts_dir(scripts)
    spec, sfx = runner.migrate_target(env, config, suffix)
    databases = runner.check_databases(database) if database else None
    if not dry_run:
        confirm(f"repairing the migration history of {env}", yes)
        if not yes:
            also = " and restore changed scripts in the bucket" if restore else ""
            ask(f"Repair the migration history of {env}{also}?")
    restored: list[str] = []
    if restore:
        restored = _restore_originals(ctx, spec, sfx, env, databases, direct, dry_run)
    event = runner.migrate_event(env, "migrate_repair", databases=databases, dry_run=dry_run)
    if restore:
        event["realign"] = False  # the originals are back: their checksums already match
    result = runner.run_function(spec, sfx, "schema", event, direct=direct, sandbox=sandbox_of(ctx)).result
    show(result, json_, lambda: _render_repair(result, restored, dry_run))
    exit_for(result, False, False)


def _restore_originals(ctx: typer.Context, spec: Any, sfx: str, env: str, databases: list[str] | None,
                       direct: bool, dry_run: bool) -> list[str]:
    """Each script ENV ran and that changed since: the bucket's version with the content that ran
    becomes current again. Refuses (exit 1) when the databases ran different contents or no
    version has it (noncurrent versions expire after 30 days)."""
    status = runner.run_function(spec, sfx, "schema", runner.migrate_event(env, "migrate_status", databases=databases),
                                 direct=direct, sandbox=sandbox_of(ctx)).result
    if status.get("status") != "success":
        exit_for(status, False, False)
    wanted: dict[str, str] = {}
    for scripts in (status.get("status_by_database") or {}).values():
        for s in scripts:
            if (s.get("state") == "changed" and s.get("applied_checksum")
                    and wanted.setdefault(s["script"], s["applied_checksum"]) != s["applied_checksum"]):
                    raise DbreplError(f"{s['script']}: the databases of {env} ran different contents of it; "
                                      "restore by hand, or accept the current one with "
                                      f"`{command(f'migrate repair {env}', suffix=sfx)}`")
    if dry_run:
        return [f"{name} (would restore)" for name in wanted]
    functions = estate(ctx, spec, sfx).functions
    restored = []
    for name, checksum in wanted.items():
        version = functions.restore_script(name, checksum)
        if version is None:
            raise DbreplError(f"{name}: no version in the bucket has the content {env} ran (checksum {checksum[:12]}); "
                              f"accept the current one with `{command(f'migrate repair {env}', suffix=sfx)}`")
        restored.append(f"{name} (version {version})")
    return restored


def _render_repair(result: dict[str, Any], restored: list[str], dry_run: bool) -> None:
    removed, accepted = ("would remove", "would accept") if dry_run else ("removed", "accepted")
    for name in restored:
        out.print(f"  restored in the bucket: {escape(name)}")
    changes = 0
    for r in result.get("repairs") or []:
        db = escape(str(r.get("database")))
        for name in r.get("removed_failed") or []:
            out.print(f"  {db}: {removed} the failed entry of {escape(name)} (the next apply runs it again)")
        for name in r.get("realigned") or []:
            out.print(f"  {db}: {accepted} the new content of {escape(name)} "
                      "(recorded its checksum; it is not run again)")
        for warning in r.get("warnings") or []:
            err.print(f"  {db}: [yellow]warning:[/] {escape(str(warning))}")
        changes += len(r.get("removed_failed") or []) + len(r.get("realigned") or [])
    if result.get("status") == "success":
        if not changes and not restored:
            out.print("Nothing to repair.")
        elif dry_run:
            out.print("Nothing was changed (dry run).")
