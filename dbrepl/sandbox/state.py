"""The sandbox's files under `.dbrepl/sandbox/` of the directory it was started in (found from
any subdirectory: find_state_dir), and what they record.

    state.json              endpoints, ports, pids, what was skipped (written by start)
    aws.pid, aws.log        the moto server
    mariadb-<env>.pid       one per environment
    mariadb/<env>/          data/, server.log, the server's own pid file and tmpdir
    tls/                    the CA made at start (ca.pem) and the stand-ins' certificate and key
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dbrepl.errors import DbreplError

HOST = "127.0.0.1"
DEFAULT_PORT = 4747  # not LocalStack's 4566 (nor its legacy 4563-4599): both can run at once
FIRST_DB_PORT = 3307  # 3306 is left to a MariaDB/MySQL the machine may already run
REGION = "us-east-1"
# moto accepts any credentials; these are not secrets.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
STATE_DIR = Path(".dbrepl") / "sandbox"
INSTALL_HINT = "apt-get install mariadb-server"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class SandboxError(DbreplError):
    """The sandbox could not be started or stopped."""


@dataclass
class Proc:
    """One process the sandbox started."""

    name: str  # "aws" or "mariadb-<env>"
    pid: int
    port: int


@dataclass
class Database:
    """A MariaDB stand-in for one environment's Aurora cluster (root over TCP, no password)."""

    env: str
    host: str
    port: int
    pid: int
    datadir: str
    socket: str
    user: str = "root"
    password: str = ""


@dataclass
class State:
    root: str
    endpoint: str
    port: int
    pid: int
    region: str = REGION
    databases: dict[str, Database] = field(default_factory=dict)
    skipped: str = ""  # why no stand-ins run, with how to get them
    started_at: float = 0.0
    ca_bundle: str = ""  # the CA the stand-ins' certificate chains to (tls/ca.pem); "" without stand-ins

    def procs(self) -> list[Proc]:
        return [Proc("aws", self.pid, self.port),
                *(Proc(f"mariadb-{e}", d.pid, d.port) for e, d in self.databases.items())]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        dbs = {e: Database(**d) for e, d in (data.get("databases") or {}).items()}
        return cls(**{**data, "databases": dbs})


def state_dir(cwd: Path | None = None) -> Path:
    return ((cwd or Path.cwd()) / STATE_DIR).resolve()


def find_state_dir(cwd: Path | None = None) -> Path:
    """The sandbox of `cwd` or of the nearest directory above it with one (a `state.json`), as git
    finds its repository: `--sandbox`, `sandbox status` and `stop` work from any subdirectory, and
    `start` there finds the sandbox already running instead of starting a second one. Without
    any: `cwd`'s own (where `start` puts a new one)."""
    here = (cwd or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / STATE_DIR / "state.json").is_file():
            return d / STATE_DIR
    return here / STATE_DIR


def read_state(root: Path) -> State | None:
    try:
        return State.from_json(json.loads((root / "state.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        raise SandboxError(f"{root / 'state.json'} is unreadable ({e}); run `dbrepl sandbox stop`") from None


def write_state(root: Path, st: State) -> None:
    tmp = root / "state.json.tmp"
    tmp.write_text(json.dumps(st.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(root / "state.json")


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """One start/stop at a time per sandbox directory."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def db_dir(root: Path, env: str) -> Path:
    return root / "mariadb" / env
