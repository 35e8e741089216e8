"""One data-sync run as the deployed function performs it (and `dbrepl sync data --direct`).

Event (the seed's keys plus ours):
    {"source_env": "dev", "target_env": "staging",
     "tables": ["lookup_table", "app.config_table"],   # default: REFERENCE_TABLES
     "dry_run": false, "verbose": false,    # verbose: the statements too (dry runs)
     "verify": "changed",                   # or "full" / "none": what is re-checked before COMMIT
     "triggers": "correct",                 # or "refuse" / "allow": the target's triggers
     "on_delete": "refuse"}                 # or "apply": the target's ON DELETE actions

A bare table name is looked for in the configured databases (`SYNC_DATABASES`). Every input
is checked before any connection is opened, every table against the source's catalogue
before any row is read. Every run that names two valid environments leaves its record in
SSM (`/db-replication/<suffix>/last-data-sync/<source>-to-<target>`) with `rows_synced` and
inserted/updated/deleted per table, as the seed does, and what the run verified before it
committed; a dry run records nothing (nothing was synced).

`progress` (optional, called with dbrepl.sync.data.Progress after each chunk compared and each
statement applied) is for a caller running this in its own process (`--direct`); the Lambda
handler passes none.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from dbrepl.sync import aws, contract
from dbrepl.sync.connection import connect
from dbrepl.sync.data.fkeys import DEFAULT_ON_DELETE, check_on_delete
from dbrepl.sync.data.sync import (
    DEFAULT_VERIFY,
    DataSyncResult,
    ProgressHook,
    TableResult,
    check_verify,
    sync_data,
)
from dbrepl.sync.data.tables import check_not_system, resolve_tables
from dbrepl.sync.data.triggers import DEFAULT_TRIGGERS, TriggersRefused, check_triggers
from dbrepl.sync.errors import InvalidInput, SyncError
from dbrepl.sync.ident import check_name

ClientFactory = aws.ClientFactory
_KEYS = contract.DATA_EVENT_KEYS
# A Lambda response holds 6 MB: a verbose result keeps at most this many statements a table.
MAX_STATEMENTS = 200


def validate_event(event: object, environ: Mapping[str, str]) -> dict[str, Any]:
    """The event's checked values, or InvalidInput naming the first bad one (no I/O)."""
    event = aws.check_event(event, _KEYS)
    source = aws.check_env(event.get("source_env", contract.DEFAULT_SOURCE_ENV))
    target = aws.check_env(event.get("target_env", contract.DEFAULT_TARGET_ENV))
    if source == target:
        raise InvalidInput("source_env and target_env must differ")
    dry_run = aws.event_bool(event, "dry_run")
    verbose = aws.event_bool(event, "verbose")
    verify = check_verify(_given(event, "verify", DEFAULT_VERIFY))
    triggers = check_triggers(_given(event, "triggers", DEFAULT_TRIGGERS))
    on_delete = check_on_delete(_given(event, "on_delete", DEFAULT_ON_DELETE))
    databases = aws.sync_databases(environ)
    tables = event.get("tables")
    if tables is None or tables == []:
        tables = [f"{d}.{t}" for d, t in aws.reference_tables(environ)]
    if not isinstance(tables, list) or not tables:
        raise InvalidInput(f"tables must be a non-empty list of table names (or set {contract.REFERENCE_TABLES})")
    names = []
    for name in tables:
        if not isinstance(name, str):
            raise InvalidInput(f"invalid table name {name!r}: expected a string")
        db, dot, table = name.partition(".")
        if dot:
            check_not_system(check_name(db, "database name"))
            check_name(table, "table name")
            if databases and db not in databases:
                raise InvalidInput(
                    f"table {name} is not in a configured database ({', '.join(databases)})"
                )
        else:
            check_name(name, "table name")
        names.append(name)
    return {
        "source": source, "target": target, "tables": names, "dry_run": dry_run,
        "verbose": verbose, "databases": databases, "verify": verify,
        "triggers": triggers, "on_delete": on_delete,
    }


def _given(event: Mapping[str, Any], key: str, default: str) -> object:
    value = event.get(key)
    return default if value is None else value


def run_data_event(
    event: object,
    environ: Mapping[str, str] | None = None,
    client: ClientFactory | None = None,
    progress: ProgressHook | None = None,
) -> dict[str, Any]:
    """Run one event and return its JSON-able result (never raises for a failed sync).

    An exception raised by `progress` rolls the run back and propagates (as in sync_data).
    """
    environ = os.environ if environ is None else environ
    get = aws.client_cache(client)
    result: dict[str, Any] = {"status": "error", "kind": "data"}
    if isinstance(event, Mapping):
        for key, default in (("source_env", contract.DEFAULT_SOURCE_ENV),
                             ("target_env", contract.DEFAULT_TARGET_ENV)):
            with contextlib.suppress(InvalidInput):
                result[key.split("_")[0]] = aws.check_env(event.get(key, default))
    try:
        checked = validate_event(event, environ)
        result.update(source=checked["source"], target=checked["target"],
                      dry_run=checked["dry_run"], verify=checked["verify"])
        _run(checked, environ, get, result, progress)
    except InvalidInput as exc:
        result.update(status="invalid", error=str(exc))
    except TriggersRefused as exc:
        result.update(status="refused", error=str(exc), refused_triggers=exc.triggers)
    except SyncError as exc:
        result.update(status="error", error=str(exc), **failure_fields(exc))
    if not result.get("dry_run"):
        _record(result, environ, get)
    return result


def _run(checked: dict[str, Any], environ: Mapping[str, str], get: ClientFactory,
         result: dict[str, Any], progress: ProgressHook | None = None) -> None:
    result["tls"], _ = aws.tls_warnings(environ, [checked["source"], checked["target"]])
    secrets = get("secretsmanager")
    src = aws.connect_env(checked["source"], environ, secrets, result, connect)
    try:
        dst = aws.connect_env(checked["target"], environ, secrets, result, connect)
        try:
            pairs = resolve_tables(src, checked["tables"], checked["databases"])
            result["tables"] = [f"{d}.{t}" for d, t in pairs]
            synced = sync_data(src, dst, pairs, dry_run=checked["dry_run"],
                               statements=checked["verbose"], progress=progress,
                               verify=checked["verify"], triggers=checked["triggers"],
                               on_delete=checked["on_delete"])
        finally:
            dst.close()
    finally:
        src.close()
    result.update(success_fields(synced, MAX_STATEMENTS))


def success_fields(synced: DataSyncResult, max_statements: int | None = None) -> dict[str, Any]:
    """A finished run's fields of the result (the function's and a DSN run's alike)."""
    return {
        "status": "success",
        "rows_synced": synced.rows_synced,
        "counts": _counts(synced.tables),
        "verified": synced.verified,
        "per_table": [_table(t, max_statements) for t in synced.tables],
        "triggers": [t.to_dict() for t in synced.triggers],
        "foreign_keys": [f.to_dict() for f in synced.foreign_keys],
    }


def failure_fields(exc: SyncError) -> dict[str, Any]:
    """A failed run's findings beside its error: the foreign keys a run would break."""
    findings = getattr(exc, "findings", None)
    return {"foreign_keys": [f.to_dict() for f in findings]} if findings else {}


def _table(t: TableResult, max_statements: int | None) -> dict[str, Any]:
    row: dict[str, Any] = {"table": f"{t.database}.{t.table}", "inserted": t.inserted,
                           "updated": t.updated, "deleted": t.deleted}
    if t.verified_rows is not None:
        row["verified"] = {"ranges": t.verified_ranges, "rows": t.verified_rows}
    if t.corrected:
        row["corrected"] = t.corrected
    if t.statements is not None:
        row["statements"] = t.statements[:max_statements]
        if max_statements is not None and len(t.statements) > max_statements:
            row["statements_omitted"] = len(t.statements) - max_statements
    return row


def _counts(tables: list[TableResult]) -> dict[str, int]:
    return {
        "rows_synced": sum(t.changed for t in tables),
        "inserted": sum(t.inserted for t in tables),
        "updated": sum(t.updated for t in tables),
        "deleted": sum(t.deleted for t in tables),
    }


def _record(result: dict[str, Any], environ: Mapping[str, str], get: ClientFactory) -> None:
    """Write the SSM record when the run names two valid environments and a suffix."""
    if "source" not in result or "target" not in result:
        return
    aws.record_run(result, environ, get, "data", {
        "status": result["status"], "counts": result.get("counts", {}),
        "error": result.get("error"), "rows_synced": result.get("rows_synced", 0),
        "verify": result.get("verify"), "verified": result.get("verified"),
        "tables": result.get("per_table", []),
        "triggers": result.get("triggers", result.get("refused_triggers", [])),
        "foreign_keys": result.get("foreign_keys", []),
    })
