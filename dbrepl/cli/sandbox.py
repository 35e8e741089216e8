"""`dbrepl sandbox start|stop|status` (through dbrepl.app.sandbox; the global `--sandbox` is in dbrepl.cli)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from dbrepl.app import sandbox
from dbrepl.cli.common import ConfigOpt, PortOpt, escape, handled, out

sandbox_app = typer.Typer(
    no_args_is_help=True,
    help="A local AWS (moto server) and one MariaDB server per environment: dbrepl with no AWS account.",
)


def _render(status: sandbox.Status) -> None:
    st, alive = status.state, status.alive
    assert st is not None  # callers render a sandbox that was started

    def state(name: str) -> str:
        return "running" if alive.get(name) else "[red]not running[/]"

    out.print(f"Sandbox in {escape(st.root)}")
    out.print(f"  AWS (moto)        {st.endpoint:<24} pid {st.pid:<8} {state('aws')}")
    for env, db in st.databases.items():
        addr = f"{db.host}:{db.port}"
        out.print(f"  MariaDB {env:<9} {addr:<24} pid {db.pid:<8} {state(f'mariadb-{env}')}"
                  f"  (user {db.user}, no password)")
    if st.ca_bundle:
        out.print(f"  TLS: the stand-ins require it; connections verify them against {escape(st.ca_bundle)}")
    if st.skipped:
        out.print(f"  [yellow]skipped:[/] {escape(st.skipped)}")


@sandbox_app.command()
@handled
def start(
    port: PortOpt = sandbox.DEFAULT_PORT,
    no_databases: Annotated[bool, typer.Option("--no-databases", help="AWS only: no MariaDB stand-ins.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Start the sandbox in the background (state in .dbrepl/sandbox/); does nothing if it runs."""
    res, now = sandbox.start(config, port=port, databases=not no_databases)
    if res.already_running:
        out.print("The sandbox is already running; nothing was changed.")
    else:
        out.print("Sandbox started.")
    for note in res.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    _render(now)
    out.print("Use it: dbrepl --sandbox <command> (or DBREPL_SANDBOX=1); stop it: dbrepl sandbox stop")


@sandbox_app.command()
@handled
def stop() -> None:
    """Stop what `sandbox start` started here and discard its data."""
    res = sandbox.stop()
    for s in res.stopped:
        out.print(f"Stopped {s}.")
    for s in res.stale:
        out.print(f"Removed stale pid file: {s}.")
    if res.failed:
        raise sandbox.SandboxError(f"could not stop {', '.join(res.failed)}")
    if not res.stopped:
        out.print("No sandbox was running here.")


@sandbox_app.command()
@handled
def status(json_: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False) -> None:
    """Endpoints, ports and process ids of the sandbox here. Reads only."""
    now = sandbox.status()
    if json_:
        body: dict[str, Any] = {"running": now.running, "root": str(now.root)}
        if now.state:
            body.update(now.state.to_json(), running=now.running, alive=now.alive, problem=now.problem)
        print(json.dumps(body))
        return
    if now.state is None:
        out.print("No sandbox is running here (start one: dbrepl sandbox start).")
        return
    _render(now)
    if now.problem:
        out.print(f"[yellow]{escape(now.problem[0].upper() + now.problem[1:])}[/]")
