"""AWS adapter of the sync library: the only module of dbrepl.sync that imports boto3.

The deployed functions learn where each environment's database is from their environment
variables (`<ENV>_SECRET_ARN`, `<ENV>_ENDPOINT`, optional `<ENV>_PORT`) and its credentials
from the `{"username", "password"}` secret; every run leaves a record in SSM. The names and
paths are dbrepl.sync.contract's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from dbrepl.sync import contract
from dbrepl.sync.connection import DEFAULT_PORT, Endpoint, Tls
from dbrepl.sync.errors import InvalidInput, SyncError
from dbrepl.sync.ident import check_plain_name

_ENV_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
KINDS = contract.RECORD_KINDS
# Standard-tier SSM parameters hold 4 KB; the record must always fit, even with a long error.
SSM_VALUE_LIMIT = 4096
ERROR_LIMIT = 1000


class AwsError(SyncError):
    """An AWS call failed ("Failed to <what>")."""


def client(service: str) -> Any:
    """A boto3 client for `service` (region and endpoint from the environment)."""
    # boto3 is imported where a client is made: a DSN run of the CLI imports this module
    # (through dbrepl.sync.data.event) and never calls AWS.
    import boto3
    from botocore.config import Config

    # botocore's standard mode already retries throttling; more attempts, bounded timeouts so a
    # function without a route to the service fails inside its 300 s instead of hanging.
    config = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=30)
    try:
        return boto3.client(service, config=config)
    except Exception as exc:  # e.g. NoRegionError: one message kind for the caller
        raise AwsError(f"Failed to create the {service} client: {exc}") from exc


def check_env(env: object) -> str:
    """Return a lower-case environment name, or raise InvalidInput."""
    if not isinstance(env, str) or not _ENV_NAME.match(env.lower()):
        raise InvalidInput(f"invalid environment name {env!r}")
    return env.lower()


def known_envs(environ: Mapping[str, str] | None = None) -> list[str]:
    """Environments this function can reach: those with both a secret ARN and an endpoint."""
    environ = os.environ if environ is None else environ
    envs = []
    for key in environ:
        name = contract.env_of_secret_variable(key)
        if name is not None and contract.endpoint_variable(name) in environ and _ENV_NAME.match(name):
            envs.append(name)
    return sorted(envs)


def endpoint_for_env(
    env: str,
    environ: Mapping[str, str] | None = None,
    secrets_client: Any = None,
) -> Endpoint:
    """Endpoint and credentials of environment `env` as the deployed function sees them."""
    environ = os.environ if environ is None else environ
    name = check_env(env)
    arn = environ.get(contract.secret_arn_variable(name))
    host = environ.get(contract.endpoint_variable(name))
    if not arn or not host:
        valid = ", ".join(known_envs(environ)) or "none configured"
        raise InvalidInput(f"unknown environment {env!r} (known: {valid})")
    port_text = environ.get(contract.port_variable(name), "")
    host, port = _split_host(host, port_text)
    if secrets_client is None:
        import boto3

        secrets_client = boto3.client("secretsmanager")
    try:
        value = secrets_client.get_secret_value(SecretId=arn)["SecretString"]
    except Exception as exc:  # botocore raises many kinds; all mean the same to the caller
        raise AwsError(f"Failed to read the {name} database secret: {_short(exc)}") from exc
    try:
        secret = json.loads(value)
        user, password = secret["username"], secret["password"]
    except (ValueError, KeyError, TypeError):
        # Never echo the secret's content.
        raise AwsError(f"Failed to read the {name} database secret: not a {{username, password}} JSON") from None
    return Endpoint(host=host, port=port, user=str(user), password=str(password), tls=function_tls(environ))


# What a function's result says when it cannot verify a cluster.
FUNCTION_TLS_FIX = "set databases.tls.ca_bundle in the spec and run dbrepl apply"


def function_tls(environ: Mapping[str, str] | None = None) -> Tls:
    """TLS of the function's connections: verified against the CA bundle it carries
    (contract.TLS_CA_FILE under LAMBDA_TASK_ROOT), or the file named by TLS_CA_BUNDLE when its
    code runs outside Lambda; encrypted but unverified without either."""
    environ = os.environ if environ is None else environ
    if contract.TLS_CA_BUNDLE in environ:
        path = environ[contract.TLS_CA_BUNDLE] or None
        if path is not None and not os.path.isfile(path):
            raise InvalidInput(f"the CA bundle {path} ({contract.TLS_CA_BUNDLE}) does not exist")
        return Tls(ca_bundle=path)
    root = environ.get(contract.LAMBDA_TASK_ROOT)
    if root:
        path = os.path.join(root, contract.TLS_CA_FILE)
        if os.path.isfile(path):
            return Tls(ca_bundle=path)
    return Tls()


def connect_env(env: str, environ: Mapping[str, str], secrets_client: Any, result: dict[str, Any],
                connector: Callable[[Endpoint], Any]) -> Any:
    """`connector(endpoint_for_env(env))` (dbrepl.sync.connection.connect), then the connection's
    TLS warning in the result's `warnings`: after the handshake, never before a connection failure."""
    from dbrepl.sync.connection import handshake_warning

    endpoint = endpoint_for_env(env, environ, secrets_client)
    conn = connector(endpoint)
    warning = handshake_warning(env, endpoint, conn, FUNCTION_TLS_FIX)
    if warning and warning not in result.get("warnings", []):
        result.setdefault("warnings", []).append(warning)
    return conn


def tls_warnings(environ: Mapping[str, str], envs: list[str]) -> tuple[dict[str, str], list[str]]:
    """({env: verified|unverified}, the warning lines) for a run that connects to `envs`."""
    tls = function_tls(environ)
    modes = {env: tls.mode for env in envs}
    lines = [w for env in dict.fromkeys(envs) if (w := tls.warning(env, FUNCTION_TLS_FIX))]
    return modes, lines


def _split_host(host: str, port_text: str) -> tuple[str, int]:
    """Accept `host`, `host:port` or `mysql://host:port` (the seed's SSM connection string)."""
    host = host.strip()
    if host.startswith("mysql://"):
        host = host[len("mysql://"):].rstrip("/")
    port = DEFAULT_PORT
    if ":" in host:
        host, _, inline = host.rpartition(":")
        port_text = port_text or inline
    if port_text:
        try:
            port = int(port_text)
        except ValueError:
            raise InvalidInput(f"invalid port {port_text!r}") from None
    return host, port


def sync_databases(environ: Mapping[str, str] | None = None) -> list[str]:
    """Databases named by `SYNC_DATABASES` (comma-separated), each checked."""
    environ = os.environ if environ is None else environ
    names = contract.split_list(environ.get(contract.SYNC_DATABASES))
    return [check_plain_name(n, "database") for n in names]


def reference_tables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(database, table) pairs named by `REFERENCE_TABLES` (comma-separated `db.table`)."""
    environ = os.environ if environ is None else environ
    pairs = []
    for item in contract.split_list(environ.get(contract.REFERENCE_TABLES)):
        db, dot, table = item.partition(".")
        if not dot:
            raise InvalidInput(f"reference table {item!r} must be written db.table")
        pairs.append((check_plain_name(db, "database"), check_plain_name(table, "table")))
    return pairs


def record_name(suffix: str, kind: str, source: str, target: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"record kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return contract.record_name(suffix, kind, source, target)


def record_result(
    ssm_client: Any,
    suffix: str,
    kind: str,
    source: str,
    target: str,
    payload: Mapping[str, Any],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Write the seed's last-sync record to SSM and return what was written.

    The record keeps the seed's keys (timestamp, status, source, target, error) and adds
    `counts`; anything else in `payload` is kept while it fits the 4 KB parameter limit.
    """
    name = record_name(suffix, kind, source, target)
    error = payload.get("error")
    record: dict[str, Any] = {
        "timestamp": now().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "status": payload.get("status", "error" if error else "success"),
        "source": source,
        "target": target,
        "counts": dict(payload.get("counts") or {}),
        "error": _short(error) if error else None,
    }
    for key, value in payload.items():
        record.setdefault(key, value)
    value = json.dumps(record, default=str, sort_keys=True)
    if len(value) > SSM_VALUE_LIMIT:
        record = {k: record[k] for k in ("timestamp", "status", "source", "target", "counts", "error")}
        record["truncated"] = True
        value = json.dumps(record, default=str, sort_keys=True)
    try:
        ssm_client.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    except Exception as exc:
        raise AwsError(f"Failed to write SSM parameter {name}: {_short(exc)}") from exc
    return record


ClientFactory = Callable[[str], Any]


def client_cache(factory: ClientFactory | None = None) -> ClientFactory:
    """`get(service)`: one client per service, made on first use by `factory` (default
    `client`), so a run that fails validation makes none and tests can serve them with moto."""
    clients: dict[str, Any] = {}

    def get(service: str) -> Any:
        if service not in clients:
            clients[service] = (factory or client)(service)
        return clients[service]

    return get


def check_event(event: object, keys: set[str] | frozenset[str]) -> Mapping[str, Any]:
    """The event as a mapping with only known `keys`, or InvalidInput (no I/O)."""
    if not isinstance(event, Mapping):
        raise InvalidInput("the event must be a JSON object")
    unknown = set(event) - set(keys)
    if unknown:
        raise InvalidInput(f"unknown event key(s): {', '.join(sorted(map(str, unknown)))}")
    return event


def event_bool(event: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A true/false event key (default false); anything else is InvalidInput."""
    value = event.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false, not {value!r}")
    return value


def record_run(result: dict[str, Any], environ: Mapping[str, str], get: ClientFactory, kind: str,
               payload: Mapping[str, Any]) -> None:
    """Write a run's SSM record under ENVIRONMENT_SUFFIX (nothing without one) and note its
    name and time in `result`; a failure to write is noted as `record_error`, never raised:
    the sync's own outcome stays the answer."""
    suffix = environ.get(contract.ENVIRONMENT_SUFFIX)
    if not suffix:
        return
    try:
        check_plain_name(suffix, "environment suffix")
        record = record_result(get("ssm"), suffix, kind, result["source"], result["target"], payload)
        result["record"] = record_name(suffix, kind, result["source"], result["target"])
        result["recorded_at"] = record["timestamp"]
    except Exception as exc:
        result["record_error"] = str(exc)


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."
