"""Schema sync: introspect, normalise, diff, emit ordered and classed DDL, apply, verify.

    plan = plan_schema(src_conn, dst_conn, ["app"], renames=["app.old=new"])
    print(plan.sql())                                   # --dry-run
    apply_schema(dst_conn, plan, allow_destructive=False)  # refuses, naming each clause
"""

from __future__ import annotations

from dbrepl.sync.schema.apply import (
    SchemaApplyFailed,
    SchemaResult,
    apply_schema,
    database_pairs,
    diff_against,
    plan_schema,
    sync_schema,
)
from dbrepl.sync.schema.plan import (
    Clause,
    DestructiveChangeRefused,
    Renames,
    SchemaNotConverged,
    SchemaPlan,
    Statement,
    parse_renames,
)
from dbrepl.sync.schema.preflight import RowsPreventChange

__all__ = [
    "Clause", "DestructiveChangeRefused", "Renames", "RowsPreventChange", "SchemaApplyFailed",
    "SchemaNotConverged",
    "SchemaPlan", "SchemaResult", "Statement", "apply_schema", "database_pairs", "diff_against",
    "parse_renames", "plan_schema", "sync_schema",
]
