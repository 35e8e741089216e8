"""`dbrepl sandbox start|stop|status` and the global `--sandbox` switch (library: dbrepl.sandbox)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from dbrepl import sandbox
from dbrepl.errors import BadInput

out = Console(highlight=False, soft_wrap=True)

sandbox_app = typer.Typer(
    no_args_is_help=True,
    help="A local AWS (moto server) and one MariaDB server per environment: dbrepl with no AWS account.",
)


def _handled(fn: Any) -> Any:
    """The CLI's own error mapping, looked up at call time (dbrepl.cli imports this module)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from dbrepl.cli import handled

        return handled(fn)(*args, **kwargs)

    return wrapper


def use_sandbox() -> sandbox.State:
    """Point this process's AWS calls at the running sandbox (fake credentials, its region)."""
    root = sandbox.state_dir()
    st = sandbox.running_state(root)
    if st is None:
        raise BadInput(f"--sandbox: no sandbox is running in {Path.cwd()}; start one with `dbrepl sandbox start`")
    sandbox.point_at_sandbox(os.environ, st)
    return st


def bind_if_sandboxed(spec: Any, suffix: str, sessions: Any, envs: Sequence[str] | None = None) -> None:
    """After apply in the sandbox: each stand-in gets its cluster's master user (never printed)."""
    st = sandbox.active_state()
    if st is None:
        return
    wanted = [e for e in (envs or spec.environments) if e in spec.environments]
    bound, notes = sandbox.bind_stand_ins(st, spec, suffix, sessions, wanted)
    for b in bound:
        out.print(f"Stand-in for {b.env} ({sandbox.HOST}:{b.port}): master user {escape(b.user)} "
                  "with the password of its secret.")
    for note in notes:
        out.print(f"[yellow]note:[/] {escape(note)}")


def _render(st: sandbox.State, alive: dict[str, bool]) -> None:
    def state(name: str) -> str:
        return "running" if alive.get(name) else "[red]not running[/]"

    out.print(f"Sandbox in {escape(st.root)}")
    out.print(f"  AWS (moto)        {st.endpoint:<24} pid {st.pid:<8} {state('aws')}")
    for env, db in st.databases.items():
        addr = f"{db.host}:{db.port}"
        out.print(f"  MariaDB {env:<9} {addr:<24} pid {db.pid:<8} {state(f'mariadb-{env}')}"
                  f"  (user {db.user}, no password)")
    if st.skipped:
        out.print(f"  [yellow]skipped:[/] {escape(st.skipped)}")


@sandbox_app.command()
@_handled
def start(
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535,
                                      help="Port of the AWS endpoint on 127.0.0.1.")] = sandbox.DEFAULT_PORT,
    no_databases: Annotated[bool, typer.Option("--no-databases", help="AWS only: no MariaDB stand-ins.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", envvar="DBREPL_CONFIG",
                                                help="Spec whose environments get a stand-in "
                                                     "[default: config/environments.yaml].")] = None,
) -> None:
    """Start the sandbox in the background (state in .dbrepl/sandbox/); does nothing if it runs."""
    root = sandbox.state_dir()
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
@_handled
def stop() -> None:
    """Stop what `sandbox start` started here and discard its data."""
    res = sandbox.stop(sandbox.state_dir())
    for s in res.stopped:
        out.print(f"Stopped {s}.")
    for s in res.stale:
        out.print(f"Removed stale pid file: {s}.")
    if res.failed:
        raise sandbox.SandboxError(f"could not stop {', '.join(res.failed)}")
    if not res.stopped:
        out.print("No sandbox was running here.")


@sandbox_app.command()
@_handled
def status(json_: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False) -> None:
    """Endpoints, ports and process ids of the sandbox here. Reads only."""
    root = sandbox.state_dir()
    st = sandbox.read_state(root)
    alive = sandbox.liveness(root, st) if st else {}
    running = bool(alive.get("aws"))
    if json_:
        body: dict[str, Any] = {"running": running, "root": str(root)}
        if st:
            body.update(st.to_json(), running=running, alive=alive)
        print(json.dumps(body))
        return
    if st is None:
        out.print("No sandbox is running here (start one: dbrepl sandbox start).")
        return
    _render(st, alive)
    if not all(alive.values()):
        out.print("[yellow]Some processes are gone:[/] run `dbrepl sandbox stop`, then `dbrepl sandbox start`.")


def hoist_sandbox_flag(args: Sequence[str] | None) -> list[str]:
    """Move `--sandbox` to the front, so it works after a command too (`dbrepl plan --sandbox`)."""
    args = list(sys.argv[1:] if args is None else args)
    end = args.index("--") if "--" in args else len(args)
    if "--sandbox" not in args[:end]:
        return args
    return ["--sandbox", *(a for i, a in enumerate(args) if not (i < end and a == "--sandbox"))]
