"""The dbrepl command line: parse, load the spec, call the engine, render.

Exit codes: 0 done, 1 failed while working, 2 bad input (nothing touched),
3 changes pending (`plan --detailed-exitcode`).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

try:  # typer >= 0.25 vendors click; older typer uses the click package
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import NoArgsIsHelpError, UsageError

from dbrepl.cli_demo import demo as demo_command
from dbrepl.cli_sandbox import bind_if_sandboxed, hoist_sandbox_flag, sandbox_app, use_sandbox
from dbrepl.cli_sync import migrate_app, sync_app
from dbrepl.errors import BadInput, DbreplError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _OneLineUsage(TyperGroup):
    """Usage errors as one line and exit 2, like every other bad input."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        kwargs["args"], args = hoist_sandbox_flag(args[0] if args else kwargs.get("args")), args[1:]
        try:
            rv = super().main(*args, **kwargs)
        except NoArgsIsHelpError as e:
            e.show()
            sys.exit(0)
        except UsageError as e:
            where = f" (see {e.ctx.command_path} --help)" if e.ctx else ""
            err.print(f"[red]error:[/] {escape(_one_line(e.format_message()))}{where}")
            sys.exit(2)
        except typer.Abort:
            err.print("Aborted: nothing was changed.")
            sys.exit(1)
        except typer.Exit as e:
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="dbrepl", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=_OneLineUsage,
    help="Provision a dev/staging/prod Aurora MySQL estate on AWS and sync schema and data between it.",
)

SuffixOpt = Annotated[str | None, typer.Option("--suffix", "-s", envvar="DBREPL_SUFFIX",
                                               help="Estate suffix (1-20 of a-z, 0-9, '-'); also DBREPL_SUFFIX.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", envvar="DBREPL_CONFIG",
                                                help="Spec file [default: config/environments.yaml].")]
EnvOpt = Annotated[list[str] | None, typer.Option("--env", "-e", help="Only these environments ('shared' for the "
                                                  "bucket and functions); repeatable.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed without a terminal).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def handled(fn: Any) -> Any:
    """Map dbrepl errors to one line on stderr and an exit code; tracebacks only with DBREPL_DEBUG."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, UsageError):
            raise
        except DbreplError as e:
            if os.environ.get("DBREPL_DEBUG"):
                raise
            err.print(f"[red]error:[/] {escape(_one_line(str(e)))}")
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted: resources already made were left in place; run the same command again")
            raise typer.Exit(130) from None
        except Exception as e:  # a bug: say so in one line, traceback on demand
            if os.environ.get("DBREPL_DEBUG"):
                raise
            err.print(f"[red]error:[/] unexpected {type(e).__name__}: {escape(_one_line(str(e)))} "
                      "(set DBREPL_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None

    return wrapper


def _one_line(s: str) -> str:
    return " ".join(s.split())


# --------------------------------------------------------------------------- building blocks

def _load(config: Path | None, suffix: str | None, envs: list[str] | None) -> tuple[Any, str, list[str] | None]:
    from dbrepl.spec import check_suffix, load_spec

    spec = load_spec(config)
    suffix = check_suffix(suffix)
    if envs:
        known = [*spec.environments, "shared"]
        for e in envs:
            if e not in known:
                raise BadInput(f"unknown environment {e!r} in --env; choose from {', '.join(known)}")
    return spec, suffix, envs or None


def _engine(spec: Any, suffix: str, envs: list[str] | None, reporter: Any = None) -> Any:
    import dbrepl.steps  # noqa: F401  (registers the steps)
    from dbrepl.aws.session import SessionFactory
    from dbrepl.engine import Context, Engine

    sessions = SessionFactory.from_spec(spec)
    sessions.check_credentials()
    sessions.region_for(None)
    # A role that cannot be assumed is bad input, found before anything is read or changed.
    sessions.check_roles(list(spec.environments))
    ctx = Context(spec, suffix, sessions, envs=envs, reporter=reporter)
    return Engine(ctx)


def _confirm(action: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"{action} needs confirmation: pass --yes when not running on a terminal")


def _ask(question: str) -> None:
    if not typer.confirm(question, default=False):
        err.print("Nothing was changed.")
        raise typer.Exit(1)


# --------------------------------------------------------------------------- commands

@app.callback()
@handled
def _global(ctx: typer.Context, sandbox: Annotated[bool, typer.Option(
        "--sandbox", envvar="DBREPL_SANDBOX",
        help="Use the running local sandbox (dbrepl sandbox start) instead of AWS; also DBREPL_SANDBOX=1.")] = False,
) -> None:
    if sandbox and ctx.invoked_subcommand != "sandbox":
        use_sandbox()


@app.command()
@handled
def plan(suffix: SuffixOpt = None, config: ConfigOpt = None, env: EnvOpt = None, json_: JsonOpt = False,
         detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode",
                                                         help="Exit 3 when there are changes.")] = False) -> None:
    """Show what apply would change. Reads only."""
    from dbrepl.render import render_plan

    spec, suffix, envs = _load(config, suffix, env)
    p = _engine(spec, suffix, envs).plan()
    if json_:
        print(json.dumps(p.to_json(), default=str))
    else:
        render_plan(out, p)
    if detailed_exitcode and p.changes:
        raise typer.Exit(3)


@app.command()
@handled
def apply(suffix: SuffixOpt = None, config: ConfigOpt = None, env: EnvOpt = None, yes: YesOpt = False) -> None:
    """Create or repair the estate so it matches the spec."""
    from dbrepl.render import Progress, render_plan

    spec, suffix, envs = _load(config, suffix, env)
    _confirm("apply", yes)
    engine = _engine(spec, suffix, envs, reporter=Progress(err))
    p = engine.plan()
    render_plan(out, p)
    if p.changes:
        if not yes:
            _ask(f"Apply these changes to estate {suffix}?")
        done = engine.apply(p)
        s = done.summary
        out.print(f"[bold green]Apply complete:[/] {s['create']} created, {s['update']} updated, {s['delete']} deleted.")
    # Also when nothing changed: a stand-in restarted or rebuilt since gets its master user back.
    bind_if_sandboxed(spec, suffix, engine.ctx.sessions, envs)


@app.command()
@handled
def destroy(suffix: SuffixOpt = None, config: ConfigOpt = None, env: EnvOpt = None, yes: YesOpt = False) -> None:
    """Delete everything dbrepl made for this suffix (and nothing else)."""
    from dbrepl.render import Progress, render_plan

    spec, suffix, envs = _load(config, suffix, env)
    _confirm("destroy", yes)
    engine = _engine(spec, suffix, envs, reporter=Progress(err))
    p = engine.destroy_plan()
    render_plan(out, p, verb="Destroy")
    if not p.changes:
        return
    if not yes:
        _ask(f"Destroy estate {suffix}? Databases, secrets and scripts will be deleted for good.")
    done = engine.destroy(p)
    out.print(f"[bold green]Destroy complete:[/] {done.summary['delete']} deleted.")


@app.command()
@handled
def status(suffix: SuffixOpt = None, config: ConfigOpt = None, env: EnvOpt = None, json_: JsonOpt = False) -> None:
    """The seed's outputs (endpoints, bucket, function ARNs) and every resource's state. Reads only."""
    from dbrepl.render import render_status
    from dbrepl.status import estate_status

    spec, suffix, envs = _load(config, suffix, env)
    st = estate_status(_engine(spec, suffix, envs))
    if json_:
        print(json.dumps(st, default=str))
    else:
        render_status(out, st)


@app.command()
@handled
def bundle(output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the zip.")] = Path("bundle.zip")) -> None:
    """Write the deterministic Lambda bundle (handlers, dbrepl.sync, pymysql)."""
    from dbrepl.bundle import write_bundle

    path, sha, size = write_bundle(output)
    out.print(f"Wrote {path} ({size} bytes, CodeSha256 {sha})")


app.add_typer(sandbox_app, name="sandbox")
app.add_typer(sync_app, name="sync")
app.add_typer(migrate_app, name="migrate")
app.command("demo")(demo_command)



@app.command()
@handled
def init(path: Annotated[Path | None, typer.Argument(help="Where to write it [default: config/environments.yaml].",
                                                     show_default=False)] = None,
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write the default spec (with its comments) to start from; edit it, then plan."""
    from dbrepl.init import write_default_spec

    out.print(f"Wrote {write_default_spec(path, force=force)}: edit it, then run `dbrepl plan`")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
