"""dashboard: the estate's CloudWatch dashboard `dbrepl-<suffix>` in the hub region (issue 12):
sync runs (success, failure) and rows per route from the `dbrepl` metrics the functions print,
the functions' duration, errors and throttles, and each cluster's CPU, connections and freeable
memory. A dashboard carries no tags: it is dbrepl's by its name. Its body is compared as parsed
JSON, so an edit made in the console shows as drift and apply puts it back."""

from __future__ import annotations

import json
from typing import Any

from dbrepl import names
from dbrepl.aws import is_code
from dbrepl.engine import SHARED, Change, Context, Observed, Resource, Step, register
from dbrepl.sync import metrics

WIDTH, HEIGHT = 12, 6
AWS_PERIOD = 300


def _search(ctx: Context, metric_names: tuple[str, ...], stat: str, period: int) -> str:
    schema = ",".join((metrics.NAMESPACE, *metrics.DIMENSIONS))
    which = metric_names[0] if len(metric_names) == 1 else "(" + " OR ".join(metric_names) + ")"
    return f"SEARCH('{{{schema}}} Suffix=\"{ctx.suffix}\" MetricName={which}', '{stat}', {period})"


def body(ctx: Context) -> dict[str, Any]:
    """The dashboard's body (widgets laid out two a row)."""
    s, region = ctx.suffix, ctx.region(SHARED)
    periods = [sc.seconds for sc in ctx.spec.sync.schedules]
    sync_period = min([*periods, 3600])  # a run per point at most for the shortest schedule
    fns = [names.function(k, s) for k in names.FUNCTIONS]
    clusters = [(names.cluster(e, s), ctx.region(e)) for e in ctx.all_envs]

    def sync_widget(title: str, metric_names: tuple[str, ...]) -> dict[str, Any]:
        return {"title": title, "region": region, "view": "timeSeries", "stacked": False, "period": sync_period,
                "stat": "Sum", "metrics": [[{"expression": _search(ctx, metric_names, "Sum", sync_period),
                                             "id": "e1", "region": region}]]}

    def fn_widget(title: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        return {"title": title, "region": region, "view": "timeSeries", "stacked": False, "period": AWS_PERIOD,
                "metrics": [["AWS/Lambda", m, "FunctionName", f, {"stat": st, "region": region}]
                            for f in fns for m, st in pairs]}

    def rds_widget(title: str, metric: str) -> dict[str, Any]:
        return {"title": title, "region": region, "view": "timeSeries", "stacked": False, "period": AWS_PERIOD,
                "stat": "Average",
                "metrics": [["AWS/RDS", metric, "DBClusterIdentifier", c, {"region": r}] for c, r in clusters]}

    props = [
        sync_widget("Sync runs per route: Success and Failure", ("Success", "Failure")),
        sync_widget("Rows synced per route", ("RowsInserted", "RowsUpdated", "RowsDeleted")),
        fn_widget("Function duration (ms)", [("Duration", "Average"), ("Duration", "Maximum")]),
        fn_widget("Function errors and throttles", [("Errors", "Sum"), ("Throttles", "Sum")]),
        rds_widget("Cluster CPU (%)", "CPUUtilization"),
        rds_widget("Cluster connections", "DatabaseConnections"),
        rds_widget("Cluster freeable memory (bytes)", "FreeableMemory"),
    ]
    widgets = [{"type": "metric", "x": (i % 2) * WIDTH, "y": (i // 2) * HEIGHT, "width": WIDTH, "height": HEIGHT,
                "properties": p} for i, p in enumerate(props)]
    return {"widgets": widgets}


@register
class Dashboard(Step):
    name = "dashboard"
    shared_only = True  # everything of it is in the hub
    permissions = ("cloudwatch:GetDashboard", "cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards")

    def desired(self, ctx: Context) -> list[Resource]:
        n = names.dashboard(ctx.suffix)
        return [Resource("dashboard", "AWS::CloudWatch::Dashboard", SHARED, n, {"DashboardBody": body(ctx)}, None)]

    def discover(self, ctx: Context) -> list[Observed]:
        n = names.dashboard(ctx.suffix)
        try:
            d = ctx.client("cloudwatch", SHARED).get_dashboard(DashboardName=n)
        except Exception as e:
            if is_code(e, ["ResourceNotFound", "ResourceNotFoundException"]):
                return []
            raise
        try:
            parsed: Any = json.loads(d.get("DashboardBody") or "null")
        except ValueError:
            parsed = d.get("DashboardBody")
        return [Observed("dashboard", "AWS::CloudWatch::Dashboard", SHARED, n, d.get("DashboardArn") or n,
                         {"DashboardBody": parsed}, None)]

    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        got = ctx.client("cloudwatch", SHARED).put_dashboard(
            DashboardName=want.name, DashboardBody=json.dumps(want.props["DashboardBody"], separators=(",", ":")))
        problems = got.get("DashboardValidationMessages") or []
        if problems:
            ctx.report("warning", what=f"dashboard {want.name}",
                       message="; ".join(f"{m.get('DataPath', '')}: {m.get('Message', '')}" for m in problems))
        return Observed("dashboard", want.type, SHARED, want.name, want.name, dict(want.props), None)

    def delete(self, ctx: Context, have: Observed) -> None:
        try:
            ctx.client("cloudwatch", SHARED).delete_dashboards(DashboardNames=[have.name])
        except Exception as e:
            if not is_code(e, ["ResourceNotFound", "ResourceNotFoundException"]):
                raise
