"""Issue 12 (points 1, 3, 4): schedules, the alarm topic and its subscriptions, alarms with
actions, the dashboard: apply makes them, a no-op plan after apply is empty, drift in each is
found and repaired, destroy removes them. moto in-process (tests/aws/conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dbrepl.spec import Spec
from dbrepl.sync import metrics
from tests.aws.harness import fast_spec

HUB_KEY = "alias/staging-key-{s}"
EMAILS = ["ops@example.com", "dba@example.org"]


def _spec(**sync_alarms: Any) -> Spec:
    """The default spec with sync.schedules / alarms.notify replaced (validated as a file would be)."""
    data = fast_spec().model_dump(mode="json", by_alias=True)
    for k, v in sync_alarms.items():
        section, key = k.split("__")
        data[section][key] = v
    return Spec.model_validate(data)


SCHEDULES = [
    {"route": "dev->staging", "kind": "data", "every": "1 hour"},
    {"route": "staging->prod", "kind": "schema", "cron": "0 3 ? * MON-FRI *", "period": "3 days",
     "allow_protected": True},
]


def _estate(estate: Any, **kw: Any) -> Any:
    estate.spec = _spec(sync__schedules=SCHEDULES, alarms__notify=EMAILS, **kw)
    return estate


@pytest.fixture
def obs(estate: Any, faults: Any) -> Any:
    """An estate with two schedules (one cron, into protected prod) and two addresses; destroyed
    afterwards, so later tests sharing the session's mock see no extra VPCs."""
    e = _estate(estate)
    yield e
    faults.rules.clear()
    e.destroy(include_protected=True)


def _topic(estate: Any) -> str:
    return f"arn:aws:sns:us-east-1:123456789012:dbrepl-alarms-{estate.suffix}"


def _alarms(estate: Any) -> dict[str, dict]:
    cw = estate.client("cloudwatch")
    return {a["AlarmName"]: a for a in cw.describe_alarms(MaxRecords=100)["MetricAlarms"]
            if a["AlarmName"].endswith(f"-{estate.suffix}")}


def _fn_arn(estate: Any, kind: str) -> str:
    name = {"data": "data-replication", "schema": "schema-replication"}[kind]
    return estate.client("lambda").get_function(FunctionName=f"db-sync-{name}-{estate.suffix}")[
        "Configuration"]["FunctionArn"]


def test_apply_makes_schedules_topic_alarms_and_dashboard_and_a_no_op_plan_after(obs):
    e = obs
    s = e.suffix
    e.apply()

    # Schedules: one group, one schedule per entry, invoking the route's function with its event.
    sch = e.client("scheduler")
    group = sch.get_schedule_group(Name=f"dbrepl-{s}")
    tags = {t["Key"]: t["Value"] for t in sch.list_tags_for_resource(ResourceArn=group["Arn"])["Tags"]}
    assert tags["dbrepl:suffix"] == s and tags["dbrepl:step"] == "schedules"
    role_arn = f"arn:aws:iam::123456789012:role/db-sync-scheduler-role-{s}"
    data = sch.get_schedule(Name=f"data-dev-to-staging-{s}", GroupName=f"dbrepl-{s}")
    assert data["ScheduleExpression"] == "rate(1 hour)" and data["State"] == "ENABLED"
    assert data["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert data["Target"]["Arn"] == _fn_arn(e, "data") and data["Target"]["RoleArn"] == role_arn
    assert json.loads(data["Target"]["Input"]) == {"source_env": "dev", "target_env": "staging",
                                                   "tables": ["app.lookup_data"]}
    schema = sch.get_schedule(Name=f"schema-staging-to-prod-{s}", GroupName=f"dbrepl-{s}")
    assert schema["ScheduleExpression"] == "cron(0 3 ? * MON-FRI *)"
    assert schema["Target"]["Arn"] == _fn_arn(e, "schema")
    assert json.loads(schema["Target"]["Input"]) == {"source_env": "staging", "target_env": "prod"}
    # Bounded retries (issue 18): no re-delivery by Scheduler, no event older than one period (3 days
    # for the cron entry is more than Scheduler's 1 day: 1 day); Lambda does not retry either.
    assert data["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 3600}
    assert schema["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 86400}
    # Undelivered runs go to the estate's dead-letter queue: encrypted, tagged, the role may send to it
    # (Scheduler sends with the execution role), and its alarm tells the topic of any message in it.
    sqs = e.client("sqs")
    url = sqs.get_queue_url(QueueName=f"dbrepl-schedules-dlq-{s}")["QueueUrl"]
    qattrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert qattrs["SqsManagedSseEnabled"] == "true" and qattrs["MessageRetentionPeriod"] == "1209600"
    qtags = sqs.list_queue_tags(QueueUrl=url)["Tags"]
    assert qtags["dbrepl:suffix"] == s and qtags["dbrepl:step"] == "schedules" and qtags["dbrepl:env"] == "shared"
    for d in (data, schema):
        assert d["Target"]["DeadLetterConfig"] == {"Arn": qattrs["QueueArn"]}
    send = e.client("iam").get_role_policy(RoleName=f"db-sync-scheduler-role-{s}",
                               PolicyName="InvokeSyncFunctions")["PolicyDocument"]["Statement"]
    assert [st for st in send if st.get("Sid") == "SendDeadLetters"] == [
        {"Sid": "SendDeadLetters", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [qattrs["QueueArn"]]}]
    lam = e.client("lambda")
    for kind in ("data", "schema"):
        cfg = lam.get_function_event_invoke_config(FunctionName=f"db-sync-{kind}-replication-{s}")
        assert (cfg["MaximumRetryAttempts"], cfg["MaximumEventAgeInSeconds"]) == (0, 3600), kind

    # The scheduler's role: trusts the scheduler of this account only; invokes exactly these functions.
    iam = e.client("iam")
    trust = iam.get_role(RoleName=f"db-sync-scheduler-role-{s}")["Role"]["AssumeRolePolicyDocument"]
    stmt = trust["Statement"][0]
    assert stmt["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert stmt["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    pol = iam.get_role_policy(RoleName=f"db-sync-scheduler-role-{s}", PolicyName="InvokeSyncFunctions")
    [allow] = [st for st in pol["PolicyDocument"]["Statement"] if st.get("Sid") == "InvokeScheduledFunctions"]
    assert allow["Action"] == ["lambda:InvokeFunction"]
    assert sorted(allow["Resource"]) == sorted([_fn_arn(e, "data"), _fn_arn(e, "schema")])

    # The topic: encrypted with the hub's key, which lets CloudWatch use it; a subscription per address.
    sns, kms = e.client("sns"), e.client("kms")
    attrs = sns.get_topic_attributes(TopicArn=_topic(e))["Attributes"]
    hub_key = kms.describe_key(KeyId=HUB_KEY.format(s=s))["KeyMetadata"]
    assert attrs["KmsMasterKeyId"] == hub_key["Arn"]
    policy = json.loads(kms.get_key_policy(KeyId=hub_key["KeyId"], PolicyName="default")["Policy"])
    cw_stmt = [st for st in policy["Statement"] if st.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cw_stmt and set(cw_stmt[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    dev_key = kms.describe_key(KeyId=f"alias/dev-key-{s}")["KeyMetadata"]["KeyId"]
    dev_policy = kms.get_key_policy(KeyId=dev_key, PolicyName="default")["Policy"]
    assert "cloudwatch.amazonaws.com" not in dev_policy  # the hub's key only
    subs = sns.list_subscriptions_by_topic(TopicArn=_topic(e))["Subscriptions"]
    assert sorted((x["Protocol"], x["Endpoint"]) for x in subs) == sorted(("email", m) for m in EMAILS)

    # Alarms: the seed's three, failure and staleness per scheduled route, Errors/Throttles per function;
    # every one notifies the topic when it fires and when it clears.
    alarms = _alarms(e)
    assert sorted(alarms) == sorted([
        f"dev-aurora-replication-lag-{s}", f"staging-aurora-replication-lag-{s}", f"prod-aurora-replication-lag-{s}",
        f"data-sync-dev-to-staging-failure-{s}", f"data-sync-dev-to-staging-stale-{s}",
        f"schema-sync-staging-to-prod-failure-{s}", f"schema-sync-staging-to-prod-stale-{s}",
        f"db-sync-data-replication-errors-{s}", f"db-sync-data-replication-throttles-{s}",
        f"db-sync-schema-replication-errors-{s}", f"db-sync-schema-replication-throttles-{s}",
        f"schedules-dead-letters-{s}"])
    for a in alarms.values():
        assert a["AlarmActions"] == [_topic(e)] and a["OKActions"] == [_topic(e)], a["AlarmName"]
        assert a["ActionsEnabled"] is True
    fail = alarms[f"data-sync-dev-to-staging-failure-{s}"]
    assert (fail["Namespace"], fail["MetricName"], fail["Statistic"]) == (metrics.NAMESPACE, "Failure", "Sum")
    assert (fail["Period"], fail["EvaluationPeriods"], fail["Threshold"]) == (3600, 1, 1.0)
    assert fail["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert fail["TreatMissingData"] == "notBreaching"
    dims = {d["Name"]: d["Value"] for d in fail["Dimensions"]}
    assert dims == {"Suffix": s, "Route": metrics.route("dev", "staging"), "Kind": "data"}
    assert set(dims) == set(metrics.DIMENSIONS)
    stale = alarms[f"schema-sync-staging-to-prod-stale-{s}"]
    assert (stale["MetricName"], stale["Statistic"], stale["ComparisonOperator"]) == (
        "Success", "Sum", "LessThanThreshold")
    assert (stale["Period"], stale["EvaluationPeriods"], stale["DatapointsToAlarm"]) == (3 * 86400, 2, 2)
    assert stale["Threshold"] == 1.0 and stale["TreatMissingData"] == "breaching"
    errs = alarms[f"db-sync-data-replication-errors-{s}"]
    assert (errs["Namespace"], errs["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errs["Dimensions"] == [{"Name": "FunctionName", "Value": f"db-sync-data-replication-{s}"}]
    assert {fail["MetricName"], stale["MetricName"]} <= {n for n, _ in metrics.METRICS}

    # The dashboard: sync success and rows per route, function duration and errors, cluster CPU,
    # connections and freeable memory.
    body = json.loads(e.client("cloudwatch").get_dashboard(DashboardName=f"dbrepl-{s}")["DashboardBody"])
    text = json.dumps(body)
    for want in ("Success", "Failure", "RowsInserted", "RowsUpdated", "RowsDeleted", f'Suffix=\\"{s}\\"',
                 "Duration", "Errors", "Throttles", "CPUUtilization", "DatabaseConnections", "FreeableMemory",
                 f"db-sync-data-replication-{s}", f"prod-aurora-cluster-{s}", metrics.NAMESPACE):
        assert want in text, want

    # A no-op plan after apply: nothing to do, one DescribeAlarms for all eleven alarms.
    e.log.clear()
    assert e.plan().changes == []
    counted = e.log.counter()
    assert counted["DescribeAlarms"] == 1
    assert counted["GetSchedule"] == 2 and counted["ListSchedules"] == 1 and counted["GetDashboard"] == 1
    e.log.clear()
    assert e.apply().changes == [] and e.log.mutating == []


def test_drift_in_each_is_found_and_repaired(obs):
    e = obs
    s = e.suffix
    e.apply()
    sch, sns, cw, iam = e.client("scheduler"), e.client("sns"), e.client("cloudwatch"), e.client("iam")
    group = f"dbrepl-{s}"

    # A schedule disabled, its expression and input changed; the other pointed at another function.
    d = sch.get_schedule(Name=f"data-dev-to-staging-{s}", GroupName=group)
    sch.update_schedule(Name=d["Name"], GroupName=group, ScheduleExpression="rate(5 minutes)", State="DISABLED",
                        FlexibleTimeWindow={"Mode": "OFF"},
                        Target={**d["Target"], "Input": json.dumps({"source_env": "dev", "target_env": "prod"})})
    d2 = sch.get_schedule(Name=f"schema-staging-to-prod-{s}", GroupName=group)
    sch.update_schedule(Name=d2["Name"], GroupName=group, ScheduleExpression=d2["ScheduleExpression"],
                        State="ENABLED", FlexibleTimeWindow={"Mode": "OFF"},
                        Target={**d2["Target"], "Arn": _fn_arn(e, "data"),
                                "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}})
    # The dead-letter queue's encryption turned off.
    url = e.client("sqs").get_queue_url(QueueName=f"dbrepl-schedules-dlq-{s}")["QueueUrl"]
    e.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"SqsManagedSseEnabled": "false"})
    # Lambda's default retries back on one function (its async config deleted; moto's
    # PutFunctionEventInvokeConfig does not replace an existing config as AWS's does).
    e.client("lambda").delete_function_event_invoke_config(FunctionName=f"db-sync-data-replication-{s}")
    # The scheduler's role may invoke anything.
    iam.put_role_policy(RoleName=f"db-sync-scheduler-role-{s}", PolicyName="InvokeSyncFunctions",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}]}))
    # The topic's key swapped for AWS's managed key; a subscription removed.
    sns.set_topic_attributes(TopicArn=_topic(e), AttributeName="KmsMasterKeyId", AttributeValue="alias/aws/sns")
    sub = next(x for x in sns.list_subscriptions_by_topic(TopicArn=_topic(e))["Subscriptions"]
               if x["Endpoint"] == EMAILS[0])
    sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    # An alarm without actions, another with a higher threshold; the dashboard edited by hand.
    a = _alarms(e)
    fail = a[f"data-sync-dev-to-staging-failure-{s}"]
    keep = ("AlarmName", "AlarmDescription", "MetricName", "Namespace", "Statistic", "Period", "EvaluationPeriods",
            "Threshold", "ComparisonOperator", "Dimensions", "TreatMissingData")
    cw.put_metric_alarm(**{k: fail[k] for k in keep})  # PutMetricAlarm replaces: no actions now
    lag = a[f"dev-aurora-replication-lag-{s}"]
    cw.put_metric_alarm(**{**{k: lag[k] for k in keep}, "Threshold": 999999.0,
                           "AlarmActions": lag["AlarmActions"], "OKActions": lag["OKActions"]})
    cw.put_dashboard(DashboardName=f"dbrepl-{s}", DashboardBody=json.dumps({"widgets": []}))

    plan = e.plan()
    found = {(c.step, c.name): c for c in plan.changes}
    assert {c.action for c in plan.changes} == {"update", "create"}
    sd = found[("schedules", f"data-dev-to-staging-{s}")].diff
    assert set(sd) == {"ScheduleExpression", "State", "Target"}
    assert set(found[("schedules", f"schema-staging-to-prod-{s}")].diff) == {"Target"}
    assert set(found[("schedules", f"db-sync-scheduler-role-{s}")].diff) == {"Policies"}
    assert set(found[("alarms", f"dbrepl-alarms-{s}")].diff) == {"KmsMasterKeyId"}
    assert found[("alarms", EMAILS[0])].action == "create"
    assert set(found[("alarms", f"data-sync-dev-to-staging-failure-{s}")].diff) == {"AlarmActions", "OKActions"}
    assert set(found[("alarms", f"dev-aurora-replication-lag-{s}")].diff) == {"Threshold"}
    assert set(found[("dashboard", f"dbrepl-{s}")].diff) == {"DashboardBody"}
    fn = found[("lambdas", f"db-sync-data-replication-{s}")].diff
    assert set(fn) == {"EventInvokeConfig"}
    assert fn["EventInvokeConfig"] == (None, {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 3600})
    assert found[("schedules", f"dbrepl-schedules-dlq-{s}")].diff == {"SqsManagedSseEnabled": ("false", "true")}
    assert len(plan.changes) == 10, [(c.step, c.name) for c in plan.changes]

    e.apply()
    assert e.plan().changes == []
    d = sch.get_schedule(Name=f"data-dev-to-staging-{s}", GroupName=group)
    assert (d["ScheduleExpression"], d["State"]) == ("rate(1 hour)", "ENABLED")
    assert _alarms(e)[f"data-sync-dev-to-staging-failure-{s}"]["AlarmActions"] == [_topic(e)]
    d2 = sch.get_schedule(Name=f"schema-staging-to-prod-{s}", GroupName=group)
    assert d2["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    cfg = e.client("lambda").get_function_event_invoke_config(FunctionName=f"db-sync-data-replication-{s}")
    assert cfg["MaximumRetryAttempts"] == 0
    assert e.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["SqsManagedSseEnabled"])[
        "Attributes"]["SqsManagedSseEnabled"] == "true"


def test_removed_entries_are_deleted_and_destroy_removes_all(obs, faults):
    e = obs
    s = e.suffix
    e.apply()
    # The schema schedule and one address leave the spec: their schedule, alarms and subscription go.
    e.spec = _spec(sync__schedules=SCHEDULES[:1], alarms__notify=EMAILS[1:])
    plan = e.plan()
    gone = sorted(c.name for c in plan.changes if c.action == "delete")
    assert gone == sorted([EMAILS[0], f"schema-staging-to-prod-{s}", f"schema-sync-staging-to-prod-failure-{s}",
                           f"schema-sync-staging-to-prod-stale-{s}"])
    role = [c for c in plan.changes if c.name == f"db-sync-scheduler-role-{s}"]
    assert role and role[0].action == "update"  # it may no longer invoke the schema function
    e.apply()
    assert e.plan().changes == []
    assert f"schema-sync-staging-to-prod-stale-{s}" not in _alarms(e)
    subs = e.client("sns").list_subscriptions_by_topic(TopicArn=_topic(e))["Subscriptions"]
    assert [x["Endpoint"] for x in subs] == EMAILS[1:]

    # No schedules at all: no group, no schedule, no role, no dead-letter queue nor its alarm.
    e.spec = _spec(sync__schedules=[], alarms__notify=EMAILS[1:])
    deleted = {(c.type, c.name) for c in e.apply().changes if c.action == "delete"}
    assert {"AWS::Scheduler::Schedule", "AWS::Scheduler::ScheduleGroup", "AWS::IAM::Role",
            "AWS::SQS::Queue"} <= {t for t, _ in deleted}
    assert ("AWS::CloudWatch::Alarm", f"schedules-dead-letters-{s}") in deleted
    assert e.plan().changes == []

    # Back again at once: SQS keeps a deleted queue's name 60 s (moto does not), CreateQueue is retried.
    faults.fail("CreateQueue", "AWS.SimpleQueueService.QueueDeletedRecently",
                  "You must wait 60 seconds after deleting a queue before you can create another with the same name.",
                  times=2)
    e.spec = _spec(sync__schedules=SCHEDULES, alarms__notify=EMAILS)
    e.apply()
    assert faults.injected["CreateQueue"] == 2
    e.destroy(include_protected=True)
    assert _alarms(e) == {}
    assert not [t for t in e.client("sns").list_topics()["Topics"] if t["TopicArn"] == _topic(e)]
    assert not [g for g in e.client("scheduler").list_schedule_groups()["ScheduleGroups"] if g["Name"] == f"dbrepl-{s}"]
    assert not [u for u in e.client("sqs").list_queues().get("QueueUrls", []) if u.endswith(f"-dlq-{s}")]
    with pytest.raises(Exception, match="ResourceNotFound"):
        e.client("cloudwatch").get_dashboard(DashboardName=f"dbrepl-{s}")
    assert e.plan().summary["delete"] == 0


def _pending(*endpoints: str) -> Any:
    """Make ListSubscriptionsByTopic answer as AWS does for unconfirmed e-mail subscriptions
    (moto confirms at once)."""

    def hook(client: Any) -> None:
        def after(parsed: dict, **kw: Any) -> None:
            for x in parsed.get("Subscriptions", []):
                if x.get("Endpoint") in endpoints:
                    x["SubscriptionArn"] = "PendingConfirmation"

        client.meta.events.register("after-call.sns.ListSubscriptionsByTopic", after)

    return hook


def test_pending_subscriptions_are_neither_resubscribed_nor_deleted(obs):
    e = obs
    e.apply()
    e.sessions.hooks.append(_pending(*EMAILS))
    e.sessions._clients.clear()  # new clients carry the hook
    # Pending and still wanted: exists, nothing to do (no second confirmation mail).
    assert [c for c in e.plan().changes if c.type == "AWS::SNS::Subscription"] == []
    # Pending and no longer wanted: AWS cannot delete it (it expires in 3 days); the plan does not pretend.
    e.spec = _spec(sync__schedules=SCHEDULES, alarms__notify=EMAILS[1:])
    assert [c for c in e.plan().changes if c.type == "AWS::SNS::Subscription"] == []


def test_schedule_retries_while_the_new_role_propagates(obs, faults):
    e = obs
    faults.fail("CreateSchedule", "ValidationException",
                "The execution role you provide must allow AWS EventBridge Scheduler to assume the role.", times=2)
    e.apply()
    assert faults.injected["CreateSchedule"] == 2
    assert e.plan().changes == []


def test_a_schedule_refused_for_another_reason_fails_the_apply(obs, faults):
    e = obs
    faults.fail("CreateSchedule", "ValidationException", "Invalid Schedule Expression.", times=1)
    with pytest.raises(Exception, match="Invalid Schedule Expression"):
        e.apply()
    assert faults.injected["CreateSchedule"] == 1
