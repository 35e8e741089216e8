"""The stand-ins as the clusters: each gets its cluster's master user, and a function's
`<ENV>_ENDPOINT` variables point at the stand-in of that environment."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dbrepl.sandbox.state import SandboxError, State
from dbrepl.sync import contract


def stand_in_environment(st: State, variables: Mapping[str, str]) -> dict[str, str]:
    """`<ENV>_ENDPOINT` / `<ENV>_PORT` of a function's variables mapped to the stand-ins."""
    out: dict[str, str] = {}
    for env, db in st.databases.items():
        endpoint, port = contract.endpoint_variables(env)
        if endpoint in variables:
            out[endpoint] = db.host
            out[port] = str(db.port)
    return out


@dataclass
class Bound:
    env: str
    user: str
    port: int


def bind_stand_ins(st: State, spec: Any, suffix: str, sessions: Any,
                   envs: Sequence[str] | None = None) -> tuple[list[Bound], list[str]]:
    """Give each stand-in its cluster's master user (name and password from the environment's
    secret) with all privileges; returns what was bound and notes on what was not.

    The password goes from Secrets Manager to MariaDB only: it is never printed or stored.
    """
    import pymysql

    from dbrepl import names
    from dbrepl.sync.connection import Endpoint, Tls, connect
    from dbrepl.sync.errors import SyncError

    bound: list[Bound] = []
    notes: list[str] = []
    for env in envs or list(spec.environments):
        db = st.databases.get(env)
        if db is None:
            notes.append(f"{env}: no MariaDB stand-in runs ({st.skipped or 'not started for it'})")
            continue
        sm = sessions.client("secretsmanager", env)
        try:
            value = sm.get_secret_value(SecretId=names.secret(env, suffix))["SecretString"]
        except sm.exceptions.ResourceNotFoundException:
            notes.append(f"{env}: no secret {names.secret(env, suffix)} yet (apply it first)")
            continue
        try:
            secret = json.loads(value)
            user, password = str(secret["username"]), str(secret["password"])
        except (ValueError, KeyError, TypeError):
            raise SandboxError(f"{env}: the secret is not a {{username, password}} JSON") from None
        if user == db.user:
            raise SandboxError(f"{env}: master user {user!r} is the stand-in's own administrator; "
                               "choose another aurora.master_username")
        try:
            conn = connect(Endpoint(db.host, db.port, db.user, db.password, tls=Tls(ca_bundle=st.ca_bundle or None)))
        except SyncError as e:  # names the stand-in and why (a TLS failure among them), never a password
            raise SandboxError(f"{env}: cannot reach its stand-in: {e}") from None
        try:
            with conn.cursor() as cur:
                for host in ("%", "localhost", "127.0.0.1"):
                    cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password))
                    cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
                    cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (user, host))
        except pymysql.MySQLError as e:
            # The statements hold the password: say only which step failed and the server's code.
            code = e.args[0] if e.args else "?"
            raise SandboxError(f"{env}: could not create the master user {user!r} on the stand-in "
                               f"(MariaDB error {code})") from None
        finally:
            conn.close()
        bound.append(Bound(env, user, db.port))
    return bound, notes
