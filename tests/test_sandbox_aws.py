"""The sandbox's AWS refuses what AWS refuses (issue 11, point 7): the patches the sandbox's
moto server runs with (dbrepl.sandbox.aws_rules), applied in-process here and undone after.
The same rules through a running sandbox and the CLI: tests/test_preflight.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from dbrepl.sandbox import aurora_catalog as catalog
from dbrepl.sandbox.aws_rules import refusing_as_aws
from tests.aws.harness import vpc_quota

REGION = "ap-southeast-2"  # a region no other in-process test uses
V3 = "8.0.mysql_aurora.3.10.0"


@pytest.fixture
def aws() -> Iterator[None]:
    # AWS's default quota: under the session-wide mock of tests/aws the account has 1000.
    with mock_aws(), vpc_quota(5.0), refusing_as_aws():
        yield


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def _cluster(rds: Any, name: str, version: str = V3) -> None:
    rds.create_db_cluster(DBClusterIdentifier=name, Engine="aurora-mysql", EngineVersion=version,
                          MasterUsername="admin", MasterUserPassword="secret-secret", BackupRetentionPeriod=7)


def test_deleting_a_cluster_deletes_its_automated_snapshots(aws: None) -> None:
    rds = _client("rds")
    _cluster(rds, "c1")
    assert rds.describe_db_cluster_snapshots(SnapshotType="automated")["DBClusterSnapshots"]
    rds.delete_db_cluster(DBClusterIdentifier="c1", SkipFinalSnapshot=True)
    assert rds.describe_db_cluster_snapshots(SnapshotType="automated")["DBClusterSnapshots"] == []
    _cluster(rds, "c1")  # destroy then apply within the same minute: no DBClusterSnapshotAlreadyExists


def test_engine_versions_come_from_the_table(aws: None) -> None:
    rds = _client("rds")
    listed = [v["EngineVersion"] for v in rds.describe_db_engine_versions(Engine="aurora-mysql")["DBEngineVersions"]]
    assert listed == list(catalog.versions()) and V3 in listed
    one = rds.describe_db_engine_versions(Engine="aurora-mysql", EngineVersion=V3)["DBEngineVersions"]
    assert [v["DBParameterGroupFamily"] for v in one] == ["aurora-mysql8.0"]
    assert rds.describe_db_engine_versions(Engine="aurora-mysql",
                                           EngineVersion="8.0.mysql_aurora.3.99.0")["DBEngineVersions"] == []


def test_orderable_instance_classes_come_from_the_table(aws: None) -> None:
    rds = _client("rds")
    opts = rds.describe_orderable_db_instance_options(Engine="aurora-mysql", EngineVersion=V3)
    classes = {o["DBInstanceClass"] for o in opts["OrderableDBInstanceOptions"]}
    assert {"db.r5.large", "db.r6g.large", "db.r7g.large", "db.t3.medium", "db.t4g.medium"} <= classes
    assert "db.t2.micro" not in classes and "db.t3.small" not in classes
    v2 = rds.describe_orderable_db_instance_options(Engine="aurora-mysql", EngineVersion="5.7.mysql_aurora.2.12.6")
    assert "db.t3.small" in {o["DBInstanceClass"] for o in v2["OrderableDBInstanceOptions"]}
    none = rds.describe_orderable_db_instance_options(Engine="aurora-mysql", EngineVersion=V3,
                                                      DBInstanceClass="db.t2.micro")
    assert none["OrderableDBInstanceOptions"] == []


def test_unknown_version_and_unoffered_class_fail_as_on_aws(aws: None) -> None:
    rds = _client("rds")
    with pytest.raises(ClientError) as e:
        _cluster(rds, "c2", "8.0.mysql_aurora.3.99.0")
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "Cannot find version 8.0.mysql_aurora.3.99.0" in str(e.value)
    _cluster(rds, "c2")
    with pytest.raises(ClientError) as e:
        rds.create_db_instance(DBInstanceIdentifier="i1", DBClusterIdentifier="c2", Engine="aurora-mysql",
                               DBInstanceClass="db.t2.micro")
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "DBInstanceClass=db.t2.micro" in str(e.value)
    rds.create_db_instance(DBInstanceIdentifier="i1", DBClusterIdentifier="c2", Engine="aurora-mysql",
                           DBInstanceClass="db.t4g.medium")
    with pytest.raises(ClientError, match="InvalidParameterCombination"):
        rds.modify_db_instance(DBInstanceIdentifier="i1", DBInstanceClass="db.t2.micro")


def test_vpc_quota_counts_the_default_vpc(aws: None) -> None:
    ec2 = _client("ec2")
    assert len(ec2.describe_vpcs()["Vpcs"]) == 1  # the default VPC
    for i in range(4):
        ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")
    with pytest.raises(ClientError) as e:
        ec2.create_vpc(CidrBlock="10.9.0.0/16")
    assert e.value.response["Error"]["Code"] == "VpcLimitExceeded"
    quota = _client("service-quotas").get_service_quota(ServiceCode="vpc", QuotaCode="L-F678F1CE")
    assert quota["Quota"]["Value"] == 5 == len(ec2.describe_vpcs()["Vpcs"])


def test_the_patches_are_undone() -> None:
    with mock_aws():
        with refusing_as_aws():
            pass
        ec2 = _client("ec2")
        for i in range(5):
            ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")  # plain moto again: no quota
        with pytest.raises(NotImplementedError):
            _client("rds").describe_db_engine_versions(Engine="aurora-mysql")


def test_a_tls_only_bucket_policy_lets_requests_through_as_over_tls() -> None:
    """moto would refuse every PutObject under the estate's "deny without TLS" statement (it drops
    the condition); the rule evaluates aws:SecureTransport as a TLS request has it."""
    from dbrepl.sandbox.aws_rules import _holds_over_tls

    deny_plain = {"Bool": {"aws:SecureTransport": "false"}}
    assert _holds_over_tls(deny_plain) is False
    assert _holds_over_tls({"Bool": {"aws:SecureTransport": ["true"]}}) is True
    assert _holds_over_tls({"StringEquals": {"aws:SourceAccount": "1"}}) is True and _holds_over_tls(None) is True
    with mock_aws(), refusing_as_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="tls-only")
        s3.put_bucket_policy(Bucket="tls-only", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": ["arn:aws:s3:::tls-only", "arn:aws:s3:::tls-only/*"], "Condition": deny_plain}]}))
        s3.put_object(Bucket="tls-only", Key="k", Body=b"x")
        # A statement that denies without a transport condition still denies (moto's own evaluation).
        s3.put_bucket_policy(Bucket="tls-only", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::tls-only/*"}]}))
        with pytest.raises(ClientError):
            s3.put_object(Bucket="tls-only", Key="k2", Body=b"x")
