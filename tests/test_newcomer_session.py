"""A newcomer's first week, scripted (issue 19, acceptance): `dbrepl init` in an empty directory
with no AWS account, the sandbox its hint starts, an edit of the spec that YAML would swallow, bad
DSNs with passwords full of URL-special characters, a local MariaDB without TLS, a migration
changed after it ran, a subdirectory, another estate where the sandbox holds one, a busy port.

Every command is a real process (tests/test_sandbox.py's `dbrepl`: no AWS settings, HOME in the
session's directory). Asserted throughout: the exit codes; that every next step a command prints
(`` `dbrepl ...` `` or `with:`/`hint:`/`run:` followed by a dbrepl command) runs as printed (run in
the directory it was printed in, `--yes` added where a command would ask on a terminal: these
processes have none) and fails neither as bad input (exit 2) nor with "no AWS region"; and that
no password (the DSNs', the stand-ins' master users') appears in any output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from dbrepl import names, sandbox
from tests.mariadb_server import start as start_mariadb
from tests.test_sandbox import Run, _kill_leftovers, _need_mariadb, dbrepl

pytestmark = pytest.mark.slow

SUFFIX = "demo"  # what init's hint names
DSN_PASSWORD = "p#s?s:w/@x%"  # every character a URL reserves that a password may hold
ENCODED = "p%23s%3Fs%3Aw%2F%40x%25"
HINT = re.compile(r"`(dbrepl [^`]+)`|(?:with|hint|run): (dbrepl [^`\n]+?)(?=\s{2,}|\s+\(|[;,]?\s*$)", re.M)
ASKS = ("apply", "destroy", "repair")  # commands that ask on a terminal: --yes here


class Session:
    """The commands run so far, their output, and the hints they printed (each run once)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.runs: list[Run] = []
        self.hints_run: list[tuple[str, Run]] = []

    def run(self, *args: str, cwd: Path | None = None, code: int | tuple[int, ...] | None = 0,
            timeout: float = 300) -> Run:
        r = dbrepl(cwd or self.cwd, *args, timeout=timeout)
        self.runs.append(r)
        if code is not None:
            codes = (code,) if isinstance(code, int) else code
            assert r.code in codes, f"{args}: exit {r.code}\n{r.stdout}\n{r.stderr}"
        return r

    def hints(self, r: Run) -> list[str]:
        text = r.stdout + "\n" + r.stderr
        return [a or b for a, b in HINT.findall(text)]

    def run_hints(self, r: Run, cwd: Path | None = None, skip: tuple[str, ...] = ()) -> list[Run]:
        """Run each hint `r` printed (once), as printed; returns their runs."""
        where = cwd or self.cwd
        done = []
        for hint in dict.fromkeys(self.hints(r)):
            if any(s in hint for s in skip):
                continue
            argv = shlex.split(hint)
            assert argv[0] == "dbrepl", hint
            if any(w in argv for w in ASKS) and "--yes" not in argv:
                argv.append("--yes")
            h = self.run(*argv[1:], cwd=where, code=None)
            assert h.code != 2, f"the hint `{hint}` (from {r.args}) failed as bad input:\n{h.stdout}\n{h.stderr}"
            assert "no AWS region" not in h.stderr, hint
            self.hints_run.append((hint, h))
            done.append(h)
        return done

    def output(self) -> str:
        return "\n".join(r.stdout + r.stderr for r in self.runs)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    _need_mariadb()
    cwd = tmp_path / "estate"
    cwd.mkdir()
    s = Session(cwd)
    try:
        yield s
    finally:
        for d in (cwd, tmp_path / "other"):
            root = sandbox.state_dir(d)
            if root.is_dir():
                sandbox.stop(root)
                _kill_leftovers(root)


def _stand_in(cwd: Path, env: str) -> pymysql.Connection:
    st = sandbox.read_state(sandbox.state_dir(cwd))
    assert st is not None
    db = st.databases[env]
    return pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password,
                           ssl={"ca": st.ca_bundle}, autocommit=True, connect_timeout=10)


def _databases(cwd: Path, env: str) -> set[str]:
    with _stand_in(cwd, env) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return {d for (d,) in cur.fetchall()} - {"information_schema", "mysql", "performance_schema", "sys"}


def _secret_passwords(cwd: Path) -> list[str]:
    import boto3

    st = sandbox.read_state(sandbox.state_dir(cwd))
    sm = boto3.client("secretsmanager", region_name=st.region, endpoint_url=st.endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    return [json.loads(sm.get_secret_value(SecretId=names.secret(e, SUFFIX))["SecretString"])["password"]
            for e in ("dev", "staging", "prod")]


def test_a_newcomers_first_week(session: Session, tmp_path: Path) -> None:
    s, cwd = session, session.cwd

    # Day 1: the default spec, and its next step with no AWS account: the sandbox, then a plan.
    init = s.run("init")
    assert "`dbrepl sandbox start`, then `dbrepl --sandbox plan --suffix demo`" in init.stdout, init.stdout
    start, plan = s.run_hints(init)
    assert start.code == 0 and "Sandbox started." in start.stdout, start.stderr
    assert plan.code == 0 and "to create" in plan.stdout, plan.stdout + plan.stderr
    st = sandbox.read_state(sandbox.state_dir(cwd))
    assert st is not None and st.port != 4566 and set(st.databases) == {"dev", "staging", "prod"}

    # An edit YAML would swallow: a key given twice is refused, both lines named, nothing else said.
    spec = cwd / "config" / "environments.yaml"
    good = spec.read_text(encoding="utf-8")
    n = good.count("\n") + 1
    spec.write_text(good + "version: 1\n", encoding="utf-8")
    dup = s.run("--sandbox", "plan", "--suffix", SUFFIX, code=2)
    assert f"key version is given twice (lines 3 and {n})" in dup.stderr, dup.stderr
    assert dup.stdout == "" and len(dup.lines) == 1
    spec.write_text(good, encoding="utf-8")

    # The estate in the sandbox.
    applied = s.run("--sandbox", "apply", "--suffix", SUFFIX, "--yes")
    assert "Apply complete" in applied.stdout and "Stand-in for dev" in applied.stdout
    s.run_hints(applied)
    passwords = _secret_passwords(cwd)

    # A subdirectory: the sandbox is found; without --sandbox one line says so, with the command.
    sub = cwd / "sql" / "drafts"
    sub.mkdir(parents=True)
    nospec = s.run("--sandbox", "status", "--suffix", SUFFIX, cwd=sub, code=2)
    assert "pass --config ../../config/environments.yaml, or run from ../.." in nospec.stderr, nospec.stderr
    spec_arg = ("--config", "../../config/environments.yaml")
    status = s.run("--sandbox", "status", "--suffix", SUFFIX, *spec_arg, cwd=sub)
    assert "ok" in status.stdout
    plain = s.run("status", "--suffix", SUFFIX, *spec_arg, cwd=sub, code=2)
    assert len(plain.lines) == 1 and f"the sandbox in {cwd} is running, but --sandbox was not given" in plain.stderr
    assert "dbrepl sandbox start" not in plain.stderr
    (again,) = s.run_hints(plain, cwd=sub)
    assert again.code == 0 and again.args[:2] == ("--sandbox", "status")
    env_switch = dbrepl(sub, "status", "--suffix", SUFFIX, *spec_arg, env={"DBREPL_SANDBOX": "1"})
    assert env_switch.code == 0, env_switch.stderr
    assert s.run("sandbox", "status", cwd=sub).stdout.startswith(f"Sandbox in {cwd}")

    # A migration: pushed, applied by its hint; then changed after it ran.
    with _stand_in(cwd, "dev") as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE app")  # sync.databases of the default spec
    script = sub / "V1__notes.sql"
    script.write_text("CREATE TABLE notes (id INT PRIMARY KEY);\n", encoding="utf-8")
    push = s.run("--sandbox", "migrate", "push", "V1__notes.sql", "--suffix", SUFFIX, *spec_arg, cwd=sub)
    assert (f"apply them with: `dbrepl --sandbox migrate apply dev --suffix {SUFFIX} --config "
            "../../config/environments.yaml`, then staging and prod") in push.stdout, push.stdout
    (apply_v1,) = s.run_hints(push, cwd=sub)
    assert apply_v1.code == 0 and "applied V1__notes.sql" in apply_v1.stdout, apply_v1.stdout + apply_v1.stderr
    script.write_text("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);\n", encoding="utf-8")
    refused = s.run("--sandbox", "migrate", "push", "V1__notes.sql", "--suffix", SUFFIX, *spec_arg, cwd=sub, code=2)
    assert "V1__notes.sql ran on dev" in refused.stderr and "nothing was uploaded" in refused.stderr
    assert f"`dbrepl --sandbox migrate repair dev --suffix {SUFFIX} --config ../../config/environments.yaml`" \
        in refused.stderr, refused.stderr
    s.run_hints(refused, cwd=sub)  # nothing changed yet: nothing to repair
    s.run("--sandbox", "migrate", "push", "V1__notes.sql", "--suffix", SUFFIX, *spec_arg, "--force", cwd=sub)
    stopped = s.run("--sandbox", "migrate", "apply", "dev", "--suffix", SUFFIX, *spec_arg, cwd=sub, code=1)
    assert f"hint: dbrepl --sandbox migrate repair dev --suffix {SUFFIX} --config ../../config/environments.yaml" \
        in stopped.stderr, stopped.stderr
    (repair,) = s.run_hints(stopped, cwd=sub)
    assert repair.code == 0 and "accepted the new content of V1__notes.sql" in repair.stdout, repair.stdout
    s.run("--sandbox", "migrate", "status", "dev", "--suffix", SUFFIX, *spec_arg, "--detailed-exitcode", cwd=sub)

    # Bad DSNs: a password with URL-special characters is never printed, encoded or not.
    mdb = start_mariadb(tls=False)  # a local server without TLS
    try:
        with mdb.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE db1")
            cur.execute("CREATE TABLE db1.t (id INT PRIMARY KEY)")
            cur.execute("CREATE USER 'newcomer'@'%%' IDENTIFIED BY %s", (DSN_PASSWORD,))
            cur.execute("GRANT ALL ON *.* TO 'newcomer'@'%'")
        base = f"127.0.0.1:{mdb.port}"
        raw = s.run("sync", "schema", f"mysql://newcomer:{DSN_PASSWORD}@{base}/db1",
                    f"mysql://newcomer:{DSN_PASSWORD}@{base}/db2", code=2)
        assert "percent-encode" in raw.stderr and len(raw.lines) == 1, raw.stderr
        wrong = s.run("sync", "schema", f"mysql://newcomer:{ENCODED}x@{base}/db1?ssl-mode=disabled",
                      f"mysql://newcomer:{ENCODED}@{base}/db2?ssl-mode=disabled", code=1)
        assert "newcomer" in wrong.stderr
        no_tls = s.run("sync", "schema", f"mysql://newcomer:{ENCODED}@{base}/db1",
                       f"mysql://newcomer:{ENCODED}@{base}/db2", code=(1, 2))
        assert "?ssl-mode=disabled" in no_tls.stderr, no_tls.stderr
        assert "?ssl-ca=" not in no_tls.stderr.split("?ssl-mode=disabled")[0], no_tls.stderr
        synced = s.run("sync", "schema", f"mysql://newcomer:{ENCODED}@{base}/db1?ssl-mode=disabled",
                       f"mysql://newcomer:{ENCODED}@{base}/db2?ssl-mode=disabled", code=(0, 3))
        s.run_hints(synced)
        with mdb.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW TABLES FROM db2")
            assert cur.fetchall() == (("t",),)
    finally:
        mdb.stop()

    # Another estate: the sandbox holds one; preflight's fix is destroying the other suffix.
    other = s.run("--sandbox", "plan", "--suffix", "second", code=2)
    assert "quota increase" not in other.stderr and "the sandbox holds one estate at a time" in other.stderr
    assert f"`dbrepl --sandbox destroy --suffix {SUFFIX} --include-protected --yes`" in other.stderr, other.stderr
    assert "app" in _databases(cwd, "dev")
    (destroyed,) = s.run_hints(other)
    assert destroyed.code == 0 and "Destroy complete" in destroyed.stdout, destroyed.stdout + destroyed.stderr
    assert _databases(cwd, "dev") == set()  # "deleted for good": the stand-in's data went with the cluster
    s.run_hints(destroyed)
    s.run("--sandbox", "plan", "--suffix", "second")

    # A busy port: a second sandbox asked for the first one's port takes the next free one, says so.
    second = tmp_path / "other"
    second.mkdir()
    busy = s.run("sandbox", "start", "--no-databases", "--port", str(st.port), cwd=second)
    moved = sandbox.read_state(sandbox.state_dir(second))
    assert moved is not None and moved.port != st.port
    assert f"port {st.port} on 127.0.0.1 is in use: the sandbox's AWS listens on {moved.port} instead" in busy.stdout
    with socket.create_connection(("127.0.0.1", moved.port), timeout=5):
        pass
    s.run("sandbox", "stop", cwd=second)

    # Half a sandbox: one wording everywhere, and its fix runs.
    os.kill(st.databases["prod"].pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while sandbox.cmdline(st.databases["prod"].pid) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    half = s.run("--sandbox", "plan", "--suffix", "second", code=2)
    said = f"the sandbox in {cwd} is partly running (mariadb-prod stopped)"
    assert said in half.stderr and len(half.lines) == 1, half.stderr
    shown = s.run("sandbox", "status")
    assert said[0].upper() + said[1:] in shown.stdout, shown.stdout
    restart = s.run("sandbox", "start", code=1)
    assert said in restart.stderr
    s.run_hints(half)  # `dbrepl sandbox stop`, then `dbrepl sandbox start`
    s.run("--sandbox", "plan", "--suffix", "second")

    # Every hint ran; nothing printed a password.
    assert len(s.hints_run) >= 8, [h for h, _ in s.hints_run]
    out = s.output()
    for secret in (DSN_PASSWORD, ENCODED, *passwords):
        assert secret not in out
