"""The stand-in's data follows its cluster: gone with it, kept by a final snapshot, back with a
restore (issue 18, point 1; issue 19, item 10).

- A cluster deleted with a final snapshot: the stand-in's application databases (every database
  but MariaDB's own) are dumped to `snapshots/<snapshot id>.sql` under the sandbox's directory
  (mariadb-dump: tables, rows, views, triggers, routines, events).
- A cluster restored from a snapshot (`aurora.restore_from_snapshot`): the stand-in's application
  databases are dropped and the snapshot's dump loaded, so the stand-in holds what the cluster
  held when the snapshot was taken, nothing written since. A snapshot this sandbox did not take
  (no dump) is said plainly (a warning) and the stand-in is left as it is.

- A cluster deleted (with a final snapshot or without): the stand-in's application databases are
  dropped, as the cluster's data is gone on AWS, unless another suffix's cluster of the same
  environment still stands on the stand-in (one stand-in serves an environment for every
  suffix): then they are kept and a warning says which cluster keeps them.

Users (the master user among them) are not part of a dump: apply binds the stand-in to the
environment's secret afterwards, as it does for a new cluster.

The engine reports each finished change; `follow` wraps that reporter so these happen right when
the sandbox's AWS deleted or restored the cluster, a failure stopping the run like a failed call.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbrepl.sandbox.state import Database, SandboxError, State

CLUSTER = "AWS::RDS::DBCluster"
SYSTEM_DATABASES = ("information_schema", "mysql", "performance_schema", "sys")
TIMEOUT = 600.0


def snapshot_id(snapshot: str) -> str:
    """The identifier of a snapshot named by identifier or ARN."""
    return snapshot.rsplit(":cluster-snapshot:", 1)[-1]


def dump_path(st: State, snapshot: str) -> Path:
    return Path(st.root) / "snapshots" / f"{snapshot_id(snapshot)}.sql"


def follow(st: State, report: Callable[[str, dict[str, Any]], None],
           others: Callable[[str, str], list[str]] | None = None,
           keep_data: bool = False) -> Callable[[str, dict[str, Any]], None]:
    """`report`, after the stand-in of a cluster just deleted or restored has followed it.
    `others(env, cluster)`: the clusters of `env` other than `cluster` still in the sandbox's AWS
    (another suffix's), whose data the stand-in also holds. `keep_data`: a deleted cluster's
    stand-in keeps its databases (`dbrepl demo --keep`, whose sample data stays to look at)."""

    def _follow_delete(c: Any, db: Database) -> None:
        if c.final_snapshot:
            save(st, db, c.final_snapshot)
        if keep_data:
            return
        standing = others(c.env, c.name) if others is not None else []
        if standing:
            report("warning", {"what": f"stand-in for {c.env}",
                               "message": f"its databases were kept: {', '.join(standing)} still stands on it"})
        else:  # the cluster's data goes with it, as on AWS
            empty(db)

    def reporter(event: str, data: dict[str, Any]) -> None:
        c = data.get("change")
        db = st.databases.get(c.env) if event == "done" and c is not None and c.type == CLUSTER else None
        if c is not None and db is not None:
            if c.action == "delete":
                _follow_delete(c, db)
            restored = (c.diff.get("RestoreFromSnapshot") or (None, None))[1]
            if restored and c.action == "create" and not restore(st, db, restored):
                report("warning", {"what": f"stand-in for {c.env}",
                                   "message": f"this sandbox holds no data of snapshot {snapshot_id(restored)} (it "
                                              "did not take it): the stand-in was left as it is"})
        report(event, data)

    return reporter


def _client(name: str) -> str:
    found = shutil.which(name) or shutil.which(name.replace("mariadb", "mysql"))
    if not found:
        raise SandboxError(f"{name} is not installed (apt-get install mariadb-client): the sandbox cannot keep "
                           "the stand-in's data with the snapshot")
    return found


def _run(argv: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    kw.setdefault("stdout", subprocess.PIPE)
    p = subprocess.run(argv, stderr=subprocess.PIPE, timeout=TIMEOUT, check=False, **kw)
    if p.returncode != 0:
        raise SandboxError(f"{what} failed: {p.stderr.decode(errors='replace').strip()[:300]}")
    return p


def _connection(db: Database) -> list[str]:
    # The stand-in's own administrator over its socket (root, no password: see state.Database).
    return [f"--socket={db.socket}", f"--user={db.user}"]


def application_databases(db: Database) -> list[str]:
    out = _run([_client("mariadb"), *_connection(db), "--batch", "--skip-column-names", "-e", "SHOW DATABASES"],
               f"listing the databases of the stand-in for {db.env}").stdout.decode()
    return [d for d in out.split() if d not in SYSTEM_DATABASES]


def save(st: State, db: Database, snapshot: str) -> Path:
    """Dump the stand-in's application databases as `snapshot`'s data."""
    path = dump_path(st, snapshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = application_databases(db)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        if names:
            _run([_client("mariadb-dump"), *_connection(db), "--single-transaction", "--routines", "--triggers",
                  "--events", "--databases", *names], f"dumping the stand-in for {db.env} as snapshot {snapshot}",
                 stdout=fh)
    tmp.replace(path)
    return path


def empty(db: Database) -> None:
    """Drop the stand-in's application databases: the cluster they stood for is gone."""
    names = application_databases(db)
    if names:
        drops = "".join(f"DROP DATABASE `{n.replace('`', '``')}`;" for n in names)
        _run([_client("mariadb"), *_connection(db), "-e", drops], f"emptying the stand-in for {db.env}")


def restore(st: State, db: Database, snapshot: str) -> bool:
    """The stand-in's application databases replaced by `snapshot`'s dump; False when this sandbox
    has none (nothing changed)."""
    path = dump_path(st, snapshot)
    if not path.is_file():
        return False
    empty(db)
    with path.open("rb") as fh:
        _run([_client("mariadb"), *_connection(db)], f"loading snapshot {snapshot} into the stand-in for {db.env}",
             stdin=fh)
    return True
