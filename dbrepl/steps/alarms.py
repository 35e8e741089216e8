"""alarms: the estate's alarm topic and the alarms that publish to it (issue 12).

- An SNS topic per estate (`dbrepl-alarms-<suffix>`, in the hub, encrypted with the hub's KMS
  key) and one e-mail subscription per address of `alarms.notify`.
- Per Aurora cluster the seed's AuroraReplicaLag alarm (values from the spec; it only carries
  data when a cluster has a replica, `aurora.instances` > 1).
- Per scheduled route (`sync.schedules`) a failure alarm (Failure Sum >= 1 in a schedule period,
  missing data not breaching) and a staleness alarm (Success Sum < 1 over 2 schedule periods,
  missing data breaching), on the `dbrepl` metrics the functions print (dbrepl.sync.metrics).
- Per function its Errors and Throttles alarms (AWS/Lambda).
- With schedules, one alarm on their dead-letter queue (issue 18): a message visible in it means
  Scheduler could not deliver a run (AWS/SQS ApproximateNumberOfMessagesVisible > 0).

Every alarm's AlarmActions and OKActions are the topic (alarms of environments outside the hub's
account and region have none: CloudWatch notifies only a topic of its own region)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbrepl import names
from dbrepl.aws import is_code, tag_list
from dbrepl.aws.tagging import tagged
from dbrepl.engine import SHARED, Change, Context, Observed, Resource, Step, Unknown, register
from dbrepl.spec import STALE_PERIODS
from dbrepl.sync import metrics

FIELDS = ("AlarmDescription", "MetricName", "Namespace", "Statistic", "Period", "EvaluationPeriods",
          "DatapointsToAlarm", "Threshold", "ComparisonOperator", "Dimensions", "TreatMissingData",
          "ActionsEnabled", "AlarmActions", "OKActions")
FUNCTION_PERIOD = 300  # the functions' Errors and Throttles: any in 5 minutes
FUNCTION_METRICS = ("Errors", "Throttles")
PENDING = "PendingConfirmation"
DESCRIBE_LIMIT = 100  # DescribeAlarms' AlarmNames


def topic_arn(ctx: Context) -> str:
    return (f"arn:{ctx.partition(SHARED)}:sns:{ctx.region(SHARED)}:{ctx.account_id(SHARED)}:"
            f"{names.alarm_topic(ctx.suffix)}")


def _dims(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in sorted(pairs)]


def sync_dimensions(ctx: Context, kind: str, source: str, target: str) -> list[dict[str, str]]:
    """The dimensions of a route's metrics, exactly as dbrepl.sync.metrics prints them."""
    values = {"Suffix": ctx.suffix, "Route": metrics.route(source, target), "Kind": kind}
    return _dims([(d, values[d]) for d in metrics.DIMENSIONS])


@register
class Alarms(Step):
    name = "alarms"
    depends_on = ("kms", "aurora")
    # The topic needs the hub's key; the alarms the topic's ARN and (the seed's order) the clusters.
    needs = {0: ("kms",), 1: ("aurora:1",)}
    permissions = ("cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms",
                   "cloudwatch:TagResource", "tag:GetResources",
                   "sns:CreateTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:DeleteTopic",
                   "sns:TagResource", "sns:Subscribe", "sns:Unsubscribe", "sns:ListSubscriptionsByTopic")

    # ------------------------------------------------------------------ desired
    def desired(self, ctx: Context) -> list[Resource]:
        s, hub = ctx.suffix, ctx.hub
        topic = ctx.attr(self.name, SHARED, "topic", "arn")
        name = names.alarm_topic(s)
        out = [Resource("topic", "AWS::SNS::Topic", SHARED, name,
                        {"KmsMasterKeyId": ctx.attr("kms", hub, "key", "arn")},
                        ctx.tags(SHARED, self.name, name, environment=SHARED), phase=0)]
        for email in ctx.spec.alarms.notify:
            out.append(Resource(f"sub:{email}", "AWS::SNS::Subscription", SHARED, email,
                                {"Protocol": "email", "Endpoint": email}, None, phase=1))
        hub_group = ctx.sessions.group_key(hub)
        a = ctx.spec.alarms
        for env in ctx.all_envs:
            actions: Any = [topic] if ctx.sessions.group_key(env) == hub_group else []
            out.append(self._alarm(ctx, env, "alarm", names.alarm(env, s), {
                "AlarmDescription": f"Alert when {env} Aurora replication lag exceeds {a.threshold / 1000:g} seconds",
                "MetricName": a.metric, "Namespace": "AWS/RDS", "Statistic": a.statistic, "Period": a.period,
                "EvaluationPeriods": a.evaluation_periods, "Threshold": float(a.threshold),
                "ComparisonOperator": "GreaterThanThreshold",
                "Dimensions": _dims([("DBClusterIdentifier", names.cluster(env, s))]),
                "TreatMissingData": a.treat_missing_data}, actions))
        for sc in ctx.spec.sync.schedules:
            dims = sync_dimensions(ctx, sc.kind, sc.source, sc.target)
            every = sc.every or sc.period
            n = names.sync_failure_alarm(sc.kind, sc.source, sc.target, s)
            out.append(self._alarm(ctx, SHARED, f"alarm:{n}", n, {
                "AlarmDescription": f"A scheduled {sc.kind} sync {sc.route} failed in the last {every}; "
                                    "see docs/monitoring.md",
                "MetricName": "Failure", "Namespace": metrics.NAMESPACE, "Statistic": "Sum",
                "Period": sc.seconds, "EvaluationPeriods": 1, "Threshold": 1.0,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Dimensions": dims,
                "TreatMissingData": "notBreaching"}, [topic]))
            n = names.sync_stale_alarm(sc.kind, sc.source, sc.target, s)
            out.append(self._alarm(ctx, SHARED, f"alarm:{n}", n, {
                "AlarmDescription": f"No successful {sc.kind} sync {sc.route} in {STALE_PERIODS} x {every}; "
                                    "see docs/monitoring.md",
                "MetricName": "Success", "Namespace": metrics.NAMESPACE, "Statistic": "Sum",
                "Period": sc.seconds, "EvaluationPeriods": STALE_PERIODS, "DatapointsToAlarm": STALE_PERIODS,
                "Threshold": 1.0, "ComparisonOperator": "LessThanThreshold", "Dimensions": dims,
                "TreatMissingData": "breaching"}, [topic]))
        if ctx.spec.sync.schedules:
            n = names.schedule_dead_letters_alarm(s)
            queue = names.schedule_dead_letters(s)
            out.append(self._alarm(ctx, SHARED, f"alarm:{n}", n, {
                "AlarmDescription": f"Scheduler could not deliver a scheduled sync: see the messages in {queue} "
                                    "and docs/monitoring.md",
                "MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS", "Statistic": "Maximum",
                "Period": FUNCTION_PERIOD, "EvaluationPeriods": 1, "Threshold": 0.0,
                "ComparisonOperator": "GreaterThanThreshold", "Dimensions": _dims([("QueueName", queue)]),
                "TreatMissingData": "notBreaching"}, [topic]))
        for kind in names.FUNCTIONS:
            fn = names.function(kind, s)
            for metric in FUNCTION_METRICS:
                n = names.function_alarm(kind, metric, s)
                out.append(self._alarm(ctx, SHARED, f"alarm:{n}", n, {
                    "AlarmDescription": f"The {kind} sync function {fn} reported {metric.lower()}; "
                                        "see docs/monitoring.md",
                    "MetricName": metric, "Namespace": "AWS/Lambda", "Statistic": "Sum",
                    "Period": FUNCTION_PERIOD, "EvaluationPeriods": 1, "Threshold": 1.0,
                    "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                    "Dimensions": _dims([("FunctionName", fn)]), "TreatMissingData": "notBreaching"}, [topic]))
        return out

    def _alarm(self, ctx: Context, env: str, key: str, name: str, props: dict[str, Any], actions: Any) -> Resource:
        full = {"DatapointsToAlarm": None, **props, "ActionsEnabled": True,
                "AlarmActions": actions, "OKActions": actions}
        environment = SHARED if env == SHARED else None
        return Resource(key, "AWS::CloudWatch::Alarm", env, name, full,
                        ctx.tags(env, self.name, name, environment=environment), phase=1)

    # ------------------------------------------------------------------ discover
    def discover(self, ctx: Context) -> list[Observed]:
        return ctx.each_group(lambda envs: self._discover(ctx, envs))

    def _discover(self, ctx: Context, envs: list[str]) -> list[Observed]:
        s = ctx.suffix
        with_shared = ctx.hub in envs
        tags = tagged(ctx, envs[0])
        wanted = {names.alarm(e, s): e for e in envs}
        if with_shared:
            wanted.update({r.name: SHARED for r in self.desired(ctx)
                           if r.type == "AWS::CloudWatch::Alarm" and r.env == SHARED})
        # And what our tags say is ours (an alarm of a schedule since removed from the spec).
        for arn, t in tags.items():
            tag_env = t.get("dbrepl:env", "")
            mine = tag_env in envs or (tag_env == SHARED and with_shared)
            if ":alarm:" in arn and t.get("dbrepl:step") == self.name and mine:
                wanted.setdefault(arn.split(":alarm:", 1)[1], tag_env)
        cw = ctx.client("cloudwatch", envs[0])
        found: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=3) as pool:
            names_list = sorted(wanted)
            parts = [names_list[i:i + DESCRIBE_LIMIT] for i in range(0, len(names_list), DESCRIBE_LIMIT)]
            f_alarms = [pool.submit(lambda p: cw.describe_alarms(AlarmNames=p)["MetricAlarms"], p) for p in parts]
            f_topic = pool.submit(self._discover_topic, ctx, tags) if with_shared else None
            for f in f_alarms:
                found += f.result()
            out = f_topic.result() if f_topic is not None else []
        for al in found:
            env = wanted.get(al["AlarmName"])
            t = tags.get(al["AlarmArn"], {})
            if env is None or not ctx.owns(t):
                continue
            props: dict[str, Any] = {k: al.get(k) for k in FIELDS}
            props["Dimensions"] = _dims([(d["Name"], d["Value"]) for d in al.get("Dimensions", [])])
            key = "alarm" if env != SHARED and al["AlarmName"] == names.alarm(env, s) else f"alarm:{al['AlarmName']}"
            out.append(Observed(key, "AWS::CloudWatch::Alarm", env, al["AlarmName"], al["AlarmName"], props, t,
                                attrs={"arn": al["AlarmArn"], "state": al.get("StateValue")}, phase=1))
        return out

    def _discover_topic(self, ctx: Context, tags: dict[str, dict[str, str]]) -> list[Observed]:
        sns = ctx.client("sns", SHARED)
        arn = topic_arn(ctx)
        try:
            attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        except Exception as e:
            if is_code(e, ["NotFound", "NotFoundException"]):
                return []
            raise
        t = tags.get(arn, {})
        if not ctx.owns(t):
            return []
        out = [Observed("topic", "AWS::SNS::Topic", SHARED, names.alarm_topic(ctx.suffix), arn,
                        {"KmsMasterKeyId": attrs.get("KmsMasterKeyId")}, t, attrs={"arn": arn}, phase=0)]
        wanted = set(ctx.spec.alarms.notify)
        subs = sns.list_subscriptions_by_topic(TopicArn=arn)  # the first page: 100 subscriptions
        for sub in subs.get("Subscriptions", []):
            if sub.get("Protocol") != "email":
                continue  # someone else's (chatbot, https...): not dbrepl's to manage
            email, sub_arn = sub["Endpoint"], sub["SubscriptionArn"]
            if sub_arn == PENDING and email not in wanted:
                continue  # AWS cannot delete a pending subscription; it expires after 3 days
            out.append(Observed(f"sub:{email}", "AWS::SNS::Subscription", SHARED, email, sub_arn,
                                {"Protocol": "email", "Endpoint": email}, None,
                                attrs={"pending": sub_arn == PENDING}, phase=1))
        return out

    # ------------------------------------------------------------------ apply
    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        if want.type == "AWS::SNS::Topic":
            return self._apply_topic(ctx, want, have)
        if want.type == "AWS::SNS::Subscription":
            arn = ctx.attr(self.name, SHARED, "topic", "arn")
            assert not isinstance(arn, Unknown)
            got = ctx.client("sns", SHARED).subscribe(TopicArn=arn, Protocol="email", Endpoint=want.name,
                                                      ReturnSubscriptionArn=False)
            sub_arn = got.get("SubscriptionArn") or PENDING
            return Observed(want.key, want.type, SHARED, want.name, sub_arn, dict(want.props), None,
                            attrs={"pending": sub_arn.lower().startswith("pending")}, phase=1)
        cw = ctx.client("cloudwatch", want.env)
        p = want.props
        if have is None or any(have.props.get(k) != p[k] for k in FIELDS):
            kw: dict[str, Any] = {"AlarmName": want.name, **{k: v for k, v in p.items() if v is not None}}
            if have is None:
                kw["Tags"] = tag_list(want.tag_dict)  # only taken on create
            cw.put_metric_alarm(**kw)
        if have is not None and any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
            cw.tag_resource(ResourceARN=have.attrs["arn"], Tags=tag_list(want.tag_dict))
        return Observed(want.key, want.type, want.env, want.name, want.name, dict(p), dict(want.tag_dict),
                        attrs=have.attrs if have else {}, phase=1)

    def _apply_topic(self, ctx: Context, want: Resource, have: Observed | None) -> Observed:
        sns = ctx.client("sns", SHARED)
        key = want.props["KmsMasterKeyId"]
        if have is None:
            # CreateTopic answers the existing topic's ARN when the name and attributes match.
            arn = sns.create_topic(Name=want.name, Attributes={"KmsMasterKeyId": key},
                                   Tags=tag_list(want.tag_dict))["TopicArn"]
        else:
            arn = have.id
            if have.props.get("KmsMasterKeyId") != key:
                sns.set_topic_attributes(TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=key)
            if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                sns.tag_resource(ResourceArn=arn, Tags=tag_list(want.tag_dict))
        return Observed("topic", want.type, SHARED, want.name, arn, dict(want.props), dict(want.tag_dict),
                        attrs={"arn": arn}, phase=0)

    # ------------------------------------------------------------------ delete
    def delete(self, ctx: Context, have: Observed) -> None:
        try:
            if have.type == "AWS::SNS::Topic":
                ctx.client("sns", SHARED).delete_topic(TopicArn=have.id)
            elif have.type == "AWS::SNS::Subscription":
                if have.attrs.get("pending") or have.id == PENDING:
                    return  # AWS cannot delete it; it expires 3 days after it was sent (docs/monitoring.md)
                ctx.client("sns", SHARED).unsubscribe(SubscriptionArn=have.id)
            else:
                ctx.client("cloudwatch", have.env).delete_alarms(AlarmNames=[have.name])
        except Exception as e:
            if not is_code(e, ["ResourceNotFound", "NotFound", "NotFoundException"]):
                raise
