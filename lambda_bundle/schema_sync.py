"""Schema-sync function handler (db-sync-schema-replication-<suffix>)."""

from __future__ import annotations

import pymysql  # noqa: F401  - the bundle must carry pymysql (seed's functions failed at import)

import dbrepl.sync  # noqa: F401


def lambda_handler(event, context):
    return {"statusCode": 501, "body": '{"error": "schema sync not implemented yet"}'}
