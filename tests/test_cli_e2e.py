"""End to end through the installed `dbrepl` console script against a moto server
(issue 2, Acceptance): plan lists every resource, apply, no-op plan, status, --env,
destroy, destroy again, apply again; no secret value in any output.

The server runs in its own process, single-threaded: moto's backends are not thread-safe
and dbrepl calls AWS from many threads at once, so requests are taken one at a time (AWS
itself is safe; this only changes how the emulator queues requests).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = "clie2e"
ACCOUNT = "123456789012"  # moto's default account
ENVS = ("dev", "staging", "prod")

# Every resource of the estate by CloudFormation type (DESIGN §1 with the corrections).
EXPECTED_TYPES = {
    "AWS::EC2::VPC": 3, "AWS::EC2::Subnet": 6, "AWS::EC2::RouteTable": 3,
    "AWS::EC2::SubnetRouteTableAssociation": 6, "AWS::EC2::SecurityGroup": 5,
    "AWS::EC2::VPCEndpoint": 3,
    # MySQL from each VPC's own CIDR (3), from the functions' SG into every DB SG (3), HTTPS from
    # the functions' SG into the endpoints' SG (1).
    "AWS::EC2::SecurityGroupIngress": 7, "AWS::KMS::Key": 3, "AWS::KMS::Alias": 3,
    "AWS::SecretsManager::Secret": 3, "AWS::RDS::DBSubnetGroup": 3, "AWS::RDS::DBCluster": 3,
    "AWS::RDS::DBInstance": 3, "AWS::RDS::DBClusterParameterGroup": 3, "AWS::SSM::Parameter": 3,
    "AWS::EC2::VPCPeeringConnection": 2,
    "AWS::EC2::Route": 4, "AWS::S3::Bucket": 1, "AWS::IAM::Role": 2, "AWS::Lambda::Function": 2,
    "AWS::Logs::LogGroup": 2,
    # Issue 12: replica lag (3), failure and staleness of the default schedule (2), Errors and
    # Throttles per function (4); the alarm topic, the schedule, its group and role, the dashboard.
    "AWS::CloudWatch::Alarm": 9, "AWS::SNS::Topic": 1, "AWS::Scheduler::ScheduleGroup": 1,
    "AWS::Scheduler::Schedule": 1, "AWS::CloudWatch::Dashboard": 1,
}
# Issue 18: the schedules' dead-letter queue and its alarm.
EXPECTED_TYPES["AWS::SQS::Queue"] = 1
EXPECTED_TYPES["AWS::CloudWatch::Alarm"] += 1
TOTAL = sum(EXPECTED_TYPES.values())



# --------------------------------------------------------------------------- the server

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_json(url: str, body: dict[str, Any]) -> bytes:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def _start(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(MOTO_IAM_LOAD_MANAGED_POLICIES="true", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    with log.open("ab") as fh:
        # The sandbox's own moto server (dbrepl.sandbox.serve_aws: one request at a time).
        return subprocess.Popen([sys.executable, "-m", "dbrepl.sandbox", "aws", str(port), str(log.parent)],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=log.parent)


def _wait_up(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("moto") / "server.log"
    for _ in range(3):  # the free port may be taken between looking and binding
        port = _free_port()
        proc = _start(port, log)
        if _wait_up(proc, port, time.monotonic() + 60):
            break
        _stop(proc)
    else:
        pytest.fail(f"moto server did not start:\n{log.read_text(errors='replace')[-3000:]}")
    url = f"http://127.0.0.1:{port}"
    try:
        # Lambda without Docker (CreateFunction works; Invoke only echoes).
        _post_json(f"{url}/moto-api/config", {"lambda": {"use_docker": False}})
        yield url
    finally:
        _stop(proc)


# --------------------------------------------------------------------------- the CLI

@dataclass
class Run:
    args: list[str]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


@dataclass
class Cli:
    url: str
    spec: Path
    home: Path
    exe: str
    transcript: list[Run] = field(default_factory=list)
    passwords: set[str] = field(default_factory=set)
    full_plan: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DBREPL_"))}
        env.update(
            AWS_ENDPOINT_URL=self.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", HOME=str(self.home),
            AWS_CONFIG_FILE=str(self.home / "no-config"), AWS_SHARED_CREDENTIALS_FILE=str(self.home / "no-creds"),
            COLUMNS="200", NO_COLOR="1",
        )
        return env

    def __call__(self, *args: str, suffix: str | None = SUFFIX, timeout: float = 300) -> Run:
        argv = [*args, "--config", str(self.spec)]
        if suffix is not None:
            argv += ["--suffix", suffix]
        p = subprocess.run([self.exe, *argv], capture_output=True, text=True, env=self.env(),
                           stdin=subprocess.DEVNULL, timeout=timeout, cwd=self.home)
        run = Run(argv, p.returncode, p.stdout, p.stderr)
        self.transcript.append(run)
        assert "Traceback" not in p.stderr, p.stderr
        return run

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def read_passwords(self) -> dict[str, str]:
        """The master passwords as stored, read straight from the server."""
        sm = self.client("secretsmanager")
        found = {}
        for env in ENVS:
            value = json.loads(sm.get_secret_value(SecretId=f"{env}-aurora-secret-{SUFFIX}")["SecretString"])
            found[env] = value["password"]
        self.passwords.update(found.values())
        return found


def _dbrepl() -> str:
    exe = Path(sys.executable).with_name("dbrepl")
    if exe.exists():
        return str(exe)
    found = shutil.which("dbrepl")
    if not found:
        pytest.skip("the dbrepl console script is not installed (pip install -e .)")
    return found


@pytest.fixture(scope="module")
def cli(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    work = tmp_path_factory.mktemp("cli")
    data = yaml.safe_load((ROOT / "config" / "environments.yaml").read_text(encoding="utf-8"))
    data["timing"].update(poll_delay=0, retry_delay=0)
    data["databases"]["tls"]["verify"] = False  # no CA bundle: said, or plan refuses the protected prod
    spec = work / "environments.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Cli(moto_server, spec, work, _dbrepl())


def _summary_line(text: str) -> str:
    m = re.search(r"^.*\d+ to create, \d+ to update, \d+ to delete\.$", text, re.M)
    return m.group(0) if m else ""


# --------------------------------------------------------------------------- the story
# The tests below run in file order and build on each other (one estate on one server).

def test_plan_json_lists_every_resource(cli: Cli) -> None:
    r = cli("plan", "--json")
    assert r.code == 0, r.stderr
    plan = r.json()  # stdout is exactly one JSON document
    assert set(plan) == {"changes", "summary", "refused", "preflight", "notes"} and plan["refused"] == 0
    assert {f["check"] for f in plan["preflight"]} == {"vpc-quota", "engine-version", "instance-class",
                                                     "availability-zones", "bucket-key-region"}
    assert set(plan["summary"]) == {"create", "update", "replace", "delete"}
    assert plan["summary"] == {"create": TOTAL, "update": 0, "replace": 0, "delete": 0}
    for c in plan["changes"]:
        assert set(c) == {"action", "type", "env", "name", "diff"}, c
        assert c["action"] == "create"
        assert re.fullmatch(r"AWS::[A-Za-z0-9]+::[A-Za-z0-9]+", c["type"]), c["type"]
        assert c["env"] in (*ENVS, "shared"), c["env"]
        assert isinstance(c["name"], str) and c["name"]
        assert isinstance(c["diff"], dict)
        for field_, d in c["diff"].items():
            assert set(d) == {"old", "new"}, (c["name"], field_)
            assert d["old"] is None, (c["name"], field_)
    assert Counter(c["type"] for c in plan["changes"]) == Counter(EXPECTED_TYPES)
    names = {c["name"] for c in plan["changes"]}
    s = SUFFIX
    for n in (f"dev-vpc-{s}", f"staging-private-subnet-2-{s}", f"prod-route-table-{s}", f"dev-aurora-sg-{s}",
              f"lambda-db-sync-sg-{s}", f"alias/dev-key-{s}", f"prod-aurora-secret-{s}",
              f"dev-aurora-subnet-group-{s}", f"staging-aurora-cluster-{s}", f"prod-aurora-instance-1-{s}",
              f"/db-replication/{s}/dev/connection-string", f"dev-to-staging-peering-{s}",
              f"staging-to-prod-peering-{s}", f"migration-scripts-{s}-{ACCOUNT}", f"db-sync-lambda-role-{s}",
              f"db-sync-schema-replication-{s}", f"db-sync-data-replication-{s}",
              f"/aws/lambda/db-sync-schema-replication-{s}", f"dev-aurora-replication-lag-{s}"):
        assert n in names, n
    by_type = {c["type"]: c for c in plan["changes"]}
    assert by_type["AWS::RDS::DBCluster"]["diff"]["EngineVersion"]["new"] == "8.0.mysql_aurora.3.10.0"
    cli.full_plan = plan


def test_env_narrows_plan(cli: Cli) -> None:
    full = cli.full_plan
    assert full, "needs test_plan_json_lists_every_resource first"
    r = cli("plan", "--json", "--env", "dev")
    assert r.code == 0, r.stderr
    narrowed = r.json()
    assert narrowed["changes"], "nothing planned for dev"
    assert {c["env"] for c in narrowed["changes"]} == {"dev"}
    want = sorted((c["type"], c["name"]) for c in full["changes"] if c["env"] == "dev")
    assert sorted((c["type"], c["name"]) for c in narrowed["changes"]) == want
    assert narrowed["summary"] == {"create": len(want), "update": 0, "replace": 0, "delete": 0}


def test_plan_detailed_exitcode_pending(cli: Cli) -> None:
    r = cli("plan", "--detailed-exitcode")
    assert r.code == 3, r.stderr
    assert _summary_line(r.stdout) == f"Plan: {TOTAL} to create, 0 to update, 0 to delete."
    assert "+ AWS::RDS::DBCluster" in r.stdout


def test_apply_without_yes_touches_nothing(cli: Cli) -> None:
    r = cli("apply")
    assert r.code == 2
    assert len(r.lines) == 1 and "--yes" in r.lines[0], r.stderr
    assert r.stdout == ""
    assert cli("plan", "--detailed-exitcode").code == 3


def test_apply(cli: Cli) -> None:
    r = cli("apply", "--yes", timeout=600)
    assert r.code == 0, r.stderr[-3000:]
    assert f"Apply complete: {TOTAL} created, 0 updated, 0 deleted." in r.stdout
    assert "created in" in r.stderr  # live progress goes to stderr
    pw = cli.read_passwords()
    assert len(pw) == 3 and all(len(p) >= 16 for p in pw.values())


def test_plan_after_apply_no_changes(cli: Cli) -> None:
    r = cli("plan", "--detailed-exitcode")
    assert r.code == 0, r.stdout + r.stderr
    assert "No changes" in r.stdout
    j = cli("plan", "--json")
    assert j.code == 0
    # A plan with nothing to create or change runs no preflight check.
    assert j.json() == {"changes": [], "summary": {"create": 0, "update": 0, "replace": 0, "delete": 0},
                        "refused": 0, "preflight": [], "notes": []}


def test_status_json(cli: Cli) -> None:
    r = cli("status", "--json")
    assert r.code == 0, r.stderr
    st = r.json()
    assert st["suffix"] == SUFFIX
    out = st["outputs"]
    for key in ("DevAuroraClusterEndpoint", "StagingAuroraClusterEndpoint", "ProdAuroraClusterEndpoint",
                "MigrationScriptsBucketName", "SchemaReplicationFunctionArn", "DataReplicationFunctionArn"):
        assert isinstance(out.get(key), str) and out[key], (key, out.get(key))
    for env in ENVS:
        assert out[f"{env.capitalize()}AuroraClusterEndpoint"].startswith(f"{env}-aurora-cluster-{SUFFIX}.")
    assert out["MigrationScriptsBucketName"] == f"migration-scripts-{SUFFIX}-{ACCOUNT}"
    for key, kind in (("SchemaReplicationFunctionArn", "schema"), ("DataReplicationFunctionArn", "data")):
        assert re.fullmatch(rf"arn:aws:lambda:us-east-1:{ACCOUNT}:function:db-sync-{kind}-replication-{SUFFIX}",
                            out[key]), out[key]
    resources = st["resources"]
    assert len(resources) == TOTAL
    bad = [(r_["type"], r_["name"], r_["state"]) for r_ in resources if r_["state"] != "ok"]
    assert bad == []
    assert st["summary"] == {"ok": TOTAL, "missing": 0, "drifted": 0, "extra": 0}
    assert Counter(r_["type"] for r_ in resources) == Counter(EXPECTED_TYPES)


def test_status_env_narrows_resources(cli: Cli) -> None:
    """--env narrows the resource list; the Outputs stay the estate's (status reads all of them)."""
    r = cli("status", "--json", "--env", "dev")
    assert r.code == 0, r.stderr
    st = r.json()
    assert st["resources"] and {x["env"] for x in st["resources"]} == {"dev"}
    assert all(x["state"] == "ok" for x in st["resources"])
    full = next(x for x in cli.transcript if x.args[:2] == ["status", "--json"] and "--env" not in x.args).json()
    assert len(st["resources"]) == sum(x["env"] == "dev" for x in full["resources"])
    t = cli("status")
    assert t.code == 0, t.stderr
    for env in ENVS:
        assert f"{env}-aurora-cluster-{SUFFIX}" in t.stdout
    assert "DevAuroraClusterEndpoint" in t.stdout


def test_outputs_match_the_server(cli: Cli) -> None:
    """status reports what AWS (the server) really holds."""
    st = next(r for r in reversed(cli.transcript) if r.args[:2] == ["status", "--json"]).json()
    rds = cli.client("rds")
    for env in ENVS:
        c = rds.describe_db_clusters(DBClusterIdentifier=f"{env}-aurora-cluster-{SUFFIX}")["DBClusters"][0]
        assert st["outputs"][f"{env.capitalize()}AuroraClusterEndpoint"] == c["Endpoint"]
    fn = cli.client("lambda").get_function(FunctionName=f"db-sync-schema-replication-{SUFFIX}")
    assert st["outputs"]["SchemaReplicationFunctionArn"] == fn["Configuration"]["FunctionArn"]
    cli.client("s3").head_bucket(Bucket=st["outputs"]["MigrationScriptsBucketName"])


def test_destroy(cli: Cli) -> None:
    cli.read_passwords()
    # prod is protected: without --include-protected, destroy refuses before any change (exit 2).
    refused = cli("destroy", "--yes")
    assert refused.code == 2, refused.stderr
    assert len(refused.lines) == 1 and "prod" in refused.lines[0] and "--include-protected" in refused.lines[0]
    r = cli("destroy", "--yes", "--include-protected", timeout=600)
    assert r.code == 0, r.stderr[-3000:]
    # All but prod's KMS key and alias, which stay with prod's final snapshot (they encrypt it).
    assert _summary_line(r.stdout) == f"Destroy: 0 to create, 0 to update, {TOTAL - 2} to delete."
    assert f"Destroy complete: {TOTAL - 2} deleted." in r.stdout
    assert f"prod-aurora-cluster-{SUFFIX} (protected)" in r.stdout
    kept = [ln.split()[3] for ln in r.stdout.splitlines() if ln.startswith("Final snapshot kept: ")]
    assert len(kept) == 1 and kept[0].startswith(f"prod-aurora-cluster-{SUFFIX}-final-"), r.stdout
    snaps = cli.client("rds").describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    assert kept[0] in {x["DBClusterSnapshotIdentifier"] for x in snaps}
    said = " ".join(r.stdout.split())  # rich wraps the note
    assert "note: kept: KMS key" in said and f"(alias/prod-key-{SUFFIX}, prod)" in said and kept[0] in said
    assert "aws kms schedule-key-deletion --region us-east-1 --key-id" in said
    # Nothing else of the estate is left: a plan wants all of it again, but the kept key and alias.
    p = cli("plan", "--json")
    assert p.json()["summary"] == {"create": TOTAL - 2, "update": 0, "replace": 0, "delete": 0}
    ec2 = cli.client("ec2")
    left = [v for v in ec2.describe_vpcs()["Vpcs"]
            if any(t["Key"] == "Name" and t["Value"].endswith(f"-{SUFFIX}") for t in v.get("Tags", []))]
    assert left == []
    rds = cli.client("rds")
    assert [c for c in rds.describe_db_clusters()["DBClusters"] if c["DBClusterIdentifier"].endswith(SUFFIX)] == []


def test_destroy_again_does_nothing(cli: Cli) -> None:
    rds = cli.client("rds")
    before = rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    r = cli("destroy", "--yes", "--include-protected")
    assert r.code == 0, r.stderr
    assert "Destroy complete" not in r.stdout
    assert "Nothing to destroy." in r.stdout
    after = rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    assert [x["DBClusterSnapshotIdentifier"] for x in after] == [x["DBClusterSnapshotIdentifier"] for x in before]
    assert before  # the final snapshot of prod's cluster is kept


def test_apply_again_same_suffix(cli: Cli) -> None:
    """Alias, secret names and bucket name are reusable after destroy."""
    # moto keeps a deleted cluster's automated snapshot (AWS removes it with the cluster);
    # recreating the cluster then collides on its name. Forget them, as AWS would have.
    rds = cli.client("rds")
    for snap in rds.describe_db_cluster_snapshots(SnapshotType="automated")["DBClusterSnapshots"]:
        rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=snap["DBClusterSnapshotIdentifier"])
    r = cli("apply", "--yes", timeout=600)
    assert r.code == 0, r.stderr[-3000:]
    assert f"Apply complete: {TOTAL - 2} created, 0 updated, 0 deleted." in r.stdout  # prod's key was kept
    cli.read_passwords()
    assert cli("plan", "--detailed-exitcode").code == 0
    st = cli("status", "--json").json()
    assert st["summary"]["ok"] == TOTAL
    d = cli("destroy", "--yes", "--include-protected", timeout=600)
    assert d.code == 0, d.stderr[-3000:]


def test_apply_without_yes_exits_2(cli: Cli) -> None:
    r = cli("apply")
    assert r.code == 2
    assert len(r.lines) == 1 and "--yes" in r.lines[0], r.stderr
    d = cli("destroy")
    assert d.code == 2
    assert len(d.lines) == 1 and "--yes" in d.lines[0], d.stderr


def test_no_secret_in_any_output(cli: Cli) -> None:
    """Every password the estate ever had, against every byte any command printed."""
    assert len(cli.passwords) == 6  # two applies, three environments each
    commands = {r.args[0] for r in cli.transcript}
    assert {"plan", "apply", "destroy", "status"} <= commands
    assert any(r.args[:2] == ["plan", "--json"] for r in cli.transcript)
    for run in cli.transcript:
        for pw in cli.passwords:
            assert pw not in run.stdout, f"password printed on stdout of {run.args}"
            assert pw not in run.stderr, f"password printed on stderr of {run.args}"
