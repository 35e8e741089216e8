"""Every physical name the estate would have, checked against what its service accepts, before
any call (issue 18, point 6): a suffix that makes a cluster identifier 64 characters long fails
here with exit 2, not half-way through apply when RDS refuses it.

`RULES` names one rule for each name-producing function of dbrepl.names, and `physical_names`
calls each of them with what the spec and the suffix give; tests/test_physical_names.py checks that
no function of dbrepl.names is missing from either, so a new resource cannot escape the check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from dbrepl import names
from dbrepl.aws.ec2 import GATEWAY_SERVICES, INTERFACE_SERVICES
from dbrepl.errors import BadInput
from dbrepl.spec import Spec

# The longest account id and a long ARN prefix, for names whose limit counts them.
ACCOUNT = "123456789012"
LONG_SSM_ARN = f"arn:aws-us-gov:ssm:ap-southeast-99:{ACCOUNT}:parameter"
FUNCTION_METRICS = ("Errors", "Throttles")  # dbrepl.steps.alarms.FUNCTION_METRICS (no step import here)


@dataclass(frozen=True)
class Rule:
    what: str  # e.g. "RDS cluster identifier"
    limit: int  # characters
    pattern: str  # a full match
    shape: str  # the pattern in words, for the error
    forbidden_prefix: str = ""  # e.g. security groups may not start with "sg-"

    def problem(self, name: str) -> str | None:
        if len(name) > self.limit:
            return f"is {len(name)} characters, more than the {self.limit} the service accepts"
        if not re.fullmatch(self.pattern, name):
            return f"is not {self.shape}"
        if self.forbidden_prefix and name.lower().startswith(self.forbidden_prefix):
            return f"starts with {self.forbidden_prefix!r}, which the service refuses"
        return None


RDS_ID = r"[a-zA-Z](-?[a-zA-Z0-9])*"
RDS_SHAPE = "a letter then letters, digits and single hyphens, not ending in a hyphen"
_TAG = Rule("Name tag", 256, r"[\x20-\x7e]+", "printable ASCII")
_SG = Rule("security group name", 255, r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+",
           "letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*", forbidden_prefix="sg-")
_ALARM = Rule("CloudWatch alarm name", 255, r"[\x20-\x7e]+", "printable ASCII")
_RDS_GROUP = Rule("RDS parameter group name", 255, RDS_ID, RDS_SHAPE)

# One rule per function of dbrepl.names (tests/test_physical_names.py holds the two together).
RULES: dict[str, Rule] = {
    "vpc": _TAG, "subnet": _TAG, "route_table": _TAG, "endpoint": _TAG, "peering": _TAG,
    "db_sg": _SG, "function_sg": _SG, "endpoint_sg": _SG,
    "kms_alias": Rule("KMS alias", 256, r"alias/[a-zA-Z0-9/_-]+", "alias/ then letters, digits, '/', '_', '-'",
                      forbidden_prefix="alias/aws/"),
    "secret": Rule("Secrets Manager secret name", 512, r"[a-zA-Z0-9/_+=.@-]+", "letters, digits and /_+=.@-"),
    "subnet_group": Rule("DB subnet group name", 255, r"[a-zA-Z0-9._ -]+", "letters, digits, spaces and ._-",
                         forbidden_prefix="default"),
    "cluster_parameter_group": _RDS_GROUP,
    "cluster": Rule("RDS cluster identifier", 63, RDS_ID, RDS_SHAPE),
    "instance": Rule("RDS instance identifier", 63, RDS_ID, RDS_SHAPE),
    # SSM counts the parameter's whole ARN (1011) and allows 15 levels (checked in physical_names).
    "connection_parameter": Rule("SSM parameter name", 1011 - len(LONG_SSM_ARN), r"(/[a-zA-Z0-9_.-]+)+",
                                 "/-separated letters, digits and _.-"),
    "bucket": Rule("S3 bucket name", 63, r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", "lowercase letters, digits, '.' "
                   "and '-', starting and ending with a letter or digit"),
    "role": Rule("IAM role name", 64, r"[\w+=,.@-]+", "letters, digits and _+=,.@-"),
    "scheduler_role": Rule("IAM role name", 64, r"[\w+=,.@-]+", "letters, digits and _+=,.@-"),
    "function": Rule("Lambda function name", 64, r"[a-zA-Z0-9_-]+", "letters, digits, '-' and '_'"),
    "log_group": Rule("CloudWatch Logs group name", 512, r"[.\-_/#A-Za-z0-9]+", "letters, digits and ._-/#"),
    "alarm": _ALARM, "sync_failure_alarm": _ALARM, "sync_stale_alarm": _ALARM, "function_alarm": _ALARM,
    "schedule_group": Rule("Scheduler schedule group name", 64, r"[0-9a-zA-Z._-]+", "letters, digits and ._-"),
    "schedule": Rule("Scheduler schedule name", 64, r"[0-9a-zA-Z._-]+", "letters, digits and ._-"),
    "alarm_topic": Rule("SNS topic name", 256, r"[A-Za-z0-9_-]+", "letters, digits, '-' and '_'"),
    "dashboard": Rule("CloudWatch dashboard name", 255, r"[A-Za-z0-9_-]+", "letters, digits, '-' and '_'"),
    "schedule_dead_letters": Rule("SQS queue name", 80, r"[a-zA-Z0-9_-]+", "letters, digits, '-' and '_'"),
    "schedule_dead_letters_alarm": _ALARM,
}


def physical_names(spec: Spec, s: str) -> Iterator[tuple[str, str]]:
    """(function of dbrepl.names, name) for every name the estate of `spec` with suffix `s` has."""
    envs, hub = list(spec.environments), spec.sync.hub
    for e in envs:
        yield "vpc", names.vpc(e, s)
        yield "route_table", names.route_table(e, s)
        yield "db_sg", names.db_sg(e, s)
        for i in range(1, len(spec.environments[e].subnets) + 1):
            yield "subnet", names.subnet(e, i, s)
        yield "kms_alias", names.kms_alias(e, s)
        yield "secret", names.secret(e, s)
        yield "subnet_group", names.subnet_group(e, s)
        yield "cluster_parameter_group", names.cluster_parameter_group(e, s)
        yield "cluster", names.cluster(e, s)
        for i in range(1, spec.aurora.instances + 1):
            yield "instance", names.instance(e, i, s)
        yield "connection_parameter", names.connection_parameter(e, s)
        yield "alarm", names.alarm(e, s)
    for a, b in spec.peering:
        yield "peering", names.peering(a, b, s)
    yield "function_sg", names.function_sg(s)
    yield "endpoint_sg", names.endpoint_sg(hub, s)
    for svc in INTERFACE_SERVICES + GATEWAY_SERVICES:
        yield "endpoint", names.endpoint(hub, svc, s)
    yield "bucket", names.bucket(s, ACCOUNT)
    yield "role", names.role(s)
    for kind in names.FUNCTIONS:
        yield "function", names.function(kind, s)
        yield "log_group", names.log_group(kind, s)
        for metric in FUNCTION_METRICS:
            yield "function_alarm", names.function_alarm(kind, metric, s)
    yield "schedule_group", names.schedule_group(s)
    yield "scheduler_role", names.scheduler_role(s)
    if spec.sync.schedules:
        yield "schedule_dead_letters", names.schedule_dead_letters(s)
        yield "schedule_dead_letters_alarm", names.schedule_dead_letters_alarm(s)
    for sc in spec.sync.schedules:
        yield "schedule", names.schedule(sc.kind, sc.source, sc.target, s)
        yield "sync_failure_alarm", names.sync_failure_alarm(sc.kind, sc.source, sc.target, s)
        yield "sync_stale_alarm", names.sync_stale_alarm(sc.kind, sc.source, sc.target, s)
    yield "alarm_topic", names.alarm_topic(s)
    yield "dashboard", names.dashboard(s)


def check_names(spec: Spec, suffix: str) -> None:
    """BadInput (exit 2, one line) naming a physical name its service would refuse, and the fix:
    for names too long, the longest one and the longest suffix every name has room for."""
    first: tuple[Rule, str, str] | None = None
    room: int | None = None
    for fn, name in physical_names(spec, suffix):
        rule = RULES[fn]
        problem = rule.problem(name)
        if problem is None and fn == "connection_parameter" and name.count("/") > 15:
            problem = "has more than the 15 levels SSM accepts"
        if problem is None:
            continue
        if len(name) > rule.limit:
            fits = rule.limit - (len(name) - len(suffix))
            if room is None or fits < room:
                room, first = fits, (rule, name, problem)
        elif first is None:
            first = (rule, name, problem)
    if first is None:
        return
    rule, name, problem = first
    if room is None:
        fix = "rename the environment or choose another suffix"
    elif room > 0:
        fix = f"use a suffix of at most {room} characters"
    else:
        fix = "use shorter environment names (the keys of environments)"
    raise BadInput(f"--suffix {suffix!r}: the {rule.what} {name!r} {problem}; {fix}")
