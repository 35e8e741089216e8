"""The dbrepl command line: each command parses, calls the application layer (dbrepl.app), renders.

Exit codes: 0 done, 1 failed while working, 2 bad input (nothing touched; also `plan --detailed-exitcode`
when apply would refuse the plan), 3 changes pending or drift (`plan`, `sync`, `status --detailed-exitcode`).

Modules: `common` (consoles, options, the error mapping), `provision` (plan, apply, destroy,
status, bundle, permissions), `sync`, `migrate`, `sandbox`, `demo`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dbrepl import __version__, invocation
from dbrepl.cli import provision
from dbrepl.cli.common import OneLineUsage, handled
from dbrepl.cli.demo import demo as demo_command
from dbrepl.cli.migrate import migrate_app
from dbrepl.cli.sandbox import sandbox_app
from dbrepl.cli.sync import sync_app

app = typer.Typer(
    name="dbrepl", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=OneLineUsage,
    help="Provision a dev/staging/prod Aurora MySQL estate on AWS and sync schema and data between it.",
)


def _print_version(value: bool) -> None:
    if value:
        # dbrepl.__version__ is the one source (pyproject.toml reads it): true from a checkout too.
        print(f"dbrepl {__version__}")
        raise typer.Exit(0)


@app.callback()
@handled
def _global(ctx: typer.Context, sandbox: Annotated[bool, typer.Option(
        "--sandbox", envvar="DBREPL_SANDBOX",
        help="Use the running local sandbox (dbrepl sandbox start) instead of AWS; also DBREPL_SANDBOX=1.")] = False,
        version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                              help="Print dbrepl's version and exit.")] = False,
) -> None:
    """The sandbox, when asked for, is found once here and handed to every command (ctx.obj)."""
    if sandbox and ctx.invoked_subcommand != "sandbox":
        from dbrepl.app.sandbox import require

        ctx.obj = require()
        invocation.record(sandbox=True)


for command in provision.app.registered_commands:
    app.registered_commands.append(command)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(sync_app, name="sync")
app.add_typer(migrate_app, name="migrate")
app.command("demo")(demo_command)


def main() -> None:
    app()


__all__ = ["app", "main"]
