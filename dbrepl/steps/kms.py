"""kms: one customer managed key per environment with the alias alias/<env>-key-<suffix>
and the seed's key policy (the account root, plus RDS, S3, SSM and Secrets Manager)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbrepl import names
from dbrepl.aws import is_code, paginate
from dbrepl.aws.tagging import tagged
from dbrepl.engine import Change, Context, Observed, Resource, Step, register


def key_policy(account: str, hub_account: str | None = None, alarm_topic: bool = False) -> dict[str, Any]:
    """The seed's key policy; plus, when the sync hub is another account, use by that account
    (its IAM then decides: the functions' role reads this environment's secret through it)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow services to use the key", "Effect": "Allow",
             "Principal": {"Service": ["rds.amazonaws.com", "s3.amazonaws.com", "ssm.amazonaws.com",
                                       "secretsmanager.amazonaws.com"]},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant"], "Resource": "*"},
        ],
    }
    if hub_account and hub_account != account:
        policy["Statement"].append(
            {"Sid": "Allow the sync hub account", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{hub_account}:root"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], "Resource": "*"})
    if alarm_topic:
        # Issue 12 (alarms step): the hub's key encrypts the alarm topic (SNS); CloudWatch alarms
        # publishing to an encrypted topic need the key (AWS: "compatibility between event sources
        # from AWS services and encrypted topics").
        policy["Statement"].append(
            {"Sid": "Allow CloudWatch alarms to use the key", "Effect": "Allow",
             "Principal": {"Service": "cloudwatch.amazonaws.com"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"})
    return policy


def description(env: str, s: str) -> str:
    return f"KMS key for {env} environment encryption - {s}"


@register
class Kms(Step):
    name = "kms"
    permissions = ("kms:CreateKey", "kms:DescribeKey", "kms:EnableKey", "kms:ListAliases", "kms:CreateAlias",
                   "kms:UpdateAlias", "kms:DeleteAlias", "kms:ScheduleKeyDeletion", "kms:TagResource",
                   "kms:UpdateKeyDescription", "tag:GetResources")

    def desired(self, ctx: Context) -> list[Resource]:
        out = []
        for env in ctx.all_envs:
            alias = names.kms_alias(env, ctx.suffix)
            out.append(Resource("key", "AWS::KMS::Key", env, f"{env}-key-{ctx.suffix}",
                                {"Description": description(env, ctx.suffix), "Enabled": True},
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
            metas = dict(zip(candidates, pool.map(lambda k, kms=kms: _describe(kms, k), candidates), strict=True))
        found: dict[str, Observed] = {}
        for kid, env in candidates.items():
            m = metas[kid]
            if m is None or m["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion"):
                continue
            tags = tags_by_arn.get(m["Arn"], {})
            if not ctx.owns(tags):
                continue
            o = Observed("key", "AWS::KMS::Key", env, f"{env}-key-{ctx.suffix}", m["KeyId"],
                         {"Description": m.get("Description", ""), "Enabled": m["KeyState"] == "Enabled"},
                         tags, attrs={"arn": m["Arn"]}, phase=0)
            # Prefer the key the alias points at; a tagged orphan (crash before the alias) otherwise.
            if env not in found or alias_of.get(env, {}).get("TargetKeyId") == kid:
                found[env] = o
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
                    Description=want.props["Description"],
                    Policy=json.dumps(key_policy(ctx.account_id(want.env), ctx.account_id(ctx.hub),
                                                 alarm_topic=want.env == ctx.hub)),  # issue 12: hub's key only
                    Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(want.tags.items())],
                )["KeyMetadata"]
                return Observed("key", want.type, want.env, want.name, m["KeyId"], dict(want.props),
                                dict(want.tags), attrs={"arn": m["Arn"]})
            if not have.props.get("Enabled"):
                kms.enable_key(KeyId=have.id)
            if have.props.get("Description") != want.props["Description"]:
                kms.update_key_description(KeyId=have.id, Description=want.props["Description"])
            if any((have.tags or {}).get(k) != v for k, v in want.tags.items()):
                kms.tag_resource(KeyId=have.id, Tags=[{"TagKey": k, "TagValue": v} for k, v in want.tags.items()])
            return Observed("key", want.type, want.env, want.name, have.id, dict(want.props), dict(want.tags),
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

    def delete(self, ctx: Context, have: Observed) -> None:
        kms = ctx.client("kms", have.env)
        try:
            if have.key == "alias":
                kms.delete_alias(AliasName=have.name)
            else:
                # KMS keeps a key 7-30 days; the alias is gone, so the name is free at once.
                kms.schedule_key_deletion(KeyId=have.id, PendingWindowInDays=7)
        except Exception as e:
            if not is_code(e, ["NotFoundException", "KMSInvalidStateException"]):
                raise


def _describe(kms: Any, key_id: str) -> dict | None:
    try:
        return kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except Exception as e:
        if is_code(e, ["NotFoundException"]):
            return None
        raise
