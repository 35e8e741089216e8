"""Least privilege, proven (issue 11, point 4): the deployer's policy `dbrepl permissions` derives
covers every call of plan, apply, status and destroy, and a user holding only that policy runs
them all under moto's IAM enforcement; a policy missing one action fails with AccessDenied."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import threading

import boto3
import pytest
from typer.testing import CliRunner

from dbrepl.app.estate import Target
from dbrepl.app.functions import Functions
from dbrepl.app.permissions import deployer_policies
from dbrepl.aws.session import SessionFactory, new_session
from dbrepl.status import estate_status
from tests.aws.harness import CallLog, Estate, Faults, as_aws_checks, fast_spec
from tests.aws.iam_enforced import ENFORCED, iam_action, iam_enforced, user_with_policy

ACCOUNT = "123456789012"
REGION = "us-east-1"
_n = itertools.count(1)

class Operations:
    """Every operation a session factory's clients call, as IAM actions."""

    def __init__(self) -> None:
        self.actions: set[str] = set()
        self.lock = threading.Lock()

    def hook(self, client) -> None:
        signing = client.meta.service_model.signing_name

        def before(model, **kw) -> None:
            with self.lock:
                self.actions.add(iam_action(signing, model.name))

        client.meta.events.register("before-call.*.*", before)


def spec():
    return fast_spec().model_copy(update={"region": REGION})


def policy(suffix: str, s=None) -> dict:
    return deployer_policies(Target(s or spec(), suffix), account=ACCOUNT)[0].document


def actions_of(doc: dict) -> set[str]:
    return {a for st in doc["Statement"] for a in st["Action"]}


def without(doc: dict, action: str) -> dict:
    doc = copy.deepcopy(doc)
    for st in doc["Statement"]:
        st["Action"] = [a for a in st["Action"] if a != action]
    doc["Statement"] = [st for st in doc["Statement"] if st["Action"]]
    assert action not in actions_of(doc)
    return doc


def as_user(doc: dict, suffix: str, *hooks, s=None) -> Estate:
    """An estate (of `s`, else the default spec) run by a new IAM user holding only `doc`."""
    kid, secret = user_with_policy(boto3.client("iam", region_name=REGION), f"deployer-{suffix}", doc)
    log = CallLog()
    maker = lambda region: new_session(region, credentials=(kid, secret))  # noqa: E731
    if s is None:
        return Estate(spec(), suffix, SessionFactory(REGION, hooks=[log.hook, *hooks], session_maker=maker), log)
    return Estate(s, suffix, SessionFactory.from_spec(s, REGION, hooks=[log.hook, *hooks], session_maker=maker), log)


def put_script(e: Estate) -> None:
    """A script (two versions) in the bucket, so destroy has versions to delete (DeleteObjects)."""
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"migration-scripts-{e.suffix}-{ACCOUNT}"
    for body in (b"select 1;", b"select 2;"):
        s3.put_object(Bucket=bucket, Key="migrations/V1__x.sql", Body=body)


# ---------------------------------------------------------------- against a full run
def test_every_operation_of_a_full_run_is_an_action_of_the_policy(estate):
    ops = Operations()
    estate.sessions.hooks.append(ops.hook)
    estate.plan()
    estate.apply()
    estate.plan()
    estate_status(estate.engine())
    Functions(estate.spec, estate.suffix, estate.sessions).records()  # status's sync routes
    put_script(estate)
    estate.destroy(include_protected=True)
    doc = policy(estate.suffix)
    missing = ops.actions - actions_of(doc)
    assert not missing, f"called but not in the derived policy: {sorted(missing)}"
    assert len(ops.actions) > 80  # the hook saw the whole run


def test_a_user_with_only_the_derived_policy_plans_applies_reads_status_and_destroys(aws):
    suffix = f"pm{next(_n)}"
    ops = Operations()
    e = as_user(policy(suffix), suffix, ops.hook)
    with iam_enforced():
        plan = e.plan()
        assert plan.summary["create"] > 50
        e.apply()
        assert e.plan().changes == []
        st = estate_status(e.engine())
        assert st["summary"]["missing"] == 0 and st["summary"]["drifted"] == 0
        assert Functions(e.spec, e.suffix, e.sessions).records() == []  # status's sync routes
    put_script(e)
    with iam_enforced():
        done = e.destroy(include_protected=True)
    assert done.summary["delete"] > 50
    assert {"s3:DeleteObject", "rds:DeleteDBCluster", "lambda:CreateFunction", "tag:GetResources",
            "servicequotas:GetServiceQuota"} <= ops.actions


@pytest.mark.parametrize("action", ["ec2:CreateVpc", "rds:CreateDBCluster", "lambda:CreateFunction",
                                    "cloudwatch:PutMetricAlarm", "s3:PutBucketVersioning", "tag:GetResources",
                                    "kms:CreateKey", "iam:CreateRole"])
def test_a_policy_missing_one_action_fails_with_access_denied(aws, action):
    suffix = f"pm{next(_n)}"
    e = as_user(without(policy(suffix), action), suffix)
    with iam_enforced(), pytest.raises(Exception, match="AccessDenied") as exc:
        e.apply()
    assert action in str(exc.value) or "Access Denied" in str(exc.value)  # S3 does not name the action


def test_the_bucket_is_scoped_to_the_suffix_and_moto_enforces_it(aws):
    """S3 (like IAM and STS) tells moto the resource: another suffix's policy is refused."""
    suffix = f"pm{next(_n)}"
    e = as_user(policy("someone-else"), suffix)
    with iam_enforced(), pytest.raises(Exception, match="AccessDenied") as exc:
        e.apply(envs=["shared"])
    assert "bucket" in str(exc.value)


def test_moto_enforces_every_service_of_the_estate(aws):
    """A user with no policy is refused by each service dbrepl calls (ENFORCED, in the docs)."""
    kid, secret = user_with_policy(boto3.client("iam", region_name=REGION), f"nobody-{next(_n)}",
                                   {"Version": "2012-10-17", "Statement": [
                                       {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]})
    sess = new_session(REGION, credentials=(kid, secret))
    calls = {
        "cloudwatch": lambda: sess.client("cloudwatch").describe_alarms(),
        "ec2": lambda: sess.client("ec2").describe_vpcs(),
        "iam": lambda: sess.client("iam").get_role(RoleName="x"),
        "kms": lambda: sess.client("kms").list_aliases(),
        "lambda": lambda: sess.client("lambda").get_function(FunctionName="x"),
        "logs": lambda: sess.client("logs").describe_log_groups(),
        "rds": lambda: sess.client("rds").describe_db_clusters(),
        "s3": lambda: sess.client("s3").list_buckets(),
        "scheduler": lambda: sess.client("scheduler").get_schedule_group(Name="x"),
        "secretsmanager": lambda: sess.client("secretsmanager").list_secrets(),
        "servicequotas": lambda: sess.client("service-quotas").get_service_quota(ServiceCode="vpc",
                                                                                  QuotaCode="L-F678F1CE"),
        "sns": lambda: sess.client("sns").list_topics(),
        "ssm": lambda: sess.client("ssm").describe_parameters(),
        "sts": lambda: sess.client("sts").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/x", RoleSessionName="xx"),
        "tag": lambda: sess.client("resourcegroupstaggingapi").get_resources(),
    }
    enforced = []
    with iam_enforced():
        for service, call in calls.items():
            try:
                call()
            except Exception as e:
                if "AccessDenied" in str(e) or "not authorized" in str(e):
                    enforced.append(service)
    assert tuple(enforced) == ENFORCED


# ---------------------------------------------------------------- the command
def test_cli_reads_the_account_from_sts_when_not_given(aws):
    from dbrepl.cli import app

    r = CliRunner().invoke(app, ["permissions", "--suffix", "pcli2", "--json", "--part", "1"])
    assert r.exit_code == 0, r.output
    human = CliRunner().invoke(app, ["permissions", "--suffix", "pcli2"])
    assert human.exit_code == 0, human.output
    assert f"migration-scripts-pcli2-{ACCOUNT}" in human.stdout


def test_without_s3_delete_object_destroy_cannot_empty_the_bucket(aws):
    """DeleteObjects is authorised per key as s3:DeleteObject (tests/aws/iam_enforced.py)."""
    suffix = f"pm{next(_n)}"
    e = as_user(without(policy(suffix), "s3:DeleteObject"), suffix)
    with iam_enforced():
        e.apply()
    put_script(e)
    with iam_enforced(), pytest.raises(Exception, match="AccessDenied|BucketNotEmpty"):
        e.destroy(include_protected=True)


def _cross_account(suffix: str, drop: dict[str, str] | None = None) -> Estate:
    """spec3 (dev and prod in other accounts, prod in us-west-2): the deployer user in the hub
    account, and in each other account the role it assumes, each holding only its derived
    policy (less `drop[account]`); the role trusts the deployer with the spec's external id."""
    from tests.aws.test_cross_account import spec3

    s = spec3().model_copy(update={"region": REGION})
    policies = deployer_policies(Target(s, suffix), account=ACCOUNT)
    kid, secret = user_with_policy(boto3.client("iam", region_name=REGION), f"deployer-{suffix}",
                                   policies[0].document)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/deployer-{suffix}"},
        "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "x-123"}}}]}
    for d in policies[1:]:
        acct = d.principal.account
        c = boto3.client("sts", region_name=REGION).assume_role(
            RoleArn=f"arn:aws:iam::{acct}:role/bootstrap-{suffix}", RoleSessionName="bootstrap")["Credentials"]
        iam = boto3.client("iam", region_name=REGION, aws_access_key_id=c["AccessKeyId"],
                           aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
        doc = without(d.document, drop[acct]) if drop and acct in drop else d.document
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_role(RoleName="dbrepl-deploy", AssumeRolePolicyDocument=json.dumps(trust))
        iam.update_assume_role_policy(RoleName="dbrepl-deploy", PolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="dbrepl-deploy", PolicyName="dbrepl", PolicyDocument=json.dumps(doc))
    log = CallLog()
    sessions = SessionFactory.from_spec(s, hooks=[log.hook],
                                        session_maker=lambda region: new_session(region, credentials=(kid, secret)))
    return Estate(s, suffix, sessions, log)


def test_cross_account_each_principal_with_only_its_policy_runs_the_estate(aws):
    from tests.aws.test_cross_account import PROD_ACCOUNT

    e = _cross_account(f"pxa{next(_n)}")
    with iam_enforced():
        e.sessions.check_roles(list(e.spec.environments))
        e.apply()
        assert e.plan().changes == []
        assert estate_status(e.engine())["summary"]["missing"] == 0
        e.destroy(include_protected=True)
    # The roles' policies are enforced too: prod's role without rds:CreateDBCluster cannot apply.
    e = _cross_account(f"pxa{next(_n)}", drop={PROD_ACCOUNT: "rds:CreateDBCluster"})
    with iam_enforced(), pytest.raises(Exception, match="AccessDenied") as exc:
        e.apply()
    assert "rds:CreateDBCluster" in str(exc.value) and "prod-aurora-cluster" in str(exc.value)


# ---------------------------------------------------------------- what AWS checks and moto does not (issue 18)
def _xregion(suffix: str, drop: str | None = None):
    """prod in another region (its secret has a replica under the hub's key), run by a user holding the
    derived policy (less `drop`), with AWS's answers for that policy where moto has none."""
    from tests.aws.test_cross_region import xregion_spec

    s = xregion_spec().model_copy(update={"region": REGION})
    doc = deployer_policies(Target(s, suffix), account=ACCOUNT)[0].document
    faults = Faults()
    doc = without(doc, drop) if drop else doc
    as_aws_checks(faults, doc, ACCOUNT)
    return as_user(doc, suffix, faults.hook, s=s), faults


def test_under_the_derived_policy_aws_own_checks_pass_and_the_no_op_plan_is_empty(aws):
    from tests.aws.test_cross_region import replica_keys

    e, faults = _xregion(f"pm{next(_n)}")
    with replica_keys(), iam_enforced():
        e.apply()
        assert e.plan().changes == []
    # The rules looked at every answer and changed none: the policy grants what AWS checks.
    assert not faults.injected


def test_without_lambda_list_tags_get_function_hides_the_tags_and_dbrepl_says_so(aws):
    from tests.aws.test_cross_region import replica_keys

    e, faults = _xregion(f"pm{next(_n)}", drop="lambda:ListTags")
    with replica_keys(), iam_enforced():
        e.apply()  # creates need no ListTags
        with pytest.raises(Exception, match="AccessDenied") as exc:
            e.plan()  # not a plan to create functions that exist
    assert faults.injected["GetFunction"] >= 1
    assert "lambda:ListTags" in str(exc.value)


def test_without_kms_encrypt_on_the_replica_key_the_replica_fails(aws):
    from tests.aws.test_cross_region import replica_keys

    e, faults = _xregion(f"pm{next(_n)}", drop="kms:Encrypt")
    with replica_keys(), iam_enforced():
        e.apply()
        changes = e.plan().changes
    assert faults.injected["DescribeSecret"] + faults.injected["ListSecrets"] >= 1
    assert [(c.action, c.name) for c in changes] == [("update", f"prod-aurora-secret-{e.suffix}")]
    assert "Access to KMS is not allowed" in str(changes[0].diff)


def test_rebooting_members_for_their_parameter_group_is_in_the_policy_and_needs_it(aws):
    """Issue 18, point 4: moto never reports pending-reboot, so a full run never reboots; inject it
    and reboot as a user holding exactly the derived policy, and as one without RebootDBInstance."""
    from dbrepl import names
    from tests.aws.harness import Faults
    from tests.aws.test_aurora_lifecycle import PendingReboot

    suffix = f"pm{next(_n)}"
    faults = Faults()
    e = as_user(policy(suffix), suffix, faults.hook)
    with iam_enforced():
        e.apply()
    assert "rds:RebootDBInstance" in actions_of(policy(suffix))
    dev = names.instance("dev", 1, suffix)
    pending = PendingReboot(faults, {dev})
    kid, secret = user_with_policy(boto3.client("iam", region_name=REGION), f"noreboot-{suffix}",
                                   without(policy(suffix), "rds:RebootDBInstance"))
    denied = Estate(e.spec, suffix, SessionFactory(REGION, hooks=[faults.hook], session_maker=lambda region:
                                                   new_session(region, credentials=(kid, secret))), CallLog())
    with iam_enforced(), pytest.raises(Exception, match="AccessDenied") as exc:
        denied.apply()
    assert "rds:RebootDBInstance" in str(exc.value)
    with iam_enforced():
        e.apply()
        assert e.plan().changes == []
    assert pending.rebooted == [dev]  # the denied call never got through
    with iam_enforced():
        e.destroy(include_protected=True)
