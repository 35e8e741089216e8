"""dev, staging (hub) and prod in three accounts (issue 6), all in the hub's region: an
environment in another account and another region is refused (issue 11, point 3; see
tests/aws/test_cross_region.py for another region in the hub's account).

moto gives an assumed-role session in the role's account, and cross-account peering stays
pending until the other account accepts: the same shape as AWS.
"""

from __future__ import annotations

import itertools
import json

import pytest
from typer.testing import CliRunner

from dbrepl.aws.session import SessionFactory
from dbrepl.errors import BadInput
from tests.aws.harness import CallLog, Estate, Faults, fast_spec

_n = itertools.count(1)
DEV_ACCOUNT, PROD_ACCOUNT, HUB_ACCOUNT = "111111111111", "222222222222", "123456789012"


def spec3(prod_region: str | None = None):
    spec = fast_spec()
    envs = dict(spec.environments)
    envs["dev"] = envs["dev"].model_copy(update={"account": _account(DEV_ACCOUNT)})
    envs["prod"] = envs["prod"].model_copy(update={"account": _account(PROD_ACCOUNT), "region": prod_region})
    return spec.model_copy(update={"environments": envs})


def _account(acct: str):
    from dbrepl.spec import Account

    return Account(role_arn=f"arn:aws:iam::{acct}:role/dbrepl-deploy", external_id="x-123")


@pytest.fixture
def multi(aws):
    faults, log = Faults(), CallLog()
    spec = spec3()
    sessions = SessionFactory.from_spec(spec, hooks=[faults.hook, log.hook])
    sessions._region = "us-east-1"
    e = Estate(spec, f"x{next(_n)}", sessions, log)
    e.faults = faults
    return e


def _vpc(sessions, env, suffix):
    vpcs = sessions.client("ec2", env).describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": [f"{env}-vpc-{suffix}"]}])["Vpcs"]
    return vpcs


def test_three_accounts_apply_plan_destroy(multi):
    s, sessions = multi.suffix, multi.sessions
    multi.apply()
    # Each environment in its own account.
    for env, acct in (("dev", DEV_ACCOUNT), ("staging", HUB_ACCOUNT), ("prod", PROD_ACCOUNT)):
        vpcs = _vpc(sessions, env, s)
        assert len(vpcs) == 1 and vpcs[0]["OwnerId"] == acct, env
        ident = sessions.client("sts", env).get_caller_identity()["Account"]
        assert ident == acct
        c = sessions.client("rds", env).describe_db_clusters(DBClusterIdentifier=f"{env}-aurora-cluster-{s}")
        assert f":{acct}:" in c["DBClusters"][0]["DBClusterArn"]
        alarms = sessions.client("cloudwatch", env).describe_alarms(AlarmNames=[f"{env}-aurora-replication-lag-{s}"])
        assert len(alarms["MetricAlarms"]) == 1
        p = sessions.client("ssm", env).get_parameter(Name=f"/db-replication/{s}/{env}/connection-string")
        assert p["Parameter"]["Value"].startswith(f"mysql://{env}-aurora-cluster-{s}.")
    assert sessions.region_for("prod") == "us-east-1"
    assert ":us-east-1:" in sessions.client("rds", "prod").describe_db_clusters(
        DBClusterIdentifier=f"prod-aurora-cluster-{s}")["DBClusters"][0]["DBClusterArn"]
    # Nothing of dev or prod landed in the hub account.
    assert _vpc(sessions, "staging", s) and not sessions.client("ec2", "staging").describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": [f"dev-vpc-{s}", f"prod-vpc-{s}"]}])["Vpcs"]
    # The bucket stays in the hub account.
    buckets = [b["Name"] for b in sessions.client("s3", "staging").list_buckets()["Buckets"]]
    assert f"migration-scripts-{s}-{HUB_ACCOUNT}" in buckets

    # Peering active on both sides, routes on both sides.
    for a, b in (("dev", "staging"), ("staging", "prod")):
        pcx = [p for p in sessions.client("ec2", a).describe_vpc_peering_connections()["VpcPeeringConnections"]
               if {t["Key"]: t["Value"] for t in p.get("Tags", [])}.get("Name") == f"{a}-to-{b}-peering-{s}"]
        assert len(pcx) == 1 and pcx[0]["Status"]["Code"] == "active", (a, b, pcx)
        pid = pcx[0]["VpcPeeringConnectionId"]
        seen = sessions.client("ec2", b).describe_vpc_peering_connections(VpcPeeringConnectionIds=[pid])
        assert seen["VpcPeeringConnections"][0]["Status"]["Code"] == "active"
    cidr = {"dev": "10.1.0.0/16", "staging": "10.2.0.0/16", "prod": "10.3.0.0/16"}
    for env, peers in (("dev", ["staging"]), ("staging", ["dev", "prod"]), ("prod", ["staging"])):
        rt = sessions.client("ec2", env).describe_route_tables(
            Filters=[{"Name": "tag:Name", "Values": [f"{env}-route-table-{s}"]}])["RouteTables"][0]
        dests = {r["DestinationCidrBlock"] for r in rt["Routes"] if r.get("VpcPeeringConnectionId")}
        assert dests == {cidr[p] for p in peers}, env

    # The functions' environment names the other accounts' secrets and endpoints.
    fn = sessions.client("lambda", "staging").get_function_configuration(FunctionName=f"db-sync-data-replication-{s}")
    env_vars = fn["Environment"]["Variables"]
    assert f":{DEV_ACCOUNT}:secret:dev-aurora-secret-{s}" in env_vars["DEV_SECRET_ARN"]
    assert f":us-east-1:{PROD_ACCOUNT}:secret:prod-aurora-secret-{s}" in env_vars["PROD_SECRET_ARN"]

    assert multi.plan().changes == []
    multi.destroy(include_protected=True)
    for env in ("dev", "staging", "prod"):
        assert _vpc(sessions, env, s) == []
        assert not [c for c in sessions.client("rds", env).describe_db_clusters()["DBClusters"]
                    if c["DBClusterIdentifier"].endswith(f"-{s}")]
        assert sessions.client("secretsmanager", env).list_secrets(
            Filters=[{"Key": "name", "Values": [f"{env}-aurora-secret-{s}"]}],
            IncludePlannedDeletion=True)["SecretList"] == []
        assert sessions.client("cloudwatch", env).describe_alarms(
            AlarmNames=[f"{env}-aurora-replication-lag-{s}"])["MetricAlarms"] == []
    assert multi.destroy(include_protected=True).changes == []


def test_hub_can_read_other_accounts_secrets(multi):
    s, sessions = multi.suffix, multi.sessions
    multi.apply()
    role = f"arn:aws:iam::{HUB_ACCOUNT}:role/db-sync-lambda-role-{s}"
    for env, acct in (("dev", DEV_ACCOUNT), ("prod", PROD_ACCOUNT)):
        sm = sessions.client("secretsmanager", env)
        pol = json.loads(sm.get_resource_policy(SecretId=f"{env}-aurora-secret-{s}")["ResourcePolicy"])
        (st,) = pol["Statement"]
        assert st["Effect"] == "Allow" and st["Principal"] == {"AWS": f"arn:aws:iam::{HUB_ACCOUNT}:root"}
        assert st["Action"] in ("secretsmanager:GetSecretValue", ["secretsmanager:GetSecretValue"])
        assert st["Condition"]["ArnEquals"]["aws:PrincipalArn"] == role
        kms = sessions.client("kms", env)
        key = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == f"alias/{env}-key-{s}"][0]
        kp = json.loads(kms.get_key_policy(KeyId=key["TargetKeyId"], PolicyName="default")["Policy"])
        hub = [x for x in kp["Statement"] if x["Principal"].get("AWS") == f"arn:aws:iam::{HUB_ACCOUNT}:root"]
        assert len(hub) == 1 and "kms:Decrypt" in hub[0]["Action"]
        own = [x for x in kp["Statement"] if x["Principal"].get("AWS") == f"arn:aws:iam::{acct}:root"]
        assert own and own[0]["Action"] == "kms:*"
    # The hub's own secret needs no resource policy: same account.
    hub_pol = sessions.client("secretsmanager", "staging").get_resource_policy(SecretId=f"staging-aurora-secret-{s}")
    assert not hub_pol.get("ResourcePolicy")
    # The inline policy of the functions' role names all three secrets and keys.
    doc = sessions.client("iam", "staging").get_role_policy(RoleName=f"db-sync-lambda-role-{s}",
                                                            PolicyName="DatabaseSyncPolicy")["PolicyDocument"]
    secrets = {x["Sid"]: x for x in doc["Statement"]}["ReadDatabaseSecrets"]["Resource"]
    assert sorted(a.split(":")[4] for a in secrets) == sorted([DEV_ACCOUNT, HUB_ACCOUNT, PROD_ACCOUNT])
    multi.destroy(include_protected=True)


def test_pending_acceptance_shows_in_plan(multi):
    s, sessions = multi.suffix, multi.sessions
    multi.apply()
    # Re-create the dev-staging peering as pending, as a half-finished run would leave it.
    ec2 = sessions.client("ec2", "dev")
    pcx = [p for p in ec2.describe_vpc_peering_connections()["VpcPeeringConnections"]
           if {t["Key"]: t["Value"] for t in p.get("Tags", [])}.get("Name") == f"dev-to-staging-peering-{s}"][0]
    ec2.delete_vpc_peering_connection(VpcPeeringConnectionId=pcx["VpcPeeringConnectionId"])
    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in pcx["Tags"]]
    ec2.create_vpc_peering_connection(
        VpcId=pcx["RequesterVpcInfo"]["VpcId"], PeerVpcId=pcx["AccepterVpcInfo"]["VpcId"], PeerOwnerId=HUB_ACCOUNT,
        TagSpecifications=[{"ResourceType": "vpc-peering-connection", "Tags": tags}])
    plan = multi.plan()
    peering = [c for c in plan.changes if c.type == "AWS::EC2::VPCPeeringConnection"]
    assert len(peering) == 1 and peering[0].diff["Status"] == ("pending-acceptance", "active")
    multi.apply()
    assert multi.plan().changes == []
    multi.destroy(include_protected=True)


def test_role_that_cannot_be_assumed_is_bad_input_before_any_change(multi):
    multi.faults.fail("AssumeRole", "AccessDenied", "User is not authorized to perform: sts:AssumeRole", times=5)
    multi.log.clear()
    with pytest.raises(BadInput, match="environments.dev.account.role_arn .*cannot be assumed"):
        multi.sessions.check_roles(list(multi.spec.environments))
    assert multi.faults.injected["AssumeRole"] == 1  # the refused attempt...
    assert multi.log.calls == []  # ...and no other call went out


def test_cli_exits_2_when_a_role_cannot_be_assumed(aws, tmp_path, monkeypatch):
    import yaml

    from dbrepl import cli

    with open("config/environments.yaml") as f:
        spec = yaml.safe_load(f)
    spec["databases"]["tls"]["verify"] = False  # no CA bundle, said
    spec["environments"]["dev"]["account"] = {"role_arn": f"arn:aws:iam::{DEV_ACCOUNT}:role/nope"}
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(spec))
    faults, log = Faults(), CallLog()
    faults.fail("AssumeRole", "AccessDenied", "not authorized", times=10)
    real = SessionFactory.from_spec.__func__

    def with_faults(cls, spec, **kw):
        return real(cls, spec, hooks=[faults.hook, log.hook], **kw)

    monkeypatch.setattr(SessionFactory, "from_spec", classmethod(with_faults))
    r = CliRunner().invoke(cli.app, ["plan", "--suffix", "ca1", "--config", str(path)])
    assert r.exit_code == 2, r.output
    assert "cannot be assumed" in r.output and len(r.output.strip().splitlines()) == 1
    assert faults.injected["AssumeRole"] >= 1 and log.calls == []


def test_another_account_in_another_region_is_refused_before_any_change(aws):
    """Its secret's replica would land in its own account, where the hub's functions could not
    decrypt it with any key dbrepl makes: bad input (exit 2), named, nothing made."""
    log = CallLog()
    spec = spec3(prod_region="us-west-2")
    sessions = SessionFactory.from_spec(spec, "us-east-1", hooks=[log.hook])
    e = Estate(spec, f"x{next(_n)}", sessions, log)
    sessions.check_roles(list(spec.environments))
    log.clear()
    for run in (e.plan, e.apply):
        with pytest.raises(BadInput, match=r"environments\.prod: in another account \(222222222222\) and another "
                                           r"region \(us-west-2\) than the sync hub staging \(us-east-1\)"):
            run()
    assert log.mutating == [], log.mutating
    assert _vpc(sessions, "prod", e.suffix) == []


def test_cli_exits_2_for_another_account_in_another_region(aws, tmp_path, monkeypatch):
    import yaml

    from dbrepl import cli

    with open("config/environments.yaml") as f:
        spec = yaml.safe_load(f)
    spec["databases"]["tls"]["verify"] = False  # no CA bundle, said
    spec["environments"]["prod"]["account"] = {"role_arn": f"arn:aws:iam::{PROD_ACCOUNT}:role/dbrepl-deploy"}
    spec["environments"]["prod"]["region"] = "us-west-2"
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(spec))
    log = CallLog()
    real = SessionFactory.from_spec.__func__

    def logged(cls, spec, **kw):
        return real(cls, spec, hooks=[log.hook], **kw)

    monkeypatch.setattr(SessionFactory, "from_spec", classmethod(logged))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for command in (["plan"], ["apply", "--yes"]):
        log.clear()
        r = CliRunner().invoke(cli.app, [*command, "--suffix", "xr9", "--config", str(path)])
        assert r.exit_code == 2, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
        assert "environments.prod: in another account (222222222222) and another region (us-west-2)" in r.output
        assert [c for c in log.mutating if c != "AssumeRole"] == [], log.mutating
