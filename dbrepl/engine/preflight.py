"""Preflight: read-only checks, before any change, of what AWS would refuse half-way through an
apply (issue 11, point 2; docs/engine.md). Run by `Engine.plan` over the plan's changes, once per
(account, region) group of the spec, and only for what the plan would make or change, so a
plan with nothing to do makes no call:

- vpc-quota: the region's VPCs plus those this apply would create against the quota
  (Service Quotas `vpc`/L-F678F1CE; AWS's default 5 when it cannot be read);
- engine-version: the cluster's version exists (DescribeDBEngineVersions);
- instance-class: the class is orderable for that version (DescribeOrderableDBInstanceOptions);
- availability-zones: the hub's subnets (where the functions and the VPC endpoints live) are in
  AZs where Lambda and every endpoint service is offered (DescribeVpcEndpointServices, one call;
  AZs are named with their AZ ID, the same in every account);
- bucket-key-region: the bucket's KMS key is in the bucket's region (no call: S3 refuses a key
  of another region);
- restore-snapshot: a cluster apply would restore (`aurora.restore_from_snapshot`) names a
  snapshot that exists, is available, holds aurora-mysql of the spec's major version and master
  user, and whose KMS key is enabled (a key pending deletion or disabled cannot decrypt it:
  RestoreDBClusterFromSnapshot fails with KMSKeyNotAccessibleFault).

Backup and maintenance windows (at least 30 minutes, not overlapping) need no call and are
checked when the spec is read (dbrepl.spec), before any command touches anything.

A check whose service cannot answer (moto in-process lacks some) is "skipped", with why: a
finding of missing data never refuses. A "fail" refuses plan and apply (exit 2), nothing made.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dbrepl.aws import error_reason
from dbrepl.aws.ec2 import INTERFACE_SERVICES, endpoint_service_name, endpoint_services, subnet_zone, zones
from dbrepl.engine.context import Context
from dbrepl.engine.model import SHARED, Change
from dbrepl.errors import BadInput

# AZs where Lambda cannot place a function's network interfaces, whatever the endpoint
# services say: AWS answers CreateFunction with "The provided subnets contain availability zone
# Lambda doesn't support." (us-east-1's use1-az3, reported since 2017; AZ IDs, the same in
# every account).
LAMBDA_UNSUPPORTED_AZ_IDS = frozenset({"use1-az3"})
VPC_QUOTA_CODE = "L-F678F1CE"
DEFAULT_VPC_QUOTA = 5
OK, FAIL, SKIPPED = "ok", "fail", "skipped"
# What the service says when it cannot answer: a ClientError (AccessDenied, not implemented in an
# emulator's server), a transport error, or moto in-process's NotImplementedError.
UNANSWERED = (ClientError, BotoCoreError, NotImplementedError)


@dataclass(frozen=True)
class Finding:
    check: str  # vpc-quota, engine-version, instance-class, availability-zones, bucket-key-region
    status: str  # ok, fail, skipped
    where: str  # the region (and account) and the environments there
    message: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "where": self.where, "message": self.message}


class PreflightFailed(BadInput):
    """A preflight check failed: nothing was changed (exit 2)."""

    def __init__(self, failed: list[Finding]) -> None:
        self.failed = failed
        super().__init__("preflight refused the change, nothing was made: "
                         + "; ".join(f"{f.check} in {f.where}: {f.message}" for f in failed))


def refuse_failed(findings: list[Finding]) -> None:
    failed = [f for f in findings if f.status == FAIL]
    if failed:
        raise PreflightFailed(failed)


def preflight(ctx: Context, changes: list[Change]) -> list[Finding]:
    """The findings of the checks the changes call for, group by group, the groups side by side."""
    groups = ctx.groups()
    group_of = {env: i for i, envs in enumerate(groups) for env in envs}
    per_group: list[list[Change]] = [[] for _ in groups]
    for c in changes:
        env = ctx.hub if c.env == SHARED else c.env
        if env in group_of:
            per_group[group_of[env]].append(c)
    work = [(envs, cs) for envs, cs in zip(groups, per_group, strict=True) if cs]
    if not work:
        return []
    if len(work) == 1:
        return _group(ctx, *work[0])
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        return [f for part in pool.map(lambda w: _group(ctx, *w), work) for f in part]


def _where(ctx: Context, envs: list[str]) -> str:
    region = ctx.region(envs[0])
    account = ctx.spec.environments[envs[0]].account
    label = f"{region} of account {account.role_arn.split(':')[4]}" if account is not None else region
    return f"{label} ({', '.join(envs)})"


def _group(ctx: Context, envs: list[str], changes: list[Change]) -> list[Finding]:
    where = _where(ctx, envs)
    checks: list[Callable[[], list[Finding]]] = []
    new_vpcs = sum(c.action == "create" and c.type == "AWS::EC2::VPC" for c in changes)
    if new_vpcs:
        checks.append(lambda: [_vpc_quota(ctx, envs[0], where, new_vpcs)])
    if any(_touches_rds(c) for c in changes):
        checks.append(lambda: _engine(ctx, envs[0], where))
    if ctx.hub in envs and any(_places_in_hub_subnets(ctx, c) for c in changes):
        checks.append(lambda: [_zones(ctx, where)])
    if ctx.hub in envs and any(c.type == "AWS::S3::Bucket" and c.action != "delete" for c in changes):
        checks.append(lambda: [_bucket_key_region(ctx, where)])
    for c in changes:
        if c.type == "AWS::RDS::DBCluster" and c.action == "create" and c.diff.get("RestoreFromSnapshot"):
            checks.append(functools.partial(_restore_check, ctx, c, where))
    if len(checks) == 1:
        return checks[0]()
    with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
        return [f for part in pool.map(lambda fn: fn(), checks) for f in part]


def _touches_rds(c: Change) -> bool:
    """A change AWS checks the engine version or the instance class of."""
    if c.type == "AWS::RDS::DBCluster":
        return c.action in ("create", "replace") or "EngineVersion" in c.diff
    if c.type == "AWS::RDS::DBInstance":
        return c.action in ("create", "replace") or "DBInstanceClass" in c.diff
    return False


def _places_in_hub_subnets(ctx: Context, c: Change) -> bool:
    """A change that puts something in the hub's subnets: the functions, the endpoints, the subnets."""
    if c.action == "delete":
        return False
    if c.type == "AWS::Lambda::Function":
        return c.action in ("create", "replace") or "VpcConfig" in c.diff
    if c.type in ("AWS::EC2::Subnet", "AWS::EC2::VPCEndpoint"):
        return c.env == ctx.hub
    return False


def _zones(ctx: Context, where: str) -> Finding:
    hub = ctx.hub
    region = ctx.region(hub)
    try:
        ids = dict(zones(ctx, hub))
        placed = sorted({subnet_zone(ctx, hub, i) for i in range(len(ctx.spec.environments[hub].subnets))})
    except UNANSWERED as e:
        return Finding("availability-zones", SKIPPED, where, f"DescribeAvailabilityZones did not answer: {_why(e)}")
    try:
        details = endpoint_services(ctx, hub)  # the network step names its endpoints from the same answer
    except UNANSWERED as e:
        return Finding("availability-zones", SKIPPED, where, f"DescribeVpcEndpointServices did not answer: {_why(e)}")
    services: dict[str, str] = {}  # service name, as the region lists it -> lambda, secretsmanager, ssm
    for svc in ("lambda", *INTERFACE_SERVICES):
        listed = endpoint_service_name(details, region, svc, "Interface")
        services[listed or f"com.amazonaws.{region}.{svc}"] = svc
    offered: dict[str, set[str]] = {}
    for d in details:
        if d.get("ServiceName") in services and any(t.get("ServiceType") == "Interface"
                                                    for t in d.get("ServiceType", [])):
            offered.setdefault(services[d["ServiceName"]], set()).update(d.get("AvailabilityZones", []))
    label = {name: f"{name} ({ids.get(name, '?')})" for name in placed}
    problems = [f"Lambda is not offered in {label[name]}" for name in placed
                if ids.get(name) in LAMBDA_UNSUPPORTED_AZ_IDS]
    unknown = [svc for svc in services.values() if svc not in offered]
    for svc in services.values():
        if svc in offered:
            problems += [f"{'Lambda' if svc == 'lambda' else svc + ' endpoints'} not offered in {label[name]}"
                         for name in placed if name not in offered[svc]
                         and not (svc == "lambda" and ids.get(name) in LAMBDA_UNSUPPORTED_AZ_IDS)]
    if problems:
        return Finding("availability-zones", FAIL, where,
                       f"{'; '.join(problems)}: give the hub's subnets az_id values of AZs that offer them "
                       f"(this region's AZ IDs: {', '.join(sorted(ids.values()))})")
    said = f"Lambda and the endpoint services are offered in {', '.join(label[n] for n in placed)}"
    if unknown:
        said += f" (not listed by DescribeVpcEndpointServices, so not checked: {', '.join(sorted(unknown))})"
    return Finding("availability-zones", OK, where, said)


def _bucket_key_region(ctx: Context, where: str) -> Finding:
    key_env = ctx.spec.bucket.kms_env
    bucket_region, key_region = ctx.region(ctx.hub), ctx.region(key_env)
    if key_region != bucket_region:
        return Finding("bucket-key-region", FAIL, where,
                       f"the bucket is in {bucket_region} (the hub's region) but its KMS key is {key_env}'s, in "
                       f"{key_region}; S3 needs a key of the bucket's region: set bucket.kms_env to an "
                       f"environment in {bucket_region}")
    return Finding("bucket-key-region", OK, where, f"the bucket's key ({key_env}'s) is in {bucket_region} too")


def _vpc_quota(ctx: Context, env: str, where: str, new: int) -> Finding:
    note = ""
    try:
        quota = int(ctx.client("service-quotas", env).get_service_quota(
            ServiceCode="vpc", QuotaCode=VPC_QUOTA_CODE)["Quota"]["Value"])
    except UNANSWERED as e:
        quota = DEFAULT_VPC_QUOTA
        note = f" (the quota could not be read: {_why(e)}; AWS's default {DEFAULT_VPC_QUOTA} assumed)"
    others: dict[str, None] = {}  # other estates' suffixes, by their VPCs' tags
    try:
        have = 0
        for page in ctx.client("ec2", env).get_paginator("describe_vpcs").paginate():
            have += len(page.get("Vpcs", []))
            for vpc in page.get("Vpcs", []):
                tag = {t["Key"]: t["Value"] for t in vpc.get("Tags") or []}.get("dbrepl:suffix")
                if tag and tag != ctx.suffix:
                    others[tag] = None
    except UNANSWERED as e:
        return Finding("vpc-quota", SKIPPED, where, f"the region's VPCs could not be counted: {_why(e)}")
    said = (f"the region has {have} VPC(s) and this apply would create {new}; the VPC quota "
            f"(Service Quotas vpc {VPC_QUOTA_CODE}) is {quota}{note}")
    if have + new > quota:
        return Finding("vpc-quota", FAIL, where, f"{said}: {_vpc_quota_fix(ctx, list(others))}")
    return Finding("vpc-quota", OK, where, said)


def _vpc_quota_fix(ctx: Context, others: list[str]) -> str:
    """In the sandbox (its AWS is an emulator on this machine) the fix is to destroy another
    estate: it holds one at a time. On AWS: fewer VPCs, a higher quota or another region."""
    from dbrepl.invocation import command

    if ctx.sessions.endpoint_url is None:
        also = f" (estate(s) {', '.join(others)} of dbrepl have VPCs here)" if others else ""
        return f"delete unused VPCs{also}, request a quota increase, or choose another region"
    if not others:
        return "the sandbox holds one estate at a time: destroy what uses its VPCs first"
    destroys = " and ".join(f"`{command('destroy', '--include-protected --yes', suffix=o, sandbox=True)}`"
                            for o in others)
    return f"the sandbox holds one estate at a time: destroy the other one first, {destroys}"


def _engine(ctx: Context, env: str, where: str) -> list[Finding]:
    a = ctx.spec.aurora
    rds = ctx.client("rds", env)
    try:
        found = rds.describe_db_engine_versions(Engine=a.engine, EngineVersion=a.engine_version)["DBEngineVersions"]
    except UNANSWERED as e:
        version = Finding("engine-version", SKIPPED, where, f"DescribeDBEngineVersions did not answer: {_why(e)}")
    else:
        if found:
            version = Finding("engine-version", OK, where, f"{a.engine} {a.engine_version} is offered")
        else:
            return [Finding("engine-version", FAIL, where,
                            f"{a.engine} {a.engine_version} is not offered here (DescribeDBEngineVersions): "
                            "pick a version the Aurora MySQL release notes list as available")]
    return [version, _instance_class(rds, a.engine, a.engine_version, a.instance_class, where)]


def _instance_class(rds: Any, engine: str, version: str, cls: str, where: str) -> Finding:
    try:
        offered: set[str] = set()
        marker = None
        while True:
            page = rds.describe_orderable_db_instance_options(
                Engine=engine, EngineVersion=version, MaxRecords=1000, **({"Marker": marker} if marker else {}))
            offered |= {o["DBInstanceClass"] for o in page.get("OrderableDBInstanceOptions", [])}
            marker = page.get("Marker")
            if not marker:
                break
    except UNANSWERED as e:
        return Finding("instance-class", SKIPPED, where, f"DescribeOrderableDBInstanceOptions did not answer: "
                                                         f"{_why(e)}")
    if not offered:
        return Finding("instance-class", SKIPPED, where,
                       f"DescribeOrderableDBInstanceOptions lists no instance classes for {engine} {version}")
    if cls in offered:
        return Finding("instance-class", OK, where, f"{cls} is orderable for {engine} {version}")
    some = ", ".join(sorted(c for c in offered if c.startswith(("db.r", "db.t")))[:8])
    return Finding("instance-class", FAIL, where,
                   f"{cls} is not offered for {engine} {version} (DescribeOrderableDBInstanceOptions); "
                   f"offered are e.g. {some}")


def _why(e: BaseException) -> str:
    return error_reason(e) or type(e).__name__


def _restore_check(ctx: Context, c: Change, where: str) -> list[Finding]:
    return [_restore_snapshot(ctx, c.env, c.diff["RestoreFromSnapshot"][1], where)]


def _restore_snapshot(ctx: Context, env: str, snapshot: str, where: str) -> Finding:
    """The snapshot `env`'s cluster would be restored from, and its key, as RDS will need them."""
    key = f"aurora.restore_from_snapshot.{env}"
    a = ctx.spec.aurora
    rds = ctx.client("rds", env)
    try:
        found = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=snapshot)["DBClusterSnapshots"]
    except ClientError as e:
        if not _code(e, "DBClusterSnapshotNotFoundFault"):
            return Finding("restore-snapshot", SKIPPED, where, f"DescribeDBClusterSnapshots did not answer: {_why(e)}")
        found = []
    except UNANSWERED as e:
        return Finding("restore-snapshot", SKIPPED, where, f"DescribeDBClusterSnapshots did not answer: {_why(e)}")
    if not found:
        return Finding("restore-snapshot", FAIL, where,
                       f"{key}: there is no cluster snapshot {snapshot} in {ctx.region(env)}: name one "
                       f"`aws rds describe-db-cluster-snapshots --region {ctx.region(env)}` lists (destroy printed "
                       "the final snapshot's name), or remove the setting")
    snap = found[0]
    problems = []
    if snap.get("Status") != "available":
        problems.append(f"it is {snap.get('Status')!r}, not available")
    if snap.get("Engine") != a.engine:
        problems.append(f"it holds {snap.get('Engine')}, not {a.engine}")
    elif str(snap.get("EngineVersion", "")).split(".")[0] != a.engine_version.split(".")[0]:
        problems.append(f"its engine version {snap.get('EngineVersion')} is of another major version than "
                        f"aurora.engine_version {a.engine_version}")
    if snap.get("MasterUsername") and snap["MasterUsername"] != a.master_username:
        problems.append(f"its master user is {snap['MasterUsername']!r}, and a restored cluster keeps it: set "
                        f"aurora.master_username to it")
    if problems:
        return Finding("restore-snapshot", FAIL, where, f"{key}: snapshot {snapshot}: {'; '.join(problems)}")
    kms_key = snap.get("KmsKeyId")
    if not kms_key:
        return Finding("restore-snapshot", OK, where, f"{key}: snapshot {snapshot} is available (not encrypted)")
    try:
        state = ctx.client("kms", env).describe_key(KeyId=kms_key)["KeyMetadata"]["KeyState"]
    except ClientError as e:
        if _code(e, "NotFoundException"):
            state = "deleted"
        else:
            return Finding("restore-snapshot", SKIPPED, where,
                           f"{key}: snapshot {snapshot} is available; its key {kms_key} could not be read: {_why(e)}")
    except UNANSWERED as e:
        return Finding("restore-snapshot", SKIPPED, where,
                       f"{key}: snapshot {snapshot} is available; its key {kms_key} could not be read: {_why(e)}")
    if state == "Enabled":
        return Finding("restore-snapshot", OK, where, f"{key}: snapshot {snapshot} is available and its key is enabled")
    region = ctx.region(env)
    fix = {"PendingDeletion": f"bring the key back with `aws kms cancel-key-deletion --region {region} --key-id "
                              f"{kms_key}` then `aws kms enable-key --region {region} --key-id {kms_key}`",
           "Disabled": f"enable it with `aws kms enable-key --region {region} --key-id {kms_key}`",
           }.get(state, "the snapshot can never be restored: name another snapshot, or remove the setting")
    return Finding("restore-snapshot", FAIL, where,
                   f"{key}: snapshot {snapshot} is encrypted under KMS key {kms_key}, which is {state}, so RDS "
                   f"cannot decrypt it: {fix}")


def _code(e: ClientError, code: str) -> bool:
    return e.response.get("Error", {}).get("Code") == code
