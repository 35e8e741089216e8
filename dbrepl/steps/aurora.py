"""aurora: per environment a DB subnet group, a cluster parameter group, an encrypted Aurora
MySQL cluster (engine version from the spec, backups, windows, log exports, deletion protection
in protected environments or where `aurora.deletion_protection` asks for it everywhere), its
instances (not public) and the seed's SSM connection-string parameter.

The cluster parameter group `<env>-aurora-cluster-params-<suffix>` (family from the engine
version: aurora-mysql8.0, aurora-mysql5.7) turns on the logs the cluster exports (otherwise
their streams stay empty) and requires TLS of every client (`require_secure_transport`). All
of its parameters are dynamic: a change applies at once, no reboot. dbrepl compares only the
parameters it sets; others a user tunes in the group are left alone. Destroy deletes the group
after the cluster.

Destroy deletes an unprotected cluster without a snapshot (as the seed). A protected one
(see `protects`; destroy refuses it without --include-protected) has its deletion protection
turned off, then is deleted with a final snapshot, `<cluster>-final-<UTC yyyymmdd-hhmmss>`,
which destroy never deletes; the kms step keeps the key that encrypts it (dbrepl.steps.kms).

`aurora.restore_from_snapshot: {<env>: <snapshot id or ARN>}` makes apply create that
environment's cluster from the snapshot (RestoreDBClusterFromSnapshot) instead of empty: the
plan shows the create with `RestoreFromSnapshot`, preflight refuses a snapshot that is missing,
not available, of another engine or master user, or whose key cannot decrypt it. What the
restore call cannot set (backup retention and window, maintenance window) and whatever the
restored cluster does not have as the spec says is modified right after, and the cluster's
master password is set to the one in the environment's (new) secret, so the secret holds the
working password whatever the snapshot's was. While the cluster exists the setting does nothing
and the plan says so in a note."""

from __future__ import annotations

import functools
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from dbrepl import names
from dbrepl.aws import error_reason, is_code, paginate, tag_dict, tag_list
from dbrepl.aws.tagging import tagged
from dbrepl.engine import Change, Context, Observed, Resource, Step, register
from dbrepl.errors import AwsFailure
from dbrepl.spec import ServerlessV2, aurora_major, aurora_version_key
from dbrepl.steps.network import sorted_ids
from dbrepl.steps.secrets import read_credentials

CLUSTER_STATE_FAULTS = ("InvalidDBClusterStateFault", "InvalidDBInstanceState", "InvalidDBInstanceStateFault")
CLUSTER_FIELDS = ("BackupRetentionPeriod", "PreferredBackupWindow", "PreferredMaintenanceWindow",
                  "DeletionProtection", "VpcSecurityGroupIds", "EngineVersion", "Port", "DBClusterParameterGroupName",
                  "ServerlessV2ScalingConfiguration")
PARAMETER_GROUP_GONE = ("DBParameterGroupNotFound", "DBParameterGroupNotFoundFault")


def parameter_family(engine_version: str) -> str:
    """aurora-mysql8.0 for 8.0.mysql_aurora.3.x, aurora-mysql5.7 for 5.7.mysql_aurora.2.x."""
    return f"aurora-mysql{engine_version.split('.mysql_aurora')[0]}"


def cluster_parameters(log_exports: list[str]) -> dict[str, str]:
    """What the cluster parameter group sets. Aurora writes the general and slow query logs
    (and so exports them) only when these turn them on; the error log is always written. A log
    not exported is turned off explicitly, so the group's parameters are always the same four."""
    return {"general_log": "1" if "general" in log_exports else "0",
            "slow_query_log": "1" if "slowquery" in log_exports else "0",
            "log_output": "FILE",
            "require_secure_transport": "ON"}


@register
class Aurora(Step):
    name = "aurora"
    depends_on = ("network", "kms", "secrets")
    # The subnet group and cluster need the subnets and security groups (network phase 1), not
    # the routes, rules and endpoints of network's last phase.
    needs = {0: ("network:1", "kms", "secrets")}
    permissions = ("rds:CreateDBSubnetGroup", "rds:ModifyDBSubnetGroup", "rds:DeleteDBSubnetGroup",
                   "rds:DescribeDBSubnetGroups", "rds:CreateDBCluster", "rds:ModifyDBCluster", "rds:DeleteDBCluster",
                   "rds:DescribeDBClusters", "rds:CreateDBInstance", "rds:ModifyDBInstance", "rds:DeleteDBInstance",
                   "rds:DescribeDBInstances", "rds:RebootDBInstance", "rds:CreateDBClusterSnapshot",
                   "rds:RestoreDBClusterFromSnapshot", "rds:DescribeDBClusterSnapshots",
                   "rds:AddTagsToResource", "rds:ListTagsForResource", "rds:CreateDBClusterParameterGroup",
                   "rds:DescribeDBClusterParameterGroups", "rds:DescribeDBClusterParameters",
                   "rds:ModifyDBClusterParameterGroup", "rds:DeleteDBClusterParameterGroup",
                   "secretsmanager:GetSecretValue", "kms:CreateGrant", "kms:DescribeKey",
                   "ssm:GetParameters", "ssm:DescribeParameters", "ssm:PutParameter", "ssm:DeleteParameter",
                   "ssm:AddTagsToResource", "logs:DescribeLogGroups", "logs:DeleteLogGroup")

    def desired(self, ctx: Context) -> list[Resource]:
        s, a = ctx.suffix, ctx.spec.aurora
        out = []
        for env, e in ctx.spec.environments.items():
            sg = names.subnet_group(env, s)
            out.append(Resource(
                "subnet-group", "AWS::RDS::DBSubnetGroup", env, sg,
                {"DBSubnetGroupDescription": f"Subnet group for {env} Aurora cluster",
                 "SubnetIds": sorted_ids([ctx.id_of("network", env, f"subnet-{i}")
                                          for i in range(1, len(e.subnets) + 1)])},
                ctx.tags(env, self.name, sg), phase=0,
            ))
            pg = names.cluster_parameter_group(env, s)
            out.append(Resource(
                "cluster-params", "AWS::RDS::DBClusterParameterGroup", env, pg,
                {"Family": parameter_family(forward_version(a.engine_version, ctx.get(self.name, env, "cluster"))),
                 "Description": f"Cluster parameters for {env} Aurora cluster",
                 "Parameters": cluster_parameters(a.log_exports)},
                # Tags are given at creation and not read back: a ListTagsForResource per group
                # on every plan would buy nothing the name does not already say.
                None, phase=0, replace_on=frozenset({"Family", "Description"}),
            ))
            cl = names.cluster(env, s)
            have = ctx.get(self.name, env, "cluster")
            out.append(Resource(
                "cluster", "AWS::RDS::DBCluster", env, cl,
                {"Engine": a.engine, "EngineVersion": forward_version(a.engine_version, have),
                 "MasterUsername": a.master_username,
                 "DBSubnetGroupName": sg, "DBClusterParameterGroupName": pg,
                 "VpcSecurityGroupIds": [ctx.id_of("network", env, "db-sg")],
                 "StorageEncrypted": True, "KmsKeyId": ctx.attr("kms", env, "key", "arn"),
                 "BackupRetentionPeriod": a.backup_retention_days, "PreferredBackupWindow": a.backup_window,
                 "PreferredMaintenanceWindow": a.maintenance_window, "EnableCloudwatchLogsExports": a.log_exports,
                 "DeletionProtection": a.deletion_protection or e.protected, "Port": a.port,
                 **serverless_props(a.serverless_v2),
                 # Only of a cluster that exists: a new one has no members to wait for a reboot.
                 **({"MembersPendingReboot": []} if have is not None else {})},
                ctx.tags(env, self.name, cl), phase=1,
                replace_on=frozenset({"Engine", "MasterUsername", "StorageEncrypted", "KmsKeyId", "DBSubnetGroupName"}),
            ))
            _restore_source(ctx, out[-1])
            for i in range(1, a.instances + 1):
                inst = names.instance(env, i, s)
                out.append(Resource(
                    f"instance-{i}", "AWS::RDS::DBInstance", env, inst,
                    {"DBClusterIdentifier": cl, "Engine": a.engine, "DBInstanceClass": a.instance_class,
                     "PubliclyAccessible": False, "AutoMinorVersionUpgrade": a.auto_minor_version_upgrade},
                    ctx.tags(env, self.name, inst), phase=2,
                    replace_on=frozenset({"DBClusterIdentifier", "Engine"}),
                ))
            endpoint = ctx.attr(self.name, env, "cluster", "endpoint")
            value = endpoint if not isinstance(endpoint, str) else f"mysql://{endpoint}:{a.port}"
            pname = names.connection_parameter(env, s)
            out.append(Resource(
                "connection-parameter", "AWS::SSM::Parameter", env, pname,
                {"Type": "String", "Value": value,
                 "Description": f"{env.capitalize()} Aurora cluster connection string"},
                {**ctx.tags(env, self.name, f"{env}-connection-{s}")}, phase=2,
            ))
        return out

    # ------------------------------------------------------------------ discover
    def discover(self, ctx: Context) -> list[Observed]:
        return ctx.each_group(lambda envs: self._discover(ctx, envs))

    def _discover(self, ctx: Context, envs: list[str]) -> list[Observed]:
        s = ctx.suffix
        sg_names = {names.subnet_group(e, s): e for e in envs}
        cl_names = {names.cluster(e, s): e for e in envs}
        inst_names = {names.instance(e, i, s): (e, i) for e in envs for i in range(1, ctx.spec.aurora.instances + 1)}
        param_names = {names.connection_parameter(e, s): e for e in envs}
        pg_names = {names.cluster_parameter_group(e, s): e for e in envs}
        found = _describe(ctx, envs[0], sg_names, list(cl_names), list(inst_names), list(param_names), pg_names)
        return [*_observe_subnet_groups(ctx, found.subnet_groups, found.subnet_group_tags, sg_names),
                *_observe_parameter_groups(found.parameter_groups, pg_names),
                *_observe_clusters(ctx, found.clusters, cl_names),
                *_observe_instances(ctx, found.instances, inst_names),
                *_observe_parameters(ctx, found.parameters, found.tagged, param_names),
                *(_observe_rds_log_groups(ctx, envs[0], cl_names) if ctx.destroying else [])]

    # ------------------------------------------------------------------ apply
    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        rds = ctx.client("rds", want.env)
        p = want.props
        if want.key == "subnet-group":
            if have is None:
                try:
                    g = rds.create_db_subnet_group(DBSubnetGroupName=want.name,
                                                   DBSubnetGroupDescription=p["DBSubnetGroupDescription"],
                                                   SubnetIds=p["SubnetIds"],
                                                   Tags=tag_list(want.tag_dict))["DBSubnetGroup"]
                    return Observed(want.key, want.type, want.env, want.name, want.name, dict(p), dict(want.tag_dict),
                                    attrs={"arn": g["DBSubnetGroupArn"]})
                except Exception as e:
                    if not is_code(e, ["DBSubnetGroupAlreadyExists"]):
                        raise
                    g = rds.describe_db_subnet_groups(DBSubnetGroupName=want.name)["DBSubnetGroups"][0]
                    have = Observed(want.key, want.type, want.env, want.name, want.name, {}, {},
                                    attrs={"arn": g["DBSubnetGroupArn"]})
            if have.props != p:
                rds.modify_db_subnet_group(DBSubnetGroupName=want.name,
                                           DBSubnetGroupDescription=p["DBSubnetGroupDescription"],
                                           SubnetIds=p["SubnetIds"])
            self._tags(rds, have, want)
            return Observed(want.key, want.type, want.env, want.name, want.name, dict(p), dict(want.tag_dict),
                            attrs=have.attrs)
        if want.key == "cluster":
            return self._apply_cluster(ctx, rds, want, have)
        if want.key == "cluster-params":
            return self._apply_parameter_group(ctx, rds, want, have)
        if want.key.startswith("instance-"):
            return self._apply_instance(ctx, rds, want, have)
        return self._apply_parameter(ctx, want, have)

    def _apply_cluster(self, ctx: Context, rds: Any, want: Resource, have: Observed | None) -> Observed:
        p = want.props
        timeout = ctx.timing.aurora_timeout_minutes * 60
        if have is None and p.get("RestoreFromSnapshot"):
            return self._restore_cluster(ctx, rds, want)
        if have is None:
            creds = read_credentials(ctx, want.env)
            try:
                ctx.retry(lambda: rds.create_db_cluster(
                    DBClusterIdentifier=want.name, Engine=p["Engine"], EngineVersion=p["EngineVersion"],
                    MasterUsername=creds["username"], MasterUserPassword=creds["password"],
                    DBSubnetGroupName=p["DBSubnetGroupName"], VpcSecurityGroupIds=p["VpcSecurityGroupIds"],
                    DBClusterParameterGroupName=p["DBClusterParameterGroupName"],
                    StorageEncrypted=True, KmsKeyId=p["KmsKeyId"], BackupRetentionPeriod=p["BackupRetentionPeriod"],
                    PreferredBackupWindow=p["PreferredBackupWindow"],
                    PreferredMaintenanceWindow=p["PreferredMaintenanceWindow"],
                    EnableCloudwatchLogsExports=p["EnableCloudwatchLogsExports"],
                    DeletionProtection=p["DeletionProtection"], Port=p["Port"], Tags=tag_list(want.tag_dict),
                    **serverless_props(ctx.spec.aurora.serverless_v2),
                ), codes=("InvalidDBSubnetGroupStateFault", "KMSKeyNotAccessibleFault"), deadline=300,
                    what=f"cluster {want.name} to be accepted")
            except Exception as e:
                if not is_code(e, ["DBClusterAlreadyExistsFault"]):
                    raise
            finally:
                creds = {}
            c = self._wait_cluster(ctx, rds, want.name, timeout)
            return Observed(want.key, want.type, want.env, want.name, want.name, cluster_props(c),
                            tag_dict(c.get("TagList")) or dict(want.tag_dict),
                            attrs={"arn": c["DBClusterArn"], "endpoint": c.get("Endpoint"), "status": c.get("Status")})
        mod: dict[str, Any] = {}
        for f in CLUSTER_FIELDS:
            if f in p and have.props.get(f) != p[f]:
                mod[f] = p[f]
        if "EngineVersion" in mod and aurora_major(mod["EngineVersion"]) != aurora_major(
                str(have.props.get("EngineVersion"))):
            mod["AllowMajorVersionUpgrade"] = True  # 5.7 -> 8.0; 3.08 -> 3.10 is a minor upgrade
        want_logs = set(p["EnableCloudwatchLogsExports"])
        have_logs = set(have.props.get("EnableCloudwatchLogsExports") or [])
        if want_logs != have_logs:
            mod["CloudwatchLogsExportConfiguration"] = {"EnableLogTypes": sorted(want_logs - have_logs),
                                                        "DisableLogTypes": sorted(have_logs - want_logs)}
        members = have.attrs.get("members") or []
        if mod:
            ctx.retry(lambda: rds.modify_db_cluster(DBClusterIdentifier=want.name, ApplyImmediately=True, **mod),
                      codes=CLUSTER_STATE_FAULTS, deadline=timeout, what=f"cluster {want.name} to accept changes")
            # A newly attached parameter group leaves the members pending-reboot from here on.
            members = cluster_members(self._wait_cluster(ctx, rds, want.name, timeout))
        left = self._reboot_pending(ctx, rds, want, members)
        self._tags(rds, have, want)
        props = {**p, **({"MembersPendingReboot": left} if "MembersPendingReboot" in p else {})}
        return Observed(want.key, want.type, want.env, want.name, want.name, props, dict(want.tag_dict),
                        attrs=have.attrs)

    # ------------------------------------------------------------------ reboots for parameters
    def may_reboot(self, ctx: Context, env: str) -> bool:
        """Protected environments only with `apply --reboot`; others unless the spec says not."""
        protected = ctx.spec.environments[env].protected
        return ctx.reboot or (not protected and ctx.spec.aurora.reboot_for_parameters)

    def _reboot_advice(self, ctx: Context, env: str) -> str:
        why = f"{env} is protected" if ctx.spec.environments[env].protected else "aurora.reboot_for_parameters is false"
        from dbrepl.invocation import command

        reboot = command("apply", "--reboot", suffix=ctx.suffix)
        return (f"{why}, so apply leaves them pending: run `{reboot}` at a quiet time (one at a "
                "time, readers first, writer last; each is unavailable for about a minute), or reboot them yourself")

    def _reboot_pending(self, ctx: Context, rds: Any, want: Resource, members: list[dict]) -> list[str]:
        """Reboot the members whose parameter group waits for it, one at a time, readers first and
        the writer last, each available again before the next; the names still pending."""
        pending = [m for m in members if m["status"] == "pending-reboot"]
        if not pending:
            return []
        if not self.may_reboot(ctx, want.env):
            ctx.hold(f"{want.type} {want.name}", f"{', '.join(m['id'] for m in pending)} wait for a reboot to take "
                                                 f"the cluster parameter group; {self._reboot_advice(ctx, want.env)}")
            return sorted(m["id"] for m in pending)
        timeout = ctx.timing.aurora_timeout_minutes * 60
        for m in sorted(pending, key=lambda m: (m["writer"], m["id"])):
            ctx.retry(functools.partial(rds.reboot_db_instance, DBInstanceIdentifier=m["id"]),
                      codes=CLUSTER_STATE_FAULTS, deadline=timeout, what=f"instance {m['id']} to accept a reboot")
            self._wait_instance(ctx, rds, m["id"], timeout)
        return []

    def held(self, ctx: Context, change: Change) -> str | None:
        """A cluster whose only change is members waiting for a reboot this run may not do."""
        if change.key != "cluster" or set(change.diff) != {"MembersPendingReboot"}:
            return None
        if self.may_reboot(ctx, change.env):
            return None
        pending = change.diff["MembersPendingReboot"][0] or []
        return (f"{', '.join(pending)} wait for a reboot to take the cluster parameter group; "
                f"{self._reboot_advice(ctx, change.env)}")

    def notes(self, ctx: Context) -> list[str]:
        out = []
        for env in ctx.all_envs:
            have = ctx.get(self.name, env, "cluster")
            if have is None or not ctx.selected(env):
                continue
            running, spec = have.props.get("EngineVersion"), ctx.spec.aurora.engine_version
            if forward_version(spec, have) != spec:
                out.append(f"{have.name} runs {running}, newer than the spec's {spec} (AWS upgraded it); dbrepl "
                           f"never downgrades a cluster: set aurora.engine_version to {running} in the spec")
            pending = have.props.get("MembersPendingReboot") or []
            if pending:
                how = ("apply reboots them one at a time, readers first, writer last (each is unavailable for "
                       "about a minute)" if self.may_reboot(ctx, env) else self._reboot_advice(ctx, env))
                out.append(f"{have.name}: {', '.join(pending)} wait for a reboot to take the cluster parameter "
                           f"group (pending-reboot); {how}")
        return out + self._restore_notes(ctx)

    def _restore_cluster(self, ctx: Context, rds: Any, want: Resource) -> Observed:
        """RestoreDBClusterFromSnapshot with what it can set; then, as an update of what was restored,
        what it cannot (backups, windows) or did not take, and the secret's password."""
        p = want.props
        snapshot = p["RestoreFromSnapshot"]
        timeout = ctx.timing.aurora_timeout_minutes * 60
        try:
            ctx.retry(lambda: rds.restore_db_cluster_from_snapshot(
                DBClusterIdentifier=want.name, SnapshotIdentifier=snapshot, Engine=p["Engine"],
                EngineVersion=p["EngineVersion"], DBSubnetGroupName=p["DBSubnetGroupName"],
                VpcSecurityGroupIds=p["VpcSecurityGroupIds"],
                DBClusterParameterGroupName=p["DBClusterParameterGroupName"],
                KmsKeyId=p["KmsKeyId"], EnableCloudwatchLogsExports=p["EnableCloudwatchLogsExports"],
                DeletionProtection=p["DeletionProtection"], Port=p["Port"], Tags=tag_list(want.tag_dict),
                # A db.serverless instance joins only a cluster that has a range (issue 18, point 3).
                **serverless_props(ctx.spec.aurora.serverless_v2),
            ), codes=("InvalidDBSubnetGroupStateFault",), deadline=300, what=f"cluster {want.name} to be accepted")
        except Exception as e:
            if is_code(e, ["KMSKeyNotAccessibleFault"]):
                raise AwsFailure(f"restore cluster {want.name} from snapshot {snapshot}",
                                 f"{error_reason(e)}: the snapshot's KMS key (or {p['KmsKeyId']}) is disabled, "
                                 "pending deletion or denied to RDS; a key pending deletion comes back with "
                                 "`aws kms cancel-key-deletion` then `aws kms enable-key`, a deleted one never",
                                 "nothing of the cluster was made") from None
            if not is_code(e, ["DBClusterAlreadyExistsFault"]):
                raise
        c = self._wait_cluster(ctx, rds, want.name, timeout)
        self._set_master_password(ctx, rds, want, timeout)
        restored = Observed(want.key, want.type, want.env, want.name, want.name, cluster_props(c),
                            tag_dict(c.get("TagList")),
                            attrs={"arn": c["DBClusterArn"], "endpoint": c.get("Endpoint"), "status": c.get("Status")})
        settled = replace(want, props={k: v for k, v in p.items() if k != "RestoreFromSnapshot"})
        return self._apply_cluster(ctx, rds, settled, restored)

    def _set_master_password(self, ctx: Context, rds: Any, want: Resource, timeout: float) -> None:
        """The restored cluster's master password is the snapshot's: set it to the secret's (made
        new by this apply), so the secret is the way in, as for a cluster created empty."""
        creds = read_credentials(ctx, want.env)
        try:
            ctx.retry(lambda: rds.modify_db_cluster(DBClusterIdentifier=want.name, MasterUserPassword=creds["password"],
                                                    ApplyImmediately=True),
                      codes=CLUSTER_STATE_FAULTS, deadline=timeout,
                      what=f"cluster {want.name} to accept its master password")
        finally:
            creds = {}
        self._wait_cluster(ctx, rds, want.name, timeout)

    def _restore_notes(self, ctx: Context) -> list[str]:
        out = []
        for env, snapshot in ctx.spec.aurora.restore_from_snapshot.items():
            have = ctx.get(self.name, env, "cluster")
            if ctx.selected(env) and have is not None:
                out.append(f"aurora.restore_from_snapshot.{env}: {have.name} exists, so snapshot {snapshot} is not "
                           "restored (the setting acts only when apply creates the cluster); remove the setting, "
                           f"or destroy {env}'s cluster first to bring the snapshot's data back")
        return out

    def _apply_parameter_group(self, ctx: Context, rds: Any, want: Resource, have: Observed | None) -> Observed:
        p = want.props
        if have is None:
            try:
                rds.create_db_cluster_parameter_group(
                    DBClusterParameterGroupName=want.name, DBParameterGroupFamily=p["Family"],
                    Description=p["Description"], Tags=tag_list(ctx.tags(want.env, self.name, want.name)))
            except Exception as e:
                if not is_code(e, ["DBParameterGroupAlreadyExists", "DBParameterGroupAlreadyExistsFault"]):
                    raise
        held = (have.props.get("Parameters") or {}) if have is not None else {}
        changed = [k for k, v in p["Parameters"].items() if held.get(k) != v]
        if changed:
            # All dynamic: "immediate" applies them to the cluster at once, without a reboot.
            rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName=want.name, Parameters=[
                {"ParameterName": k, "ParameterValue": p["Parameters"][k], "ApplyMethod": "immediate"}
                for k in sorted(changed)])
        return Observed(want.key, want.type, want.env, want.name, want.name, dict(p), None, phase=0)

    def _apply_instance(self, ctx: Context, rds: Any, want: Resource, have: Observed | None) -> Observed:
        p = want.props
        timeout = ctx.timing.aurora_timeout_minutes * 60
        if have is None:
            try:
                i = ctx.retry(lambda: rds.create_db_instance(
                    DBInstanceIdentifier=want.name, DBClusterIdentifier=p["DBClusterIdentifier"], Engine=p["Engine"],
                    DBInstanceClass=p["DBInstanceClass"], PubliclyAccessible=False,
                    AutoMinorVersionUpgrade=p["AutoMinorVersionUpgrade"], Tags=tag_list(want.tag_dict),
                ), codes=CLUSTER_STATE_FAULTS, deadline=timeout, what=f"cluster of {want.name} to be available")
                arn = i["DBInstance"]["DBInstanceArn"]
            except Exception as e:
                if not is_code(e, ["DBInstanceAlreadyExists"]):
                    raise
                arn = ""
            self._wait_instance(ctx, rds, want.name, timeout)
            return Observed(want.key, want.type, want.env, want.name, want.name, dict(p), dict(want.tag_dict),
                            attrs={"arn": arn})
        mod = {f: p[f] for f in ("DBInstanceClass", "AutoMinorVersionUpgrade", "PubliclyAccessible")
               if have.props.get(f) != p[f]}
        if mod:
            ctx.retry(lambda: rds.modify_db_instance(DBInstanceIdentifier=want.name, ApplyImmediately=True, **mod),
                      codes=CLUSTER_STATE_FAULTS, deadline=timeout, what=f"instance {want.name} to accept changes")
            self._wait_instance(ctx, rds, want.name, timeout)
        self._tags(rds, have, want)
        return Observed(want.key, want.type, want.env, want.name, want.name, dict(p), dict(want.tag_dict),
                        attrs=have.attrs)

    def _apply_parameter(self, ctx: Context, want: Resource, have: Observed | None) -> Observed:
        ssm = ctx.client("ssm", want.env)
        p = want.props
        if have is None:
            try:
                ssm.put_parameter(Name=want.name, Value=p["Value"], Type="String", Description=p["Description"],
                                  Tags=tag_list(want.tag_dict))
            except Exception as e:
                if not is_code(e, ["ParameterAlreadyExists"]):
                    raise
                ssm.put_parameter(Name=want.name, Value=p["Value"], Type="String", Description=p["Description"],
                                  Overwrite=True)
                ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=want.name, Tags=tag_list(want.tag_dict))
        else:
            if {k: have.props.get(k) for k in p} != p:
                ssm.put_parameter(Name=want.name, Value=p["Value"], Type="String", Description=p["Description"],
                                  Overwrite=True)
            if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=want.name, Tags=tag_list(want.tag_dict))
        return Observed(want.key, want.type, want.env, want.name, want.name, dict(p), dict(want.tag_dict), phase=2)

    def _tags(self, rds: Any, have: Observed, want: Resource) -> None:
        if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()) and have.attrs.get("arn"):
            rds.add_tags_to_resource(ResourceName=have.attrs["arn"], Tags=tag_list(want.tag_dict))

    def _wait_cluster(self, ctx: Context, rds: Any, name: str, timeout: float) -> dict:
        box: dict[str, Any] = {}

        def ready() -> bool:
            c = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
            box["c"] = c
            _stop_if_terminal("Aurora cluster", name, c.get("Status", ""))
            return c.get("Status") == "available"

        ctx.wait_for(f"Aurora cluster {name} to be available", ready, timeout)
        return box["c"]

    def _wait_instance(self, ctx: Context, rds: Any, name: str, timeout: float) -> None:
        def ready() -> bool:
            i = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
            _stop_if_terminal("Aurora instance", name, i.get("DBInstanceStatus", ""))
            return i.get("DBInstanceStatus") == "available"

        ctx.wait_for(f"Aurora instance {name} to be available", ready, timeout)

    # ------------------------------------------------------------------ delete
    def protects(self, ctx: Context, have: Observed) -> bool:
        """A cluster with deletion protection on is protected wherever it is."""
        return have.type == "AWS::RDS::DBCluster" and bool(have.props.get("DeletionProtection"))

    def final_snapshot(self, ctx: Context, have: Observed) -> str | None:
        if have.type != "AWS::RDS::DBCluster":
            return None
        return final_snapshot_name(have.name, datetime.now(UTC))

    def delete(self, ctx: Context, have: Observed) -> None:
        rds = ctx.client("rds", have.env)
        timeout = ctx.timing.aurora_timeout_minutes * 60
        if have.type == "AWS::Logs::LogGroup":
            try:
                ctx.client("logs", have.env).delete_log_group(logGroupName=have.name)
            except Exception as e:
                if not is_code(e, ["ResourceNotFoundException"]):
                    raise
        elif have.type == "AWS::SSM::Parameter":
            try:
                ctx.client("ssm", have.env).delete_parameter(Name=have.name)
            except Exception as e:
                if not is_code(e, ["ParameterNotFound"]):
                    raise
        elif have.type == "AWS::RDS::DBInstance":
            try:
                ctx.retry(lambda: rds.delete_db_instance(DBInstanceIdentifier=have.name),
                          codes=CLUSTER_STATE_FAULTS, deadline=timeout, what=f"instance {have.name} to be deletable")
            except Exception as e:
                if not is_code(e, ["DBInstanceNotFound", "DBInstanceNotFoundFault"]):
                    raise
            ctx.wait_for(f"Aurora instance {have.name} to be deleted",
                         lambda: _instance_gone(rds, have.name), timeout)
        elif have.type == "AWS::RDS::DBCluster":
            snapshot = have.attrs.get("final_snapshot")
            final: dict[str, Any] = ({"FinalDBSnapshotIdentifier": snapshot} if snapshot
                                     else {"SkipFinalSnapshot": True})
            try:
                if have.props.get("DeletionProtection"):  # AWS refuses to delete it otherwise
                    ctx.retry(lambda: rds.modify_db_cluster(DBClusterIdentifier=have.name, DeletionProtection=False,
                                                            ApplyImmediately=True),
                              codes=CLUSTER_STATE_FAULTS, deadline=timeout,
                              what=f"cluster {have.name} to accept turning deletion protection off")
                    self._wait_cluster(ctx, rds, have.name, timeout)
                ctx.retry(lambda: rds.delete_db_cluster(DBClusterIdentifier=have.name, **final),
                          codes=CLUSTER_STATE_FAULTS, deadline=timeout, what=f"cluster {have.name} to be deletable")
            except Exception as e:
                if not is_code(e, ["DBClusterNotFoundFault"]):
                    raise
            ctx.wait_for(f"Aurora cluster {have.name} to be deleted", lambda: _cluster_gone(rds, have.name), timeout)
        elif have.type == "AWS::RDS::DBClusterParameterGroup":
            try:
                # AWS refuses while a cluster (one still being deleted, too) uses the group.
                ctx.retry(lambda: rds.delete_db_cluster_parameter_group(DBClusterParameterGroupName=have.name),
                          codes=("InvalidDBParameterGroupState", "InvalidDBParameterGroupStateFault"),
                          deadline=timeout, what=f"cluster parameter group {have.name} to be free")
            except Exception as e:
                if not is_code(e, PARAMETER_GROUP_GONE):
                    raise
        elif have.type == "AWS::RDS::DBSubnetGroup":
            try:
                ctx.retry(lambda: rds.delete_db_subnet_group(DBSubnetGroupName=have.name),
                          codes=("InvalidDBSubnetGroupStateFault",), deadline=timeout,
                          what=f"subnet group {have.name} to be free")
            except Exception as e:
                if not is_code(e, ["DBSubnetGroupNotFoundFault"]):
                    raise


# Statuses a cluster or instance does not leave by itself (RDS User Guide, "Viewing Amazon Aurora
# DB cluster status" and "... DB instance status"), each with what to do about it. A wait that meets
# one stops at once: waiting out `aurora_timeout_minutes` would only hide the reason.
TERMINAL_STATUS = {
    "inaccessible-encryption-credentials": "its KMS key is disabled, deleted or denied to RDS: enable the key or "
                                           "restore its grants, then restore the cluster from a backup",
    "inaccessible-encryption-credentials-recoverable": "its KMS key is disabled or denied to RDS: enable the key "
                                                       "and start the cluster",
    "incompatible-network": "its subnets or security groups no longer fit (a deleted subnet, no free addresses, "
                            "DNS turned off): fix the VPC",
    "incompatible-parameters": "its parameter group has values it cannot start with: fix the parameter group",
    "incompatible-option-group": "its option group cannot be applied",
    "incompatible-restore": "a point-in-time restore cannot complete",
    "incompatible-credentials": "its credentials cannot be used",
    "failed": "RDS could not recover it",
    "cloning-failed": "cloning it failed",
    "migration-failed": "migrating data into it failed",
    "insufficient-capacity": "AWS has no capacity for the instance class there: choose another class or AZ",
    "restore-error": "restoring it failed",
    "storage-full": "its storage is full",
    "stopped": "it is stopped: start it (aws rds start-db-cluster) and apply again",
}


def _stop_if_terminal(kind: str, name: str, status: str) -> None:
    why = TERMINAL_STATUS.get(status) or ("RDS cannot run it with this configuration"
                                          if status.startswith("incompatible-") else None)
    if why is None:
        return
    raise AwsFailure(f"wait for {kind} {name} to be available",
                     f"it is {status!r}, which it does not leave by itself ({why}); it was left as it is")


def _restore_source(ctx: Context, cluster: Resource) -> None:
    """A cluster not there yet is created from `aurora.restore_from_snapshot`, when it names one."""
    snapshot = ctx.spec.aurora.restore_from_snapshot.get(cluster.env)
    if snapshot and ctx.get("aurora", cluster.env, "cluster") is None:
        cluster.props["RestoreFromSnapshot"] = snapshot


def final_snapshot_name(cluster: str, when: datetime) -> str:
    """`<cluster>-final-<yyyymmdd-hhmmss>` (UTC), a valid snapshot identifier: letters, digits and
    single hyphens, starting with a letter, not ending with a hyphen, at most 255 characters."""
    stamp = f"-final-{when.astimezone(UTC):%Y%m%d-%H%M%S}"
    base = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9-]", "-", cluster)).strip("-")
    if not base or not base[0].isalpha():
        base = f"c{base}"
    return base[:255 - len(stamp)].rstrip("-") + stamp


def serverless_props(sv2: ServerlessV2 | None) -> dict[str, Any]:
    """The cluster's capacity range as CreateDBCluster and ModifyDBCluster take it; none when the
    spec sets none (then a range set by hand is left alone: RDS has no call to remove one)."""
    return {} if sv2 is None else {"ServerlessV2ScalingConfiguration": sv2.scaling}


def _observed_scaling(c: dict) -> dict[str, Any]:
    """The range as compared: RDS adds SecondsUntilAutoPause at 0 ACUs, which the spec does not set."""
    got = c.get("ServerlessV2ScalingConfiguration")
    if not got:
        return {}
    return {"ServerlessV2ScalingConfiguration": {"MinCapacity": got.get("MinCapacity"),
                                                 "MaxCapacity": got.get("MaxCapacity")}}


def forward_version(spec_version: str, have: Observed | None) -> str:
    """The version a cluster should run: the spec's, or the running one where that is newer (RDS
    upgrades clusters by itself, e.g. off an end-of-support minor, and refuses downgrades)."""
    running = have.props.get("EngineVersion") if have is not None else None
    want, got = aurora_version_key(spec_version), aurora_version_key(str(running))
    return str(running) if want is not None and got is not None and got > want else spec_version


def cluster_members(c: dict) -> list[dict[str, Any]]:
    """The members as reboots need them: name, writer or not, the parameter group's status."""
    return [{"id": m["DBInstanceIdentifier"], "writer": bool(m.get("IsClusterWriter")),
             "status": m.get("DBClusterParameterGroupStatus") or "in-sync"} for m in c.get("DBClusterMembers") or []]


def cluster_props(c: dict) -> dict[str, Any]:
    return {
        "Engine": c.get("Engine"), "EngineVersion": c.get("EngineVersion"), "MasterUsername": c.get("MasterUsername"),
        "DBSubnetGroupName": c.get("DBSubnetGroup"),
        "DBClusterParameterGroupName": c.get("DBClusterParameterGroup"),
        "VpcSecurityGroupIds": sorted(g["VpcSecurityGroupId"] for g in c.get("VpcSecurityGroups", [])),
        "StorageEncrypted": bool(c.get("StorageEncrypted")), "KmsKeyId": c.get("KmsKeyId"),
        "BackupRetentionPeriod": c.get("BackupRetentionPeriod"),
        "PreferredBackupWindow": c.get("PreferredBackupWindow"),
        "PreferredMaintenanceWindow": c.get("PreferredMaintenanceWindow"),
        "EnableCloudwatchLogsExports": sorted(c.get("EnabledCloudwatchLogsExports") or []),
        "DeletionProtection": bool(c.get("DeletionProtection")), "Port": c.get("Port"),
        **_observed_scaling(c),
        "MembersPendingReboot": sorted(m["id"] for m in cluster_members(c) if m["status"] == "pending-reboot"),
    }


def _get_parameters(ssm: Any, names_: list[str]) -> list[dict]:
    out = []
    for i in range(0, len(names_), 10):
        out += ssm.get_parameters(Names=names_[i:i + 10])["Parameters"]
    if not out:
        return out
    # GetParameters carries no description: one DescribeParameters call for all of them.
    desc = {}
    for page in ssm.get_paginator("describe_parameters").paginate(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [p["Name"] for p in out]}]
    ):
        for d in page.get("Parameters", []):
            desc[d["Name"]] = d.get("Description", "")
    for p in out:
        p["Description"] = desc.get(p["Name"], "")
    return out


def _instance_gone(rds: Any, name: str) -> bool:
    try:
        rds.describe_db_instances(DBInstanceIdentifier=name)
        return False
    except Exception as e:
        if is_code(e, ["DBInstanceNotFound", "DBInstanceNotFoundFault"]):
            return True
        raise


def _cluster_gone(rds: Any, name: str) -> bool:
    try:
        rds.describe_db_clusters(DBClusterIdentifier=name)
        return False
    except Exception as e:
        if is_code(e, ["DBClusterNotFoundFault"]):
            return True
        raise


# ---------------------------------------------------------------------- discover, by part

@dataclass
class _Found:
    """What the describe calls of one group (account and region) returned."""

    subnet_groups: list[dict]  # ours by name
    subnet_group_tags: dict[str, dict[str, str]]  # subnet group ARN -> tags
    clusters: list[dict]
    instances: list[dict]
    parameters: list[dict]
    tagged: dict[str, dict[str, str]]  # ARN -> tags, from the tagging API
    parameter_groups: list[tuple[dict, dict[str, str]]]  # ours by name, with the parameters dbrepl sets


def _describe(ctx: Context, env0: str, sg_names: dict[str, str], cl_names: list[str], inst_names: list[str],
              param_names: list[str], pg_names: dict[str, str]) -> _Found:
    """The group's describe calls side by side."""
    rds = ctx.client("rds", env0)
    ssm = ctx.client("ssm", env0)
    with ThreadPoolExecutor(max_workers=6) as pool:
        f_sg = pool.submit(paginate, rds, "describe_db_subnet_groups", "DBSubnetGroups")
        f_cl = pool.submit(paginate, rds, "describe_db_clusters", "DBClusters",
                           Filters=[{"Name": "db-cluster-id", "Values": cl_names}])
        f_in = pool.submit(paginate, rds, "describe_db_instances", "DBInstances",
                           Filters=[{"Name": "db-instance-id", "Values": inst_names}])
        f_pa = pool.submit(_get_parameters, ssm, param_names)
        f_tags = pool.submit(tagged, ctx, env0)
        f_pg = pool.submit(paginate, rds, "describe_db_cluster_parameter_groups", "DBClusterParameterGroups")
        subnet_groups = [g for g in f_sg.result() if g["DBSubnetGroupName"] in sg_names]
        # Subnet groups carry tags only through ListTagsForResource.
        sg_tags = dict(zip([g["DBSubnetGroupArn"] for g in subnet_groups],
                           pool.map(lambda g: tag_dict(rds.list_tags_for_resource(
                               ResourceName=g["DBSubnetGroupArn"])["TagList"]), subnet_groups), strict=True))
        groups = [g for g in f_pg.result() if g["DBClusterParameterGroupName"] in pg_names]
        # Source=user: only what was set in the group, not the family's hundreds of defaults.
        values = pool.map(lambda g: _user_parameters(rds, g["DBClusterParameterGroupName"]), groups)
        pgs = list(zip(groups, values, strict=True))
        return _Found(subnet_groups, sg_tags, f_cl.result(), f_in.result(), f_pa.result(), f_tags.result(), pgs)


def _user_parameters(rds: Any, name: str) -> dict[str, str]:
    """The parameters dbrepl sets, as the group holds them (absent: not set)."""
    ours = set(cluster_parameters([]))
    items = paginate(rds, "describe_db_cluster_parameters", "Parameters", DBClusterParameterGroupName=name,
                     Source="user")
    return {p["ParameterName"]: str(p.get("ParameterValue")) for p in items if p["ParameterName"] in ours}


def _observe_parameter_groups(groups: list[tuple[dict, dict[str, str]]], pg_names: dict[str, str]) -> list[Observed]:
    return [Observed("cluster-params", "AWS::RDS::DBClusterParameterGroup", pg_names[g["DBClusterParameterGroupName"]],
                     g["DBClusterParameterGroupName"], g["DBClusterParameterGroupName"],
                     {"Family": g.get("DBParameterGroupFamily"), "Description": g.get("Description"),
                      "Parameters": values}, None, attrs={"arn": g.get("DBClusterParameterGroupArn")}, phase=0)
            for g, values in groups]


def _observe_subnet_groups(ctx: Context, subnet_groups: list[dict], sg_tags: dict[str, dict[str, str]],
                           sg_names: dict[str, str]) -> list[Observed]:
    out = []
    for g in subnet_groups:
        env = sg_names[g["DBSubnetGroupName"]]
        t = sg_tags[g["DBSubnetGroupArn"]]
        if not ctx.owns(t):
            continue
        out.append(Observed("subnet-group", "AWS::RDS::DBSubnetGroup", env, g["DBSubnetGroupName"],
                            g["DBSubnetGroupName"],
                            {"DBSubnetGroupDescription": g.get("DBSubnetGroupDescription"),
                             "SubnetIds": sorted_ids([x["SubnetIdentifier"] for x in g.get("Subnets", [])])},
                            t, attrs={"arn": g["DBSubnetGroupArn"]}, phase=0))
    return out


def _observe_clusters(ctx: Context, clusters: list[dict], cl_names: dict[str, str]) -> list[Observed]:
    out = []
    for c in clusters:
        env = cl_names.get(c["DBClusterIdentifier"])
        t = tag_dict(c.get("TagList"))
        if env is None or not ctx.owns(t) or c.get("Status") == "deleting":
            continue
        out.append(Observed("cluster", "AWS::RDS::DBCluster", env, c["DBClusterIdentifier"],
                            c["DBClusterIdentifier"], cluster_props(c), t,
                            attrs={"arn": c["DBClusterArn"], "endpoint": c.get("Endpoint"),
                                   "status": c.get("Status"), "reader": c.get("ReaderEndpoint"),
                                   "members": cluster_members(c)}, phase=1))
    return out


def _observe_instances(ctx: Context, instances: list[dict], inst_names: dict[str, tuple[str, int]],
                       ) -> list[Observed]:
    out = []
    for i in instances:
        key = inst_names.get(i["DBInstanceIdentifier"])
        t = tag_dict(i.get("TagList"))
        if key is None or not ctx.owns(t) or i.get("DBInstanceStatus") == "deleting":
            continue
        env, n = key
        out.append(Observed(f"instance-{n}", "AWS::RDS::DBInstance", env, i["DBInstanceIdentifier"],
                            i["DBInstanceIdentifier"],
                            {"DBClusterIdentifier": i.get("DBClusterIdentifier"), "Engine": i.get("Engine"),
                             "DBInstanceClass": i.get("DBInstanceClass"),
                             "PubliclyAccessible": bool(i.get("PubliclyAccessible")),
                             "AutoMinorVersionUpgrade": bool(i.get("AutoMinorVersionUpgrade"))},
                            t, attrs={"arn": i["DBInstanceArn"], "status": i.get("DBInstanceStatus")}, phase=2))
    return out


def rds_log_prefix(cluster: str) -> str:
    return f"/aws/rds/cluster/{cluster}/"


def _observe_rds_log_groups(ctx: Context, env0: str, cl_names: dict[str, str]) -> list[Observed]:
    """Destroy only: the log groups RDS made for a cluster's exported logs
    (`/aws/rds/cluster/<cluster>/<log type>`). RDS leaves them behind when the cluster goes, so
    destroy deletes them, in the last phase, once the cluster is gone; found by name even after
    the cluster was deleted (a destroy stopped half-way). dbrepl neither makes nor tags them, so a
    plan does not read them: one read per cluster, in destroy only."""
    logs = ctx.client("logs", env0)
    with ThreadPoolExecutor(max_workers=max(1, len(cl_names))) as pool:
        found = dict(zip(cl_names, pool.map(lambda cl: paginate(logs, "describe_log_groups", "logGroups",
                                                                logGroupNamePrefix=rds_log_prefix(cl)), cl_names),
                         strict=True))
    out = []
    for cl, groups in found.items():
        for g in groups:
            name = g["logGroupName"]
            out.append(Observed(f"rds-log:{name.removeprefix(rds_log_prefix(cl))}", "AWS::Logs::LogGroup",
                                cl_names[cl], name, name, {}, None, attrs={"arn": g.get("arn", "")}, phase=0))
    return out


def _observe_parameters(ctx: Context, params: list[dict], tags: dict[str, dict[str, str]],
                        param_names: dict[str, str]) -> list[Observed]:
    out = []
    for p in params:
        env = param_names[p["Name"]]
        arn = p.get("ARN", "")
        t = tags.get(arn, {})
        if not ctx.owns(t):
            continue
        out.append(Observed("connection-parameter", "AWS::SSM::Parameter", env, p["Name"], p["Name"],
                            {"Type": p.get("Type"), "Value": p.get("Value"),
                             "Description": p.get("Description", "_unknown_")},
                            t, attrs={"arn": arn}, phase=2))
    return out
