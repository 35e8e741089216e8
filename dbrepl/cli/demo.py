"""`dbrepl demo`: the whole flow in the local sandbox, each step narrated (dbrepl.app.demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dbrepl.app import sandbox
from dbrepl.app.demo import NO_MARIADB_ENV, Demo, Line
from dbrepl.cli.common import ConfigOpt, PortOpt, escape, handled, out

MARKS = {"ok": "[green]✓[/]", "skipped": "[yellow]-[/]", "failed": "[red]✗[/]"}


def _say(line: Line) -> None:
    out.print(f"{MARKS[line.status]} {escape(line.step)}: {escape(line.message)}")


@handled
def demo(
    keep: Annotated[bool, typer.Option("--keep",
                                       help="Leave the sandbox running afterwards (if the demo started it).")] = False,
    suffix: Annotated[str, typer.Option("--suffix", "-s", help="Estate suffix of the demo.")] = "demo",
    config: ConfigOpt = None,
    port: PortOpt = sandbox.DEFAULT_PORT,
    no_databases: Annotated[bool, typer.Option("--no-databases", help=f"AWS only, no MariaDB stand-ins (also "
                                               f"{NO_MARIADB_ENV}=1).")] = False,
) -> None:
    """The whole flow in the local sandbox: apply, plan, sample schema, sync schema and data, a migration,
    status, destroy. Starts the sandbox if none runs here and stops it again (unless --keep)."""
    from dbrepl.app.sync import check_suffix

    suffix = check_suffix(suffix)
    out.print(f"dbrepl demo: estate [bold]{escape(suffix)}[/] in the local sandbox ({escape(str(Path.cwd()))})")
    res = Demo(config=config, suffix=suffix, keep=keep, port=port, no_databases=no_databases, say=_say).run()
    if res.failed:
        out.print(f"[red]Demo failed:[/] {len(res.failed)} step(s) failed ({', '.join(ln.step for ln in res.failed)}).")
        raise typer.Exit(1)
    if res.skipped:
        out.print(f"[yellow]Demo done; skipped[/] {', '.join(res.skipped)}: they need MariaDB stand-ins. Install "
                  f"MariaDB's server (`{sandbox.INSTALL_HINT}`; its service need not run), stop a running sandbox "
                  "(`dbrepl sandbox stop`) and run `dbrepl demo` again.")
    else:
        out.print("[bold green]Demo complete:[/] every step succeeded.")
