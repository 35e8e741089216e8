"""Crash safety and faults moto does not produce.

A kill is a BaseException raised from the client hook once N calls have gone out: no call
after the Nth reaches AWS, exactly as if the process died there.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.aws.harness import Killed, forget_automated_snapshots

APPLY_CALLS = 130  # roughly what apply from empty makes


def _all(client, op: str, key: str) -> list:
    """Every page: a session's many estates pass the 100 items of a first page (RDS, KMS)."""
    return [x for page in client.get_paginator(op).paginate() for x in page[key]]


# What a destroy with include_protected leaves on purpose: prod's key, which encrypts prod's final
# snapshot (kept, so the snapshot stays restorable: tests/aws/test_restore.py).
KEPT = Counter({"key": 1})


def _count_estate(e) -> Counter:
    """Resources of this suffix, counted through each service's own API (duplicates show)."""
    s = e.suffix
    ec2, rds = e.client("ec2"), e.client("rds")
    tagged = [{"Name": "tag:dbrepl:suffix", "Values": [s]}]
    c: Counter = Counter()
    c["vpc"] = len(ec2.describe_vpcs(Filters=tagged)["Vpcs"])
    c["subnet"] = len(ec2.describe_subnets(Filters=tagged)["Subnets"])
    c["route-table"] = len(ec2.describe_route_tables(Filters=tagged)["RouteTables"])
    c["sg"] = len(ec2.describe_security_groups(Filters=tagged)["SecurityGroups"])
    c["endpoint"] = len([x for x in ec2.describe_vpc_endpoints(Filters=tagged)["VpcEndpoints"]
                         if x["State"].lower() != "deleted"])
    c["peering"] = len([p for p in _all(ec2, "describe_vpc_peering_connections", "VpcPeeringConnections")
                        if {t["Key"]: t["Value"] for t in p.get("Tags", [])}.get("dbrepl:suffix") == s
                        and p["Status"]["Code"] not in ("deleted", "rejected", "failed")])
    kms = e.client("kms")
    live_keys = 0
    for k in _all(kms, "list_keys", "Keys"):
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=k["KeyId"]).get("Tags", [])}
        state = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"]
        if tags.get("dbrepl:suffix") == s and state == "Enabled":
            live_keys += 1
    c["key"] = live_keys
    c["cluster"] = len([x for x in _all(rds, "describe_db_clusters", "DBClusters")
                        if x["DBClusterIdentifier"].endswith(f"-{s}")])
    c["instance"] = len([x for x in _all(rds, "describe_db_instances", "DBInstances")
                         if x["DBInstanceIdentifier"].endswith(f"-{s}")])
    return c


FULL = Counter({"vpc": 3, "subnet": 6, "route-table": 3, "sg": 5, "endpoint": 3, "peering": 2, "key": 3,
                "cluster": 3, "instance": 3})


@pytest.mark.parametrize("n", [1, 7, 15, 30, 45, 60, 80, 100, 115])
def test_apply_killed_after_n_calls_then_apply_gives_exactly_one_estate(estate, n):
    estate.log.kill_after = n
    with pytest.raises(Killed):
        estate.apply()
    estate.log.kill_after = None
    estate.apply()
    assert estate.plan().changes == []
    assert _count_estate(estate) == FULL


@pytest.mark.parametrize("n", [1, 10, 25, 50, 75, 95])
def test_destroy_killed_after_n_calls_then_destroy_leaves_nothing(estate, n):
    estate.apply()
    estate.log.clear()
    estate.log.kill_after = n
    with pytest.raises(Killed):
        estate.destroy(include_protected=True)
    estate.log.kill_after = None
    estate.destroy(include_protected=True)
    assert +_count_estate(estate) == KEPT
    assert estate.destroy(include_protected=True).changes == []
    forget_automated_snapshots(estate.client("rds"))
    estate.apply()
    assert _count_estate(estate) == FULL


def test_dependency_violation_while_lambda_enis_release(estate, faults):
    """Real AWS: Lambda's ENIs hold SGs and subnets for 20-40 minutes after the functions go."""
    estate.apply()
    ec2 = estate.client("ec2")
    # Leave a detached Lambda ENI in the hub VPC, as Lambda does; destroy must remove it.
    name = f"staging-private-subnet-1-{estate.suffix}"
    subnet = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": [name]}])["Subnets"][0]
    eni = ec2.create_network_interface(SubnetId=subnet["SubnetId"],
                                       Description="AWS Lambda VPC ENI-db-sync-schema-replication")["NetworkInterface"]
    faults.fail("DeleteSecurityGroup", "DependencyViolation", "resource sg has a dependent object", times=4)
    faults.fail("DeleteSubnet", "DependencyViolation", "The subnet has dependencies", times=3)
    estate.destroy(include_protected=True)
    assert faults.injected["DeleteSecurityGroup"] == 4 and faults.injected["DeleteSubnet"] == 3
    left = ec2.describe_network_interfaces(NetworkInterfaceIds=[])["NetworkInterfaces"]
    assert eni["NetworkInterfaceId"] not in [x["NetworkInterfaceId"] for x in left]
    assert +_count_estate(estate) == KEPT


def test_dependency_violation_past_the_deadline_fails_clearly(estate, faults):
    from dbrepl.errors import AwsFailure

    estate.apply()
    faults.fail("DeleteSecurityGroup", "DependencyViolation", "resource sg has a dependent object", times=10_000)
    spec = estate.spec.model_copy(update={"timing": estate.spec.timing.model_copy(
        update={"eni_release_timeout_minutes": 0.02, "retry_delay": 0.01})})
    with pytest.raises(AwsFailure, match="DependencyViolation"):
        estate.engine(spec=spec).destroy(include_protected=True)
    faults.rules.clear()
    estate.destroy(include_protected=True)
    assert +_count_estate(estate) == KEPT


def test_iam_propagation_on_create_function(estate, faults):
    faults.fail("CreateFunction", "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.", times=3)
    estate.apply()
    assert faults.injected["CreateFunction"] == 3
    assert estate.plan().changes == []


def test_invalid_cluster_state(estate, faults):
    faults.fail("CreateDBInstance", "InvalidDBClusterStateFault", "DB cluster is not available", times=2)
    faults.fail("DeleteDBCluster", "InvalidDBClusterStateFault", "DB cluster has members being deleted", times=2)
    estate.apply()
    assert estate.plan().changes == []
    estate.destroy(include_protected=True)
    assert faults.injected["CreateDBInstance"] == 2 and faults.injected["DeleteDBCluster"] == 2
    assert +_count_estate(estate) == KEPT


def test_throttling_on_a_large_share_of_calls(estate, faults):
    faults.throttle(0.25)
    estate.apply()
    assert faults.injected["throttle"] > 20
    assert estate.plan().changes == []
    estate.destroy(include_protected=True)
    faults.throttle(0.0)
    assert +_count_estate(estate) == KEPT


def test_subnet_group_in_use_while_cluster_deletes(estate, faults):
    """moto deletes an in-use subnet group at once; AWS refuses until the cluster is gone."""
    estate.apply()
    faults.fail("DeleteDBSubnetGroup", "InvalidDBSubnetGroupStateFault", "DB subnet group is in use", times=3)
    estate.destroy(include_protected=True)
    assert faults.injected["DeleteDBSubnetGroup"] == 3
    assert +_count_estate(estate) == KEPT


def test_engine_version_aws_does_not_know_fails_clearly_and_leaves_the_rest(estate, faults):
    """moto accepts any engine version; AWS answers InvalidParameterCombination."""
    from dbrepl.errors import AwsFailure

    faults.fail("CreateDBCluster", "InvalidParameterCombination",
                "Cannot find version 8.0.mysql_aurora.3.99.0 for aurora-mysql", times=1)
    with pytest.raises(AwsFailure) as info:
        estate.apply()
    msg = str(info.value)
    assert msg.startswith("Failed to create AWS::RDS::DBCluster ")
    assert "Cannot find version" in msg and "left in place" in msg
    # What was made stays; the next apply finishes the job without duplicates.
    estate.apply()
    assert estate.plan().changes == []
    assert _count_estate(estate) == FULL
