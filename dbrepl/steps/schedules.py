"""schedules: the syncs that run by themselves (issue 12, `sync.schedules`).

An EventBridge Scheduler schedule group per estate (`dbrepl-<suffix>`, tagged: ownership),
one schedule per entry invoking the route's function (data or schema) with the route's event
as its input (FlexibleTimeWindow OFF, times in UTC), and the scheduler's execution role
(`db-sync-scheduler-role-<suffix>`: trusts scheduler.amazonaws.com from this account only, may
invoke exactly the functions the schedules target). No schedules in the spec: none of these.

Issue 18: every schedule has a bounded RetryPolicy and a dead-letter queue, the SQS queue
`dbrepl-schedules-dlq-<suffix>` (standard, SSE-SQS encrypted, messages kept 14 days), where
Scheduler puts an invocation it could not deliver. Scheduler sends it with the schedule's
execution role, whose policy allows `sqs:SendMessage` on this queue only (the queue and the role
are in one account: no queue policy is needed). The alarms step watches the queue."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbrepl import names
from dbrepl.aws import is_code, or_none, paginate, tag_dict, tag_list
from dbrepl.aws.policy import normalise_policy
from dbrepl.engine import SHARED, Change, Context, Observed, Resource, Step, Unknown, register
from dbrepl.spec import Schedule

INLINE_POLICY = "InvokeSyncFunctions"
# Dead letters stay the longest SQS keeps a message (14 days), to be read after the alarm fired.
QUEUE_ATTRIBUTES = {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "1209600"}
QUEUE_GONE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
# SQS keeps a deleted queue's name for 60 seconds: CreateQueue fails until then (apply after destroy).
QUEUE_DELETED_RECENTLY = ("AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently")
# Right after CreateRole, Scheduler may not yet be able to assume the role (IAM propagation).
ASSUME_HINT = "assume"


# Scheduler's default RetryPolicy re-delivers a failed invocation for 24 hours (185 attempts). It
# invokes Lambda asynchronously, so a failure it sees is a delivery failure (throttled, function
# missing); the sync's own failure is Lambda's, whose retries lambdas.EVENT_INVOKE_CONFIG turns off.
# No retry either here: the next scheduled run is the retry, and the failure and staleness alarms
# say a run was missed. An event is not delivered later than one schedule period (60 s to 1 day,
# Scheduler's bounds): by then the next run is due (docs/monitoring.md).
MAXIMUM_RETRY_ATTEMPTS = 0


def retry_policy(sc: Schedule) -> dict[str, int]:
    return {"MaximumRetryAttempts": MAXIMUM_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": min(max(sc.seconds, 60), 86400)}


def trust(account: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}


def event(ctx: Context, sc: Schedule) -> dict[str, Any]:
    """The route's event, as `dbrepl sync` sends it: the data function's names the spec's
    reference tables; the schema function's, source and target."""
    out: dict[str, Any] = {"source_env": sc.source, "target_env": sc.target}
    if sc.kind == "data" and ctx.spec.sync.reference_tables:
        out["tables"] = list(ctx.spec.sync.reference_tables)
    return out


def queue_arn(ctx: Context) -> str:
    return (f"arn:{ctx.partition(SHARED)}:sqs:{ctx.region(SHARED)}:{ctx.account_id(SHARED)}:"
            f"{names.schedule_dead_letters(ctx.suffix)}")


def schedule_key(name: str) -> str:
    return f"schedule:{name}"


@register
class Schedules(Step):
    name = "schedules"
    depends_on = ("lambdas",)
    shared_only = True  # everything of it is in the hub
    permissions = ("iam:GetRole", "iam:CreateRole", "iam:DeleteRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy",
                   "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
                   "scheduler:CreateScheduleGroup", "scheduler:GetScheduleGroup",
                   "scheduler:DeleteScheduleGroup", "scheduler:ListTagsForResource", "scheduler:TagResource",
                   "scheduler:ListSchedules", "scheduler:GetSchedule", "scheduler:CreateSchedule",
                   "scheduler:UpdateSchedule", "scheduler:DeleteSchedule",
                   "sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes",
                   "sqs:ListQueueTags", "sqs:TagQueue", "sqs:DeleteQueue")

    # ------------------------------------------------------------------ desired
    def desired(self, ctx: Context) -> list[Resource]:
        s = ctx.suffix
        entries = ctx.spec.sync.schedules
        if not entries:
            return []
        account = ctx.account_id(SHARED)
        role = names.scheduler_role(s)
        role_arn = f"arn:{ctx.partition(SHARED)}:iam::{account}:role/{role}"
        fn_arn = {k: ctx.attr("lambdas", SHARED, f"fn-{k}", "arn") for k in names.FUNCTIONS}
        targeted = [fn_arn[k] for k in names.FUNCTIONS if any(sc.kind == k for sc in entries)]
        if not any(isinstance(a, Unknown) for a in targeted):
            targeted = sorted(targeted)
        dlq = queue_arn(ctx)
        policy = {"Version": "2012-10-17", "Statement": [
            {"Sid": "InvokeScheduledFunctions", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
             "Resource": targeted},
            {"Sid": "SendDeadLetters", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [dlq]}]}
        group = names.schedule_group(s)
        queue = names.schedule_dead_letters(s)
        out = [
            Resource("role", "AWS::IAM::Role", SHARED, role,
                     {"AssumeRolePolicyDocument": normalise_policy(trust(account)),
                      "Policies": {INLINE_POLICY: normalise_policy(policy)}},
                     ctx.tags(SHARED, self.name, role, environment=SHARED), phase=0),
            Resource("group", "AWS::Scheduler::ScheduleGroup", SHARED, group, {"State": "ACTIVE"},
                     ctx.tags(SHARED, self.name, group, environment=SHARED), phase=0),
            Resource("queue", "AWS::SQS::Queue", SHARED, queue, dict(QUEUE_ATTRIBUTES),
                     ctx.tags(SHARED, self.name, queue, environment=SHARED), phase=0),
        ]
        for sc in entries:
            n = names.schedule(sc.kind, sc.source, sc.target, s)
            out.append(Resource(
                schedule_key(n), "AWS::Scheduler::Schedule", SHARED, n,
                {"ScheduleExpression": sc.expression, "ScheduleExpressionTimezone": "UTC", "State": "ENABLED",
                 "FlexibleTimeWindow": {"Mode": "OFF"},
                 "Target": {"Arn": fn_arn[sc.kind], "RoleArn": role_arn, "Input": event(ctx, sc),
                            "RetryPolicy": retry_policy(sc), "DeadLetterConfig": {"Arn": dlq}}},
                None, phase=1))  # a schedule carries no tags; the group it is in does
        return out

    # ------------------------------------------------------------------ discover
    def discover(self, ctx: Context) -> list[Observed]:
        s = ctx.suffix
        iam, sch = ctx.client("iam", SHARED), ctx.client("scheduler", SHARED)
        role, group = names.scheduler_role(s), names.schedule_group(s)
        with ThreadPoolExecutor(max_workers=4) as pool:
            f_queue = pool.submit(self._discover_queue, ctx)
            f_role = pool.submit(or_none, lambda: iam.get_role(RoleName=role)["Role"], "NoSuchEntity")
            f_pol = pool.submit(or_none, lambda: iam.get_role_policy(RoleName=role, PolicyName=INLINE_POLICY),
                                         "NoSuchEntity")
            f_group = pool.submit(or_none, lambda: sch.get_schedule_group(Name=group), "ResourceNotFoundException")
            r, pol, g = f_role.result(), f_pol.result(), f_group.result()
            out: list[Observed] = f_queue.result()
        if r is not None and ctx.owns(tag_dict(r.get("Tags"))):
            policies = {INLINE_POLICY: normalise_policy(pol["PolicyDocument"])} if pol else {}
            out.append(Observed("role", "AWS::IAM::Role", SHARED, role, r["Arn"],
                                {"AssumeRolePolicyDocument":
                                     normalise_policy(r.get("AssumeRolePolicyDocument")),
                                 "Policies": policies},
                                tag_dict(r.get("Tags")), attrs={"arn": r["Arn"]}, phase=0))
        if g is None or g.get("State") == "DELETING":
            return out
        tags = tag_dict(sch.list_tags_for_resource(ResourceArn=g["Arn"]).get("Tags"))
        if not ctx.owns(tags):
            return out
        out.append(Observed("group", "AWS::Scheduler::ScheduleGroup", SHARED, group, g["Arn"],
                            {"State": g.get("State")}, tags, attrs={"arn": g["Arn"]}, phase=0))
        listed = paginate(sch, "list_schedules", "Schedules", GroupName=group)
        wanted = {sc_name for sc_name in (names.schedule(sc.kind, sc.source, sc.target, s)
                                          for sc in ctx.spec.sync.schedules)}
        # Full definitions only for the schedules the spec wants (drift); one no longer wanted is
        # deleted by name, its summary is enough.
        with ThreadPoolExecutor(max_workers=4) as pool:
            full = dict(zip([x["Name"] for x in listed], pool.map(
                lambda x: sch.get_schedule(Name=x["Name"], GroupName=group) if x["Name"] in wanted else None,
                listed), strict=True))
        for x in listed:
            d = full[x["Name"]]
            if d is None:
                props = {"State": x.get("State"), "Target": {"Arn": (x.get("Target") or {}).get("Arn")}}
            else:
                t = d.get("Target") or {}
                try:
                    inp: Any = json.loads(t.get("Input") or "null")
                except ValueError:
                    inp = t.get("Input")
                props = {"ScheduleExpression": d.get("ScheduleExpression"),
                         "ScheduleExpressionTimezone": d.get("ScheduleExpressionTimezone", "UTC"),
                         "State": d.get("State"),
                         "FlexibleTimeWindow": {"Mode": (d.get("FlexibleTimeWindow") or {}).get("Mode")},
                         "Target": {"Arn": t.get("Arn"), "RoleArn": t.get("RoleArn"), "Input": inp,
                                    "RetryPolicy": t.get("RetryPolicy"),
                                    "DeadLetterConfig": t.get("DeadLetterConfig")}}
            out.append(Observed(schedule_key(x["Name"]), "AWS::Scheduler::Schedule", SHARED, x["Name"],
                                x.get("Arn"), props, None, attrs={"group": group}, phase=1))
        return out

    def _discover_queue(self, ctx: Context) -> list[Observed]:
        sqs, name = ctx.client("sqs", SHARED), names.schedule_dead_letters(ctx.suffix)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            tags = sqs.list_queue_tags(QueueUrl=url).get("Tags") or {}
        except Exception as e:
            if is_code(e, list(QUEUE_GONE)):
                return []  # none (or deleted between the calls)
            raise
        if not ctx.owns(tags):
            return []
        return [Observed("queue", "AWS::SQS::Queue", SHARED, name, url,
                         {k: attrs.get(k) for k in QUEUE_ATTRIBUTES}, dict(tags),
                         attrs={"url": url, "arn": attrs.get("QueueArn")}, phase=0)]

    # ------------------------------------------------------------------ apply
    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        if want.key == "role":
            return self._apply_role(ctx, want, have)
        if want.key == "queue":
            return self._apply_queue(ctx, want, have)
        sch = ctx.client("scheduler", SHARED)
        if want.key == "group":
            if have is None:
                try:
                    arn = sch.create_schedule_group(Name=want.name, Tags=tag_list(want.tag_dict))["ScheduleGroupArn"]
                except Exception as e:
                    if not is_code(e, ["ConflictException"]):
                        raise
                    arn = sch.get_schedule_group(Name=want.name)["Arn"]
                    sch.tag_resource(ResourceArn=arn, Tags=tag_list(want.tag_dict))
            else:
                arn = have.id
                if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                    sch.tag_resource(ResourceArn=arn, Tags=tag_list(want.tag_dict))
            return Observed("group", want.type, SHARED, want.name, arn, dict(want.props), dict(want.tag_dict),
                            attrs={"arn": arn}, phase=0)
        p = want.props
        t = p["Target"]
        kw = {"Name": want.name, "GroupName": names.schedule_group(ctx.suffix),
              "ScheduleExpression": p["ScheduleExpression"],
              "ScheduleExpressionTimezone": p["ScheduleExpressionTimezone"], "State": p["State"],
              "FlexibleTimeWindow": p["FlexibleTimeWindow"],
              "Target": {"Arn": t["Arn"], "RoleArn": t["RoleArn"], "RetryPolicy": t["RetryPolicy"],
                         "DeadLetterConfig": t["DeadLetterConfig"],
                         "Input": json.dumps(t["Input"], sort_keys=True, separators=(",", ":"))}}

        def put() -> dict:
            if have is None:
                try:
                    return sch.create_schedule(**kw)
                except Exception as e:
                    if not is_code(e, ["ConflictException"]):
                        raise
            return sch.update_schedule(**kw)  # UpdateSchedule replaces the whole definition

        got = ctx.retry(put, codes=(), deadline=ctx.timing.iam_propagation_timeout_seconds,
                        what=f"scheduler role of {want.name} to propagate",
                        when=lambda e: is_code(e, ["ValidationException"]) and ASSUME_HINT in str(e).lower())
        return Observed(want.key, want.type, SHARED, want.name, got.get("ScheduleArn"), dict(p), None,
                        attrs={"group": kw["GroupName"]}, phase=1)

    def _apply_queue(self, ctx: Context, want: Resource, have: Observed | None) -> Observed:
        sqs = ctx.client("sqs", SHARED)
        if have is None:
            # CreateQueue answers the existing queue's URL when its attributes match (a crash after create).
            url = ctx.retry(lambda: sqs.create_queue(QueueName=want.name, Attributes=dict(want.props),
                                                     tags=dict(want.tag_dict))["QueueUrl"],
                            codes=QUEUE_DELETED_RECENTLY, deadline=max(ctx.timing.consistency_timeout_seconds, 70),
                            what=f"queue name {want.name} to be free (SQS keeps it 60 s after a delete)")
        else:
            url = have.id
            changed = {k: v for k, v in want.props.items() if have.props.get(k) != v}
            if changed:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=changed)
            if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                sqs.tag_queue(QueueUrl=url, Tags=dict(want.tag_dict))
        return Observed("queue", want.type, SHARED, want.name, url, dict(want.props), dict(want.tag_dict),
                        attrs={"url": url, "arn": queue_arn(ctx)}, phase=0)

    def _apply_role(self, ctx: Context, want: Resource, have: Observed | None) -> Observed:
        iam = ctx.client("iam", SHARED)
        p = want.props
        doc = json.dumps(p["AssumeRolePolicyDocument"])
        if have is None:
            try:
                arn = iam.create_role(RoleName=want.name, AssumeRolePolicyDocument=doc,
                                      Description="dbrepl schedules: invoke the sync functions",
                                      Tags=tag_list(want.tag_dict))["Role"]["Arn"]
            except Exception as e:
                if not is_code(e, ["EntityAlreadyExists"]):
                    raise
                arn = iam.get_role(RoleName=want.name)["Role"]["Arn"]
                iam.update_assume_role_policy(RoleName=want.name, PolicyDocument=doc)
                iam.tag_role(RoleName=want.name, Tags=tag_list(want.tag_dict))
            have = Observed("role", want.type, SHARED, want.name, arn,
                            {"AssumeRolePolicyDocument": p["AssumeRolePolicyDocument"], "Policies": {}},
                            dict(want.tag_dict))
        else:
            if have.props.get("AssumeRolePolicyDocument") != p["AssumeRolePolicyDocument"]:
                iam.update_assume_role_policy(RoleName=want.name, PolicyDocument=doc)
            if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                iam.tag_role(RoleName=want.name, Tags=tag_list(want.tag_dict))
        for pname, pdoc in p["Policies"].items():
            if have.props.get("Policies", {}).get(pname) != pdoc:
                iam.put_role_policy(RoleName=want.name, PolicyName=pname, PolicyDocument=json.dumps(pdoc))
        return Observed("role", want.type, SHARED, want.name, have.id, dict(p), dict(want.tag_dict),
                        attrs={"arn": have.id}, phase=0)

    # ------------------------------------------------------------------ delete
    def delete(self, ctx: Context, have: Observed) -> None:
        try:
            if have.type == "AWS::Scheduler::Schedule":
                ctx.client("scheduler", SHARED).delete_schedule(Name=have.name, GroupName=have.attrs["group"])
            elif have.type == "AWS::SQS::Queue":
                ctx.client("sqs", SHARED).delete_queue(QueueUrl=have.id)
            elif have.type == "AWS::Scheduler::ScheduleGroup":
                # Deletes what is left in it too (asynchronously: the group shows DELETING a while).
                ctx.client("scheduler", SHARED).delete_schedule_group(Name=have.name)
            else:
                iam = ctx.client("iam", SHARED)
                for n in iam.list_role_policies(RoleName=have.name)["PolicyNames"]:
                    iam.delete_role_policy(RoleName=have.name, PolicyName=n)
                iam.delete_role(RoleName=have.name)
        except Exception as e:
            if not is_code(e, ["ResourceNotFoundException", "NoSuchEntity", *QUEUE_GONE]):
                raise
