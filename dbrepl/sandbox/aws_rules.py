"""Where the sandbox's AWS refuses what AWS refuses and moto accepts (issue 11, point 7).

Patches to moto's backends, applied in the moto server the sandbox runs (`serve_aws`) and,
undone afterwards, by in-process tests (`with refusing_as_aws(): ...`):

- deleting a cluster deletes its automated snapshots (AWS's default, DeleteAutomatedBackups;
  moto keeps `rds:<cluster>-<time>`, so destroy then apply within a minute collided);
- DescribeDBEngineVersions and DescribeOrderableDBInstanceOptions answer for aurora-mysql from
  the table in `aurora_catalog` (moto has no data for it), and CreateDBCluster with a version,
  CreateDBInstance/ModifyDBInstance with a class Aurora MySQL does not offer fail as on AWS
  (InvalidParameterCombination);
- CreateVpc fails with VpcLimitExceeded past the region's VPC quota (Service Quotas
  L-F678F1CE, 5 by default), the default VPC counted, as AWS counts it;
- a secret's replica reports the KMS key it was asked to use (moto always says
  `alias/aws/secretsmanager`, so a cross-region spec would show a change after every apply);
- a bucket policy's `aws:SecureTransport` condition is evaluated as for a request over TLS
  (moto ignores a statement's conditions when it applies a bucket policy to PutObject, so the
  estate's "deny without TLS" statement refused every upload). The sandbox serves HTTP on the
  loopback; it stands for AWS's HTTPS endpoints, which every AWS SDK uses by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, cast
from unittest import mock

from dbrepl.sandbox import aurora_catalog as catalog

VPC_QUOTA_CODE = "L-F678F1CE"


def vpc_quota() -> int:
    """The VPCs-per-region quota moto's Service Quotas answers (AWS's default: 5)."""
    from moto.servicequotas.resources.default_quotas.vpc import VPC_DEFAULT_QUOTAS

    for q in VPC_DEFAULT_QUOTAS:
        if q["QuotaCode"] == VPC_QUOTA_CODE:
            return int(cast(float, q["Value"]))  # moto types its quota table as dict[str, object]
    return 5


def _no_combination(cls: str, version: str) -> str:
    return ("RDS does not support creating a DB instance with the following combination: "
            f"DBInstanceClass={cls}, Engine={catalog.ENGINE}, EngineVersion={version}, "
            "LicenseModel=general-public-license. For supported combinations of instance class and database "
            "engine version, see the documentation.")


def _version_of(backend: Any, kwargs: dict[str, Any]) -> str | None:
    cluster = backend.clusters.get(kwargs.get("db_cluster_identifier") or "")
    return kwargs.get("engine_version") or (cluster.engine_version if cluster is not None else None)


def _engine_version_dict(version: str) -> dict[str, Any]:
    major = "Aurora MySQL 3 (compatible with MySQL 8.0)" if version.startswith("8.0.") else \
        "Aurora MySQL 2 (compatible with MySQL 5.7)"
    return {"Engine": catalog.ENGINE, "EngineVersion": version, "DBParameterGroupFamily": catalog.family_of(version),
            "DBEngineDescription": "Aurora MySQL", "DBEngineVersionDescription": major,
            "Status": "available", "SupportsLogExportsToCloudwatchLogs": True,
            "ExportableLogTypes": ["audit", "error", "general", "slowquery"],
            "SupportedEngineModes": ["provisioned"], "SupportsReadReplica": False}


def _orderable(version: str, cls: str) -> dict[str, Any]:
    return {"Engine": catalog.ENGINE, "EngineVersion": version, "DBInstanceClass": cls,
            "LicenseModel": "general-public-license", "StorageType": "aurora", "MultiAZCapable": False,
            "ReadReplicaCapable": False, "Vpc": True, "SupportsStorageEncryption": True,
            "SupportsPerformanceInsights": True, "SupportedEngineModes": ["provisioned"]}


Patch = tuple[Any, str, Callable[..., Any]]  # (class, attribute, replacement)


def _patches() -> list[Patch]:
    return [
        _automated_snapshots_patch(),
        *_catalog_check_patches(),
        *_catalog_answer_patches(),
        _vpc_quota_patch(),
        replica_key_patch(),
        secure_transport_patch(),
    ]


def _automated_snapshots_patch() -> Patch:
    """Deleting a cluster deletes its automated snapshots (AWS's default)."""
    from moto.rds.models import RDSBackend

    delete_cluster = RDSBackend.delete_db_cluster

    def delete_db_cluster(self: Any, cluster_identifier: str, *a: Any, **kw: Any) -> Any:
        cluster = delete_cluster(self, cluster_identifier, *a, **kw)
        for name, snap in list(self.cluster_snapshots.items()):
            if snap.snapshot_type == "automated" and snap.cluster.db_cluster_identifier == cluster_identifier:
                del self.cluster_snapshots[name]
        return cluster

    return RDSBackend, "delete_db_cluster", delete_db_cluster


def _check_version(engine: str | None, version: str | None) -> None:
    from moto.rds.exceptions import InvalidParameterCombination

    if engine == catalog.ENGINE and version and version not in catalog.versions():
        raise InvalidParameterCombination(f"Cannot find version {version} for {catalog.ENGINE}")


def _check_class(engine: str | None, version: str | None, cls: str | None) -> None:
    from moto.rds.exceptions import InvalidParameterCombination

    if engine != catalog.ENGINE or not cls:
        return
    version = version or catalog.default_version()
    _check_version(engine, version)
    if cls not in catalog.classes_for(version):
        raise InvalidParameterCombination(_no_combination(cls, version))


def _catalog_check_patches() -> list[Patch]:
    """Clusters and instances with a version or class Aurora MySQL does not offer fail."""
    from moto.rds.models import RDSBackend

    create_cluster = RDSBackend.create_db_cluster
    modify_cluster = RDSBackend.modify_db_cluster
    create_instance = RDSBackend.create_db_instance
    modify_instance = RDSBackend.modify_db_instance

    def create_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        _check_version(kwargs.get("engine"), kwargs.get("engine_version"))
        return create_cluster(self, kwargs)

    def modify_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        cluster = self.clusters.get(kwargs.get("db_cluster_identifier") or "")
        if cluster is not None:
            _check_version(cluster.engine, kwargs.get("engine_version"))
        return modify_cluster(self, kwargs)

    def create_db_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        _check_class(db_kwargs.get("engine"), _version_of(self, db_kwargs), db_kwargs.get("db_instance_class"))
        return create_instance(self, db_kwargs)

    def modify_db_instance(self: Any, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
        db = self.databases.get(db_instance_identifier)
        if db is not None and db_kwargs.get("db_instance_class"):
            version = _version_of(self, {"db_cluster_identifier": db.db_cluster_identifier}) or db.engine_version
            _check_class(db.engine, version, db_kwargs["db_instance_class"])
        return modify_instance(self, db_instance_identifier, db_kwargs)

    return [
        (RDSBackend, "create_db_cluster", create_db_cluster),
        (RDSBackend, "modify_db_cluster", modify_db_cluster),
        (RDSBackend, "create_db_instance", create_db_instance),
        (RDSBackend, "modify_db_instance", modify_db_instance),
    ]


def _catalog_answer_patches() -> list[Patch]:
    """DescribeDBEngineVersions and DescribeOrderableDBInstanceOptions answer for aurora-mysql."""
    from moto.core.responses import ActionResult, PaginatedResult
    from moto.rds.models import RDSBackend
    from moto.rds.responses import RDSResponse

    orderable = RDSBackend.describe_orderable_db_instance_options

    def describe_orderable_db_instance_options(self: Any, engine: str, engine_version: str) -> Any:
        if engine != catalog.ENGINE:
            return orderable(self, engine, engine_version)
        wanted = [engine_version] if engine_version else list(catalog.versions())
        return [_orderable(v, c) for v in wanted for c in catalog.classes_for(v)]

    def describe_db_engine_versions(self: Any) -> Any:
        engine = self.params.get("Engine")
        version = self.params.get("EngineVersion")
        found = [_engine_version_dict(v) for v in catalog.versions()
                 if engine in (None, catalog.ENGINE) and version in (None, v)]
        return ActionResult({"DBEngineVersions": found})

    def orderable_response(self: Any) -> Any:
        options = self.backend.describe_orderable_db_instance_options(self.params.get("Engine"),
                                                                      self.params.get("EngineVersion"))
        cls = self.params.get("DBInstanceClass")
        if cls:
            options = [o for o in options if o.get("DBInstanceClass") == cls]
        return PaginatedResult({"OrderableDBInstanceOptions": options})

    return [
        (RDSBackend, "describe_orderable_db_instance_options", describe_orderable_db_instance_options),
        (RDSResponse, "describe_db_engine_versions", describe_db_engine_versions),
        (RDSResponse, "describe_orderable_db_instance_options", orderable_response),
    ]


def _vpc_quota_patch() -> Patch:
    """CreateVpc fails past the region's VPC quota, the default VPC counted."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.vpcs import VPCBackend

    create_vpc = VPCBackend.create_vpc

    def vpc_limited(self: Any, *a: Any, **kw: Any) -> Any:
        if len(self.vpcs) >= vpc_quota():
            raise EC2ClientError("VpcLimitExceeded", "The maximum number of VPCs has been reached.")
        return create_vpc(self, *a, **kw)

    return VPCBackend, "create_vpc", vpc_limited


def secure_transport_patch() -> Patch:
    """Bucket policy statements conditioned on `aws:SecureTransport` apply only when the condition
    holds for a TLS request (moto evaluates the statement as if it had no condition)."""
    from moto.s3.models import FakeBucket

    get_permission = FakeBucket.get_permission

    def over_tls(self: Any, action: str, resource: str) -> Any:
        import json

        if self.policy is None:
            return get_permission(self, action, resource)
        doc = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        kept = [st for st in doc.get("Statement", []) if _holds_over_tls(st.get("Condition"))]
        if len(kept) == len(doc.get("Statement", [])):
            return get_permission(self, action, resource)
        saved = self.policy
        try:
            self.policy = json.dumps({**doc, "Statement": kept}).encode()
            return get_permission(self, action, resource)
        finally:
            self.policy = saved

    return FakeBucket, "get_permission", over_tls


def _holds_over_tls(condition: Any) -> bool:
    """False when the statement's condition names aws:SecureTransport and a TLS request fails it."""
    if not isinstance(condition, dict):
        return True
    for op, pairs in condition.items():
        for key, value in (pairs or {}).items():
            if key.lower() == "aws:securetransport" and op.startswith("Bool"):
                values = value if isinstance(value, list) else [value]
                if "true" not in [str(v).lower() for v in values]:
                    return False
    return True


def replica_key_patch() -> Patch:
    """Replicas keep the key asked for (AWS: DescribeSecret's ReplicationStatus[].KmsKeyId)."""
    from moto.secretsmanager.models import FakeSecret

    create_replicas = FakeSecret.create_replicas

    def with_keys(self: Any, replica_regions: Any, force_overwrite: bool) -> Any:
        replicas = create_replicas(self, replica_regions, force_overwrite)
        for replica, asked in zip(replicas, replica_regions or [], strict=True):
            if asked.get("KmsKeyId"):
                replica.config["KmsKeyId"] = asked["KmsKeyId"]
        return replicas

    return FakeSecret, "create_replicas", with_keys


@contextmanager
def refusing_as_aws() -> Iterator[None]:
    """moto, for as long as this lasts, refuses what AWS refuses (see the module's docstring)."""
    with ExitStack() as stack:
        for owner, name, fn in _patches():
            stack.enter_context(mock.patch.object(owner, name, fn, create=True))
        yield


def apply_for_good() -> None:
    """In the sandbox's own moto server process: the patches for the process's lifetime."""
    for owner, name, fn in _patches():
        setattr(owner, name, fn)
