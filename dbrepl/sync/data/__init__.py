"""Reference data sync: make target rows equal to source rows, moving only differences.

Public API (used by the CLI and the data-sync function):
    resolve_tables(conn, names, databases) -> list[(database, table)]
    sync_data(source, target, tables, *, target_databases=None, dry_run=False,
              progress=None, statements=False, verify="changed") -> DataSyncResult
    (raises VerificationFailed, rolled back, when the re-check before COMMIT finds a difference)

dbrepl.sync.data.event.run_data_event(event, environ=None, client=None) is the function's
whole run (it needs boto3, so it is not imported here).
"""

from __future__ import annotations

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

__all__ = [
    "DataSyncResult",
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
