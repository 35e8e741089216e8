"""`dbrepl demo`: the whole flow end to end in the local sandbox (issue 5; docs/sandbox.md).

Start the sandbox if none runs (and remember that), apply, plan (no changes), a sample
application schema and reference data in the source environment, schema sync and data sync
source -> target, a migration pushed and applied to the target, status, destroy, and stop
what the demo started unless `keep`. Every step reports one line through `say`; nothing is
shelled out: the engine, the functions' handlers and the sandbox are used through the
application layer (dbrepl.app), as the CLI uses them; nothing touches os.environ.

Without MariaDB the sandbox runs AWS only: the demo provisions and destroys and says which
steps it skipped and how to install MariaDB. No password is ever passed to `say`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbrepl import sandbox
from dbrepl.app.estate import Estate, Target, open_estate
from dbrepl.errors import DbreplError

# Sample application: a reference table (synced as data) and a table with a FK to it.
LOOKUP_ROWS = [(1, "new", "New"), (2, "paid", "Paid"), (3, "shipped", "Shipped"),
               (4, "delivered", "Delivered"), (5, "cancelled", "Cancelled")]
ORDER_ROWS = [(1, 2, "19.99"), (2, 3, "5.00"), (3, 1, "120.50")]
MIGRATION_NAME = "V1__orders_note.sql"
MIGRATION_SQL = "ALTER TABLE orders ADD COLUMN note VARCHAR(200) NULL;\n"
NO_MARIADB_ENV = "DBREPL_SANDBOX_NO_MARIADB"


@dataclass
class Line:
    """One narrated step: `status` is ok, skipped or failed."""

    step: str
    status: str
    message: str


@dataclass
class Outcome:
    lines: list[Line] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Line]:
        return [ln for ln in self.lines if ln.status == "failed"]


class StepFailed(DbreplError):
    """A demo step did not give the result it should (the message says what)."""


def _one_line(s: str) -> str:
    return " ".join(s.split())


def demo_spec(config: Path | None) -> Any:
    """The spec as given, with no waits between polls and retries (moto answers at once)."""
    from dbrepl.spec import load_spec

    spec = load_spec(config)
    return spec.model_copy(update={"timing": spec.timing.model_copy(update={"poll_delay": 0.0, "retry_delay": 0.0})})


def pick_pair(spec: Any) -> tuple[str, str]:
    envs = list(spec.environments)
    if "dev" in envs and "staging" in envs:
        return "dev", "staging"
    if len(envs) < 2:
        raise DbreplError("the demo needs a spec with at least two environments")
    return envs[0], envs[1]


def sample_names(spec: Any) -> tuple[str, str]:
    """(database, reference table) of the sample: the spec's first reference table, else app.lookup_data."""
    for t in spec.sync.reference_tables:
        db, _, table = t.partition(".")
        if not spec.sync.databases or db in spec.sync.databases:
            return db, table
    return (spec.sync.databases[0] if spec.sync.databases else "app"), "lookup_data"


class Demo:
    def __init__(self, *, config: Path | None, suffix: str, keep: bool, port: int,
                 no_databases: bool, say: Callable[[Line], None]) -> None:
        self.config, self.suffix, self.keep, self.port = config, suffix, keep, port
        self.no_databases = no_databases or os.environ.get(NO_MARIADB_ENV, "") not in ("", "0")
        self.say = say
        self.outcome = Outcome()
        self.root = sandbox.find_state_dir()
        self.started = False
        self.state: sandbox.State | None = None
        self.spec: Any = None
        self.estate: Estate | None = None  # the demo's estate in the sandbox, once it runs

    # -- narration

    def _line(self, step: str, status: str, message: str) -> None:
        line = Line(step, status, _one_line(message))
        self.outcome.lines.append(line)
        self.say(line)

    def _step(self, step: str, fn: Callable[[], str]) -> bool:
        try:
            self._line(step, "ok", fn())
            return True
        except (DbreplError, OSError) as e:
            self._line(step, "failed", str(e))
        except Exception as e:  # a bug or a library error: one line, the demo goes on to clean up
            self._line(step, "failed", f"{type(e).__name__}: {e}")
        return False

    def _skip(self, step: str, why: str) -> None:
        self.outcome.skipped.append(step)
        self._line(step, "skipped", why)

    # -- the run

    def run(self) -> Outcome:
        self.spec = demo_spec(self.config)
        self.source, self.target = pick_pair(self.spec)
        self.database, self.table = sample_names(self.spec)
        if not self._step("sandbox", self._start):
            return self.outcome
        try:
            self._flow()
        finally:
            self._stop()
        return self.outcome

    def _flow(self) -> None:
        assert self.state is not None
        self.estate = open_estate(Target(self.spec, self.suffix), sandbox=sandbox.Sandbox(self.state))
        self.estate.keep_stand_in_data = self.keep  # --keep: the sample data stays to look at
        if not self._step("apply", self._apply):
            self._step("destroy", self._destroy)
            return
        dbs = self.state.databases
        have_dbs = self.source in dbs and self.target in dbs
        if have_dbs:
            self._step("stand-ins", self._bind)
        self._step("plan", self._plan)
        db_steps = ("sample schema", "sync schema", "sync data", "check", "migration")
        if not have_dbs:
            for s in db_steps:
                self._skip(s, f"skipped: no MariaDB stand-in for {self.source} and {self.target}")
        else:
            for name, fn in zip(db_steps, (self._sample, self._sync_schema, self._sync_data, self._check,
                                           self._migrate), strict=True):
                if not self._step(name, fn):
                    for rest in db_steps[db_steps.index(name) + 1:]:
                        self._skip(rest, f"after the failed {name} step")
                    break
        self._step("status", self._status)
        self._step("destroy", self._destroy)

    # -- steps

    def _start(self) -> str:
        st = sandbox.running_state(self.root)
        if st is not None:
            self.state = st
            dbs = ", ".join(f"{e} 127.0.0.1:{d.port}" for e, d in st.databases.items()) or "none"
            return f"already running here: AWS at {st.endpoint}; MariaDB stand-ins {dbs}"
        bins = None if self.no_databases else sandbox.find_mariadb()
        envs = list(self.spec.environments)
        res = sandbox.start(self.root, port=self.port, environments=envs, mariadb=bins)
        self.state, self.started = res.state, not res.already_running
        moved = "".join(f" ({n})" for n in res.notes if n.startswith("port "))  # a busy port: which one instead
        if res.state.databases:
            where = ", ".join(f"{e} 127.0.0.1:{d.port}" for e, d in res.state.databases.items())
            return f"started: AWS at {res.state.endpoint}{moved}; MariaDB stand-ins {where}"
        why = (f"--no-databases or {NO_MARIADB_ENV}=1" if self.no_databases
               else "MariaDB's server binaries (mariadbd, mariadb-install-db) are not installed")
        return f"started: AWS only at {res.state.endpoint}{moved}, no MariaDB stand-ins ({why})"

    def _new_engine(self) -> Any:
        assert self.estate is not None
        return self.estate.engine()

    def _apply(self) -> str:
        engine = self._new_engine()
        done = engine.apply(engine.plan())
        s = done.summary
        return f"ok, estate {self.suffix}: {s['create']} created, {s['update']} updated, {s['delete']} deleted"

    def _bind(self) -> str:
        assert self.state is not None
        assert self.estate is not None
        bound, notes = self.estate.bind_stand_ins()
        if not bound:
            raise StepFailed("no stand-in was bound: " + "; ".join(notes))
        users = sorted({b.user for b in bound})
        return (f"master user {', '.join(users)} on {', '.join(b.env for b in bound)} "
                "(password from each environment's secret, not shown)")

    def _plan(self) -> str:
        p = self._new_engine().plan()
        if p.changes:
            first = ", ".join(f"{c.action} {c.type} {c.name}" for c in p.changes[:3])
            raise StepFailed(f"{len(p.changes)} change(s) after apply: {first}")
        return "no changes (the estate matches the spec)"

    def _endpoint(self, env: str) -> Any:
        """`env`'s database as the deployed function sees it, mapped to its stand-in."""
        from dbrepl.sync import aws

        assert self.state is not None
        assert self.estate is not None and self.estate.sandbox is not None
        functions = self.estate.functions
        variables = functions.function_environment("schema")
        environ = functions.handler_environment(variables)
        return aws.endpoint_for_env(env, environ, functions.client("secretsmanager"))

    def _connect(self, env: str, database: str | None = None) -> Any:
        from dbrepl.sync.connection import connect

        return connect(self._endpoint(env), database)

    def _sample(self) -> str:
        db, table = self.database, self.table
        # A fresh sample: an earlier demo in a kept sandbox may have left these databases.
        conn = self._connect(self.target)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        finally:
            conn.close()
        conn = self._connect(self.source)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
                cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
                cur.execute(f"USE `{db}`")
                cur.execute(f"CREATE TABLE `{table}` (id INT NOT NULL PRIMARY KEY, code VARCHAR(32) NOT NULL, "
                            "label VARCHAR(100) NOT NULL, UNIQUE KEY uq_code (code)) ENGINE=InnoDB")
                cur.execute("CREATE TABLE orders (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                            "status_id INT NOT NULL, amount DECIMAL(10,2) NOT NULL, "
                            "created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, KEY ix_status (status_id), "
                            f"CONSTRAINT fk_orders_status FOREIGN KEY (status_id) REFERENCES `{table}` (id)) "
                            "ENGINE=InnoDB")
                cur.executemany(f"INSERT INTO `{table}` (id, code, label) VALUES (%s, %s, %s)", LOOKUP_ROWS)
                cur.executemany("INSERT INTO orders (id, status_id, amount) VALUES (%s, %s, %s)", ORDER_ROWS)
        finally:
            conn.close()
        return (f"{self.source}: database {db}, reference table {table} ({len(LOOKUP_ROWS)} rows) and "
                f"orders ({len(ORDER_ROWS)} rows, foreign key to {table})")

    def _run(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        assert self.estate is not None
        result = self.estate.functions.run_direct(kind, event)
        if result.get("status") != "success":
            raise StepFailed(f"{result.get('status')}: {result.get('error')}")
        return result

    def _sync_schema(self) -> str:
        r = self._run("schema", {"source_env": self.source, "target_env": self.target, "dry_run": False,
                                 "allow_destructive": False})
        n = len(r.get("statements") or [])
        verified = "; the target now equals the source (verified)" if r.get("converged") else ""
        return f"synced {self.source} -> {self.target}: {n} statement(s){verified}{_tls(r)}"

    def _sync_data(self) -> str:
        r = self._run("data", {"source_env": self.source, "target_env": self.target, "dry_run": False})
        per = ", ".join(f"{t['table']} {t['inserted']} inserted, {t['updated']} updated, {t['deleted']} deleted"
                        for t in r.get("per_table") or [])
        return f"synced {self.source} -> {self.target}: rows {int(r.get('rows_synced') or 0)} ({per}){_tls(r)}"

    def _tables_and_rows(self, env: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        conn = self._connect(env, self.database)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                            "AND table_name <> 'dbrepl_schema_history' ORDER BY table_name", (self.database,))
                tables = [str(t) for (t,) in cur.fetchall()]
                cur.execute(f"SELECT * FROM `{self.table}` ORDER BY id")
                rows = [tuple(r) for r in cur.fetchall()]
        finally:
            conn.close()
        return tables, rows

    def _check(self) -> str:
        src_tables, src_rows = self._tables_and_rows(self.source)
        dst_tables, dst_rows = self._tables_and_rows(self.target)
        if dst_tables != src_tables:
            raise StepFailed(f"{self.target} has tables {dst_tables}, {self.source} {src_tables}")
        if dst_rows != src_rows:
            raise StepFailed(f"{self.target}'s {self.table} differs from {self.source}'s")
        return (f"{self.target} has {self.source}'s tables ({', '.join(dst_tables)}) and its "
                f"{len(dst_rows)} {self.table} rows")

    def _migrate(self) -> str:
        with tempfile.TemporaryDirectory(prefix="dbrepl-demo-") as tmp:
            script = Path(tmp) / MIGRATION_NAME
            script.write_text(MIGRATION_SQL, encoding="utf-8")
            assert self.estate is not None
            bucket, _ = self.estate.functions.push([script])
        r = self._run("schema", {"action": "migrate", "target_env": self.target, "dry_run": False})
        applied = int((r.get("counts") or {}).get("applied", 0))
        if applied < 1:
            raise StepFailed(f"{MIGRATION_NAME} was pushed but not applied to {self.target}")
        return f"{MIGRATION_NAME} pushed to s3://{bucket}/ and applied to {self.target} ({applied} script(s))"

    def _status(self) -> str:
        from dbrepl.status import estate_status

        st = estate_status(self._new_engine())
        s = st["summary"]
        return f"{s['ok']} resource(s) ok, {s['missing']} missing, {s['drifted']} drifted, {s['extra']} extra"

    def _destroy(self) -> str:
        # The demo made this estate and owns it, prod included: it destroys it with
        # include_protected (a final snapshot of each protected cluster is kept).
        engine = self._new_engine()
        done = engine.destroy(engine.destroy_plan(), include_protected=True)
        left = self._new_engine().destroy_plan().changes  # a fresh look: nothing of the estate is left
        if left:
            raise StepFailed(f"{len(left)} resource(s) left after destroy: "
                             + ", ".join(f"{c.type} {c.name}" for c in left[:4]))
        kept = [c.final_snapshot for c in done.changes if c.final_snapshot]
        owned = (f" (protected environments included, the demo made them; final snapshot kept: {', '.join(kept)})"
                 if kept else "")
        data = ("; the stand-ins keep the sample data (--keep)"
                if self.keep and self.state is not None and self.state.databases else "")
        return f"ok, {done.summary['delete']} deleted{owned}{data}"

    def _stop(self) -> None:
        if not self.started:
            if self.state is not None:
                self._line("sandbox", "ok", "left running (it was running before the demo)")
            return
        if self.keep:
            self._line("sandbox", "ok", "left running (--keep); stop it with `dbrepl sandbox stop`")
            return

        def stop() -> str:
            res = sandbox.stop(self.root)
            if res.failed:
                raise StepFailed(f"could not stop {', '.join(res.failed)}")
            return f"stopped ({', '.join(s.split(' (')[0] for s in res.stopped)})"

        self._step("sandbox", stop)


def _tls(result: dict[str, Any]) -> str:
    """How the run's connections were secured: `; TLS verified` or the run's warnings."""
    if result.get("warnings"):
        return "; " + "; ".join(str(w) for w in result["warnings"])
    modes = set((result.get("tls") or {}).values())
    return "; TLS verified" if modes == {"verified"} else ""
