"""A newcomer's first week through the real CLI against moto (issue 19, items 3 and 9):
plan counts and refuses replacements and apply refuses them before printing anything, with a
way out that runs as printed; plans print no None field and no 4,000-character line; status
ends with a summary line, exits 3 on drift with --detailed-exitcode, and cuts no value when
piped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dbrepl.aws.session import SessionFactory
from dbrepl.cli import app
from tests.aws.harness import ROOT, CallLog, Estate, fast_spec, forget_automated_snapshots

SUFFIX = "nwc1"
ACCOUNT = "123456789012"


def _spec_text(**replace: str) -> str:
    text = (ROOT / "config" / "environments.yaml").read_text(encoding="utf-8")
    text = text.replace("poll_delay: 30 ", "poll_delay: 0 ").replace("retry_delay: 5\n", "retry_delay: 0\n")
    # No CA bundle in a test: said so, or plan and apply refuse the protected prod (issue 18).
    text = text.replace("    # ca_bundle: global-bundle.pem\n    verify: true\n",
                        "    # ca_bundle: global-bundle.pem\n    verify: false\n", 1)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def applied(aws, tmp_path_factory: pytest.TempPathFactory) -> tuple[Estate, Path]:
    e = Estate(fast_spec(), SUFFIX, SessionFactory("us-east-1", hooks=[CallLog().hook]), CallLog())
    e.apply()
    spec = tmp_path_factory.mktemp("newcomer") / "spec.yaml"
    spec.write_text(_spec_text(), encoding="utf-8")
    return e, spec


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_status_ends_with_a_summary_and_cuts_nothing_when_piped(applied) -> None:
    _, spec = applied
    r = cli("status", "--suffix", SUFFIX, "--config", str(spec), "--detailed-exitcode")
    assert r.exit_code == 0, r.output
    last = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"(\d+) resources: \1 ok, 0 drifted, 0 missing, 0 extra; alarms: 10 \(.+\); "
                        r"sync routes: 1 \(1 never run\)", last), last
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:db-sync-schema-replication-{SUFFIX}"
    line = next(x for x in r.stdout.splitlines() if "SchemaReplicationFunctionArn" in x)
    assert arn in line, line  # whole, on its row, though the row is wider than 80 columns
    assert "…" not in r.stdout
    assert max(len(x) for x in r.stdout.splitlines()) > 80


def test_status_exits_3_on_drift_with_detailed_exitcode(applied) -> None:
    e, spec = applied
    logs = e.client("logs")
    group = f"/aws/lambda/db-sync-schema-replication-{SUFFIX}"
    logs.put_retention_policy(logGroupName=group, retentionInDays=30)
    try:
        r = cli("status", "--suffix", SUFFIX, "--config", str(spec), "--detailed-exitcode")
        assert r.exit_code == 3, r.output
        assert ", 1 drifted, 0 missing, 0 extra;" in r.stdout.strip().splitlines()[-1]
        plain = cli("status", "--suffix", SUFFIX, "--config", str(spec))
        assert plain.exit_code == 0, plain.output  # without the flag, status that reads is a success
    finally:
        logs.put_retention_policy(logGroupName=group, retentionInDays=7)


def test_a_plan_prints_no_none_and_no_giant_line(applied, tmp_path: Path) -> None:
    _, spec = applied
    r = cli("plan", "--suffix", "nwc-fresh", "--config", str(spec))  # nothing of it exists: all creates
    assert r.exit_code == 0, r.output
    assert "None" not in r.stdout and "(none)" not in r.stdout
    assert max(len(x) for x in r.stdout.splitlines()) < 400
    body = next(x for x in r.stdout.splitlines() if "DashboardBody:" in x)
    assert re.search(r"\(JSON object, [\d,]+ characters, sha256 [0-9a-f]{12}; in full: plan --json\)", body), body
    full = cli("plan", "--suffix", "nwc-fresh", "--config", str(spec), "--json")
    dash = next(c for c in json.loads(full.stdout)["changes"] if c["type"] == "AWS::CloudWatch::Dashboard")
    assert dash["diff"]["DashboardBody"]["new"]["widgets"]  # --json keeps the whole value


def test_plan_counts_and_refuses_a_replacement_and_apply_refuses_before_printing(applied, tmp_path: Path) -> None:
    """The issue's story: a VPC CIDR changed in the spec."""
    e, _ = applied
    moved = tmp_path / "moved.yaml"
    moved.write_text(_spec_text(**{"cidr: 10.1.0.0/16": "cidr: 10.9.0.0/16", "cidr: 10.1.1.0/24": "cidr: 10.9.1.0/24",
                                   "cidr: 10.1.2.0/24": "cidr: 10.9.2.0/24"}), encoding="utf-8")
    args = ("--suffix", SUFFIX, "--config", str(moved))

    j = cli("plan", *args, "--json")
    assert j.exit_code == 0, j.output
    plan = json.loads(j.stdout)
    replaced = [c for c in plan["changes"] if c["action"] == "replace"]
    assert replaced and all(c["refused"] for c in replaced)
    assert plan["summary"]["replace"] == len(replaced) == plan["refused"]
    vpc = next(c for c in replaced if c["type"] == "AWS::EC2::VPC")
    assert vpc["name"] == f"dev-vpc-{SUFFIX}" and vpc["refused"] == "CidrBlock 10.1.0.0/16 -> 10.9.0.0/16 cannot " \
                                                                     "change in place"

    r = cli("plan", *args)
    assert r.exit_code == 0, r.output
    assert f"{len(replaced)} to replace" in r.stdout
    assert r.stdout.count("refused: ") >= len(replaced) + 1
    way_out = f"`dbrepl destroy --suffix {SUFFIX} --config {moved} --env dev`, then `dbrepl apply --suffix " \
              f"{SUFFIX} --config {moved}`"
    assert way_out in " ".join(r.stdout.split()), r.stdout
    d = cli("plan", *args, "--detailed-exitcode")
    assert d.exit_code == 2, d.output

    a = cli("apply", *args, "--yes")
    assert a.exit_code == 2, a.output
    assert a.stdout == ""
    assert len(a.stderr.strip().splitlines()) == 1, a.stderr
    assert "apply refused, nothing was changed" in a.stderr and f"AWS::EC2::VPC dev-vpc-{SUFFIX} (CidrBlock " \
           "10.1.0.0/16 -> 10.9.0.0/16 cannot change in place)" in a.stderr
    assert way_out in a.stderr
    cidr = e.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [f"dev-vpc-{SUFFIX}"]}])["Vpcs"]
    assert [v["CidrBlock"] for v in cidr] == ["10.1.0.0/16"]

    # The way out runs as printed: destroy dev, apply the moved spec, and plan has nothing left to do.
    destroy, apply = way_out.replace("`", "").split(", then ")
    done = cli(*destroy.split()[1:], "--yes")
    assert done.exit_code == 0, (destroy, done.stderr)
    forget_automated_snapshots(e.client("rds"))  # AWS deletes them with the cluster; moto keeps them
    done = cli(*apply.split()[1:], "--yes")
    assert done.exit_code == 0, (apply, done.stderr)
    again = cli("plan", *args, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
