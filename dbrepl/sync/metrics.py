"""Sync metrics as CloudWatch Embedded Metric Format (EMF) lines (issue 12, point 2).

A function prints one line per run to stdout; Lambda ships stdout to the function's log group,
and CloudWatch turns a line shaped like this into metrics: no PutMetricData call, no endpoint
in the hub VPC. The same line is what `dbrepl sync ... --direct` and the sandbox print, so a
run's metrics read alike wherever it ran.

Namespace `dbrepl`; dimensions Suffix, Route (`dev->staging`) and Kind (`data`, `schema`,
`migrate`); metrics:

- Success, Failure (Count, 1 or 0): whether the run ended with status `success`;
- RowsInserted, RowsUpdated, RowsDeleted (Count): data runs; 0 for schema runs;
- Statements (Count): DDL statements executed (schema), row statements (data: inserted +
  updated + deleted rows, each written by one statement's worth of work), scripts applied
  (migrate);
- Duration (Milliseconds): the run's wall time.

A dry run emits nothing: it is not a sync, and its Success would hide a route that stopped;
nor does a status query or a history repair.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

NAMESPACE = "dbrepl"
DIMENSIONS = ("Suffix", "Route", "Kind")
METRICS: tuple[tuple[str, str], ...] = (
    ("Success", "Count"), ("Failure", "Count"),
    ("RowsInserted", "Count"), ("RowsUpdated", "Count"), ("RowsDeleted", "Count"),
    ("Statements", "Count"), ("Duration", "Milliseconds"),
)


def route(source: str, target: str) -> str:
    return f"{source}->{target}"


def values(result: Mapping[str, Any], duration_ms: float) -> dict[str, float]:
    """The metric values of one run's result (the JSON the function answers)."""
    ok = result.get("status") == "success"
    counts = result.get("counts") or {}
    kind = kind_of(result)
    if kind == "data":
        rows = {"RowsInserted": counts.get("inserted", 0), "RowsUpdated": counts.get("updated", 0),
                "RowsDeleted": counts.get("deleted", 0)}
        statements = sum(rows.values())
    else:
        rows = {"RowsInserted": 0, "RowsUpdated": 0, "RowsDeleted": 0}
        if kind == "migrate":
            statements = sum(len(r.get("applied", []) or []) for r in result.get("migrations", []) or []
                             if isinstance(r, Mapping))
        else:
            statements = counts.get("executed", 0)
    return {"Success": int(ok), "Failure": int(not ok), **rows, "Statements": statements,
            "Duration": round(max(duration_ms, 0.0), 3)}


def kind_of(result: Mapping[str, Any]) -> str:
    if result.get("kind") == "schema" and result.get("action") == "migrate":
        return "migrate"
    return str(result.get("kind") or "unknown")


def emf(result: Mapping[str, Any], suffix: str, duration_ms: float, now_ms: int | None = None) -> dict[str, Any] | None:
    """The EMF document of one run, or None when the run emits no metrics (a dry run, a run
    without a valid route, a status query)."""
    if result.get("dry_run") or result.get("action") in ("migrate_status", "migrate_repair"):
        return None
    source, target = result.get("source"), result.get("target")
    if not (isinstance(source, str) and isinstance(target, str) and suffix):
        return None
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if now_ms is None else now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [list(DIMENSIONS)],
                "Metrics": [{"Name": name, "Unit": unit} for name, unit in METRICS],
            }],
        },
        "Suffix": suffix,
        "Route": route(source, target),
        "Kind": kind_of(result),
        **values(result, duration_ms),
        "Status": str(result.get("status")),
    }


def emf_line(result: Mapping[str, Any], suffix: str, duration_ms: float, now_ms: int | None = None) -> str | None:
    """One line of JSON (what a function prints), or None (see `emf`)."""
    doc = emf(result, suffix, duration_ms, now_ms)
    return None if doc is None else json.dumps(doc, separators=(",", ":"), sort_keys=False)
