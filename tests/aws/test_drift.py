"""Drift: each case changes one thing behind dbrepl's back; plan shows exactly that change,
apply repairs it, and plan then shows nothing."""

from __future__ import annotations

import pytest


def _rt(ec2, env, S):
    return ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [f"{env}-route-table-{S}"]}])[
        "RouteTables"][0]


def _sg(ec2, name):
    return ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"][0]


def _vpc(ec2, env, S):
    return ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [f"{env}-vpc-{S}"]}])["Vpcs"][0]


def delete_alarm(e):
    S = e.suffix
    e.client("cloudwatch").delete_alarms(AlarmNames=[f"prod-aurora-replication-lag-{S}"])


def delete_route(e):
    rt = _rt(e.client("ec2"), "staging", e.suffix)
    e.client("ec2").delete_route(RouteTableId=rt["RouteTableId"], DestinationCidrBlock="10.3.0.0/16")


def delete_association(e):
    rt = _rt(e.client("ec2"), "dev", e.suffix)
    a = [a for a in rt["Associations"] if not a.get("Main")][0]
    e.client("ec2").disassociate_route_table(AssociationId=a["RouteTableAssociationId"])


def delete_endpoint(e):
    S = e.suffix
    ec2 = e.client("ec2")
    ep = ec2.describe_vpc_endpoints(Filters=[{"Name": "tag:Name", "Values": [f"staging-ssm-endpoint-{S}"]}])[
        "VpcEndpoints"][0]
    ec2.delete_vpc_endpoints(VpcEndpointIds=[ep["VpcEndpointId"]])


def change_backup_retention(e):
    S = e.suffix
    e.client("rds").modify_db_cluster(DBClusterIdentifier=f"dev-aurora-cluster-{S}", BackupRetentionPeriod=3,
                                      ApplyImmediately=True)


def suspend_versioning(e):
    S = e.suffix
    e.client("s3").put_bucket_versioning(Bucket=f"migration-scripts-{S}-123456789012",
                                         VersioningConfiguration={"Status": "Suspended"})


def change_lifecycle(e):
    S = e.suffix
    e.client("s3").put_bucket_lifecycle_configuration(
        Bucket=f"migration-scripts-{S}-123456789012",
        LifecycleConfiguration={"Rules": [{"ID": "DeleteOldMigrationScripts", "Status": "Enabled",
                                           "Filter": {"Prefix": ""}, "Expiration": {"Days": 90},
                                           "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}]})


def add_sg_rule(e):
    S = e.suffix
    ec2 = e.client("ec2")
    ec2.authorize_security_group_ingress(GroupId=_sg(ec2, f"dev-aurora-sg-{S}")["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])


def remove_sg_rule(e):
    S = e.suffix
    ec2 = e.client("ec2")
    ec2.revoke_security_group_ingress(GroupId=_sg(ec2, f"prod-aurora-sg-{S}")["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "10.3.0.0/16"}]}])


def change_function_environment(e):
    S = e.suffix
    lam = e.client("lambda")
    name = f"db-sync-data-replication-{S}"
    env = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {**env, "PROD_ENDPOINT": "evil"}})


def change_log_retention(e):
    S = e.suffix
    e.client("logs").put_retention_policy(logGroupName=f"/aws/lambda/db-sync-schema-replication-{S}",
                                          retentionInDays=30)


def remove_vpc_tags(e):
    ec2 = e.client("ec2")
    ec2.delete_tags(Resources=[_vpc(ec2, "prod", e.suffix)["VpcId"]],
                    Tags=[{"Key": "dbrepl:suffix"}, {"Key": "dbrepl:step"}])


def remove_secret_tags(e):
    S = e.suffix
    e.client("secretsmanager").untag_resource(SecretId=f"dev-aurora-secret-{S}",
                                              TagKeys=["dbrepl:suffix", "dbrepl:managed-by"])


CASES = [
    (delete_alarm, "create", "AWS::CloudWatch::Alarm", "prod-aurora-replication-lag-{s}", None),
    (delete_route, "create", "AWS::EC2::Route",
     "staging-route-table-{s} 10.3.0.0/16 via staging-to-prod-peering-{s}", None),
    (delete_association, "create", "AWS::EC2::SubnetRouteTableAssociation", None, None),
    (delete_endpoint, "create", "AWS::EC2::VPCEndpoint", "staging-ssm-endpoint-{s}", None),
    (change_backup_retention, "update", "AWS::RDS::DBCluster", "dev-aurora-cluster-{s}", "BackupRetentionPeriod"),
    (suspend_versioning, "update", "AWS::S3::Bucket", "migration-scripts-{s}-123456789012", "Versioning"),
    (change_lifecycle, "update", "AWS::S3::Bucket", "migration-scripts-{s}-123456789012", "Lifecycle"),
    (add_sg_rule, "delete", "AWS::EC2::SecurityGroupIngress", "dev-aurora-sg-{s} tcp/3306 from 0.0.0.0/0", None),
    (remove_sg_rule, "create", "AWS::EC2::SecurityGroupIngress", "prod-aurora-sg-{s} tcp/3306 from 10.3.0.0/16", None),
    (change_function_environment, "update", "AWS::Lambda::Function", "db-sync-data-replication-{s}", "Environment"),
    (change_log_retention, "update", "AWS::Logs::LogGroup", "/aws/lambda/db-sync-schema-replication-{s}",
     "RetentionInDays"),
    (remove_vpc_tags, "update", "AWS::EC2::VPC", "prod-vpc-{s}", "Tags"),
    (remove_secret_tags, "update", "AWS::SecretsManager::Secret", "dev-aurora-secret-{s}", "Tags"),
]


@pytest.mark.parametrize("drift,action,type_,name,field", CASES, ids=[c[0].__name__ for c in CASES])
def test_drift_is_planned_and_repaired(estate, drift, action, type_, name, field):
    estate.apply()
    assert estate.plan().changes == []
    drift(estate)
    plan = estate.plan()
    assert len(plan.changes) == 1, [(c.action, c.type, c.name, c.diff) for c in plan.changes]
    c = plan.changes[0]
    assert (c.action, c.type) == (action, type_)
    if name:
        assert c.name == name.format(s=estate.suffix)
    if field:
        assert field in c.diff
    done = estate.apply()
    assert len(done.changes) == 1
    assert estate.plan().changes == []


def test_narrowed_plan_sees_only_its_environment(estate):
    estate.apply()
    delete_alarm(estate)
    change_backup_retention(estate)
    assert [c.env for c in estate.plan(envs=["prod"]).changes] == ["prod"]
    assert [c.env for c in estate.plan(envs=["dev"]).changes] == ["dev"]
    estate.apply(envs=["dev"])
    assert [c.env for c in estate.plan().changes] == ["prod"]
