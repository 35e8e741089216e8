"""Start, stop and look at a sandbox: moto and the MariaDB stand-ins together, idempotently."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dbrepl.errors import BadInput
from dbrepl.sandbox.mariadb import MariaDBBinaries, pick_db_ports, start_database
from dbrepl.sandbox.moto import moto_missing, start_aws
from dbrepl.sandbox.procs import cmdline, free_port, is_ours, pid_files, port_free, read_pid, terminate
from dbrepl.sandbox.state import (
    DEFAULT_PORT,
    FIRST_DB_PORT,
    HOST,
    INSTALL_HINT,
    STOP_TIMEOUT,
    SandboxError,
    State,
    locked,
    read_state,
    write_state,
)
from dbrepl.sandbox.tls import make_server_tls


@dataclass
class Started:
    state: State
    already_running: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class Stopped:
    stopped: list[str] = field(default_factory=list)  # "aws (pid 123)"
    stale: list[str] = field(default_factory=list)  # pid files whose process was gone or not ours
    failed: list[str] = field(default_factory=list)


def running_state(root: Path) -> State | None:
    """The sandbox's state when its AWS server is running, else None."""
    st = read_state(root)
    if st is None or not is_ours(root, "aws", st.pid):
        return None
    return st


def liveness(root: Path, st: State) -> dict[str, bool]:
    return {p.name: is_ours(root, p.name, p.pid) for p in st.procs()}


def trouble(root: Path, st: State, alive: dict[str, bool] | None = None) -> str | None:
    """What is wrong with a sandbox whose state file is there, and the fix, in the one wording
    `--sandbox`, `sandbox status` and `sandbox start` all use; None when every process runs."""
    alive = liveness(root, st) if alive is None else alive
    if all(alive.values()):
        return None
    where = root.parent.parent
    if not any(alive.values()):
        return (f"the sandbox in {where} is not running (its processes are gone): start it again with "
                "`dbrepl sandbox start`")
    down = ", ".join(n for n, ok in alive.items() if not ok)
    return (f"the sandbox in {where} is partly running ({down} stopped): run `dbrepl sandbox stop`, "
            "then `dbrepl sandbox start`")


def start(root: Path, *, port: int = DEFAULT_PORT, environments: Sequence[str] = (),
          mariadb: MariaDBBinaries | None = None) -> Started:
    """Start moto and, with `mariadb` given, one stand-in per environment; idempotent."""
    with locked(root):
        notes: list[str] = []
        running = _running_already(root, port, notes)
        if running is not None:
            return running
        port = _check_startable(root, port, notes)
        started: list[tuple[str, int]] = []  # (pid file name, pid) of each process started
        try:
            proc = start_aws(root, port)
            started.append(("aws", proc.pid))
            st = State(root=str(root), endpoint=f"http://{HOST}:{port}", port=port, pid=proc.pid,
                       started_at=time.time())
            if environments and mariadb is None:
                st.skipped = (f"MariaDB server binaries not found: no database stand-ins for "
                              f"{', '.join(environments)} (AWS only); install them with `{INSTALL_HINT}`, "
                              "then `dbrepl sandbox stop` and `dbrepl sandbox start`")
                notes.append(st.skipped)
            elif environments and mariadb is not None:
                _start_databases(root, st, environments, mariadb, started)
            write_state(root, st)
            return Started(st, False, notes)
        except BaseException:
            _stop_started(root, started)
            raise


def _running_already(root: Path, port: int, notes: list[str]) -> Started | None:
    """The sandbox running here, when all of it runs; an error when only part of it does."""
    st = read_state(root)
    if st is None:
        return None
    alive = liveness(root, st)
    if all(alive.values()):
        if port != st.port:
            notes.append(f"--port {port} ignored: the running sandbox uses {st.port}")
        return Started(st, True, notes)
    if any(alive.values()):
        raise SandboxError(str(trouble(root, st, alive)))
    return None


def _check_startable(root: Path, port: int, notes: list[str]) -> int:
    """Clear what a gone sandbox left; refuse without moto. The port to listen on: `port`, or
    another when it is taken."""
    stale = _clear_stale(root)
    if stale:
        notes.append(f"removed stale pid files: {', '.join(stale)}")
    why = moto_missing()
    if why:
        raise BadInput(why)
    return _choose_port(port, notes)


def _start_databases(root: Path, st: State, environments: Sequence[str], mariadb: MariaDBBinaries,
                     started: list[tuple[str, int]]) -> None:
    """One stand-in per environment, side by side, into `st`; each one started is in `started`."""
    ports = pick_db_ports(len(environments), {st.port})
    if len(ports) < len(environments):
        raise BadInput(f"no free ports from {FIRST_DB_PORT} for the database stand-ins")
    # One CA per start: the stand-ins serve TLS, the effective spec verifies against it.
    server_tls = make_server_tls(root / "tls")
    st.ca_bundle = str(server_tls.ca)
    with ThreadPoolExecutor(max_workers=len(environments)) as pool:
        futures = {e: pool.submit(start_database, root, e, mariadb, p, server_tls)
                   for e, p in zip(environments, ports, strict=True)}
        errors: list[BaseException] = []
        for e, future in futures.items():
            try:
                st.databases[e] = future.result()
            except BaseException as exc:  # noqa: BLE001 - collected, re-raised below
                errors.append(exc)
            pid = read_pid(root / f"mariadb-{e}.pid")
            if pid is not None:
                started.append((f"mariadb-{e}", pid))
        if errors:
            raise errors[0]


def _stop_started(root: Path, started: list[tuple[str, int]]) -> None:
    """Leave nothing half-started behind."""
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, pid in started:
        if is_ours(root, name, pid):
            terminate(pid, deadline)
    for f in pid_files(root):
        f.unlink(missing_ok=True)


def _choose_port(port: int, notes: list[str]) -> int:
    """`port` when free, else the next free one above it (said in `notes`): a port in use (another
    sandbox, LocalStack, ...) does not stop a start."""
    if port_free(port):
        return port
    for other in range(port + 1, min(port + 100, 65536)):
        if port_free(other):
            break
    else:
        other = free_port()
    notes.append(f"port {port} on {HOST} is in use: the sandbox's AWS listens on {other} instead")
    return other


def _clear_stale(root: Path) -> list[str]:
    """Remove pid files (and state) of processes that are gone or no longer ours."""
    stale = []
    for f in pid_files(root):
        pid = read_pid(f)
        if pid is not None and is_ours(root, f.stem, pid):
            raise SandboxError(f"{f.stem} (pid {pid}) of an earlier sandbox still runs; "
                               "run `dbrepl sandbox stop`, then `dbrepl sandbox start`")
        stale.append(f.name)
        f.unlink(missing_ok=True)
    (root / "state.json").unlink(missing_ok=True)
    return stale


def stop(root: Path) -> Stopped:
    """End what start started (by pid file, confirmed by command line); remove the stand-ins' data."""
    result = Stopped()
    if not root.is_dir():
        return result
    with locked(root):
        deadline = time.monotonic() + STOP_TIMEOUT
        # Databases first, the AWS server last.
        files = sorted(pid_files(root), key=lambda f: f.name == "aws.pid")
        for f in files:
            name = f.stem
            pid = read_pid(f)
            if pid is None:
                result.stale.append(f"{name} (unreadable pid file)")
            elif not is_ours(root, name, pid):
                gone = cmdline(pid) is None
                why = "process gone" if gone else "pid now belongs to another program, left alone"
                result.stale.append(f"{name} (pid {pid}: {why})")
            elif terminate(pid, deadline):
                result.stopped.append(f"{name} (pid {pid})")
            else:
                result.failed.append(f"{name} (pid {pid})")
                continue
            f.unlink(missing_ok=True)
        if result.failed:
            return result
        (root / "state.json").unlink(missing_ok=True)
        shutil.rmtree(root / "mariadb", ignore_errors=True)
        shutil.rmtree(root / "tls", ignore_errors=True)
        return result
