"""Reference data sync: make target rows equal to source rows, moving only differences.

Public API (used by the CLI and the data-sync function):
    resolve_tables(conn, names, databases) -> list[(database, table)]
    sync_data(source, target, tables, *, target_databases=None, dry_run=False,
              progress=None, statements=False, verify="changed", triggers="correct",
              on_delete="refuse") -> DataSyncResult
    (raises TriggersRefused before any change; VerificationFailed or ForeignKeyViolation,
    rolled back, when the checks before COMMIT find a difference or an orphan)

dbrepl.sync.data.event.run_data_event(event, environ=None, client=None) is the function's
whole run (it needs boto3, so it is not imported here).
"""

from __future__ import annotations

from dbrepl.sync.data.fkeys import ON_DELETE_MODES, ForeignKeyEffect, ForeignKeyViolation
from dbrepl.sync.data.shape import NoUsableKey, SchemaMismatch
from dbrepl.sync.data.sync import (
    VERIFY_MODES,
    DataSyncResult,
    Progress,
    ProgressHook,
    TableResult,
    VerificationFailed,
    sync_data,
)
from dbrepl.sync.data.tables import resolve_tables
from dbrepl.sync.data.triggers import TRIGGER_MODES, TriggerEffect, TriggersRefused

__all__ = [
    "ON_DELETE_MODES",
    "TRIGGER_MODES",
    "DataSyncResult",
    "ForeignKeyEffect",
    "ForeignKeyViolation",
    "TriggerEffect",
    "TriggersRefused",
    "NoUsableKey",
    "Progress",
    "ProgressHook",
    "SchemaMismatch",
    "TableResult",
    "VERIFY_MODES",
    "VerificationFailed",
    "resolve_tables",
    "sync_data",
]
