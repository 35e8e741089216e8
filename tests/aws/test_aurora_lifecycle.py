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
