"""The local sandbox: a moto server standing in for AWS and one MariaDB server per environment
standing in for its Aurora cluster (docs/sandbox.md).

Split by what it runs: `state` (the files under `.dbrepl/sandbox/`), `procs` (starting and
stopping processes safely), `moto` (the AWS server), `mariadb` (the stand-ins), `control`
(start/stop/look), `binding` (the stand-ins as the clusters), `snapshots` (the stand-ins' data
following their clusters through deletes, final snapshots and restores).

A running sandbox is a `Sandbox` object handed to whatever talks to AWS or to the databases:
it yields the session factory (every call to its endpoint, with fake credentials, no
profile or config file of the user's) and the database targets of a function's variables.
Nothing rewrites the process's environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dbrepl.errors import BadInput
from dbrepl.sandbox.state import (
    DEFAULT_PORT,
    FAKE_CREDENTIALS,
    HOST,
    INSTALL_HINT,
    Database,
    SandboxError,
    State,
    find_state_dir,
    read_state,
    state_dir,
)

if TYPE_CHECKING:
    from dbrepl.sandbox.binding import Bound, bind_stand_ins, stand_in_environment
    from dbrepl.sandbox.control import Started, Stopped, liveness, running_state, start, stop, trouble
    from dbrepl.sandbox.mariadb import MariaDBBinaries, find_mariadb, init_datadir, server_argv, wait_for_mariadb
    from dbrepl.sandbox.moto import moto_missing, serve_aws
    from dbrepl.sandbox.procs import cmdline, free_port, is_ours, port_free, read_pid

# The modules that start and stop processes are loaded on first use of one of their names
# (PEP 562): every CLI command imports this package for its constants, and a DSN sync never
# starts a sandbox (subprocess, urllib.request, concurrent.futures: tens of milliseconds).
_LAZY = {
    "binding": ("Bound", "bind_stand_ins", "stand_in_environment"),
    "control": ("Started", "Stopped", "liveness", "running_state", "start", "stop", "trouble"),
    "mariadb": ("MariaDBBinaries", "find_mariadb", "init_datadir", "server_argv", "wait_for_mariadb"),
    "moto": ("moto_missing", "serve_aws"),
    "procs": ("cmdline", "free_port", "is_ours", "port_free", "read_pid"),
}


def __getattr__(name: str) -> Any:
    # Plain import statements (not importlib with a string), so tests/test_architecture.py sees the edges.
    module: ModuleType
    if name in _LAZY["binding"]:
        from dbrepl.sandbox import binding as module
    elif name in _LAZY["control"]:
        from dbrepl.sandbox import control as module
    elif name in _LAZY["mariadb"]:
        from dbrepl.sandbox import mariadb as module
    elif name in _LAZY["moto"]:
        from dbrepl.sandbox import moto as module
    elif name in _LAZY["procs"]:
        from dbrepl.sandbox import procs as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox, passed down to what talks to AWS and to the databases."""

    state: State

    @classmethod
    def running(cls, cwd: Path | None = None) -> Sandbox | None:
        """The sandbox running in `cwd` (default: the working directory) or the nearest directory
        above it that has one, or None."""
        from dbrepl.sandbox.control import running_state

        st = running_state(find_state_dir(cwd))
        return cls(st) if st is not None else None

    @classmethod
    def require(cls, cwd: Path | None = None) -> Sandbox:
        """The sandbox `--sandbox` asked for, every process of it running; else bad input saying
        what is wrong and the fix (the wording `sandbox status` and `sandbox start` use)."""
        from dbrepl.sandbox.control import trouble

        root = find_state_dir(cwd)
        st = read_state(root)
        if st is None:
            where = cwd or Path.cwd()
            raise BadInput(f"--sandbox: no sandbox is running in {where} or a directory above it; start one with "
                           "`dbrepl sandbox start`")
        problem = trouble(root, st)
        if problem:
            raise BadInput(f"--sandbox: {problem}")
        return cls(st)

    @property
    def endpoint(self) -> str:
        return self.state.endpoint

    @property
    def region(self) -> str:
        return self.state.region

    def session_factory(self, spec: Any) -> Any:
        """Clients for `spec`'s environments, every call to the sandbox's AWS."""
        from dbrepl.aws.session import SessionFactory

        credentials = (FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        return SessionFactory.from_spec(spec, endpoint_url=self.endpoint, credentials=credentials,
                                        default_region=self.region)

    def effective_spec(self, spec: Any) -> Any:
        """`spec` as the sandbox runs it: with stand-ins, `databases.tls.ca_bundle` is the CA the
        sandbox made at start (the stand-ins' certificate chains to it; a user's own bundle,
        the RDS one, could not verify them), so every connection is verified."""
        if not self.state.ca_bundle:
            return spec
        tls = spec.databases.tls.model_copy(update={"ca_bundle": Path(self.state.ca_bundle), "verify": True})
        return spec.model_copy(update={"databases": spec.databases.model_copy(update={"tls": tls})})

    def database_environment(self, variables: Mapping[str, str]) -> dict[str, str]:
        """A function's endpoint variables mapped to the stand-ins (see binding)."""
        from dbrepl.sandbox.binding import stand_in_environment

        return stand_in_environment(self.state, variables)

    def follow_clusters(self, reporter: Any, sessions: Any = None, keep_data: bool = False) -> Any:
        """An engine reporter under which each stand-in follows its cluster: emptied when it is
        deleted (unless another suffix's cluster of that environment still stands on it: read
        through `sessions`), kept in a dump with its final snapshot, loaded again when restored."""
        from dbrepl.sandbox.snapshots import follow

        def others(env: str, cluster: str) -> list[str]:
            rds = sessions.client("rds", env)
            found = []
            for page in rds.get_paginator("describe_db_clusters").paginate():
                for c in page["DBClusters"]:
                    tags = {t["Key"]: t["Value"] for t in c.get("TagList") or []}
                    if c["DBClusterIdentifier"] != cluster and tags.get("dbrepl:env") == env:
                        found.append(c["DBClusterIdentifier"])
            return found

        return follow(self.state, reporter or (lambda event, data: None), others if sessions is not None else None,
                      keep_data)

    def bind_stand_ins(self, spec: Any, suffix: str, sessions: Any,
                       envs: Sequence[str] | None = None) -> tuple[list[Bound], list[str]]:
        from dbrepl.sandbox.binding import bind_stand_ins

        return bind_stand_ins(self.state, spec, suffix, sessions, envs)


__all__ = [
    "DEFAULT_PORT", "FAKE_CREDENTIALS", "HOST", "INSTALL_HINT", "Bound", "Database", "MariaDBBinaries", "Sandbox",
    "SandboxError", "Started", "State", "Stopped", "bind_stand_ins", "cmdline", "find_mariadb", "find_state_dir",
    "free_port",
    "init_datadir", "is_ours", "liveness", "moto_missing", "port_free", "read_pid", "read_state", "running_state",
    "serve_aws", "server_argv", "stand_in_environment", "start", "state_dir", "stop", "trouble", "wait_for_mariadb",
]
