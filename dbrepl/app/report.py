"""`dbrepl status`: the estate's resources and outputs (dbrepl.status), each alarm's state, and
per sync route its last run (time, age, result, rows) from the functions' SSM records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dbrepl.app.estate import Estate
from dbrepl.errors import DbreplError
from dbrepl.status import estate_status


def status_report(estate: Estate, now: datetime | None = None) -> dict[str, Any]:
    report = estate_status(estate.engine())
    try:
        records = estate.functions.records()
    except DbreplError as exc:  # status reads; a record it cannot read is said, not fatal
        report["routes"] = []
        report["routes_error"] = str(exc)
        return report
    report["routes"] = routes(records, scheduled(estate.spec), now or datetime.now(UTC))
    return report


def scheduled(spec: Any) -> dict[tuple[str, str], str]:
    """(route, kind) -> how often it runs, for the spec's schedules (sync.schedules)."""
    out: dict[tuple[str, str], str] = {}
    for s in getattr(spec.sync, "schedules", None) or []:
        out[(s.route, s.kind)] = f"every {s.every}" if getattr(s, "every", None) else f"cron {s.cron}"
    return out


def routes(records: list[dict[str, Any]], schedules: dict[tuple[str, str], str], now: datetime) -> list[dict]:
    """One row per (route, kind) with a record or a schedule; a scheduled route never run says so."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        source, target = r.get("source"), r.get("target")
        if not isinstance(source, str) or not isinstance(target, str):
            continue
        key = (f"{source}->{target}", r["kind"])
        counts = r.get("counts") or {}
        rows[key] = {
            "route": key[0], "kind": key[1], "last_run": r.get("timestamp"), "age_seconds": _age(r, now),
            "status": r.get("status"), "dry_run": bool(r.get("dry_run")),
            "rows": r.get("rows_synced", counts.get("rows_synced")) if key[1] == "data" else None,
            "statements": counts.get("executed") if key[1] == "schema" else None,
            "error": r.get("error"), "schedule": schedules.get(key),
        }
    for key, every in schedules.items():
        rows.setdefault(key, {"route": key[0], "kind": key[1], "last_run": None, "age_seconds": None,
                              "status": "never run", "dry_run": False, "rows": None, "statements": None,
                              "error": None, "schedule": every})
    return [rows[k] for k in sorted(rows)]


def _age(record: dict[str, Any], now: datetime) -> int | None:
    stamp = record.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, int((now - when).total_seconds()))
