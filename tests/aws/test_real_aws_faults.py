"""What real AWS does that moto does not (issue 11, point 6), each injected and each handled.

Errors AWS raises are injected with `Faults.fail`; answers that are failures inside an HTTP 200
(DeleteVpcEndpoints' `Unsuccessful`, DeleteObjects' `Errors`) with `Faults.answer` and
`Faults.rewrite`; states moto never reports (a function Pending or Failed, a cluster whose key is
gone, a peering that failed) by rewriting the emulator's answer. Each test asserts the outcome:
the run succeeds after the transient error, or ends at once with the reason and what was left,
and the next run finishes the job without duplicates.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections import Counter

import pytest

from dbrepl import names
from dbrepl.engine import Context, Engine
from dbrepl.errors import AwsFailure
from tests.aws.harness import bundle
from tests.aws.test_crash_and_faults import FULL, KEPT, _count_estate


def _timing(estate, **t):
    return estate.spec.model_copy(update={"timing": estate.spec.timing.model_copy(update=t)})


def _calls(estate, op):
    """Calls of `op` that reached the emulator (an injected answer stops a call before the log)."""
    return estate.log.counter()[op]


# ---------------------------------------------------------------------- 1. IAM propagation

@pytest.mark.parametrize("message", [
    "The role defined for the function cannot be assumed by Lambda.",
    "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
])
def test_iam_propagation_on_create_function_is_waited_out(estate, faults, message):
    faults.fail("CreateFunction", "InvalidParameterValueException", message, times=3)
    estate.apply()
    assert faults.injected["CreateFunction"] == 3
    assert estate.plan().changes == []


def test_iam_propagation_past_its_deadline_fails_naming_the_error_and_the_next_apply_finishes(estate, faults):
    faults.fail("CreateFunction", "InvalidParameterValueException",
                "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
                times=10_000)
    spec = _timing(estate, iam_propagation_timeout_seconds=0.05, retry_delay=0.01)
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=spec).apply()
    msg = str(info.value)
    assert msg.startswith("Failed to create AWS::Lambda::Function db-sync-")
    assert "CreateNetworkInterface" in msg and "left in place" in msg
    assert info.value.exit_code == 1
    faults.rules.clear()
    estate.apply()
    assert estate.plan().changes == []


def test_other_invalid_parameter_errors_are_not_retried(estate, faults):
    faults.fail("CreateFunction", "InvalidParameterValueException", "Unzipped size must be smaller than 262144000",
                times=10_000)
    with pytest.raises(AwsFailure, match="Unzipped size"):
        estate.apply()
    assert faults.injected["CreateFunction"] == 2  # one try per function, no retry


# ---------------------------------------------------------------------- 2. EC2 NotFound after create

EC2_NOT_FOUND = {
    "ModifyVpcAttribute": ("InvalidVpcID.NotFound", 2),
    "CreateSubnet": ("InvalidVpcID.NotFound", 2),
    "CreateRouteTable": ("InvalidVpcID.NotFound", 1),
    "CreateSecurityGroup": ("InvalidVpcID.NotFound", 1),
    "AssociateRouteTable": ("InvalidRouteTableID.NotFound", 2),
    "AuthorizeSecurityGroupIngress": ("InvalidGroup.NotFound", 2),
    "CreateVpcEndpoint": ("InvalidSubnetID.NotFound", 1),
    "CreateVpcPeeringConnection": ("InvalidVpcID.NotFound", 1),
    "AcceptVpcPeeringConnection": ("InvalidVpcPeeringConnectionID.NotFound", 1),
    "CreateRoute": ("InvalidRouteTableID.NotFound", 1),
}


def test_ec2_not_found_right_after_create_is_retried_without_duplicates(estate, faults):
    for op, (code, times) in EC2_NOT_FOUND.items():
        faults.fail(op, code, f"The id does not exist ({code})", times=times)
    estate.apply()
    assert {op: faults.injected[op] for op in EC2_NOT_FOUND} == {op: t for op, (_, t) in EC2_NOT_FOUND.items()}
    assert estate.plan().changes == []
    assert _count_estate(estate) == FULL


def test_ec2_not_found_that_does_not_clear_fails_naming_the_resource(estate, faults):
    faults.fail("CreateSubnet", "InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist", times=10_000)
    spec = _timing(estate, consistency_timeout_seconds=0.05, retry_delay=0.01)
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=spec).apply()
    msg = str(info.value)
    assert msg.startswith("Failed to create AWS::EC2::Subnet ") and "InvalidVpcID.NotFound" in msg
    assert "left in place" in msg
    faults.rules.clear()
    estate.apply()
    assert _count_estate(estate) == FULL


def test_not_found_on_delete_still_means_gone(estate, faults):
    """The eventual-consistency retry is for changes only: a delete's NotFound is done."""
    estate.apply()
    rules = [c for c in estate.engine().destroy_plan().changes if c.type == "AWS::EC2::SecurityGroupIngress"]
    faults.fail("RevokeSecurityGroupIngress", "InvalidGroup.NotFound", "gone", times=10_000)
    estate.destroy(include_protected=True)
    assert faults.injected["RevokeSecurityGroupIngress"] == len(rules) > 0  # once each: no retry
    assert +_count_estate(estate) == KEPT


# ---------------------------------------------------------------------- 3. Lambda states and conflicts

def _state(value: str, reason: str = "", code: str = "", field: str = "State"):
    def rewrite(parsed: dict, params: dict) -> bool:
        parsed[field] = value
        reason_key = "StateReason" if field == "State" else "LastUpdateStatusReason"
        if reason:
            parsed[reason_key] = reason
        if code:
            parsed[f"{reason_key}Code"] = code
        return True

    return rewrite


def test_function_pending_after_create_is_waited_for(estate, faults):
    faults.rewrite("GetFunctionConfiguration", _state("Pending", "The function is being created.", "Creating"),
                   times=6)
    estate.apply()
    assert faults.injected["GetFunctionConfiguration"] == 6
    # Each function was asked until it was Active: the 6 Pending answers and one Active each.
    assert _calls(estate, "GetFunctionConfiguration") == 8
    assert estate.plan().changes == []


def test_function_failed_ends_the_wait_at_once_with_the_reason(estate, faults):
    reason = "Lambda was unable to create an ENI in the VPC: the subnet has no free IP addresses."
    faults.rewrite("GetFunctionConfiguration", _state("Failed", reason, "SubnetOutOfIPAddresses"), times=10_000)
    spec = _timing(estate, poll_delay=5.0)  # were it to poll again, this test would take minutes
    t0 = time.monotonic()
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=spec).apply()
    assert time.monotonic() - t0 < 60
    msg = str(info.value)
    assert msg.startswith("Failed to make function db-sync-") and "active: its State is Failed: " in msg
    assert reason in msg and "(SubnetOutOfIPAddresses)" in msg
    assert "the function was left as it is" in msg and "steps not finished: lambdas" in msg
    assert info.value.exit_code == 1
    faults.rewrites.clear()
    estate.apply()
    assert estate.plan().changes == []


def _other_bundle() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return 'other'\n")
    return buf.getvalue()


def test_updates_wait_for_in_progress_and_retry_resource_conflict(estate, faults):
    estate.apply()
    spec = estate.spec.model_copy(update={"lambdas": estate.spec.lambdas.model_copy(update={"timeout": 120})})
    conflict = "The operation cannot be performed at this time. An update is in progress for resource: x"
    faults.fail("UpdateFunctionConfiguration", "ResourceConflictException", conflict, times=2)
    faults.fail("UpdateFunctionCode", "ResourceConflictException", conflict, times=2)
    faults.rewrite("GetFunctionConfiguration", _state("InProgress", field="LastUpdateStatus"), times=4)
    engine = Engine(Context(spec, estate.suffix, estate.sessions, bundle=_other_bundle()))
    done = engine.apply()
    assert {c.name for c in done.changes} == {names.function("schema", estate.suffix),
                                               names.function("data", estate.suffix)}
    assert faults.injected == Counter({"UpdateFunctionConfiguration": 2, "UpdateFunctionCode": 2,
                                       "GetFunctionConfiguration": 4})
    fn = estate.client("lambda").get_function_configuration(FunctionName=names.function("data", estate.suffix))
    assert fn["Timeout"] == 120
    assert fn["State"] == "Active" and fn["LastUpdateStatus"] == "Successful"


def test_last_update_failed_ends_the_wait_with_the_reason(estate, faults):
    estate.apply()
    spec = estate.spec.model_copy(update={"lambdas": estate.spec.lambdas.model_copy(update={"memory": 1024})})
    faults.rewrite("GetFunctionConfiguration",
                   _state("Failed", "The security group sg-1 does not exist", "InvalidSecurityGroup",
                          field="LastUpdateStatus"), times=10_000)
    with pytest.raises(AwsFailure, match=r"its LastUpdateStatus is Failed: The security group sg-1 does not exist "
                                         r"\(InvalidSecurityGroup\)"):
        Engine(Context(spec, estate.suffix, estate.sessions, bundle=bundle())).apply()


# ---------------------------------------------------------------------- 4. terminal states in waits

def _status(op: str, list_key: str, id_param: str, id_value: str, status_field: str, value):
    def rewrite(parsed: dict, params: dict) -> bool:
        if params.get(id_param) not in (id_value, [id_value]):
            return False
        for item in parsed.get(list_key, []):
            item[status_field] = value
        return True

    return rewrite


@pytest.mark.parametrize("status", ["inaccessible-encryption-credentials", "incompatible-network"])
def test_cluster_in_a_terminal_state_ends_the_wait_at_once(estate, faults, status):
    cluster = names.cluster("prod", estate.suffix)
    faults.rewrite("DescribeDBClusters", _status("DescribeDBClusters", "DBClusters", "DBClusterIdentifier", cluster,
                                                 "Status", status), times=10_000)
    spec = _timing(estate, poll_delay=5.0)
    t0 = time.monotonic()
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=spec).apply()
    assert time.monotonic() - t0 < 60
    assert faults.injected["DescribeDBClusters"] == 1  # the first answer ended it
    msg = str(info.value)
    assert msg.startswith(f"Failed to wait for Aurora cluster {cluster} to be available: it is '{status}', "
                          "which it does not leave by itself (")
    assert "it was left as it is" in msg and "steps not finished: " in msg and "aurora" in msg
    assert info.value.exit_code == 1
    # Left: what was made, prod's cluster included (no instance of prod was started).
    rds = estate.client("rds")
    assert rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"]
    prod_instance = [{"Name": "db-instance-id", "Values": [names.instance("prod", 1, estate.suffix)]}]
    assert not rds.describe_db_instances(Filters=prod_instance)["DBInstances"]
    faults.rewrites.clear()
    estate.apply()
    assert _count_estate(estate) == FULL


def test_instance_in_a_terminal_state_ends_the_wait_at_once(estate, faults):
    inst = names.instance("dev", 1, estate.suffix)
    faults.rewrite("DescribeDBInstances", _status("DescribeDBInstances", "DBInstances", "DBInstanceIdentifier", inst,
                                                  "DBInstanceStatus", "insufficient-capacity"), times=10_000)
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=_timing(estate, poll_delay=5.0)).apply()
    msg = str(info.value)
    assert f"Aurora instance {inst} to be available: it is 'insufficient-capacity'" in msg
    assert "choose another class or AZ" in msg
    faults.rewrites.clear()
    estate.apply()
    assert _count_estate(estate) == FULL


@pytest.mark.parametrize("code", ["failed", "rejected", "expired"])
def test_peering_that_fails_ends_the_wait_at_once(estate, faults, code):
    def rewrite(parsed: dict, params: dict) -> bool:
        if not params.get("VpcPeeringConnectionIds"):
            return False  # discovery's filtered describe: left alone
        for p in parsed.get("VpcPeeringConnections", []):
            p["Status"] = {"Code": code, "Message": "Overlapping CIDR range"}
        return True

    faults.rewrite("DescribeVpcPeeringConnections", rewrite, times=10_000)
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=_timing(estate, poll_delay=5.0)).apply()
    msg = str(info.value)
    assert msg.startswith("Failed to make VPC peering pcx-")
    assert f"active: it is {code}: Overlapping CIDR range (the peering was left as it is" in msg
    assert "peering" in msg.split("steps not finished: ")[1].split(";")[0].split(", ")
    faults.rewrites.clear()
    estate.apply()
    assert _count_estate(estate) == FULL


# ---------------------------------------------------------------------- 5. DeleteVpcEndpoints Unsuccessful

def _unsuccessful(params: dict) -> dict:
    return {"Unsuccessful": [{"ResourceId": i, "Error": {"Code": "InvalidVpcEndpoint.NotDeletable",
                                                         "Message": "the endpoint is still in use"}}
                             for i in params.get("VpcEndpointIds", [])]}


def _endpoints(estate) -> list[str]:
    ec2 = estate.client("ec2")
    return [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints(
        Filters=[{"Name": "tag:dbrepl:suffix", "Values": [estate.suffix]}])["VpcEndpoints"]
        if e["State"].lower() not in ("deleted", "deleting")]


def test_delete_vpc_endpoints_unsuccessful_is_retried(estate, faults):
    estate.apply()
    faults.answer("DeleteVpcEndpoints", _unsuccessful, times=4)
    estate.destroy(include_protected=True)
    assert faults.injected["DeleteVpcEndpoints"] == 4
    assert _calls(estate, "DeleteVpcEndpoints") == 3  # and each endpoint went on the call that reached AWS
    assert +_count_estate(estate) == KEPT


def test_delete_vpc_endpoints_unsuccessful_past_the_deadline_fails_naming_the_endpoint(estate, faults):
    estate.apply()
    faults.answer("DeleteVpcEndpoints", _unsuccessful, times=10_000)
    spec = _timing(estate, consistency_timeout_seconds=0.05, retry_delay=0.01)
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=spec).destroy(include_protected=True)
    msg = str(info.value)
    assert msg.startswith("Failed to delete AWS::EC2::VPCEndpoint ")
    assert "InvalidVpcEndpoint.NotDeletable" in msg and "was not deleted: the endpoint is still in use" in msg
    assert len(_endpoints(estate)) == 3  # not treated as deleted
    faults.answers.clear()
    estate.destroy(include_protected=True)
    assert +_count_estate(estate) == KEPT


# ---------------------------------------------------------------------- 6. DeleteObjects per-key errors

def _failing_keys(prefix: str):
    """DeleteObjects deletes every key but those under `prefix`, which it reports in `Errors`."""

    def request(params: dict) -> bool | None:
        objs = params["Delete"]["Objects"]
        keep = [o for o in objs if not o["Key"].startswith(prefix)]
        params["Delete"] = {**params["Delete"], "Objects": keep}
        return None if keep else False

    def response(parsed: dict, params: dict) -> bool:
        failed = [o for o in params["Delete"]["Objects"] if o["Key"].startswith(prefix)]
        parsed["Errors"] = [{"Key": o["Key"], "VersionId": o.get("VersionId"), "Code": "InternalError",
                             "Message": "We encountered an internal error. Please try again."} for o in failed]
        return bool(failed)

    return response, request


def _fill_bucket(estate) -> str:
    s3 = estate.client("s3")
    name = names.bucket(estate.suffix, estate.client("sts").get_caller_identity()["Account"])
    for key in ("keep/a.sql", "keep/b.sql", "stuck/c.sql"):
        s3.put_object(Bucket=name, Key=key, Body=b"SELECT 1;")
        s3.put_object(Bucket=name, Key=key, Body=b"SELECT 2;")  # a second version
    s3.delete_object(Bucket=name, Key="keep/a.sql")  # and a delete marker
    return name


def test_delete_objects_errors_are_retried_for_those_keys(estate, faults):
    estate.apply()
    name = _fill_bucket(estate)
    response, request = _failing_keys("stuck/")
    faults.rewrite("DeleteObjects", response, request=request, times=2)
    estate.destroy(include_protected=True)
    assert faults.injected["DeleteObjects"] == 2
    # All keys (the stuck ones held back and reported), the stuck ones again (held, reported), then
    # the stuck ones once more, deleted: two calls reached the emulator.
    assert _calls(estate, "DeleteObjects") == 2
    assert name not in [b["Name"] for b in estate.client("s3").list_buckets()["Buckets"]]


def test_delete_objects_errors_past_the_deadline_fail_naming_the_keys(estate, faults):
    estate.apply()
    name = _fill_bucket(estate)
    response, request = _failing_keys("stuck/")
    faults.rewrite("DeleteObjects", response, request=request, times=10_000)
    spec = _timing(estate, consistency_timeout_seconds=0.05, retry_delay=0.01)
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=spec).destroy(include_protected=True)
    msg = str(info.value)
    assert msg.startswith(f"Failed to delete AWS::S3::Bucket {name}: 2 object version(s) of bucket "
                          f"{name} were not deleted: stuck/c.sql (version ")
    assert "): InternalError We encountered an internal error" in msg
    assert "the bucket and these versions were left in place" in msg
    left = estate.client("s3").list_object_versions(Bucket=name)
    assert sorted(v["Key"] for v in left.get("Versions", [])) == ["stuck/c.sql", "stuck/c.sql"]
    assert not left.get("DeleteMarkers")
    faults.rewrites.clear()
    estate.destroy(include_protected=True)
    assert name not in [b["Name"] for b in estate.client("s3").list_buckets()["Buckets"]]


def test_delete_objects_access_denied_fails_at_once_and_keyless_versions_are_matched(estate, faults):
    """AccessDenied does not clear with time: one call, then the error (no retries until the
    deadline). The error item carries no VersionId, as S3 may answer: every version of its key
    counts as not deleted (an earlier version sent an empty DeleteObjects, MalformedXML)."""
    estate.apply()
    name = _fill_bucket(estate)
    response, request = _failing_keys("stuck/")

    def denied(parsed: dict, params: dict) -> bool:
        hit = response(parsed, params)
        parsed["Errors"] = [{"Key": e["Key"], "Code": "AccessDenied", "Message": "Access Denied"}
                            for e in parsed.get("Errors", [])]
        return hit

    faults.rewrite("DeleteObjects", denied, request=request, times=10_000)
    with pytest.raises(AwsFailure) as info:
        estate.destroy(include_protected=True)
    assert "2 object version(s) of bucket" in str(info.value) and "AccessDenied Access Denied" in str(info.value)
    assert _calls(estate, "DeleteObjects") == 1
    faults.rewrites.clear()
    estate.destroy(include_protected=True)
    assert name not in [b["Name"] for b in estate.client("s3").list_buckets()["Buckets"]]


# ---------------------------------------------------------------------- 7. secret name scheduled for deletion

SCHEDULED = "You can't create this secret because a secret with this name is already scheduled for deletion."


def test_secret_name_still_scheduled_for_deletion_is_waited_for(estate, faults):
    faults.fail("CreateSecret", "InvalidRequestException", SCHEDULED, times=4)
    estate.apply()
    assert faults.injected["CreateSecret"] == 4
    assert _calls(estate, "CreateSecret") == 3  # one per environment reached AWS, after the refusals
    assert estate.plan().changes == []


def test_secret_name_scheduled_past_the_deadline_fails_clearly(estate, faults):
    faults.fail("CreateSecret", "InvalidRequestException", SCHEDULED, times=10_000)
    spec = _timing(estate, consistency_timeout_seconds=0.05, retry_delay=0.01)
    with pytest.raises(AwsFailure) as info:
        estate.engine(spec=spec).apply()
    msg = str(info.value)
    assert msg.startswith("Failed to create secret ") and "the name is still scheduled for deletion after 0 s" in msg
    assert "restore-secret --secret-id " in msg and "left in place" in msg
    faults.rules.clear()
    estate.apply()
    assert _count_estate(estate) == FULL


# ---------------------------------------------------------------------- 8. the log groups RDS makes

def _rds_log_groups(estate, exports=("error", "general", "slowquery")) -> list[str]:
    """Make the log groups RDS makes for each cluster's exported logs (moto makes none)."""
    logs = estate.client("logs")
    made = []
    for env in estate.spec.environments:
        for kind in exports:
            name = f"/aws/rds/cluster/{names.cluster(env, estate.suffix)}/{kind}"
            logs.create_log_group(logGroupName=name)
            made.append(name)
    return made


def _existing(estate, names_: list[str]) -> list[str]:
    logs = estate.client("logs")
    groups = {g["logGroupName"] for page in logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix="/aws/rds/cluster/") for g in page["logGroups"]}
    return [n for n in names_ if n in groups]


def test_rds_log_groups_are_not_drift_and_destroy_removes_them(estate):
    estate.apply()
    estate.log.clear()
    assert estate.plan().changes == []
    baseline = len(estate.log.calls)
    made = _rds_log_groups(estate)
    # Another cluster's groups (a longer name sharing the prefix) are not ours.
    other = f"/aws/rds/cluster/{names.cluster('dev', estate.suffix)}x/error"
    estate.client("logs").create_log_group(logGroupName=other)
    estate.log.clear()
    assert estate.plan().changes == []
    assert len(estate.log.calls) == baseline  # a plan does not read them
    engine = estate.engine()
    plan = engine.destroy_plan()
    assert sorted(c.name for c in plan.changes if c.type == "AWS::Logs::LogGroup"
                  and c.name.startswith("/aws/rds/")) == sorted(made)
    engine.destroy(plan, include_protected=True)
    assert _existing(estate, made) == []
    assert _existing(estate, [other]) == [other]
    estate.client("logs").delete_log_group(logGroupName=other)


def test_rds_log_groups_left_after_their_cluster_went_are_removed_by_the_next_destroy(estate):
    """A destroy stopped after deleting the clusters: the groups are found by name and removed."""
    estate.apply()
    estate.destroy(include_protected=True)
    made = _rds_log_groups(estate, exports=("error",))
    plan = estate.engine().destroy_plan()
    assert sorted(c.name for c in plan.changes) == sorted(made)
    estate.destroy(include_protected=True)
    assert _existing(estate, made) == []
    assert estate.engine().destroy_plan().changes == []


def test_invoking_a_pending_or_inactive_function_waits_until_lambda_takes_it(estate, faults):
    """Lambda refuses an invoke while the function is Pending or Inactive (it did not run)."""
    from dbrepl.app.functions import Functions

    estate.apply()
    fns = Functions(estate.spec, estate.suffix, estate.sessions)
    faults.fail("Invoke", "ResourceConflictException", "The operation cannot be performed at this time. "
                "The function is currently in the following state: Pending", times=3)
    # moto's Lambda (no Docker) answers with the event itself: a body makes it a result.
    assert fns.invoke("schema", {"body": {"ok": True}}) == {"ok": True}
    assert faults.injected["Invoke"] == 3


def test_invoke_refused_past_the_deadline_fails_naming_the_state(estate, faults):
    from dbrepl.app.functions import Functions

    estate.apply()
    spec = _timing(estate, function_timeout_minutes=0.001, retry_delay=0.01)
    faults.fail("Invoke", "ResourceConflictException", "The operation cannot be performed at this time. "
                "The function is currently in the following state: Inactive", times=10_000)
    with pytest.raises(AwsFailure, match=r"^Failed to invoke function db-sync-schema-replication-\w+: "
                                         r"ResourceConflictException: .*state: Inactive"):
        Functions(spec, estate.suffix, estate.sessions).invoke("schema", {"body": {}})


# ---------------------------------------------------------------------- endpoint service names

def test_endpoint_service_names_are_the_regions_own(estate, faults):
    """Not every partition names its endpoint services com.amazonaws.<region>.<svc> (China's are
    cn.com.amazonaws.<region>.<svc> for some): the endpoints take the name DescribeVpcEndpointServices
    lists, the answer preflight reads too (one call for both)."""
    other = "cn.com.amazonaws.us-east-1.ssm"

    def rename(parsed: dict, params: dict) -> bool:
        for d in parsed.get("ServiceDetails", []):
            if d["ServiceName"] == "com.amazonaws.us-east-1.ssm":
                d["ServiceName"] = other
        parsed["ServiceNames"] = [d["ServiceName"] for d in parsed.get("ServiceDetails", [])]
        return True

    faults.rewrite("DescribeVpcEndpointServices", rename, times=10)
    plan = estate.plan()
    (ssm,) = [c for c in plan.changes if c.name == names.endpoint("staging", "ssm", estate.suffix)]
    assert ssm.diff["ServiceName"] == (None, other)
    (sm,) = [c for c in plan.changes if c.name == names.endpoint("staging", "secretsmanager", estate.suffix)]
    assert sm.diff["ServiceName"] == (None, "com.amazonaws.us-east-1.secretsmanager")
    assert {f.check: f.status for f in plan.findings}["availability-zones"] == "ok"
    assert _calls(estate, "DescribeVpcEndpointServices") == 1  # network and preflight share the answer
    estate.apply()
    eps = estate.client("ec2").describe_vpc_endpoints(
        Filters=[{"Name": "tag:dbrepl:suffix", "Values": [estate.suffix]}])["VpcEndpoints"]
    assert other in {e["ServiceName"] for e in eps}
    assert estate.plan().changes == []  # drift compares the same name
    estate.destroy(include_protected=True)
