"""Preflight (issue 11, point 2, the part point 7's acceptance needs): before any change, plan
shows the findings of read-only checks and apply refuses with exit 2, nothing made, when one
fails; a check the service cannot answer is skipped, never refused.

- the VPC quota with moto in-process (its Service Quotas answers 5, counting the default VPC);
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
    assert statuses == {"vpc-quota": "ok", "engine-version": "skipped", "instance-class": "skipped"}


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
