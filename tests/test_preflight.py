"""Preflight (issue 11, point 2, the part point 7's acceptance needs): before any change, plan
shows the findings of read-only checks and apply refuses with exit 2, nothing made, when one
fails; a check the service cannot answer is skipped, never refused.

- the VPC quota with moto in-process (its Service Quotas answers 5, counting the default VPC);
- the hub's AZs, chosen by AZ ID, against Lambda and the endpoint services; the bucket key's
  region; windows RDS would refuse (checked when the spec is read);
- an instance class Aurora MySQL does not offer, in the sandbox through the CLI (its moto
  server answers DescribeOrderableDBInstanceOptions from the documented table).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from typer.testing import CliRunner

from dbrepl import sandbox
from dbrepl.cli import app
from tests.aws.harness import MOTO_CONFIG, vpc_quota
from tests.test_sandbox import _kill_leftovers, dbrepl

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "config" / "environments.yaml"
runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})


@pytest.fixture
def aws() -> Iterator[None]:
    """A mocked account with AWS's default VPC quota (5 per region). Under the session-wide mock
    of tests/aws (active once any of its tests ran) this is not a fresh account: each test
    below works in a region of its own, so VPCs made elsewhere do not count."""
    with mock_aws(config=MOTO_CONFIG), vpc_quota(5.0):
        yield


def spec_in(tmp_path: Path, region: str) -> str:
    """The default spec with `region` set (a region no other test uses)."""
    spec = yaml.safe_load(SPEC.read_text())
    spec["region"] = region
    spec["databases"]["tls"]["verify"] = False  # no CA bundle: said, or plan refuses the protected prod
    path = tmp_path / f"{region}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # the environments keep their order
    return str(path)


def _made(region: str = "us-east-1") -> dict[str, int]:
    """What exists in the mocked account, by kind (the default VPC counted)."""
    return {"vpcs": len(boto3.client("ec2", region_name=region).describe_vpcs()["Vpcs"]),
            "keys": len(boto3.client("kms", region_name=region).list_keys()["Keys"]),
            "secrets": len(boto3.client("secretsmanager", region_name=region).list_secrets()["SecretList"]),
            "buckets": len(boto3.client("s3", region_name=region).list_buckets()["Buckets"])}


def test_plan_shows_findings_and_skips_what_the_service_cannot_answer(aws: None, tmp_path: Path) -> None:
    spec = spec_in(tmp_path, "sa-east-1")
    r = cli("plan", "--suffix", "pf1", "--config", spec)
    assert r.exit_code == 0, r.output
    assert "Preflight" in r.output
    assert "✓ vpc-quota · sa-east-1 (dev, staging, prod): the region has 1 VPC(s) and this apply would " \
           "create 3; the VPC quota (Service Quotas vpc L-F678F1CE) is 5" in r.output
    # moto in-process has no DescribeDBEngineVersions, no orderable options for aurora-mysql: skipped.
    assert "- engine-version · sa-east-1 (dev, staging, prod) skipped: DescribeDBEngineVersions did not " \
           "answer" in r.output
    j = cli("plan", "--suffix", "pf1", "--config", spec, "--json")
    assert j.exit_code == 0, j.output
    statuses = {f["check"]: f["status"] for f in json.loads(j.output)["preflight"]}
    assert statuses == {"vpc-quota": "ok", "engine-version": "skipped", "instance-class": "skipped",
                        "availability-zones": "ok", "bucket-key-region": "ok"}
    assert "✓ availability-zones · sa-east-1 (dev, staging, prod): Lambda and the endpoint services are " \
           "offered in sa-east-1a (sae1-az1), sa-east-1b (sae1-az2)" in r.output


def test_three_extra_vpcs_refuse_apply_with_exit_2_naming_the_quota_and_nothing_made(aws: None,
                                                                                      tmp_path: Path) -> None:
    region, spec = "ca-central-1", spec_in(tmp_path, "ca-central-1")
    ec2 = boto3.client("ec2", region_name=region)
    for i in range(3):
        ec2.create_vpc(CidrBlock=f"172.{20 + i}.0.0/16")
    before = _made(region)
    assert before["vpcs"] == 4  # the default VPC and the three extra ones
    a = cli("apply", "--suffix", "pf2", "--config", spec, "--yes")
    assert a.exit_code == 2, a.output
    assert "✗ vpc-quota" in a.output
    assert "the region has 4 VPC(s) and this apply would create 3; the VPC quota (Service Quotas vpc " \
           "L-F678F1CE) is 5" in a.output
    assert f"error: preflight refused the change, nothing was made: vpc-quota in {region}" in a.output
    assert _made(region) == before
    p = cli("plan", "--suffix", "pf2", "--config", spec)
    assert p.exit_code == 2 and "✗ vpc-quota" in p.output


def test_unreadable_quota_assumes_the_default(aws: None, tmp_path: Path) -> None:
    from unittest import mock

    from moto.servicequotas.models import ServiceQuotasBackend

    def refuse(*a: Any, **kw: Any) -> Any:
        raise NotImplementedError("no quotas here")

    with mock.patch.object(ServiceQuotasBackend, "get_service_quota", refuse):
        r = cli("plan", "--suffix", "pf3", "--config", spec_in(tmp_path, "eu-north-1"))
    assert r.exit_code == 0, r.output
    assert "is 5 (the quota could not be read: no quotas here; AWS's default 5 assumed)" in r.output


def with_spec(tmp_path: Path, region: str, change: Any) -> str:
    spec = yaml.safe_load(Path(spec_in(tmp_path, region)).read_text())
    change(spec)
    path = tmp_path / f"{region}-changed.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def test_subnets_chosen_by_az_id_land_in_that_zone(aws: None, tmp_path: Path) -> None:
    """AZ names map to different physical zones in each account; an az_id names the zone itself."""
    region = "ap-northeast-2"
    zones = {z["ZoneId"]: z["ZoneName"] for z in
             boto3.client("ec2", region_name=region).describe_availability_zones()["AvailabilityZones"]}
    ids = sorted(zones)[-2:]

    def by_id(spec: dict) -> None:
        spec["environments"]["dev"]["subnets"] = [{"cidr": "10.1.1.0/24", "az_id": ids[0]},
                                                  {"cidr": "10.1.2.0/24", "az_id": ids[1]}]

    r = cli("plan", "--suffix", "pf4", "--config", with_spec(tmp_path, region, by_id), "--json")
    assert r.exit_code == 0, r.output
    subnets = [c for c in json.loads(r.output)["changes"]
               if c["type"] == "AWS::EC2::Subnet" and c["env"] == "dev"]
    assert sorted(c["diff"]["AvailabilityZone"]["new"] for c in subnets) == sorted(zones[i] for i in ids)


def test_hub_subnets_where_lambda_is_not_offered_are_refused(aws: None, tmp_path: Path) -> None:
    """us-east-1's use1-az3 takes no Lambda network interfaces; moto maps it to a name like any other.
    The hub (staging) holds the functions and the endpoints."""
    region = "us-east-1"
    zones = {z["ZoneId"]: z["ZoneName"] for z in
             boto3.client("ec2", region_name=region).describe_availability_zones()["AvailabilityZones"]}

    def into_az3(spec: dict) -> None:
        spec["environments"]["staging"]["subnets"] = [{"cidr": "10.2.1.0/24", "az_id": "use1-az3"},
                                                      {"cidr": "10.2.2.0/24", "az_id": "use1-az1"}]
        spec["environments"]["dev"]["region"] = spec["environments"]["staging"]["region"] = \
            spec["environments"]["prod"]["region"] = region

    before = _made(region)
    # us-east-1 is where tests/aws's estates live in a full run: a quota that fits them all, so
    # only the AZ check can refuse.
    with vpc_quota(1000.0):
        r = cli("apply", "--suffix", "pf5", "--config", with_spec(tmp_path, "us-west-1", into_az3), "--yes")
    assert r.exit_code == 2, r.output
    assert f"✗ availability-zones · us-east-1 (dev, staging, prod): Lambda is not offered in {zones['use1-az3']} " \
           f"(use1-az3): give the hub's subnets az_id values of AZs that offer them" in r.output
    assert "preflight refused the change, nothing was made: availability-zones in us-east-1" in r.output
    assert _made(region) == before


def test_an_az_id_the_region_does_not_have_is_bad_input(aws: None, tmp_path: Path) -> None:
    def nowhere(spec: dict) -> None:
        spec["environments"]["dev"]["subnets"][0] = {"cidr": "10.1.1.0/24", "az_id": "apne2-az9"}

    r = cli("plan", "--suffix", "pf8", "--config", with_spec(tmp_path, "ap-northeast-2", nowhere))
    assert r.exit_code == 2, r.output
    assert "environments.dev.subnets[0].az_id apne2-az9: not an available AZ of ap-northeast-2; its AZ IDs are " \
           "apne2-az1, apne2-az2, apne2-az3, apne2-az4" in r.output


def test_an_endpoint_service_missing_from_an_az_is_refused(aws: None, tmp_path: Path) -> None:
    """DescribeVpcEndpointServices lists each service's AZs; a hub subnet outside them fails."""
    from unittest import mock

    from moto.ec2.models import EC2Backend

    real = EC2Backend.describe_vpc_endpoint_services

    def without_ssm_in_b(self: Any, *a: Any, **kw: Any) -> Any:
        out = real(self, *a, **kw)
        out["servicesDetails"] = [
            {**d, "AvailabilityZones": [z for z in d["AvailabilityZones"] if not z.endswith("b")]}
            if d["ServiceName"].endswith(".ssm") else d for d in out["servicesDetails"]]
        return out

    with mock.patch.object(EC2Backend, "describe_vpc_endpoint_services", without_ssm_in_b):
        r = cli("plan", "--suffix", "pf6", "--config", spec_in(tmp_path, "eu-west-2"))
    assert r.exit_code == 2, r.output
    assert "ssm endpoints not offered in eu-west-2b (euw2-az3)" in r.output


def test_the_bucket_key_must_be_in_the_bucket_region(aws: None, tmp_path: Path) -> None:
    def key_elsewhere(spec: dict) -> None:
        spec["environments"]["prod"]["region"] = "eu-south-1"
        spec.setdefault("bucket", {})["kms_env"] = "prod"

    r = cli("plan", "--suffix", "pf7", "--config", with_spec(tmp_path, "eu-central-2", key_elsewhere))
    assert r.exit_code == 2, r.output
    assert "the bucket is in eu-central-2 (the hub's region) but its KMS key is prod's, in eu-south-1; S3 needs " \
           "a key of the bucket's region: set bucket.kms_env to an environment in eu-central-2" in r.output


# --------------------------------------------------------------------------- in the sandbox

@pytest.mark.slow
def test_sandbox_refuses_an_instance_class_aurora_mysql_does_not_offer(tmp_path: Path) -> None:
    spec = yaml.safe_load(SPEC.read_text())
    spec.setdefault("aurora", {})["instance_class"] = "db.t2.micro"
    bad = tmp_path / "t2.yaml"
    bad.write_text(yaml.safe_dump(spec))
    port = sandbox.free_port()
    try:
        s = dbrepl(tmp_path, "sandbox", "start", "--no-databases", "--port", str(port))
        assert s.code == 0, s.stderr
        ok = dbrepl(tmp_path, "--sandbox", "plan", "-s", "sb", "-c", str(SPEC))
        assert ok.code == 0, ok.stdout + ok.stderr
        assert "✓ engine-version" in ok.stdout and "✓ instance-class" in ok.stdout
        assert "db.r5.large is orderable for aurora-mysql 8.0.mysql_aurora.3.10.0" in ok.stdout
        for cmd in (("plan",), ("apply", "--yes")):
            r = dbrepl(tmp_path, "--sandbox", *cmd, "-s", "sb", "-c", str(bad))
            assert r.code == 2, r.stdout + r.stderr
            assert "✗ instance-class" in r.stdout
            assert "db.t2.micro is not offered for aurora-mysql 8.0.mysql_aurora.3.10.0" in r.stdout
            assert "preflight refused the change, nothing was made: instance-class" in r.stderr
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        assert len(ec2.describe_vpcs()["Vpcs"]) == 1  # the default VPC only: nothing was made
    finally:
        dbrepl(tmp_path, "sandbox", "stop")
        _kill_leftovers(sandbox.state_dir(tmp_path))
