"""alarms: per Aurora cluster the seed's AuroraReplicaLag alarm (Average > 60000 for 2 x 60 s,
missing data not breaching; values from the spec)."""

from __future__ import annotations

from typing import Any

from dbrepl import names
from dbrepl.aws import is_code, tag_list
from dbrepl.aws.tagging import tagged
from dbrepl.engine import Change, Context, Observed, Resource, Step, register

FIELDS = ("AlarmDescription", "MetricName", "Namespace", "Statistic", "Period", "EvaluationPeriods", "Threshold",
          "ComparisonOperator", "Dimensions", "TreatMissingData")


@register
class Alarms(Step):
    name = "alarms"
    depends_on = ("aurora",)
    needs = {0: ("aurora:1",)}  # the clusters they watch, not their instances
    permissions = ("cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms",
                   "cloudwatch:TagResource", "tag:GetResources")

    def desired(self, ctx: Context) -> list[Resource]:
        a = ctx.spec.alarms
        out = []
        for env in ctx.all_envs:
            name = names.alarm(env, ctx.suffix)
            out.append(Resource(
                "alarm", "AWS::CloudWatch::Alarm", env, name,
                {"AlarmDescription": f"Alert when {env} Aurora replication lag exceeds {a.threshold / 1000:g} seconds",
                 "MetricName": a.metric, "Namespace": "AWS/RDS", "Statistic": a.statistic, "Period": a.period,
                 "EvaluationPeriods": a.evaluation_periods, "Threshold": float(a.threshold),
                 "ComparisonOperator": "GreaterThanThreshold",
                 "Dimensions": [{"Name": "DBClusterIdentifier", "Value": names.cluster(env, ctx.suffix)}],
                 "TreatMissingData": a.treat_missing_data},
                ctx.tags(env, self.name, name),
            ))
        return out

    def discover(self, ctx: Context) -> list[Observed]:
        return ctx.each_group(lambda envs: self._discover(ctx, envs))

    def _discover(self, ctx: Context, envs: list[str]) -> list[Observed]:
        out = []
        wanted = {names.alarm(e, ctx.suffix): e for e in envs}
        found = ctx.client("cloudwatch", envs[0]).describe_alarms(AlarmNames=list(wanted))["MetricAlarms"]
        tags = tagged(ctx, envs[0])
        for al in found:
            env = wanted.get(al["AlarmName"])
            t = tags.get(al["AlarmArn"], {})
            if env is None or not ctx.owns(t):
                continue
            props: dict[str, Any] = {k: al.get(k) for k in FIELDS}
            props["Dimensions"] = [{"Name": d["Name"], "Value": d["Value"]} for d in al.get("Dimensions", [])]
            out.append(Observed("alarm", "AWS::CloudWatch::Alarm", env, al["AlarmName"], al["AlarmName"], props, t,
                                attrs={"arn": al["AlarmArn"], "state": al.get("StateValue")}))
        return out

    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        cw = ctx.client("cloudwatch", want.env)
        p = want.props
        if have is None or any(have.props.get(k) != p[k] for k in FIELDS):
            kw: dict[str, Any] = {"AlarmName": want.name, **p}
            if have is None:
                kw["Tags"] = tag_list(want.tags)  # only taken on create
            cw.put_metric_alarm(**kw)
        if have is not None and any((have.tags or {}).get(k) != v for k, v in want.tags.items()):
            cw.tag_resource(ResourceARN=have.attrs["arn"], Tags=tag_list(want.tags))
        return Observed("alarm", want.type, want.env, want.name, want.name, dict(p), dict(want.tags),
                        attrs=have.attrs if have else {})

    def delete(self, ctx: Context, have: Observed) -> None:
        try:
            ctx.client("cloudwatch", have.env).delete_alarms(AlarmNames=[have.name])
        except Exception as e:
            if not is_code(e, ["ResourceNotFound"]):
                raise
