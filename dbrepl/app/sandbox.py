"""`dbrepl sandbox start|stop|status` and the global `--sandbox`: what the CLI asks of the local
sandbox (dbrepl.sandbox), in `.dbrepl/sandbox/` of the current directory or the nearest one above
it that has one (as git finds its repository).

Only the constants and the state files load with this module; starting and stopping processes
(dbrepl.sandbox.control) loads on first use, as dbrepl.sandbox itself arranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbrepl import sandbox
from dbrepl.sandbox import DEFAULT_PORT, HOST, INSTALL_HINT, Sandbox, SandboxError, State

if TYPE_CHECKING:
    from dbrepl.sandbox import Bound, Started, Stopped

__all__ = ["DEFAULT_PORT", "Bound", "HOST", "INSTALL_HINT", "Sandbox", "SandboxError", "State", "Status", "require",
           "start", "status", "stop"]


@dataclass(frozen=True)
class Status:
    """The sandbox here as its state files and processes show it (state None: none started)."""

    root: Path
    state: State | None
    alive: dict[str, bool]
    problem: str | None = None  # what is wrong with a partly running sandbox, and the fix

    @property
    def running(self) -> bool:
        return bool(self.alive.get("aws"))


def require() -> Sandbox:
    """The sandbox running here, or BadInput saying how to start one."""
    return Sandbox.require()


def start(config: Path | None, *, port: int = DEFAULT_PORT, databases: bool = True) -> tuple[Started, Status]:
    """Start the sandbox here (one MariaDB stand-in per environment of the spec unless not
    `databases`); does nothing if it runs. The result and the sandbox as it now is."""
    root = sandbox.find_state_dir()
    envs: list[str] = []
    bins = None
    if databases:
        from dbrepl.spec import load_spec

        envs = list(load_spec(config).environments)
        bins = sandbox.find_mariadb()
    res = sandbox.start(root, port=port, environments=envs, mariadb=bins)
    alive = sandbox.liveness(root, res.state)
    return res, Status(root, res.state, alive, sandbox.trouble(root, res.state, alive))


def stop() -> Stopped:
    """Stop what `start` started here and discard its data."""
    return sandbox.stop(sandbox.find_state_dir())


def status() -> Status:
    """Reads only."""
    root = sandbox.find_state_dir()
    st = sandbox.read_state(root)
    alive = sandbox.liveness(root, st) if st else {}
    return Status(root, st, alive, sandbox.trouble(root, st, alive) if st else None)
