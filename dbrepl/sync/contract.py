"""The function contract: what the estate and the two sync functions agree on, written once.

- the functions' environment variables (`<ENV>_SECRET_ARN`, `<ENV>_ENDPOINT`, optional
  `<ENV>_PORT`, `MIGRATION_BUCKET`, `ENVIRONMENT_SUFFIX`, `SYNC_DATABASES`, `REFERENCE_TABLES`):
  `function_variables` writes them (the lambdas step), the name functions below read them
  (dbrepl.sync.aws, the event modules) and `endpoint_variables` rewrites them (the sandbox);
- the SSM paths: the last-sync records and the seed's connection-string parameter;
- the Lambda handler names and each function's event schema (keys and defaults).

Standard library only: the steps, the sandbox and the handlers import it without pymysql or boto3.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# --------------------------------------------------------------------------- environment variables

SECRET_ARN_SUFFIX = "_SECRET_ARN"  # <ENV>_SECRET_ARN: the {"username", "password"} secret
ENDPOINT_SUFFIX = "_ENDPOINT"      # <ENV>_ENDPOINT: host, host:port or mysql://host:port
PORT_SUFFIX = "_PORT"              # <ENV>_PORT: optional; the estate never writes it, the sandbox does

MIGRATION_BUCKET = "MIGRATION_BUCKET"      # the S3 bucket of migration scripts
ENVIRONMENT_SUFFIX = "ENVIRONMENT_SUFFIX"  # the estate's suffix: where the SSM records go
SYNC_DATABASES = "SYNC_DATABASES"          # comma-separated database names
REFERENCE_TABLES = "REFERENCE_TABLES"      # comma-separated db.table: the data function's default
SHARED_VARIABLES = (MIGRATION_BUCKET, ENVIRONMENT_SUFFIX, SYNC_DATABASES, REFERENCE_TABLES)

# TLS to the databases. The bundle carries the spec's CA bundle (when verification is on) as
# this top-level file; a function finds it under LAMBDA_TASK_ROOT (set by Lambda), and verifies
# the clusters against it, or connects unverified (saying so) when it is absent. A run of the
# handler's code outside Lambda (--direct, the sandbox) names the file in TLS_CA_BUNDLE instead
# ("" for none). The estate never writes TLS_CA_BUNDLE into a function's environment.
TLS_CA_FILE = "dbrepl-ca-bundle.pem"
TLS_CA_BUNDLE = "DBREPL_TLS_CA_BUNDLE"
LAMBDA_TASK_ROOT = "LAMBDA_TASK_ROOT"


def secret_arn_variable(env: str) -> str:
    return f"{env.upper()}{SECRET_ARN_SUFFIX}"


def endpoint_variable(env: str) -> str:
    return f"{env.upper()}{ENDPOINT_SUFFIX}"


def port_variable(env: str) -> str:
    return f"{env.upper()}{PORT_SUFFIX}"


def endpoint_variables(env: str) -> tuple[str, str]:
    """(`<ENV>_ENDPOINT`, `<ENV>_PORT`): what the sandbox sets to point a function at a stand-in."""
    return endpoint_variable(env), port_variable(env)


def env_of_secret_variable(name: str) -> str | None:
    """`dev` for `DEV_SECRET_ARN`, None for any other variable (the name is not checked)."""
    if name.endswith(SECRET_ARN_SUFFIX) and len(name) > len(SECRET_ARN_SUFFIX):
        return name[: -len(SECRET_ARN_SUFFIX)].lower()
    return None


def variable_names(envs: Iterable[str]) -> list[str]:
    """Every variable the estate writes for a function reaching `envs` (sorted)."""
    out = list(SHARED_VARIABLES)
    for env in envs:
        out += [secret_arn_variable(env), endpoint_variable(env)]
    return sorted(out)


def function_variables(
    *,
    environments: Mapping[str, tuple[object, object]],
    migration_bucket: object,
    suffix: str,
    databases: Iterable[str],
    reference_tables: Iterable[str],
) -> dict[str, object]:
    """The functions' environment: `environments` maps each env to (secret ARN, endpoint).

    Values are `object` because the engine plans with placeholders for values not known yet.
    """
    v: dict[str, object] = {}
    for env, (arn, endpoint) in environments.items():
        v[secret_arn_variable(env)] = arn
        v[endpoint_variable(env)] = endpoint
    v[MIGRATION_BUCKET] = migration_bucket
    v[ENVIRONMENT_SUFFIX] = suffix
    v[SYNC_DATABASES] = ",".join(databases)
    v[REFERENCE_TABLES] = ",".join(reference_tables)
    return v


def split_list(value: str | None) -> list[str]:
    """`SYNC_DATABASES` / `REFERENCE_TABLES` back into their items (blanks dropped)."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


# --------------------------------------------------------------------------- SSM paths

PARAMETER_ROOT = "/db-replication"
RECORD_KINDS = ("schema", "data")


def parameter_prefix(suffix: str) -> str:
    """Every SSM parameter of the estate `suffix` lies under this path (the function role's grant)."""
    return f"{PARAMETER_ROOT}/{suffix}/"


def record_prefix(suffix: str, kind: str) -> str:
    """`/db-replication/<suffix>/last-<kind>-sync`: the records of one kind."""
    if kind not in RECORD_KINDS:
        raise ValueError(f"record kind must be one of {', '.join(RECORD_KINDS)}, not {kind!r}")
    return f"{PARAMETER_ROOT}/{suffix}/last-{kind}-sync"


def record_name(suffix: str, kind: str, source: str, target: str) -> str:
    """`/db-replication/<suffix>/last-<kind>-sync/<source>-to-<target>`: a run's last-sync record."""
    return f"{record_prefix(suffix, kind)}/{source}-to-{target}"


def connection_parameter(env: str, suffix: str) -> str:
    """The seed's connection-string parameter of environment `env`."""
    return f"{PARAMETER_ROOT}/{suffix}/{env}/connection-string"


# --------------------------------------------------------------------------- handlers and events

# Module (top level of the bundle) and function Lambda calls; and the package module behind each.
HANDLERS = {"schema": "schema_sync.lambda_handler", "data": "data_sync.lambda_handler"}
HANDLER_PACKAGE = "dbrepl.sync.handlers"


def handler_module(kind: str) -> str:
    """`schema_sync` / `data_sync`: the bundle's top-level entry module of a function."""
    return HANDLERS[kind].partition(".")[0]


def handler_package_module(kind: str) -> str:
    """`dbrepl.sync.handlers.schema_sync`: where the handler lives in the installed package."""
    return f"{HANDLER_PACKAGE}.{handler_module(kind)}"


DEFAULT_SOURCE_ENV = "dev"
DEFAULT_TARGET_ENV = "staging"

# Schema function: {"source_env", "target_env", "migration_script", "databases", "dry_run",
# "allow_destructive", "renames", "action", "definer", "realign"}; see dbrepl/sync/schema/event.py.
SCHEMA_ACTIONS = ("schema", "migrate", "migrate_status", "migrate_repair")
DEFAULT_DEFINER = "omit"
SCHEMA_EVENT_DEFAULTS: Mapping[str, object] = {
    "source_env": DEFAULT_SOURCE_ENV, "target_env": DEFAULT_TARGET_ENV,
    "migration_script": None,  # given: action defaults to "migrate"
    "databases": None,         # None: SYNC_DATABASES
    "dry_run": False, "allow_destructive": False, "renames": [],
    "action": None,            # None: "migrate" with a migration_script, else "schema"
    "definer": DEFAULT_DEFINER,
    "realign": True,           # migrate_repair: also accept changed scripts' checksums (sent only when false)
    # Issue 20: a blocking ALTER (COPY, LOCK=SHARED/EXCLUSIVE) on a table above blocking_limit
    # bytes is refused unless allow_blocking; a DDL waits at most lock_wait_timeout s for a lock.
    "blocking_limit": None,    # None: DEFAULT_BLOCKING_LIMIT
    "allow_blocking": False,
    "lock_wait_timeout": None,  # None: DEFAULT_LOCK_WAIT_TIMEOUT
}
SCHEMA_EVENT_KEYS = frozenset(SCHEMA_EVENT_DEFAULTS)
DEFAULT_BLOCKING_LIMIT = 256 * 1024 * 1024
DEFAULT_LOCK_WAIT_TIMEOUT = 30
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
               "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}


def parse_size(text: str | int) -> int:
    """`256 MB`, `1G`, `0`, 1048576 -> bytes (binary units: MB means MiB, as the servers count)."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    raw = str(text).strip()
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").strip()
    unit = raw[len(raw.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")):].lower()
    if not number or number.count(".") > 1 or not number.replace(".", "").isdigit() or unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size; write e.g. 256 MB, 1 GB or 0")
    return int(float(number) * _SIZE_UNITS[unit])
# The record of a migrate run without a source_env: /last-schema-sync/migrations-to-<target>.
MIGRATIONS_SOURCE = "migrations"

# Data function: see dbrepl/sync/data/event.py.
DATA_EVENT_DEFAULTS: Mapping[str, object] = {
    "source_env": DEFAULT_SOURCE_ENV, "target_env": DEFAULT_TARGET_ENV,
    "tables": None,            # None or []: REFERENCE_TABLES
    "dry_run": False, "verbose": False,
    "verify": None,            # None: dbrepl.sync.data.sync.DEFAULT_VERIFY
    "triggers": None,          # None: "correct" (dbrepl.sync.data.triggers)
    "on_delete": None,         # None: "refuse" (dbrepl.sync.data.fkeys)
}
DATA_EVENT_KEYS = frozenset(DATA_EVENT_DEFAULTS)

EVENT_KEYS = {"schema": SCHEMA_EVENT_KEYS, "data": DATA_EVENT_KEYS}

# A result's status as the handler's statusCode.
STATUS_CODES = {"success": 200, "invalid": 400, "refused": 409, "error": 500}
