"""The dbrepl command line: each command parses, calls the application layer (dbrepl.app), renders.

Exit codes: 0 done, 1 failed while working, 2 bad input (nothing touched; also `plan --detailed-exitcode`
when apply would refuse the plan), 3 changes pending or drift (`plan`, `sync`, `status --detailed-exitcode`).

Modules: `common` (consoles, options, the error mapping), `provision` (plan, apply, destroy,
status, bundle, permissions), `sync`, `migrate`, `sandbox`, `demo`.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from dbrepl import __version__, invocation
from dbrepl.cli.common import OneLineUsage, handled

# The command groups a command line can name first, and where each is defined.
_GROUPS = {"sandbox": ("dbrepl.cli.sandbox", "sandbox_app"), "sync": ("dbrepl.cli.sync", "sync_app"),
           "migrate": ("dbrepl.cli.migrate", "migrate_app")}


def _print_version(value: bool) -> None:
    if value:
        # dbrepl.__version__ is the one source (pyproject.toml reads it): true from a checkout too.
        print(f"dbrepl {__version__}")
        raise typer.Exit(0)


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


def _build(only: str | None = None) -> typer.Typer:
    """The command line; with `only`, just that command group under the same root (what
    main() runs when the command line names a group: the other commands' modules are not
    imported nor their options built, about 40 ms of every such run's start)."""
    import importlib

    built = typer.Typer(
        name="dbrepl", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=OneLineUsage,
        help="Provision a dev/staging/prod Aurora MySQL estate on AWS and sync schema and data between it.",
    )
    built.callback()(_global)
    if only is None:
        from dbrepl.cli import provision

        for command in provision.app.registered_commands:
            built.registered_commands.append(command)
    for name, (module, attr) in _GROUPS.items():
        if only in (None, name):
            built.add_typer(getattr(importlib.import_module(module), attr), name=name)
    if only is None:
        from dbrepl.cli.demo import demo as demo_command

        built.command("demo")(demo_command)
    return built


def __getattr__(name: str) -> Any:
    """`app`, the whole command line, built on first use (PEP 562)."""
    if name == "app":
        app = globals()["app"] = _build()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _named_group(args: list[str]) -> str | None:
    """The command group the command line names first, after the root's own flag (--sandbox)."""
    words = [a for a in args if a != "--sandbox"]
    return words[0] if words and words[0] in _GROUPS else None


def main() -> None:
    group = _named_group(sys.argv[1:])
    (_build(group) if group else __getattr__("app"))()


__all__ = ["app", "main"]
