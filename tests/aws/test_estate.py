"""The whole estate against moto: plan from empty, apply, seed parity resource by resource,
no-op re-plan and re-apply, destroy, destroy again, apply again."""

from __future__ import annotations

import json

import pytest

from dbrepl.bundle import code_sha256
from tests.aws.harness import bundle, forget_automated_snapshots

ENVS = ("dev", "staging", "prod")
CIDR = {"dev": "10.1.0.0/16", "staging": "10.2.0.0/16", "prod": "10.3.0.0/16"}
S = "b1"
LISTING = {"DescribeLogGroups", "DescribeDBClusterParameterGroups", "DescribeDBSubnetGroups", "GetResources",
           "ListAliases", "ListSecrets"}
NO_OP_PLAN_CALLS = {
    "DescribeAlarms": 1, "DescribeAvailabilityZones": 1, "DescribeDBClusterParameterGroups": 1,
    "DescribeDBClusterParameters": 3, "DescribeDBClusters": 1, "DescribeDBInstances": 1, "DescribeDBSubnetGroups": 1,
    "DescribeKey": 3, "DescribeLogGroups": 1, "DescribeParameters": 1, "DescribeRouteTables": 1,
    "DescribeSecurityGroups": 1, "DescribeSubnets": 1, "DescribeVpcAttribute": 6, "DescribeVpcEndpoints": 1,
    "DescribeVpcPeeringConnections": 1, "DescribeVpcs": 1, "GetBucketEncryption": 1,
    "GetBucketLifecycleConfiguration": 1, "GetBucketPolicy": 1, "GetBucketVersioning": 1, "GetCallerIdentity": 1,
    "GetFunction": 2, "GetKeyPolicy": 3, "GetKeyRotationStatus": 3, "GetParameters": 1, "GetPublicAccessBlock": 1,
    "GetResources": 1, "GetRole": 1, "GetRolePolicy": 1, "ListAliases": 1, "ListAttachedRolePolicies": 1,
    "ListRolePolicies": 1, "ListSecrets": 1, "ListTagsForResource": 3,
}
# Issue 12 adds 9 reads (DescribeAlarms still answers for every alarm, old and new, in one call):
#   alarms: sns GetTopicAttributes, ListSubscriptionsByTopic (the topic's tags come with the one
#     GetResources call every step shares);
#   schedules: iam GetRole, GetRolePolicy (the scheduler's role); scheduler GetScheduleGroup,
#     ListTagsForResource (the group's tags), ListSchedules (of the estate's group), GetSchedule (one
#     per schedule of the spec: 1 here);
#   dashboard: cloudwatch GetDashboard.
# (moto pages GetResources by 100 tags even with ResourcesPerPage=100, and the 6 new tagged alarms
# take the estate past 100 tags: a second GetResources page here that AWS does not make.)
ISSUE_12_READS = {"GetTopicAttributes": 1, "ListSubscriptionsByTopic": 1, "GetRole": 1, "GetRolePolicy": 1,
                  "GetScheduleGroup": 1, "ListTagsForResource": 1, "ListSchedules": 1, "GetSchedule": 1,
                  "GetDashboard": 1}
NO_OP_PLAN_CALLS = {op: NO_OP_PLAN_CALLS.get(op, 0) + ISSUE_12_READS.get(op, 0)
                    for op in {*NO_OP_PLAN_CALLS, *ISSUE_12_READS}}
# Issue 18 adds 6: the functions' async config (2), the endpoints' service names as the region lists
# them (1; preflight, which needs it too, runs only when the plan has changes), the schedules'
# dead-letter queue (GetQueueUrl, GetQueueAttributes, ListQueueTags).
ISSUE_18_READS = {"GetFunctionEventInvokeConfig": 2, "DescribeVpcEndpointServices": 1, "GetQueueUrl": 1,
                  "GetQueueAttributes": 1, "ListQueueTags": 1}
NO_OP_PLAN_CALLS = {**NO_OP_PLAN_CALLS, **ISSUE_18_READS}


def test_plan_from_empty_lists_every_resource(estate):
    plan = estate.plan()
    assert all(c.action == "create" for c in plan.changes)
    types = [c.type for c in plan.changes]
    expected = {
        "AWS::EC2::VPC": 3, "AWS::EC2::Subnet": 6, "AWS::EC2::RouteTable": 3,
        "AWS::EC2::SubnetRouteTableAssociation": 6, "AWS::EC2::SecurityGroup": 5,
        "AWS::EC2::VPCEndpoint": 3, "AWS::KMS::Key": 3, "AWS::KMS::Alias": 3,
        "AWS::SecretsManager::Secret": 3, "AWS::RDS::DBSubnetGroup": 3, "AWS::RDS::DBCluster": 3,
        "AWS::RDS::DBInstance": 3, "AWS::RDS::DBClusterParameterGroup": 3,
        "AWS::SSM::Parameter": 3, "AWS::EC2::VPCPeeringConnection": 2,
        "AWS::EC2::Route": 4, "AWS::S3::Bucket": 1, "AWS::IAM::Role": 2, "AWS::Lambda::Function": 2,
        "AWS::Logs::LogGroup": 2,
        # Issue 12: 3 replica-lag + failure and staleness of the default schedule + 2 x 2 function alarms.
        "AWS::CloudWatch::Alarm": 10, "AWS::SNS::Topic": 1, "AWS::Scheduler::ScheduleGroup": 1,
        "AWS::Scheduler::Schedule": 1, "AWS::CloudWatch::Dashboard": 1,
        "AWS::SQS::Queue": 1,  # issue 18: the schedules' dead-letter queue (and its alarm, below)
    }
    for t, n in expected.items():
        assert types.count(t) == n, t
    assert plan.summary == {"create": len(plan.changes), "update": 0, "replace": 0, "delete": 0}
    assert estate.log.mutating == []  # plan never writes
    names = {c.name for c in plan.changes}
    for n in ("dev-vpc-{s}", "staging-private-subnet-2-{s}", "prod-route-table-{s}", "dev-aurora-sg-{s}",
              "lambda-db-sync-sg-{s}", "alias/dev-key-{s}", "prod-aurora-secret-{s}", "dev-aurora-subnet-group-{s}",
              "staging-aurora-cluster-{s}", "dev-aurora-cluster-params-{s}", "prod-aurora-instance-1-{s}",
              "/db-replication/{s}/dev/connection-string",
              "dev-to-staging-peering-{s}", "staging-to-prod-peering-{s}", "migration-scripts-{s}-123456789012",
              "db-sync-lambda-role-{s}", "db-sync-schema-replication-{s}", "db-sync-data-replication-{s}",
              "/aws/lambda/db-sync-schema-replication-{s}", "dev-aurora-replication-lag-{s}",
              "dbrepl-alarms-{s}", "data-dev-to-staging-{s}", "db-sync-scheduler-role-{s}", "dbrepl-{s}",
              "data-sync-dev-to-staging-stale-{s}", "db-sync-data-replication-throttles-{s}"):
        n = n.format(s=estate.suffix)
        assert n in names, n


def _vpcs(ec2):
    out = {}
    for v in ec2.describe_vpcs()["Vpcs"]:
        name = {t["Key"]: t["Value"] for t in v.get("Tags", [])}.get("Name")
        if name:
            out[name] = v
    return out


def test_network_matches_seed(built):
    ec2 = built.client("ec2")
    vpcs = _vpcs(ec2)
    for env in ENVS:
        v = vpcs[f"{env}-vpc-{S}"]
        assert v["CidrBlock"] == CIDR[env]
        for attr, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
            assert ec2.describe_vpc_attribute(VpcId=v["VpcId"], Attribute=attr)[key]["Value"] is True
        tags = {t["Key"]: t["Value"] for t in v["Tags"]}
        assert tags["Environment"] == env and tags["dbrepl:suffix"] == S and tags["dbrepl:managed-by"] == "dbrepl"
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [v["VpcId"]]}])["Subnets"]
        by_cidr = {s["CidrBlock"]: s for s in subnets}
        n = CIDR[env].split(".")[1]
        assert set(by_cidr) == {f"10.{n}.1.0/24", f"10.{n}.2.0/24"}
        assert by_cidr[f"10.{n}.1.0/24"]["AvailabilityZone"] != by_cidr[f"10.{n}.2.0/24"]["AvailabilityZone"]
        rts = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [f"{env}-route-table-{S}"]}])
        rt = rts["RouteTables"][0]
        assoc = {a["SubnetId"] for a in rt["Associations"] if not a.get("Main")}
        assert assoc == {s["SubnetId"] for s in subnets}
        sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{env}-aurora-sg-{S}"]}])[
            "SecurityGroups"][0]
        sources = set()
        for p in sg["IpPermissions"]:
            assert (p["IpProtocol"], p["FromPort"], p["ToPort"]) == ("tcp", 3306, 3306)
            sources |= {r["CidrIp"] for r in p.get("IpRanges", [])}
            sources |= {r["GroupId"] for r in p.get("UserIdGroupPairs", [])}
        fn_sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"lambda-db-sync-sg-{S}"]}])[
            "SecurityGroups"][0]
        # Correction 3: own VPC and the function SG only; never 0.0.0.0/0 or the unpeered env.
        assert sources == {CIDR[env], fn_sg["GroupId"]}
    # Correction 1: the function SG lives in the hub (staging) VPC.
    assert fn_sg["VpcId"] == vpcs[f"staging-vpc-{S}"]["VpcId"]


def test_endpoints_in_hub(built):
    ec2 = built.client("ec2")
    hub_vpc = _vpcs(ec2)[f"staging-vpc-{S}"]["VpcId"]
    eps = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [hub_vpc]}])["VpcEndpoints"]
    by_service = {e["ServiceName"].rsplit(".", 1)[1]: e for e in eps}
    assert set(by_service) == {"secretsmanager", "ssm", "s3"}
    for svc in ("secretsmanager", "ssm"):
        e = by_service[svc]
        assert e["VpcEndpointType"] == "Interface" and e["PrivateDnsEnabled"] is True
        assert len(e["SubnetIds"]) == 2
        ep_sg = ec2.describe_security_groups(GroupIds=[e["Groups"][0]["GroupId"]])["SecurityGroups"][0]
        fn_sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"lambda-db-sync-sg-{S}"]}])[
            "SecurityGroups"][0]
        perms = ep_sg["IpPermissions"]
        assert [(p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]]) for p in perms] == [
            (443, [fn_sg["GroupId"]])]
    rt = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [f"staging-route-table-{S}"]}])[
        "RouteTables"][0]
    assert by_service["s3"]["VpcEndpointType"] == "Gateway"
    assert by_service["s3"]["RouteTableIds"] == [rt["RouteTableId"]]


def test_peering_and_routes(built):
    ec2 = built.client("ec2")
    vpcs = _vpcs(ec2)
    pcx = ec2.describe_vpc_peering_connections()["VpcPeeringConnections"]
    by_name = {}
    for p in pcx:
        name = {t["Key"]: t["Value"] for t in p.get("Tags", [])}.get("Name")
        by_name[name] = p
    ds, sp = by_name[f"dev-to-staging-peering-{S}"], by_name[f"staging-to-prod-peering-{S}"]
    assert ds["Status"]["Code"] == sp["Status"]["Code"] == "active"
    assert ds["RequesterVpcInfo"]["VpcId"] == vpcs[f"dev-vpc-{S}"]["VpcId"]
    assert ds["AccepterVpcInfo"]["VpcId"] == vpcs[f"staging-vpc-{S}"]["VpcId"]
    assert sp["AccepterVpcInfo"]["VpcId"] == vpcs[f"prod-vpc-{S}"]["VpcId"]
    assert not any("dev-to-prod" in (n or "") or "prod-to-dev" in (n or "") for n in by_name)
    want = {"dev": {"10.2.0.0/16": ds}, "staging": {"10.1.0.0/16": ds, "10.3.0.0/16": sp}, "prod": {"10.2.0.0/16": sp}}
    for env, routes in want.items():
        rt = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [f"{env}-route-table-{S}"]}])[
            "RouteTables"][0]
        peer_routes = {r["DestinationCidrBlock"]: r.get("VpcPeeringConnectionId") for r in rt["Routes"]
                       if r.get("VpcPeeringConnectionId")}
        assert peer_routes == {c: p["VpcPeeringConnectionId"] for c, p in routes.items()}


def test_kms_and_secrets(built):
    kms, sm = built.client("kms"), built.client("secretsmanager")
    aliases = {a["AliasName"]: a for a in kms.list_aliases()["Aliases"]}
    for env in ENVS:
        a = aliases[f"alias/{env}-key-{S}"]
        meta = kms.describe_key(KeyId=a["TargetKeyId"])["KeyMetadata"]
        assert meta["KeyState"] == "Enabled"
        assert meta["Description"] == f"KMS key for {env} environment encryption - {S}"
        policy = json.loads(kms.get_key_policy(KeyId=a["TargetKeyId"], PolicyName="default")["Policy"])
        services = policy["Statement"][1]["Principal"]["Service"]
        assert sorted(services) == ["rds.amazonaws.com", "s3.amazonaws.com", "secretsmanager.amazonaws.com",
                                    "ssm.amazonaws.com"]
        d = sm.describe_secret(SecretId=f"{env}-aurora-secret-{S}")
        assert d["KmsKeyId"] == meta["Arn"]
        assert d["Description"] == f"Master password for {env} Aurora cluster"
        value = json.loads(sm.get_secret_value(SecretId=f"{env}-aurora-secret-{S}")["SecretString"])
        assert value["username"] == "admin" and len(value["password"]) == 32
        assert not set(value["password"]) & set('"@/\\')


def test_aurora_matches_seed_with_corrections(built):
    rds, ssm, kms = built.client("rds"), built.client("ssm"), built.client("kms")
    aliases = {a["AliasName"]: a["TargetKeyId"] for a in kms.list_aliases()["Aliases"]}
    for env in ENVS:
        c = rds.describe_db_clusters(DBClusterIdentifier=f"{env}-aurora-cluster-{S}")["DBClusters"][0]
        assert c["Engine"] == "aurora-mysql"
        assert c["EngineVersion"] == "8.0.mysql_aurora.3.10.0"  # correction 5
        assert c["StorageEncrypted"] is True
        assert c["KmsKeyId"] == kms.describe_key(KeyId=aliases[f"alias/{env}-key-{S}"])["KeyMetadata"]["Arn"]
        assert c["BackupRetentionPeriod"] == 7
        assert c["PreferredBackupWindow"] == "03:00-04:00"
        assert c["PreferredMaintenanceWindow"] == "mon:04:00-mon:05:00"
        assert sorted(c["EnabledCloudwatchLogsExports"]) == ["error", "general", "slowquery"]
        assert c["DeletionProtection"] is (env == "prod")  # protected: true (correction 11)
        assert c["DBSubnetGroup"] == f"{env}-aurora-subnet-group-{S}"
        assert c["MasterUsername"] == "admin"
        g = rds.describe_db_subnet_groups(DBSubnetGroupName=f"{env}-aurora-subnet-group-{S}")["DBSubnetGroups"][0]
        assert len(g["Subnets"]) == 2
        i = rds.describe_db_instances(DBInstanceIdentifier=f"{env}-aurora-instance-1-{S}")["DBInstances"][0]
        assert i["DBInstanceClass"] == "db.r5.large"
        assert i["PubliclyAccessible"] is False
        assert i["AutoMinorVersionUpgrade"] is False
        assert i["DBClusterIdentifier"] == c["DBClusterIdentifier"]
        p = ssm.get_parameter(Name=f"/db-replication/{S}/{env}/connection-string")["Parameter"]
        assert p["Value"] == f"mysql://{c['Endpoint']}:3306"


def test_bucket_matches_seed(built):
    s3, kms = built.client("s3"), built.client("kms")
    name = f"migration-scripts-{S}-123456789012"
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    dev_key = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == f"alias/dev-key-{S}"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == kms.describe_key(
        KeyId=dev_key["TargetKeyId"])["KeyMetadata"]["Arn"]
    lc = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"][0]
    assert lc["Status"] == "Enabled" and lc["Expiration"]["Days"] == 30
    assert lc["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    pab = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert all(pab[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    assert tags["Name"] == f"migration-scripts-{S}"


def test_lambdas_match_seed_with_corrections(built):
    lam, iam, logs, ec2 = built.client("lambda"), built.client("iam"), built.client("logs"), built.client("ec2")
    sha = code_sha256(bundle())
    hub_subnets = {s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "tag:Name", "Values": [f"staging-private-subnet-1-{S}", f"staging-private-subnet-2-{S}"]}]
    )["Subnets"]}
    role = iam.get_role(RoleName=f"db-sync-lambda-role-{S}")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] == "lambda.amazonaws.com"
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]]
    assert attached == ["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]
    doc = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="DatabaseSyncPolicy")["PolicyDocument"]
    stmts = {s["Sid"]: s for s in doc["Statement"]}
    assert len(stmts["ReadDatabaseSecrets"]["Resource"]) == 3
    assert all(":secret:" in r for r in stmts["ReadDatabaseSecrets"]["Resource"])
    assert "*" not in json.dumps(stmts["ReadDatabaseSecrets"])
    for kind in ("schema", "data"):
        name = f"db-sync-{kind}-replication-{S}"
        f = lam.get_function(FunctionName=name)["Configuration"]
        assert f["Runtime"] == "python3.12"  # correction 4
        assert f["Timeout"] == 300 and f["MemorySize"] == 512
        assert f["Role"] == role["Arn"]
        assert f["CodeSha256"] == sha  # exactly the bytes of `dbrepl bundle`
        assert set(f["VpcConfig"]["SubnetIds"]) == hub_subnets  # correction 1
        env = f["Environment"]["Variables"]
        for e in ENVS:
            assert env[f"{e.upper()}_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
            assert env[f"{e.upper()}_ENDPOINT"].startswith(f"{e}-aurora-cluster-{S}.")
        assert env["MIGRATION_BUCKET"] == f"migration-scripts-{S}-123456789012"
        assert env["ENVIRONMENT_SUFFIX"] == S
        lg = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"][0]
        assert lg["retentionInDays"] == 7


def test_alarms_match_seed(built):
    cw = built.client("cloudwatch")
    for env in ENVS:
        a = cw.describe_alarms(AlarmNames=[f"{env}-aurora-replication-lag-{S}"])["MetricAlarms"][0]
        assert (a["MetricName"], a["Namespace"], a["Statistic"]) == ("AuroraReplicaLag", "AWS/RDS", "Average")
        assert (a["Period"], a["EvaluationPeriods"], a["Threshold"]) == (60, 2, 60000.0)
        assert a["ComparisonOperator"] == "GreaterThanThreshold"
        assert a["TreatMissingData"] == "notBreaching"
        assert a["Dimensions"] == [{"Name": "DBClusterIdentifier", "Value": f"{env}-aurora-cluster-{S}"}]


def test_no_op_plan_and_second_apply_make_no_changes(built):
    built.log.clear()
    plan = built.plan()
    assert plan.changes == []
    # 51 reads: the 40 of before issue 11 point 5, plus the security posture's drift reads:
    # GetBucketPolicy 1 (TLS-only policy), GetKeyRotationStatus 3 and GetKeyPolicy 3 (one each
    # per key), DescribeDBClusterParameterGroups 1 (per account and region) and
    # DescribeDBClusterParameters 3 (Source=user, one per group).
    # Listing reads page with what the whole region holds: in this session-wide mock, where many
    # suffixes' log groups and parameter groups pile up, they may take more than one page (a
    # fresh account takes one: benchmarks/provision_bench.py). Every other read is exact.
    got = built.log.counter()
    extra_pages = {op: got[op] - n for op, n in NO_OP_PLAN_CALLS.items() if op in LISTING and got[op] > n}
    assert {op: got[op] - extra_pages.get(op, 0) for op in got} == NO_OP_PLAN_CALLS, got
    assert len(built.log.calls) - sum(extra_pages.values()) == 51 + 9 + 6  # + issue 12's and 18's (above)
    built.log.clear()
    done = built.apply()
    assert done.changes == []
    assert built.log.mutating == [], built.log.mutating


def test_destroy_then_destroy_again_then_apply_again(estate):
    estate.apply()
    done = estate.destroy(include_protected=True)
    assert done.summary["delete"] == 83  # of 85: prod's key and alias stay with its final snapshot
    _assert_nothing_left(estate)
    estate.log.clear()
    again = estate.destroy(include_protected=True)
    assert again.changes == []
    assert estate.log.mutating == []
    forget_automated_snapshots(estate.client("rds"))
    estate.apply()
    assert estate.plan().changes == []


def _assert_nothing_left(estate):
    """Checked through each service's own API, not only the tagging API."""
    s = estate.suffix
    ec2 = estate.client("ec2")
    tagged = [{"Name": "tag:dbrepl:suffix", "Values": [s]}]
    assert ec2.describe_vpcs(Filters=tagged)["Vpcs"] == []
    assert ec2.describe_subnets(Filters=tagged)["Subnets"] == []
    assert ec2.describe_route_tables(Filters=tagged)["RouteTables"] == []
    assert ec2.describe_security_groups(Filters=tagged)["SecurityGroups"] == []
    live = [e for e in ec2.describe_vpc_endpoints(Filters=tagged)["VpcEndpoints"] if e["State"].lower() != "deleted"]
    assert live == []
    pcx = [p for p in ec2.describe_vpc_peering_connections(Filters=tagged)["VpcPeeringConnections"]
           if p["Status"]["Code"] not in ("deleted", "rejected")
           and {t["Key"]: t["Value"] for t in p.get("Tags", [])}.get("dbrepl:suffix") == s]
    assert pcx == []
    kms = estate.client("kms")
    # Only prod's key (and alias) stays: it encrypts prod's final snapshot, which needs it.
    assert [a["AliasName"] for a in kms.list_aliases()["Aliases"] if a["AliasName"].endswith(f"-key-{s}")] == \
        [f"alias/prod-key-{s}"]
    under = {snap["KmsKeyId"].rsplit("/", 1)[1] for snap in estate.client("rds").describe_db_cluster_snapshots(
        SnapshotType="manual")["DBClusterSnapshots"] if snap["DBClusterIdentifier"] == f"prod-aurora-cluster-{s}"}
    for k in kms.list_keys()["Keys"]:
        meta = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=k["KeyId"]).get("Tags", [])}
        if tags.get("dbrepl:suffix") == s:
            want = "Enabled" if tags.get("dbrepl:env") == "prod" else "PendingDeletion"
            assert meta["KeyState"] == want and (k["KeyId"] in under) == (want == "Enabled")
    assert estate.client("secretsmanager").list_secrets(
        Filters=[{"Key": "name", "Values": [f"dev-aurora-secret-{s}"]}],
        IncludePlannedDeletion=True)["SecretList"] == []
    rds = estate.client("rds")
    assert [c for c in rds.describe_db_clusters()["DBClusters"]
            if c["DBClusterIdentifier"].endswith(f"-{s}")] == []
    assert [i for i in rds.describe_db_instances()["DBInstances"]
            if i["DBInstanceIdentifier"].endswith(f"-{s}")] == []
    assert [g for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]
            if g["DBSubnetGroupName"].endswith(f"-{s}")] == []
    assert [g for g in rds.describe_db_cluster_parameter_groups()["DBClusterParameterGroups"]
            if g["DBClusterParameterGroupName"].endswith(f"-{s}")] == []
    assert estate.client("ssm").get_parameters(Names=[f"/db-replication/{s}/dev/connection-string"])["Parameters"] == []
    buckets = [b["Name"] for b in estate.client("s3").list_buckets()["Buckets"]]
    assert f"migration-scripts-{s}-123456789012" not in buckets
    with pytest.raises(Exception, match="NoSuchEntity"):
        estate.client("iam").get_role(RoleName=f"db-sync-lambda-role-{s}")
    fns = [f["FunctionName"] for f in estate.client("lambda").list_functions()["Functions"]]
    assert not [f for f in fns if f.endswith(f"-{s}")]
    assert [g for g in estate.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/db-sync-")["logGroups"]
            if g["logGroupName"].endswith(f"-{s}")] == []
    cw = estate.client("cloudwatch")
    assert [a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"] if a["AlarmName"].endswith(f"-{s}")] == []
    # Issue 12: the topic, the schedules and their role, the dashboard.
    topics = estate.client("sns").list_topics()["Topics"]
    assert not [t for t in topics if t["TopicArn"].endswith(f":dbrepl-alarms-{s}")]
    sch = estate.client("scheduler")
    assert not [g for g in sch.list_schedule_groups()["ScheduleGroups"] if g["Name"] == f"dbrepl-{s}"]
    assert not [x for x in sch.list_schedules()["Schedules"] if x["Name"].endswith(f"-{s}")]
    with pytest.raises(Exception, match="NoSuchEntity"):
        estate.client("iam").get_role(RoleName=f"db-sync-scheduler-role-{s}")
    assert not [d for d in cw.list_dashboards()["DashboardEntries"] if d["DashboardName"] == f"dbrepl-{s}"]


def test_two_suffixes_never_touch_each_other(aws, faults):
    from dbrepl.aws.session import SessionFactory
    from tests.aws.harness import CallLog, Estate, fast_spec

    sessions = SessionFactory("us-east-1")
    a = Estate(fast_spec(), "aaa", sessions, CallLog())
    b = Estate(fast_spec(), "bbb", sessions, CallLog())
    a.apply()
    plan_b = b.plan()
    assert plan_b.summary["create"] == 85 and plan_b.summary["update"] == plan_b.summary["delete"] == 0
    b.apply()
    assert a.plan().changes == [] and b.plan().changes == []
    b.destroy(include_protected=True)
    assert a.plan().changes == []
    assert b.destroy(include_protected=True).changes == []
    # 85 less prod's key and alias, kept for prod's final snapshot (tests/aws/test_restore.py)
    assert a.destroy(include_protected=True).summary["delete"] == 83
