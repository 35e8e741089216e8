"""lambdas: the function role (trusting Lambda, AWSLambdaVPCAccessExecutionRole plus a
least-privilege inline policy), the schema-sync and data-sync functions in the hub VPC
(python3.12+, the deterministic bundle carrying pymysql and dbrepl.sync, the seed's
environment variables) and their log groups with the configured retention."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbrepl import names
from dbrepl.aws import is_code, or_none, paginate, tag_dict
from dbrepl.aws.partition import via_service
from dbrepl.aws.policy import normalise_policy
from dbrepl.aws.tagging import tagged
from dbrepl.bundle import code_sha256
from dbrepl.engine import SHARED, Change, Context, Observed, Resource, Step, Unknown, register
from dbrepl.errors import AwsFailure
from dbrepl.steps.bucket import bucket_name
from dbrepl.sync import contract
from dbrepl.sync.contract import HANDLERS
from dbrepl.sync.migrations import DEFAULT_PREFIX as SCRIPTS_PREFIX

VPC_ACCESS_POLICY = "AWSLambdaVPCAccessExecutionRole"  # an AWS managed policy, in every partition
INLINE_POLICY = "DatabaseSyncPolicy"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
DESCRIPTIONS = {"schema": "Synchronizes database schema changes across environments",
                "data": "Synchronizes reference data across environments"}
# CreateFunction's two answers while a new role or its policies propagate through IAM (10-60 s on AWS):
# "The role defined for the function cannot be assumed by Lambda." and "The provided execution role does
# not have permissions to call CreateNetworkInterface on EC2".
IAM_PROPAGATION = ("cannot be assumed by Lambda", "does not have permissions to call CreateNetworkInterface")


# Asynchronous invocations (EventBridge Scheduler's): Lambda retries a failed or timed-out one twice
# by default, so one scheduled run could sync three times, the last up to 6 hours late. No retry: the
# next scheduled run is the retry, and the failure alarm says this one failed; an event that waited an
# hour in Lambda's queue (throttled) is dropped, the staleness alarm says so (docs/monitoring.md).
EVENT_INVOKE_CONFIG = {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 3600}


def iam_propagating(e: BaseException) -> bool:
    return is_code(e, ["InvalidParameterValueException"]) and any(m in str(e) for m in IAM_PROPAGATION)


def managed_policy_arn(partition: str, name: str) -> str:
    return f"arn:{partition}:iam::aws:policy/service-role/{name}"


def inline_policy(ctx: Context) -> dict[str, Any]:
    """Only what the functions call (dbrepl/sync/handlers and what they use; docs/permissions.md):
    the environments' secrets, the migration scripts (read only), the run records in SSM, and
    kms:Decrypt of the environments' keys only through Secrets Manager and S3. The functions make
    no other AWS call: the databases' endpoints come in their environment variables."""
    s = ctx.suffix
    region, account = ctx.region(ctx.hub), ctx.account_id(ctx.hub)
    p = ctx.partition(ctx.hub)
    # The ARNs the functions read: a secret outside the hub's region is read from its hub-region replica.
    secrets = [ctx.attr("secrets", e, "secret", "hub_arn") for e in ctx.all_envs]
    # Everything they read is in the hub's region (a replica is under the hub's key): the keys of
    # the environments there, used only through Secrets Manager and S3 there.
    keys = [ctx.attr("kms", e, "key", "arn") for e in ctx.all_envs if ctx.region(e) == region]
    via = [via_service("s3", region), via_service("secretsmanager", region)]
    bucket_arn = f"arn:{p}:s3:::{bucket_name(ctx)}"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadDatabaseSecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": secrets},
        # The secrets and the scripts are encrypted with the environments' keys.
        {"Sid": "DecryptThroughSecretsAndScripts", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": keys,
         "Condition": {"StringEquals": {"kms:ViaService": via}}},
        {"Sid": "ListMigrationScripts", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{SCRIPTS_PREFIX}*"]}}},
        {"Sid": "ReadMigrationScripts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": f"{bucket_arn}/{SCRIPTS_PREFIX}*"},
        {"Sid": "WriteRunRecords", "Effect": "Allow", "Action": ["ssm:PutParameter"],
         "Resource": [f"arn:{p}:ssm:{region}:{account}:parameter{contract.record_prefix(s, k)}/*"
                      for k in contract.RECORD_KINDS]},
        # Lambda's runtime writes the functions' logs (the log groups are dbrepl's, made beforehand).
        {"Sid": "FunctionLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"arn:{p}:logs:{region}:{account}:log-group:{names.log_group(k, s)}:*"
                      for k in ("schema", "data")]},
    ]}


def function_environment(ctx: Context) -> dict[str, Any]:
    """The functions' variables, named and written by the contract (dbrepl.sync.contract).
    `<ENV>_SECRET_ARN` names the secret in the hub's region (a replica for an environment
    elsewhere): the functions reach only the hub region's Secrets Manager endpoint."""
    return contract.function_variables(
        environments={env: (ctx.attr("secrets", env, "secret", "hub_arn"),
                            ctx.attr("aurora", env, "cluster", "endpoint")) for env in ctx.all_envs},
        migration_bucket=bucket_name(ctx), suffix=ctx.suffix,
        databases=ctx.spec.sync.databases, reference_tables=ctx.spec.sync.reference_tables)


def with_tags(lam: Any, got: dict[str, Any]) -> dict[str, Any]:
    """GetFunction's answer with the function's Tags: AWS includes them only for a caller allowed
    lambda:ListTags, and answers without the key otherwise; then ask ListTags, so that a caller
    without it is refused (AccessDenied) rather than taking the function for someone else's."""
    if "Tags" not in got:
        got = {**got, "Tags": lam.list_tags(Resource=got["Configuration"]["FunctionArn"]).get("Tags") or {}}
    return got


@register
class Lambdas(Step):
    name = "lambdas"
    depends_on = ("network", "kms", "secrets", "aurora", "bucket")
    # The role (its policy names the secrets and keys) and the log groups go first, beside Aurora;
    # the functions need the subnets and function SG, and the clusters' endpoints (not instances).
    needs = {0: ("kms", "secrets"), 1: ("network:1", "aurora:1", "bucket")}
    shared_only = True
    permissions = ("iam:GetRole", "iam:CreateRole", "iam:DeleteRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy",
                   "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:ListAttachedRolePolicies",
                   "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
                   "lambda:CreateFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:ListTags",
                   "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:DeleteFunction",
                   "lambda:TagResource", "lambda:GetFunctionEventInvokeConfig",
                   "lambda:PutFunctionEventInvokeConfig",
                   "logs:CreateLogGroup", "logs:DescribeLogGroups", "logs:PutRetentionPolicy",
                   "logs:DeleteLogGroup", "logs:TagResource", "logs:TagLogGroup", "tag:GetResources")

    def desired(self, ctx: Context) -> list[Resource]:
        s, hub, lam = ctx.suffix, ctx.hub, ctx.spec.lambdas
        role = names.role(s)
        out = [Resource(
            "role", "AWS::IAM::Role", SHARED, role,
            {"AssumeRolePolicyDocument": normalise_policy(TRUST),
             "ManagedPolicyArns": [managed_policy_arn(ctx.partition(hub), VPC_ACCESS_POLICY)],
             "Policies": {INLINE_POLICY: normalise_policy(inline_policy(ctx))}},
            ctx.tags(SHARED, self.name, role, environment=SHARED), phase=0,
        )]
        role_arn = f"arn:{ctx.partition(hub)}:iam::{ctx.account_id(hub)}:role/{role}"
        count = len(ctx.spec.environments[hub].subnets)
        subnets = [ctx.id_of("network", hub, f"subnet-{i}") for i in range(1, count + 1)]
        if not any(isinstance(x, Unknown) for x in subnets):
            subnets = sorted(subnets)
        sha = code_sha256(ctx.bundle)
        for kind in ("schema", "data"):
            lg = names.log_group(kind, s)
            out.append(Resource(f"log-{kind}", "AWS::Logs::LogGroup", SHARED, lg,
                                {"RetentionInDays": lam.log_retention_days},
                                ctx.tags(SHARED, self.name, lg, environment=SHARED), phase=0))
            fn = names.function(kind, s)
            out.append(Resource(
                f"fn-{kind}", "AWS::Lambda::Function", SHARED, fn,
                {"Runtime": lam.runtime, "Handler": HANDLERS[kind], "Role": role_arn, "Timeout": lam.timeout,
                 "MemorySize": lam.memory, "Description": DESCRIPTIONS[kind],
                 "VpcConfig": {"SubnetIds": subnets, "SecurityGroupIds": [ctx.id_of("network", hub, "fn-sg")]},
                 "Environment": function_environment(ctx), "CodeSha256": sha,
                 "EventInvokeConfig": dict(EVENT_INVOKE_CONFIG)},
                ctx.tags(SHARED, self.name, fn, environment=SHARED), phase=1,
            ))
        return out

    # ------------------------------------------------------------------ discover
    def discover(self, ctx: Context) -> list[Observed]:
        s, hub = ctx.suffix, ctx.hub
        iam, logs, lam = ctx.client("iam", hub), ctx.client("logs", hub), ctx.client("lambda", hub)
        role = names.role(s)
        with ThreadPoolExecutor(max_workers=8) as pool:
            f_role = pool.submit(or_none, lambda: iam.get_role(RoleName=role)["Role"], "NoSuchEntity")
            f_att = pool.submit(or_none, lambda: iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"],
                                         "NoSuchEntity")
            f_inl = pool.submit(or_none, lambda: iam.list_role_policies(RoleName=role)["PolicyNames"], "NoSuchEntity")
            f_pol = pool.submit(or_none, lambda: iam.get_role_policy(RoleName=role, PolicyName=INLINE_POLICY),
                                         "NoSuchEntity")
            f_logs = pool.submit(paginate, logs, "describe_log_groups", "logGroups",
                                 logGroupNamePrefix="/aws/lambda/db-sync-")
            f_fns = {k: pool.submit(or_none, lambda k=k: with_tags(lam, lam.get_function(
                FunctionName=names.function(k, s))), "ResourceNotFoundException") for k in ("schema", "data")}
            # No config (or no function): ResourceNotFoundException.
            f_async = {k: pool.submit(or_none, lambda k=k: lam.get_function_event_invoke_config(
                FunctionName=names.function(k, s)), "ResourceNotFoundException") for k in ("schema", "data")}
            f_tags = pool.submit(tagged, ctx, hub)
            r, attached, inline, pol = f_role.result(), f_att.result(), f_inl.result(), f_pol.result()
            groups, tags = f_logs.result(), f_tags.result()
            fns = {k: f.result() for k, f in f_fns.items()}
            invoke = {k: f.result() for k, f in f_async.items()}
        out: list[Observed] = []
        if r is not None and ctx.owns(tag_dict(r.get("Tags"))):
            policies = {}
            for n in inline or []:
                policies[n] = normalise_policy(pol["PolicyDocument"]) if (pol and n == INLINE_POLICY) else "(other)"
            out.append(Observed(
                "role", "AWS::IAM::Role", SHARED, role, r["Arn"],
                {"AssumeRolePolicyDocument": normalise_policy(r.get("AssumeRolePolicyDocument")),
                 "ManagedPolicyArns": sorted(a["PolicyArn"] for a in attached or []), "Policies": policies},
                tag_dict(r.get("Tags")), attrs={"arn": r["Arn"]}, phase=0,
            ))
        by_name = {g["logGroupName"]: g for g in groups}
        for kind in ("schema", "data"):
            lg = by_name.get(names.log_group(kind, s))
            if lg is not None:
                arn = lg.get("arn", "").removesuffix(":*")
                t = tags.get(arn, {})
                if ctx.owns(t):
                    out.append(Observed(f"log-{kind}", "AWS::Logs::LogGroup", SHARED, lg["logGroupName"],
                                        lg["logGroupName"], {"RetentionInDays": lg.get("retentionInDays")}, t,
                                        attrs={"arn": arn}, phase=0))
            f = fns[kind]
            if f is not None and ctx.owns(f.get("Tags")):
                c = f["Configuration"]
                vpc = c.get("VpcConfig") or {}
                out.append(Observed(
                    f"fn-{kind}", "AWS::Lambda::Function", SHARED, c["FunctionName"], c["FunctionArn"],
                    {"Runtime": c.get("Runtime"), "Handler": c.get("Handler"), "Role": c.get("Role"),
                     "Timeout": c.get("Timeout"), "MemorySize": c.get("MemorySize"),
                     "Description": c.get("Description", ""),
                     "VpcConfig": {"SubnetIds": sorted(vpc.get("SubnetIds", [])),
                                   "SecurityGroupIds": sorted(vpc.get("SecurityGroupIds", []))},
                     "Environment": (c.get("Environment") or {}).get("Variables", {}),
                     "CodeSha256": c.get("CodeSha256"),
                     "EventInvokeConfig": {k: (invoke[kind] or {}).get(k) for k in EVENT_INVOKE_CONFIG}
                     if invoke[kind] else None},
                    dict(f.get("Tags") or {}), attrs={"arn": c["FunctionArn"], "state": c.get("State")}, phase=1,
                ))
        return out

    # ------------------------------------------------------------------ apply
    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        if want.key == "role":
            return self._apply_role(ctx, want, have)
        if want.key.startswith("log-"):
            return self._apply_log_group(ctx, want, have)
        return self._apply_function(ctx, want, have)

    def _apply_role(self, ctx: Context, want: Resource, have: Observed | None) -> Observed:
        iam = ctx.client("iam", ctx.hub)
        p = want.props
        tags = [{"Key": k, "Value": v} for k, v in sorted(want.tag_dict.items())]
        if have is None:
            try:
                arn = iam.create_role(RoleName=want.name, AssumeRolePolicyDocument=json.dumps(TRUST),
                                      Description="dbrepl sync functions", Tags=tags)["Role"]["Arn"]
            except Exception as e:
                if not is_code(e, ["EntityAlreadyExists"]):
                    raise
                arn = iam.get_role(RoleName=want.name)["Role"]["Arn"]
            empty = {"ManagedPolicyArns": [], "Policies": {},
                     "AssumeRolePolicyDocument": p["AssumeRolePolicyDocument"]}
            have = Observed("role", want.type, SHARED, want.name, arn, empty, dict(want.tag_dict))
        else:
            if have.props.get("AssumeRolePolicyDocument") != p["AssumeRolePolicyDocument"]:
                iam.update_assume_role_policy(RoleName=want.name, PolicyDocument=json.dumps(TRUST))
            if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                iam.tag_role(RoleName=want.name, Tags=tags)
        for arn in set(p["ManagedPolicyArns"]) - set(have.props.get("ManagedPolicyArns", [])):
            iam.attach_role_policy(RoleName=want.name, PolicyArn=arn)
        for arn in set(have.props.get("ManagedPolicyArns", [])) - set(p["ManagedPolicyArns"]):
            iam.detach_role_policy(RoleName=want.name, PolicyArn=arn)
        for pname, doc in p["Policies"].items():
            if have.props.get("Policies", {}).get(pname) != doc:
                iam.put_role_policy(RoleName=want.name, PolicyName=pname, PolicyDocument=json.dumps(doc))
        for pname in set(have.props.get("Policies", {})) - set(p["Policies"]):
            iam.delete_role_policy(RoleName=want.name, PolicyName=pname)
        return Observed("role", want.type, SHARED, want.name, have.id, dict(p), dict(want.tag_dict),
                        attrs={"arn": have.id})

    def _apply_log_group(self, ctx: Context, want: Resource, have: Observed | None) -> Observed:
        logs = ctx.client("logs", ctx.hub)
        if have is None:
            try:
                logs.create_log_group(logGroupName=want.name, tags=want.tags)
            except Exception as e:
                if not is_code(e, ["ResourceAlreadyExistsException"]):
                    raise
                logs.tag_log_group(logGroupName=want.name, tags=want.tags)
            logs.put_retention_policy(logGroupName=want.name, retentionInDays=want.props["RetentionInDays"])
        else:
            if have.props.get("RetentionInDays") != want.props["RetentionInDays"]:
                logs.put_retention_policy(logGroupName=want.name, retentionInDays=want.props["RetentionInDays"])
            if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                logs.tag_log_group(logGroupName=want.name, tags=want.tags)
        return Observed(want.key, want.type, SHARED, want.name, want.name, dict(want.props), dict(want.tag_dict))

    def _apply_function(self, ctx: Context, want: Resource, have: Observed | None) -> Observed:
        lam = ctx.client("lambda", ctx.hub)
        p = want.props
        config = {"Runtime": p["Runtime"], "Role": p["Role"], "Handler": p["Handler"], "Timeout": p["Timeout"],
                  "MemorySize": p["MemorySize"], "Description": p["Description"], "VpcConfig": p["VpcConfig"],
                  "Environment": {"Variables": p["Environment"]}}
        if have is None:
            def create() -> dict:
                return lam.create_function(FunctionName=want.name, Code={"ZipFile": ctx.bundle}, Publish=False,
                                           Tags=want.tags, **config)

            try:
                # Right after CreateRole, Lambda cannot assume the role for 10-60 s (IAM propagation).
                f = ctx.retry(create, codes=(), deadline=ctx.timing.iam_propagation_timeout_seconds,
                              what=f"role of {want.name} to propagate",
                              when=iam_propagating)
                arn = f["FunctionArn"]
            except Exception as e:
                if not is_code(e, ["ResourceConflictException"]):
                    raise
                f = with_tags(lam, lam.get_function(FunctionName=want.name))
                cur = f["Configuration"]
                have = Observed(want.key, want.type, SHARED, want.name, cur["FunctionArn"],
                                {"CodeSha256": cur.get("CodeSha256"), "_adopted": True}, dict(f.get("Tags") or {}))
            else:
                self._wait_ready(ctx, lam, want.name)
                self._put_event_invoke_config(ctx, lam, want.name, p["EventInvokeConfig"])
                return Observed(want.key, want.type, SHARED, want.name, arn, dict(p), dict(want.tag_dict),
                                attrs={"arn": arn})
        if have.attrs.get("state") == "Pending":  # made by a run that stopped before it was Active
            self._wait_ready(ctx, lam, want.name)
        busy = ctx.timing.function_timeout_minutes * 60
        if have.props.get("_adopted") or any(have.props.get(k) != p[k] for k in
                                              ("Runtime", "Role", "Handler", "Timeout", "MemorySize", "Description",
                                               "VpcConfig", "Environment")):
            ctx.retry(lambda: lam.update_function_configuration(FunctionName=want.name, **config),
                      codes=("ResourceConflictException",), deadline=busy,
                      what=f"function {want.name} to finish its last update")
            self._wait_ready(ctx, lam, want.name)
        if have.props.get("CodeSha256") != p["CodeSha256"]:
            ctx.retry(lambda: lam.update_function_code(FunctionName=want.name, ZipFile=ctx.bundle),
                      codes=("ResourceConflictException",), deadline=busy,
                      what=f"function {want.name} to finish its last update")
            self._wait_ready(ctx, lam, want.name)
        if have.props.get("EventInvokeConfig") != p["EventInvokeConfig"]:
            self._put_event_invoke_config(ctx, lam, want.name, p["EventInvokeConfig"])
        if any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
            lam.tag_resource(Resource=have.id, Tags=want.tags)
        return Observed(want.key, want.type, SHARED, want.name, have.id, dict(p), dict(want.tag_dict),
                        attrs={"arn": have.id})

    def _put_event_invoke_config(self, ctx: Context, lam: Any, name: str, config: dict[str, int]) -> None:
        """PutFunctionEventInvokeConfig replaces the whole config (no destinations: the DLQ is the schedules')."""
        ctx.retry(lambda: lam.put_function_event_invoke_config(FunctionName=name, **config),
                  codes=("ResourceConflictException",), deadline=ctx.timing.function_timeout_minutes * 60,
                  what=f"function {name} to finish its last update")

    def _wait_ready(self, ctx: Context, lam: Any, name: str) -> None:
        """Until the function is Active and its last update Successful: Lambda refuses updates and
        invocations before (State Pending, LastUpdateStatus InProgress). Failed ends the wait at once."""
        def ready() -> bool:
            c = lam.get_function_configuration(FunctionName=name)
            for field, reason in (("State", "StateReason"), ("LastUpdateStatus", "LastUpdateStatusReason")):
                if c.get(field) == "Failed":
                    code = c.get(f"{reason}Code")
                    raise AwsFailure(f"make function {name} active",
                                     f"its {field} is Failed: {c.get(reason) or 'no reason given'}"
                                     + (f" ({code})" if code else "")
                                     + "; the function was left as it is")
            return c.get("State", "Active") == "Active" and c.get("LastUpdateStatus", "Successful") == "Successful"

        ctx.wait_for(f"function {name} to be active", ready, ctx.timing.function_timeout_minutes * 60)

    # ------------------------------------------------------------------ delete
    def delete(self, ctx: Context, have: Observed) -> None:
        try:
            if have.type == "AWS::Lambda::Function":
                ctx.client("lambda", ctx.hub).delete_function(FunctionName=have.name)
            elif have.type == "AWS::Logs::LogGroup":
                ctx.client("logs", ctx.hub).delete_log_group(logGroupName=have.name)
            else:
                iam = ctx.client("iam", ctx.hub)
                for a in iam.list_attached_role_policies(RoleName=have.name)["AttachedPolicies"]:
                    iam.detach_role_policy(RoleName=have.name, PolicyArn=a["PolicyArn"])
                for n in iam.list_role_policies(RoleName=have.name)["PolicyNames"]:
                    iam.delete_role_policy(RoleName=have.name, PolicyName=n)
                iam.delete_role(RoleName=have.name)
        except Exception as e:
            if not is_code(e, ["ResourceNotFoundException", "NoSuchEntity"]):
                raise
