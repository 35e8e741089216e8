"""prod in another region than the sync hub (issue 11, point 3): its secret is replicated into
the hub's region with the hub's key, and the functions read the replica there.

moto keeps replicas (ReplicaRegions at CreateSecret, ReplicateSecretToRegions,
RemoveRegionsFromReplication, DescribeSecret's ReplicationStatus, GetSecretValue on the
replica's ARN in its region) and, as AWS does, refuses to delete a secret that still has
replicas. It reports every replica's key as `alias/aws/secretsmanager`, whatever was asked:
`replica_keys` below applies the sandbox's rule (dbrepl.sandbox.aws_rules) that makes it keep
the key given, as AWS does, so the key is checked.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest

from dbrepl.aws.session import SessionFactory
from dbrepl.sandbox.aws_rules import replica_key_patch
from dbrepl.sync import aws as sync_aws
from tests.aws.harness import CallLog, Estate, Faults, LingeringReplica, fast_spec, forget_automated_snapshots

HUB_REGION, PROD_REGION = "us-east-1", "eu-north-1"  # eu-north-1: no other in-process test uses it
_n = itertools.count(1)


@contextmanager
def replica_keys() -> Iterator[None]:
    """moto's replicas report the key they were asked to use, as AWS's do (the sandbox's rule)."""
    owner, name, fn = replica_key_patch()
    with mock.patch.object(owner, name, fn):
        yield


def xregion_spec():
    spec = fast_spec()
    envs = dict(spec.environments)
    envs["prod"] = envs["prod"].model_copy(update={"region": PROD_REGION})
    return spec.model_copy(update={"environments": envs})


@pytest.fixture
def xr(aws):
    log = CallLog()
    spec = xregion_spec()
    sessions = SessionFactory.from_spec(spec, HUB_REGION, hooks=[Faults().hook, log.hook])
    with replica_keys():
        yield Estate(spec, f"xr{next(_n)}", sessions, log)


def _secret(sessions, env, suffix, region_env=None):
    sm = sessions.client("secretsmanager", region_env or env)
    return sm.describe_secret(SecretId=f"{env}-aurora-secret-{suffix}")


def _hub_key_arn(sessions, suffix):
    kms = sessions.client("kms", "staging")
    alias = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == f"alias/staging-key-{suffix}"][0]
    return kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()  # compare credentials without showing them


def test_functions_read_prod_credentials_in_the_hub_region(xr):
    s, sessions = xr.suffix, xr.sessions
    xr.apply()
    primary = _secret(sessions, "prod", s)
    assert f":{PROD_REGION}:" in primary["ARN"]
    # Replicated into the hub's region, encrypted with the hub environment's key (a key of that region).
    (rep,) = primary["ReplicationStatus"]
    hub_key = _hub_key_arn(sessions, s)
    assert rep["Region"] == HUB_REGION and rep["Status"] == "InSync"
    assert rep["KmsKeyId"] == hub_key and f":kms:{HUB_REGION}:" in hub_key
    replica_arn = primary["ARN"].replace(f":{PROD_REGION}:", f":{HUB_REGION}:")

    # The functions' environment names the replica, in the hub's region.
    fn = sessions.client("lambda", "staging").get_function_configuration(FunctionName=f"db-sync-data-replication-{s}")
    environ = fn["Environment"]["Variables"]
    assert environ["PROD_SECRET_ARN"] == replica_arn
    # Environments in the hub's region keep their own secret.
    assert environ["DEV_SECRET_ARN"] == _secret(sessions, "dev", s)["ARN"]

    # The handlers' own code, with a client of the hub's region (what the function has), reads it.
    hub_sm = sessions.client("secretsmanager", "staging")
    assert hub_sm.meta.region_name == HUB_REGION
    ep = sync_aws.endpoint_for_env("prod", environ, hub_sm)
    truth = json.loads(sessions.client("secretsmanager", "prod").get_secret_value(
        SecretId=primary["ARN"])["SecretString"])
    assert ep.user == truth["username"] == xr.spec.aurora.master_username
    assert _digest(ep.password) == _digest(truth["password"])
    # The primary's ARN could not be read from the hub's region: why the variable names the replica.
    with pytest.raises(sync_aws.AwsError, match="Failed to read the prod database secret"):
        sync_aws.endpoint_for_env("prod", {**environ, "PROD_SECRET_ARN": primary["ARN"]}, hub_sm)

    # The functions' role may read the replica and decrypt with the hub's key.
    doc = sessions.client("iam", "staging").get_role_policy(RoleName=f"db-sync-lambda-role-{s}",
                                                            PolicyName="DatabaseSyncPolicy")["PolicyDocument"]
    by_sid = {x["Sid"]: x for x in doc["Statement"]}
    assert replica_arn in by_sid["ReadDatabaseSecrets"]["Resource"]
    assert primary["ARN"] not in by_sid["ReadDatabaseSecrets"]["Resource"]
    assert hub_key in by_sid["DecryptThroughSecretsAndScripts"]["Resource"]

    # A no-op plan reads one more secret description (prod's) than the single-region estate.
    xr.log.clear()
    assert xr.plan().changes == []
    assert xr.log.counter()["DescribeSecret"] == 1, xr.log.counter()
    xr.destroy(include_protected=True)


def test_replica_removed_is_planned_and_repaired(xr):
    s, sessions = xr.suffix, xr.sessions
    xr.apply()
    sm = sessions.client("secretsmanager", "prod")
    arn = _secret(sessions, "prod", s)["ARN"]
    sm.remove_regions_from_replication(SecretId=arn, RemoveReplicaRegions=[HUB_REGION])
    changes = xr.plan().changes
    assert [(c.action, c.type, c.env) for c in changes] == [("update", "AWS::SecretsManager::Secret", "prod")]
    before, after = changes[0].diff["Replica"]
    assert before is None and after["Region"] == HUB_REGION
    xr.log.clear()
    xr.apply()
    assert xr.log.mutating == ["ReplicateSecretToRegions"], xr.log.mutating
    (rep,) = _secret(sessions, "prod", s)["ReplicationStatus"]
    assert (rep["Region"], rep["KmsKeyId"]) == (HUB_REGION, _hub_key_arn(sessions, s))
    assert xr.plan().changes == []
    xr.destroy(include_protected=True)


def test_replica_with_another_key_or_failed_is_replaced(xr):
    s, sessions = xr.suffix, xr.sessions
    xr.apply()
    sm = sessions.client("secretsmanager", "prod")
    arn = _secret(sessions, "prod", s)["ARN"]
    sm.remove_regions_from_replication(SecretId=arn, RemoveReplicaRegions=[HUB_REGION])
    sm.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": HUB_REGION}])  # AWS's own key
    (c,) = xr.plan().changes
    assert c.diff["Replica"][0]["KmsKeyId"] == "alias/aws/secretsmanager"
    xr.log.clear()
    xr.apply()
    assert xr.log.mutating == ["RemoveRegionsFromReplication", "ReplicateSecretToRegions"], xr.log.mutating
    assert xr.plan().changes == []

    # A failed replica (a secret of that name already in the hub's region) shows AWS's reason.
    failed = {"Region": HUB_REGION, "KmsKeyId": _hub_key_arn(sessions, s), "Status": "Failed",
              "StatusMessage": "Replication failed: Secret name already exists"}
    from dbrepl.steps import secrets

    with mock.patch.object(secrets, "_replica", lambda described, region: secrets.replica_props(failed)):
        (c,) = xr.plan().changes
    assert c.diff["Replica"][0]["Status"] == "Failed: Replication failed: Secret name already exists"
    xr.destroy(include_protected=True)


def test_destroy_removes_the_replica_then_the_secret(xr):
    s, sessions = xr.suffix, xr.sessions
    xr.apply()
    xr.log.clear()
    xr.destroy(include_protected=True)
    # moto, as AWS, refuses DeleteSecret while a replica remains: the destroy passing shows the order.
    assert xr.log.counter()["RemoveRegionsFromReplication"] == 1  # prod's only: the others have no replica
    assert xr.log.counter()["DeleteSecret"] == 3
    for region_env in ("prod", "staging"):
        left = sessions.client("secretsmanager", region_env).list_secrets(
            Filters=[{"Key": "name", "Values": [f"prod-aurora-secret-{s}"]}], IncludePlannedDeletion=True)
        assert left["SecretList"] == [], region_env
    assert xr.destroy(include_protected=True).changes == []


def test_destroy_waits_for_a_lingering_replica(aws):
    """AWS removes a replica after RemoveRegionsFromReplication answers; DeleteSecret before it is
    gone is refused. Destroy polls DescribeSecret until the replica is gone, then deletes."""
    log, linger = CallLog(), LingeringReplica(HUB_REGION, polls=3)
    spec = xregion_spec()
    sessions = SessionFactory.from_spec(spec, HUB_REGION, hooks=[linger.hook, log.hook])
    with replica_keys():
        e = Estate(spec, f"xr{next(_n)}", sessions, log)
        e.apply()
        log.clear()
        e.destroy(include_protected=True)
    assert linger.deletes_refused == 0  # never asked to delete while the replica lingered
    calls = log.calls
    first_remove = calls.index("RemoveRegionsFromReplication")
    prod_delete = [i for i, c in enumerate(calls) if c == "DeleteSecret" and i > first_remove][0]
    assert calls[first_remove:prod_delete].count("DescribeSecret") == 4  # 3 still listing it, then gone
    left = sessions.client("secretsmanager", "prod").list_secrets(
        Filters=[{"Key": "name", "Values": [f"prod-aurora-secret-{e.suffix}"]}], IncludePlannedDeletion=True)
    assert left["SecretList"] == []


def test_destroy_stops_when_a_replica_never_goes(aws):
    """Bounded: a replica that outlives timing.consistency_timeout_seconds ends destroy with a
    timeout naming it; the secret is left, never deleted half-way."""
    from dbrepl.errors import DbreplError

    log, linger = CallLog(), LingeringReplica(HUB_REGION, polls=10**6)
    spec = xregion_spec()
    spec = spec.model_copy(update={"timing": spec.timing.model_copy(update={"consistency_timeout_seconds": 0.2})})
    sessions = SessionFactory.from_spec(spec, HUB_REGION, hooks=[linger.hook, log.hook])
    with replica_keys():
        e = Estate(spec, f"xr{next(_n)}", sessions, log)
        e.apply()
        with pytest.raises(DbreplError, match=r"replica of secret prod-aurora-secret-.* to be removed"):
            e.destroy(include_protected=True)
        assert linger.deletes_refused == 0
        assert _secret(sessions, "prod", e.suffix)["Name"] == f"prod-aurora-secret-{e.suffix}"
        linger.polls = linger.left = 0
        e.destroy(include_protected=True)


def test_destroy_removes_replicas_it_does_not_manage(xr):
    """A replica made by hand (or left in an earlier hub's region) would block DeleteSecret."""
    s, sessions = xr.suffix, xr.sessions
    xr.apply()
    sm = sessions.client("secretsmanager", "dev")
    sm.replicate_secret_to_regions(SecretId=f"dev-aurora-secret-{s}", AddReplicaRegions=[{"Region": PROD_REGION}])
    assert xr.plan().changes == []  # not dbrepl's to manage while the estate lives
    xr.log.clear()
    xr.destroy(include_protected=True)
    assert xr.log.counter()["RemoveRegionsFromReplication"] == 2  # prod's, then dev's after the refusal
    for region_env in ("staging", "prod"):
        left = sessions.client("secretsmanager", region_env).list_secrets(
            Filters=[{"Key": "name", "Values": [f"dev-aurora-secret-{s}"]}], IncludePlannedDeletion=True)
        assert left["SecretList"] == [], region_env


def test_apply_after_destroy_brings_the_replica_back(xr):
    s, sessions = xr.suffix, xr.sessions
    xr.apply()
    xr.destroy(include_protected=True)
    # The replica's name in the hub's region is free again.
    for region_env in ("prod", "staging"):
        forget_automated_snapshots(sessions.client("rds", region_env))
    xr.apply()
    assert _secret(sessions, "prod", s)["ReplicationStatus"][0]["Region"] == HUB_REGION
    xr.destroy(include_protected=True)


def test_the_data_handler_reads_prod_with_clients_of_the_hub_region_only(xr, monkeypatch):
    """`dbrepl sync data --direct` runs the handler's code with the function's variables and the
    hub's clients, as Lambda runs it in the hub's region: every client it makes (Secrets Manager
    for both ends, SSM for the record) is a hub-region client, and prod's credentials arrive."""
    from dbrepl.app.functions import Functions
    from dbrepl.sync.data import event as data_event
    from dbrepl.sync.errors import SyncError

    s, sessions = xr.suffix, xr.sessions
    xr.apply()
    functions = Functions(xr.spec, s, sessions)
    made: list[tuple[str, str]] = []
    real_client = functions.client

    def client(service):
        c = real_client(service)
        made.append((service, c.meta.region_name))
        return c

    monkeypatch.setattr(functions, "client", client)
    reached: list[tuple[str, str, str]] = []

    def connect(endpoint):
        reached.append((endpoint.host, endpoint.user, _digest(endpoint.password)))
        raise SyncError("stopped before the database (no cluster here)")

    monkeypatch.setattr(data_event, "connect", connect)
    result = functions.run_direct("data", {"source_env": "prod", "target_env": "staging"})
    assert result["status"] == "error" and result["error"] == "stopped before the database (no cluster here)"
    truth = json.loads(sessions.client("secretsmanager", "prod").get_secret_value(
        SecretId=f"prod-aurora-secret-{s}")["SecretString"])
    ((host, user, digest),) = reached
    assert host.startswith(f"prod-aurora-cluster-{s}.") and user == truth["username"]
    assert digest == _digest(truth["password"])
    assert {service for service, _ in made} >= {"secretsmanager", "ssm"}
    assert {region for _, region in made} == {HUB_REGION}, made
    record = sessions.client("ssm", "staging").get_parameter(
        Name=f"/db-replication/{s}/last-data-sync/prod-to-staging")["Parameter"]["Value"]
    assert json.loads(record)["status"] == "error"
    xr.destroy(include_protected=True)


def test_replication_status_as_compared():
    """AWS may answer a replica's key as a bare id: compared as the key's ARN in the replica's
    region; a replica still being written is in sync; a failed one carries AWS's reason."""
    from dbrepl.steps.secrets import replica_props

    arn = "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:prod-aurora-secret-s-AbCdEf"
    got = replica_props({"Region": "us-gov-east-1", "KmsKeyId": "1234abcd-12ab", "Status": "InProgress"}, arn)
    key = "arn:aws-us-gov:kms:us-gov-east-1:111122223333:key/1234abcd-12ab"
    assert got == {"Region": "us-gov-east-1", "KmsKeyId": key, "Status": "InSync"}
    failed = replica_props({"Region": "us-east-1", "KmsKeyId": "alias/aws/secretsmanager", "Status": "Failed",
                            "StatusMessage": "Replication failed: name exists"}, arn)
    assert failed["KmsKeyId"] == "alias/aws/secretsmanager"
    assert failed["Status"] == "Failed: Replication failed: name exists"
    assert replica_props(None) is None
