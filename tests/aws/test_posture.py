"""Security posture (issue 11 point 5): the TLS-only bucket policy, rotating KMS keys, key
policies whose service statements carry conditions, ARNs in the caller's partition, and the
cluster parameter group that turns the exported logs on and requires TLS. Each is built by
apply, its drift shown by plan and repaired by apply, and removed by destroy."""

from __future__ import annotations

import json

import pytest

from dbrepl.aws.session import SessionFactory
from dbrepl.steps.aurora import cluster_parameters, parameter_family
from dbrepl.steps.bucket import tls_only_policy
from dbrepl.steps.kms import SERVICE_PRINCIPALS, key_policy
from tests.aws.harness import CallLog, Estate, fast_spec

ACCOUNT = "123456789012"
ENVS = ("dev", "staging", "prod")


def _bucket(e) -> str:
    return f"migration-scripts-{e.suffix}-{ACCOUNT}"


def _key_id(e, env: str) -> str:
    aliases = {a["AliasName"]: a for a in e.client("kms").list_aliases()["Aliases"]}
    return aliases[f"alias/{env}-key-{e.suffix}"]["TargetKeyId"]


@pytest.fixture(scope="module")
def posture(aws):
    log = CallLog()
    e = Estate(fast_spec(), "pst1", SessionFactory("us-east-1", hooks=[log.hook]), log)
    e.apply()
    return e


# ------------------------------------------------------------------ what apply builds

def test_bucket_denies_requests_without_tls(posture):
    policy = json.loads(posture.client("s3").get_bucket_policy(Bucket=_bucket(posture))["Policy"])
    [stmt] = policy["Statement"]
    assert (stmt["Effect"], stmt["Principal"], stmt["Action"]) == ("Deny", "*", "s3:*")
    arn = f"arn:aws:s3:::{_bucket(posture)}"
    assert sorted(stmt["Resource"]) == [arn, f"{arn}/*"]
    assert stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_keys_rotate_and_service_statement_is_bounded_to_the_account(posture):
    kms = posture.client("kms")
    for env in ENVS:
        kid = _key_id(posture, env)
        assert kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"] is True
        policy = json.loads(kms.get_key_policy(KeyId=kid, PolicyName="default")["Policy"])
        by_sid = {s["Sid"]: s for s in policy["Statement"]}
        services = by_sid["Allow services to use the key"]
        assert sorted(services["Principal"]["Service"]) == sorted(SERVICE_PRINCIPALS)
        assert services["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        # One account: no statement for another account's hub. The hub's key also lets CloudWatch
        # alarms use it (issue 12: it encrypts the alarm topic).
        alarms = {"Allow CloudWatch alarms to use the key"} if env == "staging" else set()
        assert set(by_sid) == {"Enable IAM User Permissions", "Allow services to use the key", *alarms}


def test_cluster_parameter_group_turns_exported_logs_on_and_requires_tls(posture):
    rds, s = posture.client("rds"), posture.suffix
    for env in ENVS:
        name = f"{env}-aurora-cluster-params-{s}"
        g = rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName=name)["DBClusterParameterGroups"][0]
        assert g["DBParameterGroupFamily"] == "aurora-mysql8.0"
        params = {p["ParameterName"]: (p["ParameterValue"], p["ApplyMethod"]) for p in
                  rds.describe_db_cluster_parameters(DBClusterParameterGroupName=name, Source="user")["Parameters"]}
        assert params == {"general_log": ("1", "immediate"), "slow_query_log": ("1", "immediate"),
                          "log_output": ("FILE", "immediate"), "require_secure_transport": ("ON", "immediate")}
        c = rds.describe_db_clusters(DBClusterIdentifier=f"{env}-aurora-cluster-{s}")["DBClusters"][0]
        assert c["DBClusterParameterGroup"] == name
        # The logs the group turns on are the ones the cluster exports.
        assert sorted(c["EnabledCloudwatchLogsExports"]) == ["error", "general", "slowquery"]


def test_parameters_follow_the_exported_logs_and_the_engine_version():
    assert cluster_parameters(["error"]) == {"general_log": "0", "slow_query_log": "0", "log_output": "FILE",
                                             "require_secure_transport": "ON"}
    assert cluster_parameters(["slowquery"])["slow_query_log"] == "1"
    assert cluster_parameters(["slowquery"])["general_log"] == "0"
    assert parameter_family("8.0.mysql_aurora.3.10.0") == "aurora-mysql8.0"
    assert parameter_family("5.7.mysql_aurora.2.11.2") == "aurora-mysql5.7"


# ------------------------------------------------------------------ drift

def delete_bucket_policy(e):
    e.client("s3").delete_bucket_policy(Bucket=_bucket(e))


def add_statement_to_bucket_policy(e):
    s3 = e.client("s3")
    policy = json.loads(s3.get_bucket_policy(Bucket=_bucket(e))["Policy"])
    policy["Statement"].append({"Sid": "Extra", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{_bucket(e)}/*"})
    s3.put_bucket_policy(Bucket=_bucket(e), Policy=json.dumps(policy))


def disable_key_rotation(e):
    e.client("kms").disable_key_rotation(KeyId=_key_id(e, "prod"))


def drop_key_policy_conditions(e):
    """The seed's policy: services may use the key with no condition."""
    kms = e.client("kms")
    kid = _key_id(e, "staging")
    policy = json.loads(kms.get_key_policy(KeyId=kid, PolicyName="default")["Policy"])
    for stmt in policy["Statement"]:
        stmt.pop("Condition", None)
    kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=json.dumps(policy))


def turn_secure_transport_off(e):
    e.client("rds").modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=f"dev-aurora-cluster-params-{e.suffix}",
        Parameters=[{"ParameterName": "require_secure_transport", "ParameterValue": "OFF", "ApplyMethod": "immediate"}])


def turn_slow_query_log_off(e):
    e.client("rds").modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=f"prod-aurora-cluster-params-{e.suffix}",
        Parameters=[{"ParameterName": "slow_query_log", "ParameterValue": "0", "ApplyMethod": "immediate"}])


def attach_default_parameter_group(e):
    e.client("rds").modify_db_cluster(DBClusterIdentifier=f"staging-aurora-cluster-{e.suffix}",
                                      DBClusterParameterGroupName="default.aurora-mysql8.0", ApplyImmediately=True)


CASES = [
    (delete_bucket_policy, "AWS::S3::Bucket", "migration-scripts-{s}-123456789012", "Policy"),
    (add_statement_to_bucket_policy, "AWS::S3::Bucket", "migration-scripts-{s}-123456789012", "Policy"),
    (disable_key_rotation, "AWS::KMS::Key", "prod-key-{s}", "KeyRotationEnabled"),
    (drop_key_policy_conditions, "AWS::KMS::Key", "staging-key-{s}", "KeyPolicy"),
    (turn_secure_transport_off, "AWS::RDS::DBClusterParameterGroup", "dev-aurora-cluster-params-{s}", "Parameters"),
    (turn_slow_query_log_off, "AWS::RDS::DBClusterParameterGroup", "prod-aurora-cluster-params-{s}", "Parameters"),
    (attach_default_parameter_group, "AWS::RDS::DBCluster", "staging-aurora-cluster-{s}",
     "DBClusterParameterGroupName"),
]


@pytest.mark.parametrize("drift,type_,name,field", CASES, ids=[c[0].__name__ for c in CASES])
def test_posture_drift_is_planned_and_repaired(estate, drift, type_, name, field):
    estate.apply()
    assert estate.plan().changes == []
    drift(estate)
    plan = estate.plan()
    assert [(c.action, c.type, c.name, list(c.diff)) for c in plan.changes] == [
        ("update", type_, name.format(s=estate.suffix), [field])]
    estate.log.clear()
    estate.apply()
    assert estate.plan().changes == []


def test_repairs_call_the_repairing_operation(estate):
    estate.apply()
    disable_key_rotation(estate)
    drop_key_policy_conditions(estate)
    delete_bucket_policy(estate)
    turn_secure_transport_off(estate)
    estate.log.clear()
    estate.apply()
    assert sorted(estate.log.mutating) == ["EnableKeyRotation", "ModifyDBClusterParameterGroup", "PutBucketPolicy",
                                           "PutKeyPolicy"]
    params = estate.client("rds").describe_db_cluster_parameters(
        DBClusterParameterGroupName=f"dev-aurora-cluster-params-{estate.suffix}", Source="user")["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in params}["require_secure_transport"] == "ON"


def test_key_created_but_rotation_not_enabled_is_repaired(estate, faults):
    """A failure between CreateKey and EnableKeyRotation leaves a key that does not rotate:
    the next plan shows it and apply turns rotation on."""
    faults.fail("EnableKeyRotation", "KMSInternalException", "injected", times=1)
    with pytest.raises(Exception, match="KMSInternalException|injected"):
        estate.apply()
    plan = estate.plan()
    rotation = [c for c in plan.changes if c.type == "AWS::KMS::Key"]
    assert [(c.action, list(c.diff)) for c in rotation] == [("update", ["KeyRotationEnabled"])]
    estate.apply()
    assert estate.plan().changes == []
    for env in ENVS:
        assert estate.client("kms").get_key_rotation_status(KeyId=_key_id(estate, env))["KeyRotationEnabled"]


# ------------------------------------------------------------------ destroy

def test_destroy_deletes_the_parameter_group_after_the_cluster(estate, faults):
    """AWS refuses to delete a group a cluster still uses (moto does not): the first attempt is
    refused here, and destroy retries until the group is free."""
    estate.apply()
    faults.fail("DeleteDBClusterParameterGroup", "InvalidDBParameterGroupState",
                "One or more database clusters are still members of this parameter group", times=1)
    estate.log.clear()
    estate.destroy(include_protected=True)
    calls = estate.log.calls
    assert faults.injected["DeleteDBClusterParameterGroup"] == 1
    # The refused attempt is answered before it is sent (and so not logged): one per environment.
    assert calls.count("DeleteDBClusterParameterGroup") == 3
    last_cluster_delete = max(i for i, c in enumerate(calls) if c == "DeleteDBCluster")
    first_group_delete = calls.index("DeleteDBClusterParameterGroup")
    assert last_cluster_delete < first_group_delete
    s = estate.suffix
    assert [g for g in estate.client("rds").describe_db_cluster_parameter_groups()["DBClusterParameterGroups"]
            if g["DBClusterParameterGroupName"].endswith(f"-{s}")] == []


# ------------------------------------------------------------------ partition

@pytest.mark.parametrize("region,partition", [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_policies_name_the_partition_of_the_region(region, partition):
    docs = json.dumps([key_policy(partition, ACCOUNT, region, "210987654321"),
                       tls_only_policy(partition, "migration-scripts-x-123456789012")])
    assert "arn:aws:" not in docs
    assert f"arn:{partition}:iam::{ACCOUNT}:root" in docs and f"arn:{partition}:s3:::" in docs
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    assert f"secretsmanager.{region}.{suffix}" in docs  # the hub account's kms:ViaService


@pytest.mark.parametrize("region,partition", [("cn-north-1", "aws-cn"), ("us-gov-east-1", "aws-us-gov")])
def test_plan_in_another_partition_names_no_aws_arn(aws, monkeypatch, region, partition):
    """Plan from empty in a region of another partition: every ARN dbrepl builds (key and
    bucket policies, the function role's managed policy and inline policy, the functions'
    role ARN) names that partition. A region of its own, so no other test's estate is there."""
    # moto's tagging API lists no China region; AWS has it there.
    monkeypatch.setenv("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    log = CallLog()
    e = Estate(fast_spec(), "pst-part", SessionFactory(region, hooks=[log.hook]), log)
    plan = e.plan()
    text = json.dumps(plan.to_json())
    assert "arn:aws:" not in text
    for what in (f"arn:{partition}:iam::{ACCOUNT}:root", f"arn:{partition}:s3:::migration-scripts-pst-part-",
                 f"arn:{partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
                 f"arn:{partition}:iam::{ACCOUNT}:role/db-sync-lambda-role-pst-part",
                 f"arn:{partition}:ssm:{region}:{ACCOUNT}:parameter/"):
        assert what in text, what
    assert log.mutating == []


def test_no_hard_coded_aws_partition_in_dbrepl():
    """Every ARN is built from the partition of its region."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "dbrepl"
    hits = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if "arn:aws:" in line]
    assert hits == [], hits


# ------------------------------------------------------------------ an estate of an older dbrepl

def test_estate_made_before_the_posture_is_brought_up_to_it(estate):
    """An estate applied by a dbrepl without these controls: no bucket policy, keys that do not
    rotate with the seed's unconditioned policy, clusters on the default parameter group. The
    plan names each missing control and one apply brings the estate up to it."""
    estate.apply()
    s, rds, kms = estate.suffix, estate.client("rds"), estate.client("kms")
    delete_bucket_policy(estate)
    for env in ENVS:
        kid = _key_id(estate, env)
        kms.disable_key_rotation(KeyId=kid)
        policy = json.loads(kms.get_key_policy(KeyId=kid, PolicyName="default")["Policy"])
        for stmt in policy["Statement"]:
            stmt.pop("Condition", None)
        kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=json.dumps(policy))
        rds.modify_db_cluster(DBClusterIdentifier=f"{env}-aurora-cluster-{s}",
                              DBClusterParameterGroupName="default.aurora-mysql8.0", ApplyImmediately=True)
        rds.delete_db_cluster_parameter_group(DBClusterParameterGroupName=f"{env}-aurora-cluster-params-{s}")
    plan = estate.plan()
    got = sorted((c.action, c.type, c.name, tuple(sorted(c.diff))) for c in plan.changes)
    want = [("update", "AWS::S3::Bucket", f"migration-scripts-{s}-{ACCOUNT}", ("Policy",))]
    for env in ENVS:
        want += [("create", "AWS::RDS::DBClusterParameterGroup", f"{env}-aurora-cluster-params-{s}",
                  ("Description", "Family", "Parameters")),
                 ("update", "AWS::RDS::DBCluster", f"{env}-aurora-cluster-{s}", ("DBClusterParameterGroupName",)),
                 ("update", "AWS::KMS::Key", f"{env}-key-{s}", ("KeyPolicy", "KeyRotationEnabled"))]
    assert got == sorted(want)
    estate.apply()
    assert estate.plan().changes == []
    for env in ENVS:
        c = rds.describe_db_clusters(DBClusterIdentifier=f"{env}-aurora-cluster-{s}")["DBClusters"][0]
        assert c["DBClusterParameterGroup"] == f"{env}-aurora-cluster-params-{s}"
