"""Data-sync function handler (db-sync-data-replication-<suffix>).

The seed's event (`source_env`, `target_env`, `tables`) plus `dry_run`; see
dbrepl/sync/data/event.py. Unlike the seed it never truncates: only differing rows move,
in one transaction, and the SSM record carries inserted/updated/deleted per table.
"""

from __future__ import annotations

import json
import logging
import os
import time

import pymysql  # noqa: F401  - the bundle must carry pymysql (seed's functions failed at import)

from dbrepl.sync import contract, metrics
from dbrepl.sync.data.event import run_data_event

logger = logging.getLogger()
logger.setLevel(logging.INFO)

_STATUS_CODES = contract.STATUS_CODES


def lambda_handler(event, context):
    """Run the event; the body is the JSON result (also for failures, which are logged)."""
    started = time.monotonic()
    result = run_data_event(event)
    # One EMF line per run: Lambda ships stdout to the log group, CloudWatch makes the metrics.
    line = metrics.emf_line(result, os.environ.get(contract.ENVIRONMENT_SUFFIX, ""),
                            (time.monotonic() - started) * 1000)
    if line is not None:
        print(line, flush=True)
    # The event and result carry no credentials: secrets stay inside run_data_event.
    logger.info("data sync %s -> %s: %s, %s rows", result.get("source"), result.get("target"),
                result["status"], result.get("rows_synced", 0))
    if result["status"] != "success":
        logger.error("data sync failed: %s", result.get("error"))
    return {"statusCode": _STATUS_CODES.get(result["status"], 500), "body": json.dumps(result, default=str)}
