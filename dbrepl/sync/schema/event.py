"""One schema-sync run as the deployed function performs it (and `dbrepl sync --direct`).

Event (the seed's keys plus ours):
    {"source_env": "dev", "target_env": "staging",
     "migration_script": "s3://bucket/migrations/V3__x.sql",   # optional
     "databases": ["app"], "dry_run": false, "allow_destructive": false,
     "renames": ["app.old=new", "app.t.old_col=new_col"],      # optional
     "definer": "omit" | "keep",     # triggers, routines, events (optional, default omit)
     "blocking_limit": 268435456,    # bytes; blocking ALTERs above it refused (default 256 MB)
     "allow_blocking": false, "lock_wait_timeout": 30,                # optional
     "action": "schema" | "migrate" | "migrate_status" | "migrate_repair",   # optional
     "realign": true}                # migrate_repair: accept changed scripts' content (default)

`action` defaults to "migrate" when `migration_script` is given, else "schema".
- schema: the target's databases are made equal to the source's.
- migrate: the bucket's pending migration scripts (up to `migration_script` if given) are
  applied to the target's databases (the source is not used; without `source_env` the
  record is `last-schema-sync/migrations-to-<target>`).
- migrate_status: every script's state in each target database; read-only, no SSM record.
- migrate_repair: Flyway's repair of each target database's history: failed entries removed
  (retried by the next migrate) and, unless `realign` is false, an applied script that changed
  gets the bucket's checksum; no SSM record (it runs no script).
Every input is checked before any connection is opened; every run that names two valid
environments leaves its record in SSM (`/db-replication/<suffix>/last-schema-sync/...`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from dbrepl.sync import aws, contract
from dbrepl.sync.connection import connect
from dbrepl.sync.errors import InvalidInput, SyncError
from dbrepl.sync.migrations import (
    MigrationChecksumChanged,
    MigrationFailed,
    MigrationHistoryConflict,
    MigrationOrderError,
    S3Scripts,
    apply_migrations,
    migration_status,
    parse_script_name,
    repair_history,
)
from dbrepl.sync.schema.apply import apply_schema, database_pairs, plan_schema
from dbrepl.sync.schema.objects import check_definer_mode
from dbrepl.sync.schema.plan import (
    DestructiveChangeRefused,
    SchemaNotConverged,
    parse_renames,
)

ClientFactory = aws.ClientFactory
log = logging.getLogger(__name__)
_KEYS = contract.SCHEMA_EVENT_KEYS
ACTIONS = contract.SCHEMA_ACTIONS
# The record of a migrate run without a source_env: /last-schema-sync/migrations-to-<target>.
MIGRATIONS_SOURCE = contract.MIGRATIONS_SOURCE


def _script_name(value: object, bucket: str | None) -> str:
    """The script's file name from `s3://bucket/prefix/V3__x.sql`, a key or a bare name."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"migration_script must be a non-empty string, not {value!r}")
    key = value
    if value.startswith("s3://"):
        got_bucket, _, key = value[5:].partition("/")
        if bucket and got_bucket != bucket:
            raise InvalidInput(f"migration_script is in bucket {got_bucket!r}, not the migration bucket")
    name = key.rsplit("/", 1)[-1]
    parse_script_name(name)
    return name


def validate_event(event: object, environ: Mapping[str, str]) -> dict[str, Any]:
    """The event's checked values, or InvalidInput naming the first bad one."""
    event = aws.check_event(event, _KEYS)
    script = event.get("migration_script")
    action = event.get("action", "migrate" if script is not None else "schema")
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if script is not None and action == "schema":
        raise InvalidInput("migration_script goes with action migrate")
    target = aws.check_env(event.get("target_env", contract.DEFAULT_TARGET_ENV))
    if action != "schema" and "source_env" not in event:
        source = MIGRATIONS_SOURCE  # scripts come from the bucket, not from an environment
    else:
        source = aws.check_env(event.get("source_env", contract.DEFAULT_SOURCE_ENV))
        if source == target:
            raise InvalidInput("source_env and target_env must differ")
    databases = event.get("databases")
    if databases is None:
        databases = aws.sync_databases(environ)
    if not isinstance(databases, list) or not all(isinstance(d, str) for d in databases):
        raise InvalidInput("databases must be a list of database names")
    pairs = database_pairs(databases)
    renames = event.get("renames") or []
    if not isinstance(renames, list):
        raise InvalidInput("renames must be a list like [\"db.old=new\"]")
    limit = event.get("blocking_limit")
    limit = contract.DEFAULT_BLOCKING_LIMIT if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInput(f"blocking_limit must be a size in bytes (0 or more), not {limit!r}")
    wait = event.get("lock_wait_timeout")
    wait = contract.DEFAULT_LOCK_WAIT_TIMEOUT if wait is None else wait
    if isinstance(wait, bool) or not isinstance(wait, int) or not 1 <= wait <= 31536000:
        raise InvalidInput(f"lock_wait_timeout must be whole seconds from 1 to 31536000, not {wait!r}")
    return {
        "action": action,
        "source": source, "target": target, "databases": [d for d, _ in pairs],
        "dry_run": aws.event_bool(event, "dry_run"),
        "allow_destructive": aws.event_bool(event, "allow_destructive"),
        "renames": parse_renames(renames),
        "definer": check_definer_mode(event.get("definer", contract.DEFAULT_DEFINER)),
        "blocking_limit": limit, "lock_wait_timeout": wait,
        "allow_blocking": aws.event_bool(event, "allow_blocking"),
        "migration_script": None if script is None else _script_name(script, environ.get(contract.MIGRATION_BUCKET)),
        "realign": aws.event_bool(event, "realign", True) if action == "migrate_repair" else True,
    }


def run_schema_event(
    event: object,
    environ: Mapping[str, str] | None = None,
    client: ClientFactory | None = None,
    *,
    remaining: Callable[[], float] | None = None,
    online_tool: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Run one event and return its JSON-able result (never raises for a failed sync).

    `remaining()`: the function's seconds left (from the Lambda context); statements that may
    outlive it are refused. `online_tool(endpoint)`: outside the function only (`--direct`),
    makes the online schema change tool for the target (ptosc.OnlineTool)."""
    environ = os.environ if environ is None else environ
    get = aws.client_cache(client)
    result: dict[str, Any] = {"status": "error", "kind": "schema"}
    if isinstance(event, Mapping):
        # Labels for the record of an event that fails validation (valid names only).
        migrate = "migration_script" in event or event.get("action") == "migrate"
        result["action"] = "migrate" if migrate else event.get("action", "schema")
        with contextlib.suppress(InvalidInput):
            result["target"] = aws.check_env(event.get("target_env", contract.DEFAULT_TARGET_ENV))
        with contextlib.suppress(InvalidInput):
            result["source"] = (MIGRATIONS_SOURCE if migrate and "source_env" not in event
                                else aws.check_env(event.get("source_env", contract.DEFAULT_SOURCE_ENV)))
    try:
        checked = validate_event(event, environ)
        result.update(source=checked["source"], target=checked["target"],
                      databases=checked["databases"], dry_run=checked["dry_run"])
        result["action"] = checked["action"]
        _note_tls(result, environ, [checked["target"]] if checked["action"] in ("migrate", "migrate_status")
                  else [checked["source"], checked["target"]])
        if checked["action"] == "migrate":
            _run_migrations(checked, environ, get, result)
        elif checked["action"] == "migrate_status":
            _migration_status(checked, environ, get, result)
        elif checked["action"] == "migrate_repair":
            _migration_repair(checked, environ, get, result)
        else:
            _run_schema(checked, environ, get, result, remaining, online_tool)
    except DestructiveChangeRefused as exc:
        result.update(status="refused", error=str(exc), refused=[c.label() for c in exc.clauses])
    except (MigrationChecksumChanged, MigrationOrderError, MigrationHistoryConflict) as exc:
        result.update(status="refused", error=str(exc))
    except MigrationFailed as exc:
        # `migrations` is the list of runs, the failed one last, as on success.
        result.update(status="error", error=str(exc))
        if not isinstance(result.get("migrations"), list):
            result["migrations"] = [exc.result.to_dict()]
    except SchemaNotConverged as exc:
        result.update(status="error", error=str(exc))
    except InvalidInput as exc:
        result.update(status="invalid", error=str(exc))
    except SyncError as exc:
        result.update(status="error", error=str(exc))
    except Exception as exc:  # a bug must still leave its SSM record and a JSON answer
        log.exception("schema sync failed unexpectedly")
        result.update(status="error", error=f"internal error: {type(exc).__name__}: {exc}")
    _record(result, environ, get)
    return result


def _note_tls(result: dict[str, Any], environ: Mapping[str, str], envs: list[str]) -> None:
    """`tls` ({env: verified|unverified}); the warnings come with each connection (_connect)."""
    result["tls"], _ = aws.tls_warnings(environ, envs)


def _connect(env: str, environ: Mapping[str, str], get: ClientFactory, result: dict[str, Any]) -> Any:
    return aws.connect_env(env, environ, get("secretsmanager"), result, connect)


def _run_schema(checked: dict[str, Any], environ: Mapping[str, str], get: ClientFactory,
                result: dict[str, Any], remaining: Callable[[], float] | None = None,
                online_tool: Callable[[Any], Any] | None = None) -> None:
    src = _connect(checked["source"], environ, get, result)
    try:
        endpoints: list[Any] = []  # the target's endpoint, for the probe's and the online tool's own connections

        def connect_target(endpoint: Any) -> Any:
            endpoints.append(endpoint)
            return connect(endpoint)

        dst = aws.connect_env(checked["target"], environ, get("secretsmanager"), result, connect_target)
        target = endpoints[0]
        try:
            plan = plan_schema(src, dst, checked["databases"], checked["renames"],
                               definer=checked["definer"], probe_connect=lambda: connect(target))
            result.update(statements=[s.to_dict() for s in plan.statements], notes=plan.notes,
                          counts=plan.counts(), blocking_limit=checked["blocking_limit"])
            applied = apply_schema(dst, plan, allow_destructive=checked["allow_destructive"],
                                   dry_run=checked["dry_run"], blocking_limit=checked["blocking_limit"],
                                   allow_blocking=checked["allow_blocking"],
                                   lock_wait_timeout=checked["lock_wait_timeout"], remaining=remaining,
                                   online_tool=online_tool(target) if online_tool is not None else None)
            result["counts"]["executed"] = len(applied.executed)
            result.update(status="success", converged=applied.converged,
                          seconds=round(applied.seconds, 3))
            if checked["dry_run"]:
                result["would_refuse"] = [c.label() for c in plan.destructive_clauses()
                                          if not checked["allow_destructive"]]
                result["would_block"] = applied.would_block()  # rows in the way (preflight)
                result["would_refuse_blocking"] = applied.blocking
                result["online_tool"] = applied.online
        finally:
            dst.close()
    finally:
        src.close()


def _migration_target(checked: dict[str, Any], environ: Mapping[str, str], get: ClientFactory,
                      result: dict[str, Any]) -> tuple[S3Scripts, Any]:
    """The bucket's scripts and a connection to the target, for the three migrate actions."""
    bucket = environ.get(contract.MIGRATION_BUCKET)
    if not bucket:
        raise InvalidInput(f"{contract.MIGRATION_BUCKET} is not set for this function")
    return S3Scripts(get("s3"), bucket), _connect(checked["target"], environ, get, result)


def _run_migrations(checked: dict[str, Any], environ: Mapping[str, str], get: ClientFactory,
                    result: dict[str, Any]) -> None:
    source, dst = _migration_target(checked, environ, get, result)
    runs: list[dict[str, Any]] = []
    result["migrations"] = runs
    try:
        for db in checked["databases"]:
            try:
                run = apply_migrations(dst, db, source, dry_run=checked["dry_run"],
                                       up_to=checked["migration_script"])
            except MigrationFailed as exc:
                runs.append(exc.result.to_dict())
                raise
            for warning in run.warnings:
                log.warning("%s: %s", db, warning)
            runs.append(run.to_dict())
    finally:
        dst.close()
        result["counts"] = {
            "applied": sum(len(r["applied"]) for r in runs),
            "pending": sum(len(r["pending"]) for r in runs),
            "failed": sum(1 for r in runs if r["failed"]),
        }
    result["status"] = "success"


def _migration_status(checked: dict[str, Any], environ: Mapping[str, str], get: ClientFactory,
                      result: dict[str, Any]) -> None:
    source, dst = _migration_target(checked, environ, get, result)
    try:
        result["status_by_database"] = {
            db: [s.to_dict() for s in migration_status(dst, db, source)] for db in checked["databases"]}
    finally:
        dst.close()
    result["status"] = "success"


def _migration_repair(checked: dict[str, Any], environ: Mapping[str, str], get: ClientFactory,
                      result: dict[str, Any]) -> None:
    source, dst = _migration_target(checked, environ, get, result)
    try:
        result["repairs"] = [repair_history(dst, db, source, realign=checked["realign"],
                                            dry_run=checked["dry_run"]).to_dict()
                             for db in checked["databases"]]
    finally:
        dst.close()
    result["status"] = "success"


def _record(result: dict[str, Any], environ: Mapping[str, str], get: ClientFactory) -> None:
    """Write the SSM record when the run names two valid environments and a suffix."""
    if result.get("action") in ("migrate_status", "migrate_repair"):
        return  # a read-only look or a history repair is not a sync
    known = aws.known_envs(environ)
    source_ok = result.get("source") in known or (
        result.get("action") == "migrate" and result.get("source") == MIGRATIONS_SOURCE)
    if not source_ok or result.get("target") not in known or result["source"] == result["target"]:
        return  # no record under a name nobody configured
    aws.record_run(result, environ, get, "schema", {
        "status": result["status"], "counts": result.get("counts", {}),
        "error": result.get("error"), "dry_run": result.get("dry_run", False),
        "databases": result.get("databases", []),
    })
