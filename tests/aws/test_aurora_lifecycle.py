"""Aurora over its life on real AWS (issue 18, points 3-5): Serverless v2 capacity, cluster
parameter groups waiting for a reboot, engine versions that AWS moves forward by itself. moto
shows none of the refusals and states involved; each is injected with the fault harness
(tests/aws/harness.py) and each test shows what dbrepl does about it."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from dbrepl import names

SERVERLESS_REFUSAL = ("Set the Serverless v2 scaling configuration (ServerlessV2ScalingConfiguration) on the DB "
                      "cluster before you add a db.serverless DB instance.")


def _with_aurora(estate, **aurora):
    return estate.spec.model_copy(update={"aurora": estate.spec.aurora.model_validate(
        {**estate.spec.aurora.model_dump(), **aurora})})


def _cluster(estate, env):
    return estate.client("rds").describe_db_clusters(
        DBClusterIdentifier=names.cluster(env, estate.suffix))["DBClusters"][0]


# ---------------------------------------------------------------------- 3. Serverless v2

def _refuse_serverless_without_range(faults):
    """As AWS: CreateDBInstance of db.serverless in a cluster without a capacity range fails."""
    rds = boto3.client("rds", region_name="us-east-1")  # no hooks: asks the emulator itself

    def cluster_has_no_range(params: dict) -> bool:
        if params.get("DBInstanceClass") != "db.serverless":
            return False
        c = rds.describe_db_clusters(DBClusterIdentifier=params["DBClusterIdentifier"])["DBClusters"][0]
        return not c.get("ServerlessV2ScalingConfiguration")

    faults.fail("CreateDBInstance", "InvalidParameterCombination", SERVERLESS_REFUSAL, times=10_000,
                when=cluster_has_no_range)


def test_the_injected_refusal_bites_a_cluster_without_a_range(estate, faults):
    """The control: through the same hooked session, a db.serverless instance in a cluster made
    without ServerlessV2ScalingConfiguration is refused as on AWS."""
    _refuse_serverless_without_range(faults)
    rds = estate.sessions.client("rds")
    cl = f"bare-cluster-{estate.suffix}"
    rds.create_db_cluster(DBClusterIdentifier=cl, Engine="aurora-mysql", EngineVersion="8.0.mysql_aurora.3.10.0",
                          MasterUsername="admin", MasterUserPassword="x" * 20)
    with pytest.raises(ClientError, match="InvalidParameterCombination.*ServerlessV2ScalingConfiguration"):
        rds.create_db_instance(DBInstanceIdentifier=f"bare-1-{estate.suffix}", DBClusterIdentifier=cl,
                               Engine="aurora-mysql", DBInstanceClass="db.serverless")
    assert faults.injected["CreateDBInstance"] == 1


def test_serverless_v2_range_comes_with_the_cluster_so_db_serverless_is_never_refused(estate, faults):
    _refuse_serverless_without_range(faults)
    spec = _with_aurora(estate, instance_class="db.serverless", serverless_v2={"min_acu": 0.5, "max_acu": 8})
    plan = estate.engine(spec=spec).plan()
    cluster = next(c for c in plan.changes if c.type == "AWS::RDS::DBCluster" and c.env == "dev")
    assert cluster.diff["ServerlessV2ScalingConfiguration"] == (None, {"MinCapacity": 0.5, "MaxCapacity": 8})
    estate.engine(spec=spec).apply()
    assert estate.log.counter()["CreateDBInstance"] == 3 and faults.injected["CreateDBInstance"] == 0
    assert _cluster(estate, "dev")["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 0.5, "MaxCapacity": 8}
    inst = estate.client("rds").describe_db_instances(
        DBInstanceIdentifier=names.instance("dev", 1, estate.suffix))["DBInstances"][0]
    assert inst["DBInstanceClass"] == "db.serverless"
    assert estate.engine(spec=spec).plan().changes == []

    # Drift: someone narrows the range by hand; plan shows it, apply puts it back.
    estate.client("rds").modify_db_cluster(DBClusterIdentifier=names.cluster("dev", estate.suffix),
                                           ServerlessV2ScalingConfiguration={"MinCapacity": 1, "MaxCapacity": 4},
                                           ApplyImmediately=True)
    drift = estate.engine(spec=spec).plan().changes
    assert [(c.action, c.type, dict(c.diff)) for c in drift] == [
        ("update", "AWS::RDS::DBCluster", {"ServerlessV2ScalingConfiguration": (
            {"MinCapacity": 1, "MaxCapacity": 4}, {"MinCapacity": 0.5, "MaxCapacity": 8})})]
    estate.log.clear()
    estate.engine(spec=spec).apply()
    assert "ModifyDBCluster" in estate.log.calls
    assert _cluster(estate, "dev")["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 0.5, "MaxCapacity": 8}
    assert estate.engine(spec=spec).plan().changes == []


# ---------------------------------------------------------------------- 4. parameter group pending-reboot

class PendingReboot:
    """AWS's view of members whose cluster parameter group waits for a reboot (moto always says
    in-sync): DescribeDBClusters answers `pending-reboot` for them until RebootDBInstance is
    called for each; the reboots are recorded in order."""

    def __init__(self, faults, members: set[str]) -> None:
        self.pending = set(members)
        self.rebooted: list[str] = []
        faults.rewrite("DescribeDBClusters", self._describe, times=10_000)
        faults.rewrite("RebootDBInstance", self._reboot, times=10_000)

    def _describe(self, parsed: dict, params: dict) -> bool:
        changed = False
        for c in parsed.get("DBClusters", []):
            for m in c.get("DBClusterMembers", []):
                if m["DBInstanceIdentifier"] in self.pending:
                    m["DBClusterParameterGroupStatus"] = "pending-reboot"
                    changed = True
        return changed

    def _reboot(self, parsed: dict, params: dict) -> bool:
        self.rebooted.append(params["DBInstanceIdentifier"])
        self.pending.discard(params["DBInstanceIdentifier"])
        return True


def _writer(estate, env):
    return next(m["DBInstanceIdentifier"] for m in _cluster(estate, env)["DBClusterMembers"] if m["IsClusterWriter"])


def test_pending_reboot_is_drift_and_apply_reboots_readers_first_writer_last(estate, faults):
    from dbrepl.status import estate_status

    spec = _with_aurora(estate, instances=3)
    estate.engine(spec=spec).apply()
    S = estate.suffix
    members = {names.instance("dev", i, S) for i in (1, 2, 3)}
    writer = _writer(estate, "dev")
    pending = PendingReboot(faults, members)

    plan = estate.engine(spec=spec).plan()
    assert [(c.env, c.name, dict(c.diff)) for c in plan.changes] == [
        ("dev", names.cluster("dev", S), {"MembersPendingReboot": (sorted(members), [])})]
    assert any("wait for a reboot" in n and "readers first, writer last" in n for n in plan.notes)
    st = estate_status(estate.engine(spec=spec))
    cluster = next(r for r in st["resources"] if r["name"] == names.cluster("dev", S))
    assert cluster["state"] == "drifted" and cluster["drift"] == ["MembersPendingReboot"]

    done = estate.engine(spec=spec).apply()
    assert [c.name for c in done.changes] == [names.cluster("dev", S)] and done.notes == []
    assert len(pending.rebooted) == 3 and pending.rebooted[-1] == writer  # one each, the writer last
    assert set(pending.rebooted[:2]) == members - {writer}
    assert estate.engine(spec=spec).plan().changes == []


def test_a_protected_environment_keeps_pending_reboot_until_apply_reboot(estate, faults):
    estate.apply()
    prod = names.instance("prod", 1, estate.suffix)
    pending = PendingReboot(faults, {prod})
    plan = estate.plan()
    assert [(c.env, dict(c.diff)) for c in plan.changes] == [("prod", {"MembersPendingReboot": ([prod], [])})]
    note = next(n for n in plan.notes if prod in n)
    # The hint runs as printed: the estate's own suffix (issue 19).
    assert "prod is protected" in note and f"`dbrepl apply --suffix {estate.suffix} --reboot`" in note

    done = estate.apply()  # without --reboot: nothing rebooted, nothing counted as done, and it says so
    assert pending.rebooted == [] and done.changes == []
    reboot = f"dbrepl apply --suffix {estate.suffix} --reboot"
    assert len(done.notes) == 1 and prod in done.notes[0] and reboot in done.notes[0]
    assert [dict(c.diff) for c in estate.plan().changes] == [{"MembersPendingReboot": ([prod], [])}]

    estate.engine(reboot=True).apply()
    assert pending.rebooted == [prod]
    assert estate.plan().changes == []


def test_reboot_for_parameters_false_leaves_unprotected_members_pending_too(estate, faults):
    spec = _with_aurora(estate, reboot_for_parameters=False)
    estate.engine(spec=spec).apply()
    dev = names.instance("dev", 1, estate.suffix)
    pending = PendingReboot(faults, {dev})
    done = estate.engine(spec=spec).apply()
    assert pending.rebooted == [] and "aurora.reboot_for_parameters is false" in done.notes[0]
    estate.engine(spec=spec, reboot=True).apply()
    assert pending.rebooted == [dev] and estate.engine(spec=spec).plan().changes == []


def test_attaching_the_parameter_group_reboots_in_the_same_apply(estate, faults):
    """The way members become pending-reboot on AWS: a cluster moved to the group (an estate made
    by an older dbrepl, or changed by hand) takes it only when its members restart."""
    estate.apply()
    S = estate.suffix
    rds = estate.client("rds")
    rds.modify_db_cluster(DBClusterIdentifier=names.cluster("dev", S),
                          DBClusterParameterGroupName="default.aurora-mysql8.0", ApplyImmediately=True)
    dev = names.instance("dev", 1, S)
    pending = PendingReboot(faults, set())
    real = pending._describe

    def after_modify(parsed: dict, params: dict) -> bool:  # AWS: pending from the association on
        if any(c.get("DBClusterParameterGroup") == names.cluster_parameter_group("dev", S)
               for c in parsed.get("DBClusters", [])) and dev not in pending.rebooted:
            pending.pending.add(dev)
        return real(parsed, params)

    faults.rewrites["DescribeDBClusters"][0] = after_modify
    plan = estate.plan()
    assert [dict(c.diff) for c in plan.changes] == [{"DBClusterParameterGroupName": (
        "default.aurora-mysql8.0", names.cluster_parameter_group("dev", S))}]
    estate.apply()
    assert pending.rebooted == [dev]
    assert estate.plan().changes == []


# ---------------------------------------------------------------------- 5. engine versions move only forward

def test_version_order_is_numeric():
    from dbrepl.spec import aurora_version_key as key

    assert key("8.0.mysql_aurora.3.10.0") > key("8.0.mysql_aurora.3.08.1") > key("8.0.mysql_aurora.3.08.0")
    assert key("8.0.mysql_aurora.3.04.10") > key("8.0.mysql_aurora.3.04.9")  # as text it would not be
    assert key("8.0.mysql_aurora.3.02.0") > key("5.7.mysql_aurora.2.12.4")
    assert key("8.0.latest") is None


def _aws_upgraded(faults, cluster: str, version: str) -> None:
    """AWS moved the cluster to `version` by itself: every describe of it says so."""
    def rewrite(parsed: dict, params: dict) -> bool:
        hit = [c for c in parsed.get("DBClusters", []) if c["DBClusterIdentifier"] == cluster]
        for c in hit:
            c["EngineVersion"] = version
        return bool(hit)

    faults.rewrite("DescribeDBClusters", rewrite, times=10_000)


def test_a_cluster_aws_upgraded_is_not_drift_and_is_never_downgraded(estate, faults):
    estate.apply()
    cl = names.cluster("staging", estate.suffix)
    _aws_upgraded(faults, cl, "8.0.mysql_aurora.3.10.1")
    plan = estate.plan()
    assert plan.changes == []
    assert plan.notes == [f"{cl} runs 8.0.mysql_aurora.3.10.1, newer than the spec's 8.0.mysql_aurora.3.10.0 (AWS "
                          "upgraded it); dbrepl never downgrades a cluster: set aurora.engine_version to "
                          "8.0.mysql_aurora.3.10.1 in the spec"]
    estate.log.clear()
    assert estate.apply().changes == []
    assert "ModifyDBCluster" not in estate.log.calls


def test_an_older_cluster_is_upgraded_as_a_minor_version(estate, faults):
    old = _with_aurora(estate, engine_version="8.0.mysql_aurora.3.08.1")
    estate.engine(spec=old).apply()
    sent: list[dict] = []
    faults.rewrite("ModifyDBCluster", lambda parsed, params: bool(sent.append(params)), times=10_000)
    plan = estate.plan()
    assert [(c.env, dict(c.diff)) for c in plan.changes if c.type == "AWS::RDS::DBCluster"] == [
        (env, {"EngineVersion": ("8.0.mysql_aurora.3.08.1", "8.0.mysql_aurora.3.10.0")})
        for env in ("dev", "staging", "prod")]
    estate.apply()
    assert sorted(p["DBClusterIdentifier"] for p in sent) == sorted(names.cluster(e, estate.suffix)
                                                                    for e in ("dev", "staging", "prod"))
    assert all(p["EngineVersion"] == "8.0.mysql_aurora.3.10.0" and "AllowMajorVersionUpgrade" not in p for p in sent)
    assert _cluster(estate, "dev")["EngineVersion"] == "8.0.mysql_aurora.3.10.0"
    assert estate.plan().changes == []
