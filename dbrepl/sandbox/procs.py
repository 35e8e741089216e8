"""The sandbox's processes: started in their own session so they outlive the command that
started them; stopped only when their pid file names them *and* their command line is still
the one start gave them (/proc/<pid>/cmdline): a pid reused by another program is left alone."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from dbrepl.sandbox.state import HOST, db_dir


def _marker(root: Path, name: str) -> str:
    """A string only the command line of our own process `name` contains."""
    if name == "aws":
        return "-m dbrepl.sandbox aws "
    return f"--datadir={db_dir(root, name.removeprefix('mariadb-')) / 'data'} "


def cmdline(pid: int) -> str | None:
    """The process's command line, or None when it is gone (a zombie counts as gone)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child (start in-process)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    except PermissionError:
        return ""  # alive, but not ours to read: certainly not ours to stop


def is_ours(root: Path, name: str, pid: int) -> bool:
    """True when `pid` is alive and still the process start made for `name`."""
    cmd = cmdline(pid)
    if not cmd:
        return False
    if name == "aws":  # ... aws PORT ROOT: the root says which sandbox
        return _marker(root, name) in cmd and cmd.endswith(f" {root} ")
    return _marker(root, name) in cmd


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.pid"))


def terminate(pid: int, deadline: float) -> bool:
    """SIGTERM, wait until `deadline`, then SIGKILL; True once the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    while time.monotonic() < deadline:
        if cmdline(pid) is None:
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        if cmdline(pid) is None:
            return True
        time.sleep(0.1)
    return False


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env=env, cwd=log.parent, start_new_session=True)


def port_free(port: int, host: str = HOST) -> bool:
    """True when a server could listen on the port (as servers do, despite TIME_WAIT leftovers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, n: int = 600) -> str:
    try:
        return " ".join(path.read_text(errors="replace")[-n:].split())
    except FileNotFoundError:
        return "(no log)"
