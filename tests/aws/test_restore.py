"""A final snapshot that brings prod back (issue 18, point 1): destroy --include-protected keeps
prod's final snapshot *and the KMS key that encrypts it* (with its alias), names both and the
commands that remove them later; `aurora.restore_from_snapshot` makes apply create the cluster
from the snapshot, with the spec's settings and the new secret's password applied after the
restore. AWS refuses to restore a snapshot whose key is pending deletion or deleted; moto does
not, so the harness injects it (Faults.refuse)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from dbrepl.engine import Plan
from dbrepl.engine.preflight import PreflightFailed
from dbrepl.errors import AwsFailure, SpecError
from dbrepl.render import render_plan
from dbrepl.spec import Spec
from tests.aws.harness import forget_automated_snapshots

CLUSTER = "AWS::RDS::DBCluster"


def restoring(spec: Spec, **snapshots: str) -> Spec:
    return spec.model_copy(update={"aurora": spec.aurora.model_copy(update={"restore_from_snapshot": snapshots})})


def key_state(estate, env: str) -> tuple[str, str]:
    """(key id, state) of the key `alias/<env>-key-S` names, or of the suffix's tagged key of `env`."""
    kms = estate.client("kms")
    for k in kms.list_keys()["Keys"]:
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=k["KeyId"]).get("Tags", [])}
        if tags.get("dbrepl:suffix") == estate.suffix and tags.get("dbrepl:env") == env:
            return k["KeyId"], kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"]
    raise AssertionError(f"no key of {env}")


def aliases(estate) -> set[str]:
    return {a["AliasName"] for a in estate.client("kms").list_aliases()["Aliases"]
            if a["AliasName"].endswith(f"-key-{estate.suffix}")}


def record_rds(estate) -> list[tuple[str, dict]]:
    calls: list[tuple[str, dict]] = []
    estate.sessions.hooks.append(lambda client: client.meta.events.register(
        "provide-client-params.rds.*", lambda model, params, **kw: calls.append((model.name, dict(params)))))
    return calls


def snapshot_key_must_be_enabled(faults, estate) -> None:
    """AWS: RestoreDBClusterFromSnapshot of a snapshot whose key is not Enabled (pending deletion,
    disabled, deleted) fails with KMSKeyNotAccessibleFault. moto restores it anyway."""
    def refuse(params: dict):
        rds, kms = estate.client("rds"), estate.client("kms")
        snap = rds.describe_db_cluster_snapshots(
            DBClusterSnapshotIdentifier=params["SnapshotIdentifier"])["DBClusterSnapshots"][0]
        state = kms.describe_key(KeyId=snap["KmsKeyId"])["KeyMetadata"]["KeyState"]
        if state == "Enabled":
            return None
        return ("KMSKeyNotAccessibleFault", f"The specified KMS key [{snap['KmsKeyId']}] is {state}.")

    faults.refuse("RestoreDBClusterFromSnapshot", refuse)


def test_destroy_keeps_the_key_of_the_final_snapshot_and_apply_restores_prod(estate, faults):
    s = estate.suffix
    calls = record_rds(estate)
    snapshot_key_must_be_enabled(faults, estate)
    estate.apply()
    prod_key, _ = key_state(estate, "prod")

    # The destroy plan leaves prod's key and alias out, with notes naming the key, the snapshot
    # and the exact commands that remove them later.
    plan = estate.engine().destroy_plan()
    assert not [c for c in plan.changes if c.step == "kms" and c.env == "prod"]
    assert {c.env for c in plan.changes if c.step == "kms"} == {"dev", "staging"}
    snapshot = next(c.final_snapshot for c in plan.changes if c.type == CLUSTER and c.final_snapshot)
    note = next(n for n in plan.notes if n.startswith(f"kept: KMS key {prod_key}"))
    assert snapshot in note and f"alias/prod-key-{s}" in note
    assert (f"aws rds delete-db-cluster-snapshot --region us-east-1 --db-cluster-snapshot-identifier {snapshot} && "
            f"aws kms delete-alias --region us-east-1 --alias-name alias/prod-key-{s} && "
            f"aws kms schedule-key-deletion --region us-east-1 --key-id {prod_key} --pending-window-in-days 7") in note
    assert plan.to_json()["notes"] == plan.notes

    done = estate.engine().destroy(include_protected=True)
    assert [c.final_snapshot for c in done.changes if c.final_snapshot] != []
    snapshot = next(c.final_snapshot for c in done.changes if c.final_snapshot)
    assert key_state(estate, "prod") == (prod_key, "Enabled")
    assert aliases(estate) == {f"alias/prod-key-{s}"}
    assert key_state(estate, "dev")[1] == "PendingDeletion" and key_state(estate, "staging")[1] == "PendingDeletion"
    # A second destroy deletes nothing and says again why the key stays.
    again = estate.engine().destroy_plan()
    assert again.changes == [] and any(n.startswith(f"kept: KMS key {prod_key}") for n in again.notes)
    forget_automated_snapshots(estate.client("rds"))

    # Apply restoring prod: the plan shows the create as a restore, preflight checked the snapshot.
    spec = restoring(estate.spec, prod=snapshot)
    plan = estate.plan(spec=spec)
    prod = next(c for c in plan.changes if c.type == CLUSTER and c.env == "prod")
    assert prod.action == "create" and prod.diff["RestoreFromSnapshot"] == (None, snapshot)
    assert "RestoreFromSnapshot" not in next(c for c in plan.changes if c.type == CLUSTER and c.env == "dev").diff
    assert [f.status for f in plan.findings if f.check == "restore-snapshot"] == ["ok"]
    console = Console(record=True, width=250)
    render_plan(console, plan)
    assert f"prod-aurora-cluster-{s} (restored from a snapshot)" in console.export_text()

    calls.clear()
    estate.apply(spec=spec)
    restores = [p for op, p in calls if op == "RestoreDBClusterFromSnapshot"]
    assert len(restores) == 1 and restores[0]["SnapshotIdentifier"] == snapshot
    assert restores[0]["DBClusterIdentifier"] == f"prod-aurora-cluster-{s}"
    assert restores[0]["KmsKeyId"].endswith(prod_key)
    assert "RestoreDBClusterFromSnapshot" not in faults.injected  # its key is enabled: AWS restores it
    # The new secret's password is set on the restored cluster (after the restore, never shown).
    secret = json.loads(estate.client("secretsmanager").get_secret_value(
        SecretId=f"prod-aurora-secret-{s}")["SecretString"])
    pw = [p for op, p in calls if op == "ModifyDBCluster" and "MasterUserPassword" in p]
    assert [p["DBClusterIdentifier"] for p in pw] == [f"prod-aurora-cluster-{s}"]
    assert pw[0]["MasterUserPassword"] == secret["password"]
    assert not [p for op, p in calls if op == "CreateDBCluster" and p["DBClusterIdentifier"].startswith("prod")]

    c = estate.client("rds").describe_db_clusters(DBClusterIdentifier=f"prod-aurora-cluster-{s}")["DBClusters"][0]
    a = spec.aurora
    assert c["DeletionProtection"] is True and c["StorageEncrypted"] is True and c["KmsKeyId"].endswith(prod_key)
    assert (c["BackupRetentionPeriod"], c["PreferredBackupWindow"], c["PreferredMaintenanceWindow"]) == \
        (a.backup_retention_days, a.backup_window, a.maintenance_window)
    assert c["DBClusterParameterGroup"] == f"prod-aurora-cluster-params-{s}"
    assert sorted(c["EnabledCloudwatchLogsExports"]) == a.log_exports

    # The cluster exists now: the setting does nothing, and the plan says so.
    after = estate.plan(spec=spec)
    assert after.changes == []
    assert [n for n in after.notes if n.startswith("aurora.restore_from_snapshot.prod:")]
    estate.destroy(include_protected=True)
    forget_automated_snapshots(estate.client("rds"))


def test_a_snapshot_whose_key_is_pending_deletion_cannot_be_restored(estate, faults):
    """What dbrepl did before: destroy scheduled the key's deletion, and the snapshot was lost.
    Preflight refuses the restore (exit 2, the key and the fix named); the call itself, made anyway,
    fails as on AWS and dbrepl says why."""
    s = estate.suffix
    snapshot_key_must_be_enabled(faults, estate)
    estate.apply()
    done = estate.destroy(include_protected=True)
    snapshot = next(c.final_snapshot for c in done.changes if c.final_snapshot)
    prod_key, _ = key_state(estate, "prod")
    kms = estate.client("kms")
    kms.delete_alias(AliasName=f"alias/prod-key-{s}")
    kms.schedule_key_deletion(KeyId=prod_key, PendingWindowInDays=7)
    forget_automated_snapshots(estate.client("rds"))

    spec = restoring(estate.spec, prod=snapshot)
    estate.log.clear()
    assert [f.status for f in estate.plan(spec=spec).findings if f.check == "restore-snapshot"] == ["fail"]
    with pytest.raises(PreflightFailed) as refused:
        estate.engine(spec=spec).apply()
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
    msg = str(refused.value)
    assert "aurora.restore_from_snapshot.prod" in msg and prod_key in msg and "PendingDeletion" in msg
    arn = f"arn:aws:kms:us-east-1:123456789012:key/{prod_key}"
    assert f"aws kms cancel-key-deletion --region us-east-1 --key-id {arn}" in msg
    assert estate.log.mutating == []

    # Past preflight (a plan without its findings), RDS refuses the restore: the key cannot decrypt it.
    engine = estate.engine(spec=spec)
    plan = engine.plan()
    with pytest.raises(AwsFailure, match="KMSKeyNotAccessibleFault.*cancel-key-deletion"):
        engine.apply(Plan(plan.changes))
    assert faults.injected["RestoreDBClusterFromSnapshot"] == 1
    rds = estate.client("rds")
    assert not [x for x in rds.describe_db_clusters()["DBClusters"] if x["DBClusterIdentifier"].startswith("prod-")
                and x["DBClusterIdentifier"].endswith(s)]
    estate.destroy(include_protected=True)
    forget_automated_snapshots(rds)


def test_destroy_never_schedules_deletion_of_a_key_a_snapshot_uses(estate):
    """A snapshot made after the destroy plan (by hand, or by another destroy): delete looks again
    right before ScheduleKeyDeletion and keeps the key."""
    s = estate.suffix
    estate.apply()
    engine = estate.engine(envs=["dev"])
    plan = engine.destroy_plan()
    assert [c for c in plan.changes if c.step == "kms"]  # no snapshot yet: the key is to go
    rds = estate.client("rds")
    rds.create_db_cluster_snapshot(DBClusterSnapshotIdentifier=f"dev-by-hand-{s}",
                                   DBClusterIdentifier=f"dev-aurora-cluster-{s}")
    warnings: list[dict] = []
    engine.ctx.reporter = lambda event, data: warnings.append(data) if event == "warning" else None
    engine.destroy(plan)
    dev_key, state = key_state(estate, "dev")
    assert state == "Enabled"
    assert any(dev_key in w["what"] and f"dev-by-hand-{s}" in w["message"] for w in warnings)
    # The next destroy keeps it from the start (the alias is gone, the key is found by its tags).
    again = estate.engine(envs=["dev"]).destroy_plan()
    assert not [c for c in again.changes if c.step == "kms"]
    assert any(f"dev-by-hand-{s}" in n and dev_key in n for n in again.notes)
    # Once the snapshot is gone, destroy schedules the key's deletion.
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=f"dev-by-hand-{s}")
    estate.destroy(envs=["dev"])
    assert key_state(estate, "dev")[1] == "PendingDeletion"
    estate.destroy(include_protected=True)
    forget_automated_snapshots(rds)


def test_restore_from_a_snapshot_that_does_not_exist_is_refused_before_any_change(estate):
    spec = restoring(estate.spec, prod="prod-aurora-cluster-nope-final-20260101-000000")
    estate.log.clear()
    with pytest.raises(PreflightFailed) as refused:
        estate.engine(spec=spec).apply()
    msg = str(refused.value)
    assert refused.value.exit_code == 2 and "\n" not in msg
    assert "aurora.restore_from_snapshot.prod" in msg and "no cluster snapshot prod-aurora-cluster-nope" in msg
    assert estate.log.mutating == []


@pytest.mark.parametrize(("value", "says"), [
    ({"prod": "9-not-an-id"}, "aurora.restore_from_snapshot: prod: '9-not-an-id' is not a cluster snapshot"),
    ({"qa": "snap-1"}, "aurora.restore_from_snapshot names unknown environment 'qa'"),
])
def test_a_bad_restore_setting_is_refused_when_the_spec_is_read(tmp_path, value, says):
    import yaml

    from dbrepl.spec import load_spec
    from tests.aws.harness import ROOT

    data = yaml.safe_load((ROOT / "config" / "environments.yaml").read_text())
    data.setdefault("aurora", {})["restore_from_snapshot"] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as bad:
        load_spec(path)
    assert says in str(bad.value) and bad.value.exit_code == 2 and "\n" not in str(bad.value)
