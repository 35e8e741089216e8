"""Schema-sync function handler (db-sync-schema-replication-<suffix>).

The seed's event (`source_env`, `target_env`, optional `migration_script`) plus `databases`,
`dry_run`, `allow_destructive` and `renames`; see dbrepl/sync/schema/event.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pymysql  # noqa: F401  - the bundle must carry pymysql (seed's functions failed at import)

from dbrepl.sync import contract
from dbrepl.sync.handlers.run import run_event
from dbrepl.sync.schema.event import run_schema_event

logger = logging.getLogger()
logger.setLevel(logging.INFO)

_STATUS_CODES = contract.STATUS_CODES


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Run the event; the body is the JSON result (also for failures, which are logged)."""
    # The function's time left: statements that may outlive it are refused (schema/limits.py).
    left = getattr(context, "get_remaining_time_in_millis", None)
    result = run_event("schema", run_schema_event, event,
                       remaining=(lambda: left() / 1000.0) if callable(left) else None)
    return {"statusCode": _STATUS_CODES.get(result["status"], 500), "body": json.dumps(result, default=str)}
