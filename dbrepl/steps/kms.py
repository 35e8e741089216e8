"""kms: one customer managed key per environment with the alias alias/<env>-key-<suffix>,
automatic rotation on, and a key policy whose service statements carry conditions: the account
root (IAM decides, as the seed), the seed's service principals (RDS, S3, SSM, Secrets Manager)
only on behalf of this account (`aws:SourceAccount`), and, when the sync hub is another account,
that account's use only through Secrets Manager and S3 in the key's region (`kms:ViaService`,
`kms:CallerAccount`). Rotation and the key policy are read back on every plan: drift in either
is shown and repaired.

A key that encrypts a kept cluster snapshot (a protected cluster's final snapshot, or any other
manual cluster snapshot under it) outlives destroy, with its alias: anything encrypted under a
key is lost for good once the key is deleted, so scheduling its deletion would make the snapshot
worthless. destroy leaves the key out of its plan with a note naming the snapshots and the exact
commands that remove the snapshots and then the key; the next apply of the suffix adopts the key
again (through its alias) and a cluster restored from the snapshot is encrypted under it.
Right before ScheduleKeyDeletion, delete looks once more and keeps a key a snapshot has come to
use since the plan was made."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbrepl import names
from dbrepl.aws import is_code, paginate
from dbrepl.aws.partition import via_service
from dbrepl.aws.policy import normalise_policy
from dbrepl.aws.tagging import tagged
from dbrepl.engine import Change, Context, Observed, Resource, Step, register

SERVICE_PRINCIPALS = ["rds.amazonaws.com", "s3.amazonaws.com", "secretsmanager.amazonaws.com", "ssm.amazonaws.com"]
# What the hub's functions reach another account's key through: its secret, and the bucket
# when the bucket's key is that environment's.
HUB_VIA = ("s3", "secretsmanager")


def key_policy(partition: str, account: str, region: str, hub_account: str | None = None,
               alarm_topic: bool = False) -> dict[str, Any]:
    """The key policy of a key in `account` and `region` (see the module docstring); `alarm_topic`:
    the hub's key, which also encrypts the alarm topic (issue 12)."""
    policy: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"},
            # The seed's statement, bounded: a service may use the key only for this account's
            # resources (no confused deputy through another account's request).
            {"Sid": "Allow services to use the key", "Effect": "Allow",
             "Principal": {"Service": SERVICE_PRINCIPALS},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant"], "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
        ],
    }
    if hub_account and hub_account != account:
        # The seed-less statement of before also allowed kms:DescribeKey directly; nothing in the
        # hub account calls it on this key, and a direct call could not satisfy kms:ViaService.
        policy["Statement"].append(
            {"Sid": "Allow the sync hub account", "Effect": "Allow",
             "Principal": {"AWS": f"arn:{partition}:iam::{hub_account}:root"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:CallerAccount": hub_account,
                                            "kms:ViaService": sorted(via_service(s, region) for s in HUB_VIA)}}})
    if alarm_topic:
        # Issue 12 (alarms step): the hub's key encrypts the alarm topic (SNS). CloudWatch alarms
        # publishing to an encrypted topic need the key, or their notifications are lost silently
        # (AWS: "compatibility between event sources from AWS services and encrypted topics").
        policy["Statement"].append(
            {"Sid": "Allow CloudWatch alarms to use the key", "Effect": "Allow",
             "Principal": {"Service": "cloudwatch.amazonaws.com"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"})
    return policy


def desired_policy(ctx: Context, env: str) -> dict[str, Any]:
    return key_policy(ctx.partition(env), ctx.account_id(env), ctx.region(env), ctx.account_id(ctx.hub),
                      alarm_topic=env == ctx.hub)  # issue 12: the hub's key only


def description(env: str, s: str) -> str:
    return f"KMS key for {env} environment encryption - {s}"


@register
class Kms(Step):
    name = "kms"
    permissions = ("kms:CreateKey", "kms:DescribeKey", "kms:EnableKey", "kms:ListAliases", "kms:CreateAlias",
                   "kms:UpdateAlias", "kms:DeleteAlias", "kms:ScheduleKeyDeletion", "kms:TagResource",
                   "kms:UpdateKeyDescription", "kms:GetKeyRotationStatus", "kms:EnableKeyRotation",
                   "kms:GetKeyPolicy", "kms:PutKeyPolicy", "tag:GetResources", "sts:GetCallerIdentity",
                   # destroy keeps a key while a cluster snapshot encrypted under it exists
                   "rds:DescribeDBClusterSnapshots")

    def desired(self, ctx: Context) -> list[Resource]:
        out = []
        for env in ctx.all_envs:
            alias = names.kms_alias(env, ctx.suffix)
            out.append(Resource("key", "AWS::KMS::Key", env, f"{env}-key-{ctx.suffix}",
                                {"Description": description(env, ctx.suffix), "Enabled": True,
                                 "KeyRotationEnabled": True, "KeyPolicy": normalise_policy(desired_policy(ctx, env))},
                                ctx.tags(env, self.name), phase=0))
            out.append(Resource("alias", "AWS::KMS::Alias", env, alias,
                                {"TargetKeyId": ctx.id_of(self.name, env, "key")}, None, phase=1))
        return out

    def discover(self, ctx: Context) -> list[Observed]:
        return ctx.each_group(lambda envs: self._discover(ctx, envs))

    def _discover(self, ctx: Context, envs: list[str]) -> list[Observed]:
        out: list[Observed] = []
        env0 = envs[0]
        kms = ctx.client("kms", env0)
        with ThreadPoolExecutor(max_workers=2) as pool:
            f_aliases = pool.submit(paginate, kms, "list_aliases", "Aliases")
            f_tags = pool.submit(tagged, ctx, env0)
            aliases = {a["AliasName"]: a for a in f_aliases.result()}
            tags_by_arn = f_tags.result()
        candidates: dict[str, str] = {}  # key id -> env
        alias_of: dict[str, dict] = {}
        for env in envs:
            a = aliases.get(names.kms_alias(env, ctx.suffix))
            if a and a.get("TargetKeyId"):
                candidates[a["TargetKeyId"]] = env
                alias_of[env] = a
        for arn, tags in tags_by_arn.items():
            # A tagged key without its alias (a crash between the two calls) is ours to adopt.
            if (":key/" in arn and tags.get("dbrepl:env") in envs and tags.get("dbrepl:env") not in alias_of
                    and tags.get("dbrepl:step") == self.name):
                kid = arn.rsplit("/", 1)[1]
                candidates.setdefault(kid, tags["dbrepl:env"])
        with ThreadPoolExecutor(max_workers=max(1, len(candidates))) as pool:
            metas = dict(zip(candidates, pool.map(lambda k, kms=kms: _read_key(kms, k), candidates), strict=True))
        found: dict[str, Observed] = {}
        for kid, env in candidates.items():
            m = metas[kid]
            if m is None or m["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion"):
                continue
            tags = tags_by_arn.get(m["Arn"], {})
            if not ctx.owns(tags):
                continue
            o = Observed("key", "AWS::KMS::Key", env, f"{env}-key-{ctx.suffix}", m["KeyId"],
                         {"Description": m.get("Description", ""), "Enabled": m["KeyState"] == "Enabled",
                          "KeyRotationEnabled": m["_rotation"], "KeyPolicy": m["_policy"]},
                         tags, attrs={"arn": m["Arn"]}, phase=0)
            # Prefer the key the alias points at; a tagged orphan (crash before the alias) otherwise.
            if env not in found or alias_of.get(env, {}).get("TargetKeyId") == kid:
                found[env] = o
        if ctx.destroying and found:
            under = snapshots_by_key(ctx, env0)
            for o in found.values():
                o.attrs["snapshots"] = under.get(key_id_of(o.attrs["arn"]), [])
        out += found.values()
        for env, a in alias_of.items():
            out.append(Observed("alias", "AWS::KMS::Alias", env, a["AliasName"], a["AliasName"],
                                {"TargetKeyId": a["TargetKeyId"]}, None, phase=1))
        return out

    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        kms = ctx.client("kms", want.env)
        if want.key == "key":
            if have is None:
                m = kms.create_key(
                    Description=want.props["Description"], Policy=json.dumps(desired_policy(ctx, want.env)),
                    Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(want.tag_dict.items())],
                )["KeyMetadata"]
                # A crash before this leaves a key without rotation: the next plan shows it.
                kms.enable_key_rotation(KeyId=m["KeyId"])
                return Observed("key", want.type, want.env, want.name, m["KeyId"], dict(want.props),
                                dict(want.tag_dict), attrs={"arn": m["Arn"]})
            if not have.props.get("Enabled"):
                kms.enable_key(KeyId=have.id)
            if not have.props.get("KeyRotationEnabled"):
                kms.enable_key_rotation(KeyId=have.id)
            if normalise_policy(have.props.get("KeyPolicy")) != want.props["KeyPolicy"]:
                # dbrepl owns the key policy: statements added by hand are replaced.
                kms.put_key_policy(KeyId=have.id, PolicyName="default",
                                   Policy=json.dumps(desired_policy(ctx, want.env)))
            if have.props.get("Description") != want.props["Description"]:
                kms.update_key_description(KeyId=have.id, Description=want.props["Description"])
            if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                kms.tag_resource(KeyId=have.id, Tags=[{"TagKey": k, "TagValue": v} for k, v in want.tag_dict.items()])
            return Observed("key", want.type, want.env, want.name, have.id, dict(want.props), dict(want.tag_dict),
                            attrs=have.attrs)
        target = want.props["TargetKeyId"]
        if have is None:
            try:
                kms.create_alias(AliasName=want.name, TargetKeyId=target)
            except Exception as e:
                if not is_code(e, ["AlreadyExistsException"]):
                    raise
                kms.update_alias(AliasName=want.name, TargetKeyId=target)
        else:
            kms.update_alias(AliasName=want.name, TargetKeyId=target)
        return Observed("alias", want.type, want.env, want.name, want.name, {"TargetKeyId": target}, None, phase=1)

    def retains(self, ctx: Context, have: Observed, doomed: list[Change]) -> str | None:
        key = have if have.key == "key" else ctx.get(self.name, have.env, "key")
        if key is None or (have.key == "alias" and key.id != have.props.get("TargetKeyId")):
            return None
        kid = key_id_of(key.attrs.get("arn") or str(key.id))
        taken = [c.final_snapshot for c in doomed if c.final_snapshot and c.type == "AWS::RDS::DBCluster"
                 and key_id_of(str((c.diff.get("KmsKeyId") or (None, None))[0] or "")) == kid]
        snaps = sorted({*taken, *key.attrs.get("snapshots", [])})
        if not snaps:
            return None
        alias = names.kms_alias(have.env, ctx.suffix)
        if have.key == "alias":
            return f"kept: KMS alias {alias} of the key kept for {', '.join(snaps)} (see the key's note)"
        return kept_key_note(have.env, alias, kid, ctx.region(have.env), snaps)

    def delete(self, ctx: Context, have: Observed) -> None:
        kms = ctx.client("kms", have.env)
        if have.key == "key":
            # The plan was made before this destroy's own snapshots existed, or by another engine:
            # ask RDS again, right before the one call that cannot be undone after 7 days.
            snaps = snapshots_by_key(ctx, have.env).get(key_id_of(have.attrs.get("arn") or str(have.id)), [])
            if snaps:
                ctx.report("warning", what=f"KMS key {have.id} not scheduled for deletion",
                           message=f"it encrypts cluster snapshot(s) {', '.join(snaps)}; delete them first, "
                                   "then the key")
                return
        try:
            if have.key == "alias":
                kms.delete_alias(AliasName=have.name)
            else:
                # KMS keeps a key 7-30 days; the alias is gone, so the name is free at once.
                kms.schedule_key_deletion(KeyId=have.id, PendingWindowInDays=7)
        except Exception as e:
            if not is_code(e, ["NotFoundException", "KMSInvalidStateException"]):
                raise


def key_id_of(arn_or_id: str) -> str:
    """The key id of a key ARN (or of an id)."""
    return arn_or_id.rsplit("/", 1)[-1]


def snapshots_by_key(ctx: Context, env: str) -> dict[str, list[str]]:
    """Key id -> the manual cluster snapshots of `env`'s account and region encrypted under it
    (automated ones go with their cluster)."""
    out: dict[str, list[str]] = {}
    for snap in paginate(ctx.client("rds", env), "describe_db_cluster_snapshots", "DBClusterSnapshots",
                         SnapshotType="manual"):
        if snap.get("KmsKeyId"):
            out.setdefault(key_id_of(snap["KmsKeyId"]), []).append(snap["DBClusterSnapshotIdentifier"])
    return out


def kept_key_note(env: str, alias: str, key_id: str, region: str, snapshots: list[str]) -> str:
    """What destroy says of a key it keeps: which snapshots, and the exact commands that remove
    them and then the key (the key only after the last snapshot under it is gone)."""
    deletes = " && ".join(f"aws rds delete-db-cluster-snapshot --region {region} "
                          f"--db-cluster-snapshot-identifier {s}" for s in snapshots)
    return (f"kept: KMS key {key_id} ({alias}, {env}) encrypts the kept cluster snapshot(s) "
            f"{', '.join(snapshots)}, which need it to be restored (aurora.restore_from_snapshot); "
            f"to remove them for good later: {deletes} && aws kms delete-alias --region {region} "
            f"--alias-name {alias} && aws kms schedule-key-deletion --region {region} --key-id {key_id} "
            "--pending-window-in-days 7")


def _read_key(kms: Any, key_id: str) -> dict | None:
    """DescribeKey; for a key not pending deletion also its rotation and key policy (as
    `_rotation` and `_policy`); None when the key is gone."""
    try:
        m = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        if m["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion"):
            return m
        m["_rotation"] = bool(kms.get_key_rotation_status(KeyId=key_id).get("KeyRotationEnabled"))
        m["_policy"] = normalise_policy(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        return m
    except Exception as e:
        if is_code(e, ["NotFoundException"]):
            return None
        raise
