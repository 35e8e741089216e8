"""Data-sync function handler (db-sync-data-replication-<suffix>)."""

from __future__ import annotations

import pymysql  # noqa: F401  - the bundle must carry pymysql (seed's functions failed at import)

import dbrepl.sync  # noqa: F401


def lambda_handler(event, context):
    return {"statusCode": 501, "body": '{"error": "data sync not implemented yet"}'}
