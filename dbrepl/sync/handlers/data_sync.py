"""Data-sync function handler (db-sync-data-replication-<suffix>).

The seed's event (`source_env`, `target_env`, `tables`) plus `dry_run`; see
dbrepl/sync/data/event.py. Unlike the seed it never truncates: only differing rows move,
in one transaction, and the SSM record carries inserted/updated/deleted per table.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pymysql  # noqa: F401  - the bundle must carry pymysql (seed's functions failed at import)

from dbrepl.sync import contract
from dbrepl.sync.data.event import run_data_event
from dbrepl.sync.handlers.run import run_event

logger = logging.getLogger()
logger.setLevel(logging.INFO)

_STATUS_CODES = contract.STATUS_CODES


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Run the event; the body is the JSON result (also for failures, which are logged)."""
    result = run_event("data", run_data_event, event)
    return {"statusCode": _STATUS_CODES.get(result["status"], 500), "body": json.dumps(result, default=str)}
