"""Protected environments (issue 11, point 1): prod's cluster has deletion protection; destroy
refuses to touch prod without include_protected, and with it turns protection off, keeps a
final snapshot and deletes; a second destroy leaves the snapshot; --env dev needs nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from rich.console import Console

from dbrepl.aws.session import SessionFactory
from dbrepl.errors import ProtectedRefused
from dbrepl.render import render_plan
from dbrepl.steps.aurora import final_snapshot_name
from tests.aws.harness import CallLog, Estate, fast_spec, forget_automated_snapshots

CLUSTER = "AWS::RDS::DBCluster"


def _cluster(estate, env):
    return estate.client("rds").describe_db_clusters(
        DBClusterIdentifier=f"{env}-aurora-cluster-{estate.suffix}")["DBClusters"][0]


def _clusters(estate):
    s = estate.suffix
    return [c["DBClusterIdentifier"] for c in estate.client("rds").describe_db_clusters()["DBClusters"]
            if c["DBClusterIdentifier"].endswith(f"-{s}")]


def _manual_snapshots(estate):
    snaps = estate.client("rds").describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    return {s["DBClusterSnapshotIdentifier"]: s for s in snaps
            if s["DBClusterIdentifier"].endswith(f"-{estate.suffix}")}


def test_protected_estate(estate):
    s = estate.suffix
    estate.apply()
    # apply: deletion protection on prod's cluster only (protected implies protection on).
    assert _cluster(estate, "prod")["DeletionProtection"] is True
    assert _cluster(estate, "dev")["DeletionProtection"] is False
    assert _cluster(estate, "staging")["DeletionProtection"] is False

    # The destroy plan marks prod's changes and names the final snapshot.
    plan = estate.engine().destroy_plan()
    prod = [c for c in plan.changes if c.env == "prod"]
    assert prod and all(c.protected for c in prod)
    assert not any(c.protected for c in plan.changes if c.env != "prod")
    cl = next(c for c in prod if c.type == CLUSTER)
    assert re.fullmatch(rf"prod-aurora-cluster-{s}-final-\d{{8}}-\d{{6}}", cl.final_snapshot)
    j = cl.to_json()
    assert j["protected"] is True and j["final_snapshot"] == cl.final_snapshot
    assert "protected" not in next(c for c in plan.changes if c.env == "dev").to_json()

    # Without the flag: refused before any write, prod named, the way on said.
    estate.log.clear()
    with pytest.raises(ProtectedRefused) as refused:
        estate.destroy()
    assert refused.value.exit_code == 2
    msg = str(refused.value)
    assert "prod" in msg and "--include-protected" in msg and "nothing was changed" in msg
    assert "dev" not in msg.replace("delete", "")
    assert estate.log.mutating == []
    assert len(_clusters(estate)) == 3

    # --env dev touches no protected environment: no flag needed; prod stays.
    done = estate.destroy(envs=["dev"])
    assert done.changes and {c.env for c in done.changes} == {"dev"}
    assert sorted(_clusters(estate)) == [f"prod-aurora-cluster-{s}", f"staging-aurora-cluster-{s}"]
    assert _manual_snapshots(estate) == {}  # an unprotected cluster leaves no final snapshot (as the seed)

    # With the flag: protection off, final snapshot kept, nothing left.
    estate.log.clear()
    done = estate.destroy(include_protected=True)
    assert _clusters(estate) == []
    kept = [c.final_snapshot for c in done.changes if c.final_snapshot]
    assert len(kept) == 1 and kept[0].startswith(f"prod-aurora-cluster-{s}-final-")
    snaps = _manual_snapshots(estate)
    assert list(snaps) == kept and snaps[kept[0]]["SnapshotType"] == "manual"
    assert estate.log.calls.count("ModifyDBCluster") == 1  # prod's only; the order: the test below

    # A second destroy finds nothing and leaves the snapshot alone.
    estate.log.clear()
    assert estate.destroy(include_protected=True).changes == []
    assert estate.log.mutating == []
    assert list(_manual_snapshots(estate)) == kept


def test_deletion_protection_drift_is_found_and_repaired(estate):
    estate.apply()
    rds = estate.client("rds")
    name = f"prod-aurora-cluster-{estate.suffix}"
    rds.modify_db_cluster(DBClusterIdentifier=name, DeletionProtection=False, ApplyImmediately=True)
    changes = [c for c in estate.plan().changes if c.name == name]
    assert [(c.action, c.diff) for c in changes] == [("update", {"DeletionProtection": (False, True)})]
    estate.apply()
    assert _cluster(estate, "prod")["DeletionProtection"] is True
    assert estate.plan().changes == []

    # A plan that would replace a protected resource says so (apply refuses replacements anyway).
    spec = estate.spec.model_copy(update={"aurora": estate.spec.aurora.model_copy(update={"master_username": "root"})})
    plan = estate.plan(spec=spec)
    replaced = {c.env: c for c in plan.changes if c.type == CLUSTER}
    assert {e: c.action for e, c in replaced.items()} == {"dev": "replace", "staging": "replace", "prod": "replace"}
    assert replaced["prod"].protected and replaced["prod"].to_json()["protected"] is True
    assert not replaced["dev"].protected and not replaced["staging"].protected
    console = Console(record=True, width=200)
    render_plan(console, plan)
    text = console.export_text()
    assert f"prod-aurora-cluster-{estate.suffix} (protected)" in text
    assert f"dev-aurora-cluster-{estate.suffix} (protected)" not in text
    assert "protected: this plan would delete or replace resources of prod" in text

    estate.destroy(include_protected=True)
    forget_automated_snapshots(rds)


def test_protection_is_turned_off_before_the_delete(aws, faults):
    """AWS refuses DeleteDBCluster on a protected cluster, and so does moto: dbrepl turns
    protection off first (ModifyDBCluster, ApplyImmediately), retrying while the cluster is busy."""
    rds_calls: list[tuple[str, str, dict]] = []

    def record(client):
        client.meta.events.register("provide-client-params.rds.*", lambda model, params, **kw: rds_calls.append(
            (model.name, params.get("DBClusterIdentifier", ""), dict(params))))

    log = CallLog()
    estate = Estate(fast_spec(), "prot1", SessionFactory("us-east-1", hooks=[faults.hook, log.hook, record]), log)
    estate.apply()
    name = f"prod-aurora-cluster-{estate.suffix}"
    rds = estate.client("rds")
    with pytest.raises(Exception, match="Cannot delete protected Cluster"):
        rds.delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True)
    faults.fail("ModifyDBCluster", "InvalidDBClusterStateFault", "cluster is busy", times=2)
    rds_calls.clear()
    estate.destroy(include_protected=True)
    assert faults.injected["ModifyDBCluster"] == 2
    prod = [(op, p) for op, ident, p in rds_calls if ident == name and op in ("ModifyDBCluster", "DeleteDBCluster")]
    # three ModifyDBCluster (two refused as busy, retried), then the delete
    assert [op for op, _ in prod] == ["ModifyDBCluster"] * 3 + ["DeleteDBCluster"]
    assert prod[0][1]["DeletionProtection"] is False and prod[0][1]["ApplyImmediately"] is True
    assert prod[3][1]["FinalDBSnapshotIdentifier"].startswith(f"{name}-final-")
    others = [p for op, ident, p in rds_calls if op == "DeleteDBCluster" and ident != name]
    assert others and all(p.get("SkipFinalSnapshot") is True for p in others)
    assert _clusters(estate) == [] and len(_manual_snapshots(estate)) == 1
    forget_automated_snapshots(rds)


def test_a_cluster_with_protection_on_is_protected_in_any_environment(estate):
    estate.apply()
    rds = estate.client("rds")
    rds.modify_db_cluster(DBClusterIdentifier=f"dev-aurora-cluster-{estate.suffix}", DeletionProtection=True,
                          ApplyImmediately=True)
    with pytest.raises(ProtectedRefused, match="dev"):
        estate.destroy(envs=["dev"])
    estate.destroy(envs=["dev"], include_protected=True)
    assert f"dev-aurora-cluster-{estate.suffix}" not in _clusters(estate)
    assert [n.split("-final-")[0] for n in _manual_snapshots(estate)] == [f"dev-aurora-cluster-{estate.suffix}"]
    estate.destroy(include_protected=True)
    forget_automated_snapshots(rds)


@pytest.mark.parametrize("cluster", ["prod-aurora-cluster-s", "prod--x-", "9lives", "a" * 300])
def test_final_snapshot_names_are_valid(cluster):
    name = final_snapshot_name(cluster, datetime(2026, 11, 29, 15, 45, 0, tzinfo=UTC))
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]", name) and "--" not in name and len(name) <= 255
    assert name.endswith("-final-20261129-154500")
