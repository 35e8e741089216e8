"""`dbrepl sandbox start|stop|status` (library: dbrepl.sandbox; the global `--sandbox` is in dbrepl.cli)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from dbrepl import sandbox
from dbrepl.cli.common import ConfigOpt, PortOpt, handled, out

sandbox_app = typer.Typer(
    no_args_is_help=True,
    help="A local AWS (moto server) and one MariaDB server per environment: dbrepl with no AWS account.",
)


def _render(st: sandbox.State, alive: dict[str, bool]) -> None:
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
    root = sandbox.find_state_dir()
    envs: list[str] = []
    bins = None
    if not no_databases:
        from dbrepl.spec import load_spec

        envs = list(load_spec(config).environments)
        bins = sandbox.find_mariadb()
    res = sandbox.start(root, port=port, environments=envs, mariadb=bins)
    if res.already_running:
        out.print("The sandbox is already running; nothing was changed.")
    else:
        out.print("Sandbox started.")
    for note in res.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    _render(res.state, sandbox.liveness(root, res.state))
    out.print("Use it: dbrepl --sandbox <command> (or DBREPL_SANDBOX=1); stop it: dbrepl sandbox stop")


@sandbox_app.command()
@handled
def stop() -> None:
    """Stop what `sandbox start` started here and discard its data."""
    res = sandbox.stop(sandbox.find_state_dir())
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
    root = sandbox.find_state_dir()
    st = sandbox.read_state(root)
    alive = sandbox.liveness(root, st) if st else {}
    running = bool(alive.get("aws"))
    if json_:
        body: dict[str, Any] = {"running": running, "root": str(root)}
        if st:
            body.update(st.to_json(), running=running, alive=alive, problem=sandbox.trouble(root, st, alive))
        print(json.dumps(body))
        return
    if st is None:
        out.print("No sandbox is running here (start one: dbrepl sandbox start).")
        return
    _render(st, alive)
    problem = sandbox.trouble(root, st, alive)
    if problem:
        out.print(f"[yellow]{escape(problem[0].upper() + problem[1:])}[/]")
