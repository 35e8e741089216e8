"""Schema-sync function handler (db-sync-schema-replication-<suffix>).

The seed's event (`source_env`, `target_env`, optional `migration_script`) plus `databases`,
`dry_run`, `allow_destructive` and `renames`; see dbrepl/sync/schema/event.py.
"""

from __future__ import annotations

import json
import logging
import os
import time

import pymysql  # noqa: F401  - the bundle must carry pymysql (seed's functions failed at import)

from dbrepl.sync import contract, metrics
from dbrepl.sync.schema.event import run_schema_event

logger = logging.getLogger()
logger.setLevel(logging.INFO)

_STATUS_CODES = contract.STATUS_CODES


def lambda_handler(event, context):
    """Run the event; the body is the JSON result (also for failures, which are logged)."""
    started = time.monotonic()
    result = run_schema_event(event)
    # One EMF line per run: Lambda ships stdout to the log group, CloudWatch makes the metrics.
    line = metrics.emf_line(result, os.environ.get(contract.ENVIRONMENT_SUFFIX, ""),
                            (time.monotonic() - started) * 1000)
    if line is not None:
        print(line, flush=True)
    # The event and result carry no credentials: secrets stay inside run_schema_event.
    logger.info("schema sync %s -> %s: %s", result.get("source"), result.get("target"), result["status"])
    if result["status"] != "success":
        logger.error("schema sync failed: %s", result.get("error"))
    return {"statusCode": _STATUS_CODES.get(result["status"], 500), "body": json.dumps(result, default=str)}
