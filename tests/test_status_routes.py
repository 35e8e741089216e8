"""`dbrepl status`'s sync routes (issue 12, point 5): each route's last run from the functions'
SSM records, its age, and scheduled routes that never ran."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from dbrepl.app.report import routes, scheduled

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def record(kind: str, source: str, target: str, **kw: object) -> dict:
    return {"kind": kind, "pair": f"{source}-to-{target}", "source": source, "target": target, **kw}


def test_last_runs_with_age_result_and_rows() -> None:
    rows = routes([
        record("data", "dev", "staging", timestamp="2026-12-03T11:15:00Z", status="success", rows_synced=7,
               counts={"rows_synced": 7, "inserted": 5, "updated": 2, "deleted": 0}),
        record("schema", "dev", "staging", timestamp="2026-12-01T12:00:00Z", status="error", error="boom",
               counts={"executed": 3}),
    ], {}, NOW)
    assert rows == [
        {"route": "dev->staging", "kind": "data", "last_run": "2026-12-03T11:15:00Z", "age_seconds": 2700,
         "status": "success", "dry_run": False, "rows": 7, "statements": None, "error": None, "schedule": None},
        {"route": "dev->staging", "kind": "schema", "last_run": "2026-12-01T12:00:00Z", "age_seconds": 172800,
         "status": "error", "dry_run": False, "rows": None, "statements": 3, "error": "boom", "schedule": None},
    ]


def test_a_scheduled_route_that_never_ran_says_so_and_a_run_one_names_its_schedule() -> None:
    spec = SimpleNamespace(sync=SimpleNamespace(schedules=[
        SimpleNamespace(route="dev->staging", kind="data", every="1 hour", cron=None),
        SimpleNamespace(route="staging->prod", kind="schema", every=None, cron="0 3 * * ? *"),
    ]))
    rows = routes([record("data", "dev", "staging", timestamp="2026-12-03T11:59:30Z", status="success",
                          rows_synced=0)], scheduled(spec), NOW)
    by = {(r["route"], r["kind"]): r for r in rows}
    assert by[("dev->staging", "data")]["schedule"] == "every 1 hour"
    assert by[("dev->staging", "data")]["age_seconds"] == 30
    never = by[("staging->prod", "schema")]
    assert (never["status"], never["last_run"], never["schedule"]) == ("never run", None, "cron 0 3 * * ? *")


def test_unreadable_records_and_odd_timestamps_do_not_break_status() -> None:
    rows = routes([
        {"kind": "data", "pair": "x", "status": "unreadable", "error": "the parameter is not JSON"},  # no route
        record("data", "dev", "prod", timestamp="yesterday", status="success"),
    ], {}, NOW)
    assert [(r["route"], r["age_seconds"]) for r in rows] == [("dev->prod", None)]
