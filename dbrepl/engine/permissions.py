"""The deployer's IAM policy, derived from what the steps declare (`Step.permissions`) plus what
the engine itself calls (account id, the tagging API, preflight, assuming roles).

Every action is named (no wildcard in an action). Resources are scoped where AWS authorises the
action against a resource whose name dbrepl knows beforehand (the suffix is in every name), else
to the account and region, else "*" with the reason (`UNSCOPED_WHY`).

One policy per principal: the caller (the "deployer", who runs dbrepl) for the environments
without an `account` in the spec, and each role the spec names for its environments. The
shared resources (bucket, functions, their role) are made by whoever serves the hub.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dbrepl import names
from dbrepl.aws.partition import partition_of
from dbrepl.engine.dependent_actions import granted_dependents

DEPLOYER = "deployer"
VPC_QUOTA = "vpc/L-F678F1CE"
LAMBDA_VPC_ACCESS = "service-role/AWSLambdaVPCAccessExecutionRole"

# What the engine calls besides the steps, with why (docs/permissions.md lists them).
ENGINE_PERMISSIONS: dict[str, str] = {
    "sts:GetCallerIdentity": "the account id (bucket name, ARNs)",
    "tag:GetResources": "one batched read of the suffix's tags (dbrepl.aws.tagging)",
    "servicequotas:GetServiceQuota": "preflight: the VPC quota",
    "ec2:DescribeVpcs": "preflight: the VPCs the region already has",
    "rds:DescribeDBEngineVersions": "preflight: the engine version is offered",
    "rds:DescribeOrderableDBInstanceOptions": "preflight: the instance class is orderable",
    "ec2:DescribeVpcEndpointServices": "preflight: Lambda and the endpoint services are offered in the hub's AZs",
    "rds:DescribeDBClusterSnapshots": "preflight: the snapshot a cluster is to be restored from exists",
    "kms:DescribeKey": "preflight: that snapshot's KMS key can still decrypt it (enabled)",
    "ssm:GetParametersByPath": "status: each sync route's last-run record",
    "iam:CreateServiceLinkedRole": "RDS creates its service-linked role on the first cluster of an account",
}
ASSUME = "sts:AssumeRole"

# Actions AWS does not authorise against a resource dbrepl could name, and why.
UNSCOPED_WHY: dict[str, str] = {
    "sts:GetCallerIdentity": "needs no permission; listed so the document is complete",
    "tag:GetResources": "the tagging API has no resource-level permissions",
    "kms:CreateKey": "the key does not exist yet (no resource-level permission)",
    "kms:ListAliases": "a list: no resource-level permission",
    "secretsmanager:ListSecrets": "a list: no resource-level permission",
    "secretsmanager:GetRandomPassword": "no resource-level permission",
    "logs:DescribeLogGroups": "a list, filtered by prefix in the call",
    "cloudwatch:DescribeAlarms": "a list, filtered by name in the call",
    "scheduler:ListSchedules": "a list, filtered by schedule group in the call",
    "ssm:DescribeParameters": "a list, filtered by path in the call",
    "rds:DescribeDBEngineVersions": "AWS's catalogue, not a resource",
    "rds:DescribeOrderableDBInstanceOptions": "AWS's catalogue, not a resource",
}
# Prefixes of read-only actions that AWS (mostly) authorises only against "*" (EC2 Describe*,
# RDS Describe*/ListTagsForResource over every cluster of the region).
UNSCOPED_PREFIXES = ("ec2:Describe", "rds:Describe", "rds:ListTagsForResource")
UNSCOPED_PREFIX_WHY = "Describe/List reads: EC2 and RDS authorise them only against \"*\" (reads only)"


@dataclass(frozen=True)
class Principal:
    """Who needs a policy: the caller or a role the spec names, with what it works on."""

    who: str  # DEPLOYER or the role's ARN
    account: str
    regions: tuple[str, ...]
    envs: tuple[str, ...]
    hub: bool  # serves the hub: the shared resources are its
    assumes: tuple[str, ...] = ()  # role ARNs it assumes (the deployer only)


@dataclass
class Derived:
    principal: Principal
    document: dict[str, Any]
    unscoped: dict[str, str] = field(default_factory=dict)  # action -> why "*"
    sources: dict[str, list[str]] = field(default_factory=dict)  # action -> steps/engine needing it

    @property
    def parts(self) -> list[dict[str, Any]]:
        """The document as managed policies, each within IAM's limit (one part when it fits)."""
        return split(self.document)


MANAGED_POLICY_LIMIT = 6144  # characters, whitespace not counted


def split(document: dict[str, Any], limit: int = MANAGED_POLICY_LIMIT) -> list[dict[str, Any]]:
    """Whole statements, in order, packed into as few documents as fit `limit` each (a managed
    policy; a user or role takes up to 10 of them, 20 with a quota increase)."""
    parts: list[list[dict[str, Any]]] = [[]]
    for st in document["Statement"]:
        trial = {"Version": document["Version"], "Statement": [*parts[-1], st]}
        if parts[-1] and policy_size(trial) > limit:
            parts.append([st])
        else:
            parts[-1].append(st)
    return [{"Version": document["Version"], "Statement": sts} for sts in parts]


@dataclass(frozen=True)
class _Scope:
    p: str
    account: str
    regions: tuple[str, ...]
    envs: tuple[str, ...]
    hub_region: str
    suffix: str
    peers: tuple[tuple[str, str], ...]  # (region, account) of the other principals' VPCs
    alarms: tuple[tuple[str, str], ...]  # (region, name) of the principal's alarms


_Scoped = tuple[str, list[str], dict[str, Any] | None]  # (statement id, resources, condition)


def _resources(action: str, sc: _Scope) -> _Scoped:
    """(statement id, resources, condition) for one action."""
    service, op = action.split(":", 1)
    if action in UNSCOPED_WHY or action.startswith(UNSCOPED_PREFIXES):
        return "Unscoped", ["*"], None
    if service == "iam":
        return _iam_resources(op, sc)
    if service == "cloudwatch":
        return _cloudwatch_resources(action, op, sc)
    return _named_resources(service, op, sc) or _account_resources(service, op, sc) or ("Unscoped", ["*"], None)


def _iam_resources(op: str, sc: _Scope) -> _Scoped:
    p, a, s = sc.p, sc.account, sc.suffix
    if op == "CreateServiceLinkedRole":
        return ("RdsServiceLinkedRole",
                [f"arn:{p}:iam::{a}:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS"],
                {"StringLike": {"iam:AWSServiceName": "rds.amazonaws.com"}})
    # The functions' role and (issue 12) the scheduler's, passed to Lambda and Scheduler only.
    role = [f"arn:{p}:iam::{a}:role/{names.role(s)}", f"arn:{p}:iam::{a}:role/{names.scheduler_role(s)}"]
    if op == "PassRole":
        return "PassFunctionRole", role, {"StringEquals": {"iam:PassedToService": [
            "lambda.amazonaws.com", "scheduler.amazonaws.com"]}}
    if op == "AttachRolePolicy":
        return ("AttachVpcAccessPolicy", role,
                {"ArnEquals": {"iam:PolicyARN": f"arn:{p}:iam::aws:policy/{LAMBDA_VPC_ACCESS}"}})
    return "FunctionRole", role, None


def _cloudwatch_resources(action: str, op: str, sc: _Scope) -> _Scoped:
    p, a = sc.p, sc.account
    if op.endswith(("Dashboard", "Dashboards")):  # a dashboard's ARN has no region
        return "Dashboard", [f"arn:{p}:cloudwatch::{a}:dashboard/{names.dashboard(sc.suffix)}"], None
    # By exact name (the estate knows them): a pattern such as "*-sync-*-to-*-S" would also match
    # another estate's alarms whose suffix ends in "-S".
    if not sc.alarms:
        raise ValueError(f"{action}: the principal's alarm names are needed to scope it")
    return "Alarms", [f"arn:{p}:cloudwatch:{r}:{a}:alarm:{n}" for r, n in sc.alarms], None


def _named_resources(service: str, op: str, sc: _Scope) -> _Scoped | None:
    """Resources whose names dbrepl chooses (they end with the suffix)."""
    p, a, s, hr = sc.p, sc.account, sc.suffix, sc.hub_region
    # Names differ by environment (or function) before the suffix, which ends them: one pattern
    # "*-<kind>-<suffix>" per name keeps the document inside IAM's size limit.
    if service == "lambda":
        return "Functions", [f"arn:{p}:lambda:{hr}:{a}:function:db-sync-*-replication-{s}"], None
    if service == "logs":  # a log group's ARN, with and without the ":*" of its streams
        arns = [f"arn:{p}:logs:{hr}:{a}:log-group:/aws/lambda/db-sync-*-replication-{s}{tail}" for tail in ("", ":*")]
        # RDS's own log groups of the clusters (/aws/rds/cluster/<name>/<log>): destroy removes them.
        arns += [f"arn:{p}:logs:{r}:{a}:log-group:/aws/rds/cluster/*-aurora-cluster-{s}/*" for r in sc.regions]
        return "LogGroups", arns, None
    if service == "s3":
        bucket = f"arn:{p}:s3:::{names.bucket(s, a)}"
        if op.endswith("Object") or op.endswith("ObjectVersion"):
            return "ScriptObjects", [f"{bucket}/*"], None
        return "ScriptsBucket", [bucket], None
    if service == "secretsmanager":  # AWS appends "-" and six random characters to a secret's ARN
        return "Secrets", [f"arn:{p}:secretsmanager:{r}:{a}:secret:*-aurora-secret-{s}-??????"
                           for r in sc.regions], None
    if service == "ssm":
        return "Parameters", [f"arn:{p}:ssm:{r}:{a}:parameter/db-replication/{s}/*" for r in sc.regions], None
    if service == "sqs":  # issue 18: the schedules' dead-letter queue
        return "DeadLetterQueue", [f"arn:{p}:sqs:{hr}:{a}:{names.schedule_dead_letters(s)}"], None
    if service == "sns":  # issue 12: the alarm topic (its subscriptions are authorised on it)
        return "AlarmTopic", [f"arn:{p}:sns:{hr}:{a}:{names.alarm_topic(s)}"], None
    if service == "scheduler":  # issue 12: the estate's schedule group and the schedules in it
        group = names.schedule_group(s)
        return "Schedules", [f"arn:{p}:scheduler:{hr}:{a}:schedule-group/{group}",
                             f"arn:{p}:scheduler:{hr}:{a}:schedule/{group}/*"], None
    return None


def _account_resources(service: str, op: str, sc: _Scope) -> _Scoped | None:
    """Resources AWS names (ids) or owns, scoped to the account and the estate's regions."""
    p, a, s = sc.p, sc.account, sc.suffix
    if service == "route53":  # a dependent of ec2:CreateVpcEndpoint (private DNS): AWS's own hosted zone
        return "EndpointPrivateDns", [f"arn:{p}:route53:::hostedzone/*"], None
    if service == "servicequotas":
        return "VpcQuota", [f"arn:{p}:servicequotas:{r}:{a}:{VPC_QUOTA}" for r in sc.regions], None
    if service == "kms":
        keys = [f"arn:{p}:kms:{r}:{a}:key/*" for r in sc.regions]
        if op.endswith("Alias"):  # authorised against the alias and the key
            return "KeyAliases", [f"arn:{p}:kms:{r}:{a}:alias/*-key-{s}" for r in sc.regions] + keys, None
        return "Keys", keys, None
    if service == "ec2":  # ids are made by AWS; peering also names the other side's VPC
        return "Network", ([f"arn:{p}:ec2:{r}:{a}:*" for r in sc.regions]
                           + [f"arn:{p}:ec2:{r}:{acct}:vpc/*" for r, acct in sc.peers]), None
    if service == "rds":  # also authorised against default parameter and option groups
        return "Databases", [f"arn:{p}:rds:{r}:{a}:*" for r in sc.regions], None
    return None


def derive(principal: Principal, step_permissions: Mapping[str, Iterable[str]], *, suffix: str, hub_region: str,
           peers: Iterable[tuple[str, str]] = (), engine: dict[str, str] | None = None,
           alarms: Iterable[tuple[str, str]] = ()) -> Derived:
    """The policy document of one principal. `step_permissions`: step name -> its actions, only
    the steps this principal runs (the caller decides: shared steps only for the hub's); with them
    the actions AWS checks besides (dbrepl.engine.dependent_actions). `alarms`: (region, name) of
    the alarms this principal makes, named exactly in the policy."""
    engine = ENGINE_PERMISSIONS if engine is None else engine
    sources: dict[str, list[str]] = {}
    if principal.envs:
        for step, actions in step_permissions.items():
            for act in actions:
                sources.setdefault(act, []).append(step)
        for act in engine:
            sources.setdefault(act, []).append("engine")
        for act, needed_by in granted_dependents(sources).items():
            sources[act] = [f"AWS checks it for {n}" for n in needed_by]
    else:
        sources["sts:GetCallerIdentity"] = ["engine"]
    for act in sources:
        if "*" in act or "?" in act or act.count(":") != 1:
            raise ValueError(f"{act!r}: every action must be named, without wildcards")
    p = partition_of(principal.regions[0] if principal.regions else hub_region)
    sc = _Scope(p, principal.account, principal.regions, principal.envs, hub_region, suffix,
                tuple(sorted(set(peers))), tuple(sorted(set(alarms))))
    grouped: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
    conditions: dict[tuple[str, tuple[str, ...], str], dict[str, Any] | None] = {}
    unscoped: dict[str, str] = {}
    for act in sorted(sources):
        sid, res, cond = _resources(act, sc)
        key = (sid, tuple(res), repr(cond))
        grouped.setdefault(key, []).append(act)
        conditions[key] = cond
        if res == ["*"]:
            unscoped[act] = UNSCOPED_WHY.get(act) or (UNSCOPED_PREFIX_WHY if act.startswith(UNSCOPED_PREFIXES)
                                                      else "not classified yet: scope it in dbrepl/engine/"
                                                           "permissions.py")
    statements = []
    for key, acts in sorted(grouped.items()):
        sid, resources = key[0], key[1]
        st: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": acts,
                              "Resource": resources[0] if len(resources) == 1 else list(resources)}
        if conditions[key] is not None:
            st["Condition"] = conditions[key]
        statements.append(st)
    if principal.assumes:
        statements.append({"Sid": "AssumeEnvironmentRoles", "Effect": "Allow", "Action": [ASSUME],
                           "Resource": sorted(principal.assumes)})
        sources[ASSUME] = ["session"]
    _unique_sids(statements)
    return Derived(principal, {"Version": "2012-10-17", "Statement": statements}, unscoped, sources)


def _unique_sids(statements: list[dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for st in statements:
        n = seen.get(st["Sid"], 0)
        seen[st["Sid"]] = n + 1
        if n:
            st["Sid"] = f"{st['Sid']}{n + 1}"


def policy_size(document: dict[str, Any]) -> int:
    """The size IAM counts against its limits (whitespace is not counted)."""
    import json

    return len(json.dumps(document, separators=(",", ":")))
