"""Bad specs and arguments through the real CLI: each exits 2 with one line naming the
problem, shows no traceback, and makes zero AWS calls (issue 2, Acceptance: bad input).

Zero calls is proved twice over: `SessionFactory.client` (the one door to AWS) is replaced by
a recorder that raises, botocore's `Endpoint.make_request` (the wire) likewise, and
AWS_ENDPOINT_URL points at a port nothing listens on.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.endpoint
import pytest
import yaml
from typer.testing import CliRunner

import dbrepl.aws.session
from dbrepl.cli import app

ROOT = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((ROOT / "config" / "environments.yaml").read_text(encoding="utf-8"))
DEAD_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens


class AwsCallMade(AssertionError):
    pass


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every attempt to reach AWS."""
    calls: list[str] = []

    def no_client(self: Any, service: str, env: str | None = None) -> Any:
        calls.append(f"client:{service}:{env}")
        raise AwsCallMade(f"AWS client {service} requested during bad input")

    def no_request(self: Any, operation_model: Any, request_dict: Any) -> Any:
        calls.append(f"request:{operation_model.name}")
        raise AwsCallMade(f"AWS request {operation_model.name} sent during bad input")

    monkeypatch.setattr(dbrepl.aws.session.SessionFactory, "client", no_client)
    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", no_request)
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
    for k, v in (("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(k, v)  # so only the input, never the machine, decides the outcome
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("DBREPL_SUFFIX", raising=False)
    monkeypatch.delenv("DBREPL_CONFIG", raising=False)
    monkeypatch.delenv("DBREPL_DEBUG", raising=False)
    return calls


def _spec(tmp_path: Path, mutate: Any = None, *, text: str | None = None) -> Path:
    path = tmp_path / "spec.yaml"
    if text is None:
        data = copy.deepcopy(BASE)
        data["timing"].update(poll_delay=0, retry_delay=0)
        # No CA bundle here: say so, or plan refuses the protected prod (tested below).
        data["databases"]["tls"]["verify"] = False
        if mutate:
            mutate(data)
        text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def _set(path: str, value: Any) -> Any:
    """A mutator: set a dotted key (list indexes as integers) to value."""

    def mutate(data: dict) -> None:
        node: Any = data
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _run(args: list[str]) -> Any:
    # click >= 8.2: stdout and stderr are kept apart, `output` is what a terminal would show.
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _check(result: Any, calls: list[str], *keywords: str, path: Path | None = None) -> str:
    """Exit 2, one line, no traceback, nothing on stdout, no AWS call; every keyword in the line.
    Keywords are looked for in the line with `path` cut out (pytest's tmp_path holds the test
    id, which would match anything)."""
    shown = result.output
    lines = [ln for ln in shown.splitlines() if ln.strip()]
    assert result.exit_code == 2, f"exit {result.exit_code}, output:\n{shown}"
    assert "Traceback" not in shown
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{shown}"
    line = lines[0]
    text = line.replace(str(path), "<spec>") if path is not None else line
    for k in keywords:
        assert k.lower() in text.lower(), f"{k!r} not in {line!r}"
    assert result.stdout.strip() == "", f"error went to stdout: {result.stdout!r}"
    assert calls == [], f"AWS was called: {calls}"
    return line


# --------------------------------------------------------------------------- bad specs

SPEC_CASES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("unknown-key-top", _set("colour", "blue"), ("colour", "unknown key")),
    ("unknown-key-nested", _set("aurora.engine_verison", "8.0.mysql_aurora.3.10.0"),
     ("aurora.engine_verison", "unknown key")),
    ("unknown-key-in-env", _set("environments.dev.cidr_block", "10.1.0.0/16"),
     ("environments.dev.cidr_block", "unknown key")),
    ("overlapping-vpcs", _set("environments.staging", {"cidr": "10.1.128.0/17", "subnets": [
        {"cidr": "10.1.128.0/24", "az_index": 0}, {"cidr": "10.1.129.0/24", "az_index": 1}]}),
     ("overlap", "10.1.0.0/16", "10.1.128.0/17")),
    ("subnet-outside-vpc", _set("environments.dev.subnets.1", {"cidr": "10.9.2.0/24", "az_index": 1}),
     ("10.9.2.0/24", "outside")),
    ("overlapping-subnets", _set("environments.dev.subnets.1", {"cidr": "10.1.1.128/25", "az_index": 1}),
     ("overlap", "10.1.1.128/25")),
    ("invalid-cidr", _set("environments.prod.cidr", "10.3.0.0/33"), ("10.3.0.0/33", "CIDR")),
    ("cidr-host-bits", _set("environments.prod.cidr", "10.3.0.1/16"), ("10.3.0.1/16", "CIDR")),
    ("peering-unknown-env", _set("peering.1", ["staging", "qa"]), ("peering", "unknown environment", "qa")),
    ("peering-self", _set("peering.1", ["prod", "prod"]), ("peering", "itself")),
    ("hub-not-peered", _set("peering", [["dev", "staging"], ["dev", "prod"]]), ("sync.hub", "not peered", "prod")),
    ("unknown-hub", _set("sync.hub", "qa"), ("sync.hub", "qa")),
    ("bad-engine-version", _set("aurora.engine_version", "8.0.latest"), ("engine_version", "8.0.mysql_aurora")),
    ("bad-instance-class", _set("aurora.instance_class", "r5.large"), ("instance_class", "db.r5.large")),
    ("log-retention-8", _set("lambdas.log_retention_days", 8), ("log_retention_days", "retention")),
    ("python39", _set("lambdas.runtime", "python3.9"), ("runtime", "python3.12")),
    ("system-schema", _set("sync.databases", ["app", "mysql"]), ("sync.databases", "system schema")),
    ("missing-environments", lambda d: d.pop("environments"), ("environments", "missing")),
    ("bad-env-name", lambda d: d["environments"].__setitem__("Dev", d["environments"].pop("dev")),
     ("environment name", "Dev")),
    ("one-subnet", _set("environments.dev.subnets", [{"cidr": "10.1.1.0/24", "az_index": 0}]),
     ("environments.dev.subnets",)),
    ("version-2", _set("version", 2), ("version",)),
    ("short-backup-window", _set("aurora.backup_window", "03:00-03:20"), ("backup_window", "30 minutes")),
    ("short-maintenance-window", _set("aurora.maintenance_window", "sun:05:00-sun:05:15"),
     ("maintenance_window", "30 minutes")),
    ("windows-overlap-across-midnight", lambda d: d.setdefault("aurora", {}).update(
        backup_window="23:30-00:30", maintenance_window="tue:00:00-tue:01:00"),
     ("backup_window 23:30-00:30 overlaps maintenance_window tue:00:00-tue:01:00", "tue:00:00")),
    ("subnet-both-az-forms", _set("environments.dev.subnets.0", {"cidr": "10.1.1.0/24", "az_index": 0,
                                                                 "az_id": "use1-az1"}), ("exactly one", "az_id")),
    ("subnet-no-az", _set("environments.dev.subnets.0", {"cidr": "10.1.1.0/24"}), ("exactly one", "az_index")),
    ("bad-az-id", _set("environments.dev.subnets.0", {"cidr": "10.1.1.0/24", "az_id": "us-east-1a"}),
     ("az_id", "use1-az1")),
    # Issue 12: schedules and alarm notifications.
    ("schedule-every-and-cron", _set("sync.schedules", [{"route": "dev->staging", "every": "1 hour",
                                                         "cron": "0 3 * * ? *"}]), ("exactly one", "every", "cron")),
    ("schedule-neither", _set("sync.schedules", [{"route": "dev->staging"}]), ("exactly one", "every", "cron")),
    ("schedule-cron-no-period", _set("sync.schedules", [{"route": "dev->staging", "cron": "0 3 * * ? *"}]),
     ("cron", "period", "1 day")),
    ("schedule-cron-five-fields", _set("sync.schedules", [{"route": "dev->staging", "cron": "0 3 * * *",
                                                           "period": "1 day"}]), ("cron", "six fields")),
    ("schedule-bad-every", _set("sync.schedules", [{"route": "dev->staging", "every": "hourly"}]),
     ("hourly", "N minutes")),
    ("schedule-too-long", _set("sync.schedules", [{"route": "dev->staging", "every": "4 days"}]),
     ("4 days", "staleness alarm", "84 hours")),
    ("schedule-unknown-env", _set("sync.schedules", [{"route": "dev->qa", "every": "1 hour"}]),
     ("sync.schedules[0]", "qa", "unknown environment")),
    ("schedule-same-env", _set("sync.schedules", [{"route": "dev->dev", "every": "1 hour"}]), ("dev->dev", "itself")),
    ("schedule-bad-route", _set("sync.schedules", [{"route": "dev to staging", "every": "1 hour"}]),
     ("source->target",)),
    ("schedule-into-protected", _set("sync.schedules", [{"route": "staging->prod", "kind": "schema",
                                                         "every": "1 day"}]),
     ("sync.schedules[0]", "prod is protected", "allow_protected: true")),
    ("schedule-twice", _set("sync.schedules", [{"route": "dev->staging", "every": "1 hour"},
                                               {"route": "dev->staging", "every": "2 hours"}]),
     ("scheduled twice",)),
    ("schedule-unknown-key", _set("sync.schedules", [{"route": "dev->staging", "every": "1 hour", "evry": "x"}]),
     ("evry", "unknown key")),
    ("data-schedule-no-tables", _set("sync.reference_tables", []), ("sync.schedules[0]", "reference_tables")),
    ("notify-not-an-address", _set("alarms.notify", ["ops.example.com"]), ("alarms.notify", "name@example.com")),
    # Issue 18, point 3: Serverless v2 as RDS takes it.
    ("serverless-without-range", _set("aurora.instance_class", "db.serverless"),
     ("aurora", "db.serverless needs aurora.serverless_v2", "serverless_v2: {min_acu: 0.5, max_acu: 8}")),
    ("serverless-min-above-max", _set("aurora.serverless_v2", {"min_acu": 8, "max_acu": 4}),
     ("aurora.serverless_v2", "min_acu 8 is above max_acu 4")),
    ("serverless-not-half-step", _set("aurora.serverless_v2", {"min_acu": 0.5, "max_acu": 8.3}),
     ("aurora.serverless_v2.max_acu", "half step", "8.5")),
    ("serverless-max-above-256", _set("aurora.serverless_v2", {"min_acu": 1, "max_acu": 512}),
     ("aurora.serverless_v2.max_acu", "1 to 256")),
    ("serverless-max-below-1", _set("aurora.serverless_v2", {"min_acu": 0, "max_acu": 0.5}),
     ("aurora.serverless_v2.max_acu", "1 to 256")),
    ("serverless-negative-min", _set("aurora.serverless_v2", {"min_acu": -1, "max_acu": 4}),
     ("aurora.serverless_v2.min_acu", "0 to 256")),
    ("serverless-pause-on-old-version", lambda d: d["aurora"].update(
        engine_version="8.0.mysql_aurora.3.05.2", serverless_v2={"min_acu": 0, "max_acu": 4}),
     ("min_acu 0", "3.08.0", "min_acu 0.5")),
    ("serverless-256-on-old-version", lambda d: d["aurora"].update(
        engine_version="8.0.mysql_aurora.3.04.3", serverless_v2={"min_acu": 1, "max_acu": 256}),
     ("max_acu above 128", "3.06.0")),
    ("serverless-on-aurora-mysql-2", lambda d: d["aurora"].update(
        engine_version="5.7.mysql_aurora.2.11.2", serverless_v2={"min_acu": 1, "max_acu": 4}),
     ("serverless_v2", "5.7.mysql_aurora.2.11.2", "3.02.0")),
    ("serverless-unknown-key", _set("aurora.serverless_v2", {"min_acu": 1, "max_acu": 4, "pause": 300}),
     ("aurora.serverless_v2.pause", "unknown key")),
    # Issue 18, point 6: what PutMetricAlarm would refuse half-way through apply.
    ("alarm-period-45", _set("alarms.period", 45), ("alarms.period", "45", "10, 20, 30 or a multiple of 60")),
    ("alarm-period-0", _set("alarms.period", 0), ("alarms.period",)),
    ("alarm-range-over-a-day", _set("alarms.evaluation_periods", 1441),
     ("alarms", "period 60 x evaluation_periods 1441", "1 day", "1440 or less")),
    ("alarm-range-over-7-days", lambda d: d["alarms"].update(period=3600, evaluation_periods=169),
     ("alarms", "7 days", "168 or less")),
]


@pytest.mark.parametrize("mutate,keywords", [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES])
def test_bad_spec(tmp_path: Path, aws_calls: list[str], mutate: Any, keywords: tuple[str, ...]) -> None:
    spec = _spec(tmp_path, mutate)
    line = _check(_run(["plan", "--suffix", "t1", "--config", str(spec)]), aws_calls, *keywords, path=spec)
    assert line.startswith(f"error: {spec}: ")  # names the file


TEXT_CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("malformed-yaml", "environments:\n  dev: {cidr: 10.1.0.0/16\npeering: [\n", ("malformed YAML", "line")),
    ("tab-indented-yaml", "version: 1\nenvironments:\n\tdev: {}\n", ("malformed YAML",)),
    ("spec-is-a-list", "- dev\n- staging\n", ("mapping",)),
    ("spec-is-a-scalar", "just words\n", ("mapping",)),
    ("empty-file", "", ("mapping",)),
]


@pytest.mark.parametrize("text,keywords", [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_bad_spec_text(tmp_path: Path, aws_calls: list[str], text: str, keywords: tuple[str, ...]) -> None:
    spec = _spec(tmp_path, text=text)
    line = _check(_run(["plan", "--suffix", "t1", "--config", str(spec)]), aws_calls, *keywords, path=spec)
    assert line.startswith(f"error: {spec}: ")


def test_missing_file(tmp_path: Path, aws_calls: list[str]) -> None:
    missing = tmp_path / "nope.yaml"
    _check(_run(["plan", "--suffix", "t1", "--config", str(missing)]), aws_calls, "not found", "--config", path=missing)


def test_config_is_a_directory(tmp_path: Path, aws_calls: list[str]) -> None:
    _check(_run(["plan", "--suffix", "t1", "--config", str(tmp_path)]), aws_calls, "cannot read", "IsADirectoryError",
           path=tmp_path)


def test_not_utf8(tmp_path: Path, aws_calls: list[str]) -> None:
    p = tmp_path / "latin1.yaml"
    p.write_bytes(b"version: 1\n# caf\xe9\n")
    _check(_run(["plan", "--suffix", "t1", "--config", str(p)]), aws_calls, "cannot read", "UnicodeDecodeError", path=p)


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("suffix,keywords", [
    ("Test123", ("invalid suffix", "Test123")),
    ("a" * 21, ("invalid suffix", "1-20")),
    ("", ("suffix",)),
    ("under_score", ("invalid suffix", "under_score")),
    ("sp ace", ("invalid suffix",)),
    # RDS identifiers end with the suffix: no leading or trailing hyphen, no two in a row.
    ("-x", ("invalid suffix", "'-x'", "no leading or trailing '-'")),
    ("x-", ("invalid suffix", "'x-'", "trailing")),
    ("a--b", ("invalid suffix", "'a--b'", "no '--'")),
], ids=["uppercase", "too-long", "empty", "underscore", "space", "leading-hyphen", "trailing-hyphen",
        "double-hyphen"])
@pytest.mark.parametrize("command", ["plan", "apply", "destroy", "status"])
def test_bad_suffix(tmp_path: Path, aws_calls: list[str], command: str, suffix: str,
                    keywords: tuple[str, ...]) -> None:
    spec = _spec(tmp_path)
    args = [command, "--suffix", suffix, "--config", str(spec)]
    if command in ("apply", "destroy"):
        args.append("--yes")
    _check(_run(args), aws_calls, *keywords)


def test_no_suffix_at_all(tmp_path: Path, aws_calls: list[str]) -> None:
    _check(_run(["plan", "--config", str(_spec(tmp_path))]), aws_calls, "no suffix", "DBREPL_SUFFIX")


def test_bad_suffix_from_environment(tmp_path: Path, aws_calls: list[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBREPL_SUFFIX", "BAD")
    _check(_run(["plan", "--config", str(_spec(tmp_path))]), aws_calls, "invalid suffix", "BAD")


@pytest.mark.parametrize("command", ["plan", "apply", "destroy", "status"])
def test_unknown_env(tmp_path: Path, aws_calls: list[str], command: str) -> None:
    args = [command, "--suffix", "t1", "--config", str(_spec(tmp_path)), "--env", "dev", "--env", "qa"]
    if command in ("apply", "destroy"):
        args.append("--yes")
    _check(_run(args), aws_calls, "unknown environment", "qa", "--env")


@pytest.mark.parametrize("command", ["apply", "destroy"])
def test_needs_yes_without_terminal(tmp_path: Path, aws_calls: list[str], command: str) -> None:
    result = CliRunner().invoke(app, [command, "--suffix", "t1", "--config", str(_spec(tmp_path))],
                                input="y\n", catch_exceptions=False)  # a piped "y" is not a terminal
    _check(result, aws_calls, "--yes", command)


def test_bad_spec_reported_before_bad_suffix_touches_nothing(tmp_path: Path, aws_calls: list[str]) -> None:
    """Two problems at once still make one line and no call."""
    spec = _spec(tmp_path, _set("lambdas.runtime", "python3.9"))
    _check(_run(["apply", "--suffix", "BAD", "--config", str(spec)]), aws_calls, "python3.12")


# Error text is escaped before rich prints it: square brackets from the spec or the arguments
# are kept verbatim, and a "[/...]" must not crash the error handler.


def test_suffix_with_closing_tag(tmp_path: Path, aws_calls: list[str]) -> None:
    result = CliRunner().invoke(app, ["plan", "--suffix", "[/b]", "--config", str(_spec(tmp_path))])
    _check(result, aws_calls, "invalid suffix", "[/b]")


def test_suffix_with_markup_kept_verbatim(tmp_path: Path, aws_calls: list[str]) -> None:
    _check(_run(["plan", "--suffix", "[bold]x", "--config", str(_spec(tmp_path))]), aws_calls,
           "invalid suffix", "'[bold]x'")


def test_hub_fix_hint_shown(tmp_path: Path, aws_calls: list[str]) -> None:
    spec = _spec(tmp_path, _set("peering", [["dev", "staging"], ["dev", "prod"]]))
    _check(_run(["plan", "--suffix", "t1", "--config", str(spec)]), aws_calls,
           "add [staging, prod] to peering", path=spec)


def test_physical_name_refused_before_any_call(tmp_path: Path, aws_calls: list[str]) -> None:
    """An environment called 'sg' would name its Aurora security group 'sg-aurora-sg-t1', which EC2 refuses."""
    def rename(d: dict) -> None:
        d["environments"]["sg"] = d["environments"].pop("dev")
        d["peering"][0] = ["sg", "staging"]
        d["bucket"]["kms_env"] = "sg"
        d["sync"]["schedules"] = [{"route": "sg->staging", "kind": "data", "every": "1 hour"}]

    spec = _spec(tmp_path, rename)
    _check(_run(["plan", "--suffix", "t1", "--config", str(spec)]), aws_calls,
           "--suffix 't1'", "security group name 'sg-aurora-sg-t1'", "starts with 'sg-'", path=spec)


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_protected_without_ca_bundle_refused(tmp_path: Path, aws_calls: list[str], command: str) -> None:
    """Prod would be reached over TLS nobody verifies: refused unless the spec says verify: false."""
    spec = _spec(tmp_path, _set("databases.tls.verify", True))
    args = [command, "--suffix", "t1", "--config", str(spec), *(["--yes"] if command == "apply" else [])]
    _check(_run(args), aws_calls, "databases.tls.ca_bundle", "prod is protected", "global-bundle.pem",
           "databases.tls.verify: false")


@pytest.mark.parametrize("mutate", [
    _set("databases.tls.verify", False),
    lambda d: (d["databases"]["tls"].update(verify=True), d["environments"]["prod"].update(protected=False)),
], ids=["verify-false-said", "nothing-protected"])
def test_unverified_tls_allowed_when_said_or_unprotected(tmp_path: Path, aws_calls: list[str], mutate: Any) -> None:
    r = CliRunner().invoke(app, ["plan", "--suffix", "t1", "--config", str(_spec(tmp_path, mutate))])
    assert "AwsCallMade" in r.output and aws_calls, r.output  # past the checks: on its way to AWS


def test_protected_with_ca_bundle_allowed(tmp_path: Path, aws_calls: list[str]) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    spec = _spec(tmp_path, _set("databases.tls", {"ca_bundle": "ca.pem", "verify": True}))
    r = CliRunner().invoke(app, ["plan", "--suffix", "t1", "--config", str(spec)])
    assert "AwsCallMade" in r.output and aws_calls, r.output


def test_guard_sees_aws_calls(tmp_path: Path, aws_calls: list[str]) -> None:
    """Control: a good spec and suffix do reach for AWS, and the guard records it."""
    result = CliRunner().invoke(app, ["plan", "--suffix", "t1", "--config", str(_spec(tmp_path))])
    assert aws_calls, result.output
    assert result.exit_code == 1
    assert "AwsCallMade" in result.output


# Usage errors (unknown option or command, missing option value) are bad arguments too.
# They get one line and exit 2 like every other bad input.
USAGE_CASES = [
    (["plan", "--suffix", "t1", "--bogus"], ("--bogus",)),
    (["frobnicate"], ("frobnicate",)),
    (["plan", "--suffix", "t1", "--env"], ("--env",)),
]


@pytest.mark.parametrize("args,keywords", USAGE_CASES, ids=["unknown-option", "unknown-command", "option-no-value"])
def test_usage_errors_one_line(aws_calls: list[str], args: list[str], keywords: tuple[str, ...]) -> None:
    _check(_run(args), aws_calls, *keywords)


@pytest.mark.parametrize("args", [c[0] for c in USAGE_CASES], ids=["unknown-option", "unknown-command",
                                                                  "option-no-value"])
def test_usage_errors_exit_2(aws_calls: list[str], args: list[str]) -> None:
    result = _run(args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert aws_calls == []


# --------------------------------------------------------------------------- the console script

def _subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBREPL_", "AWS_"))}
    env.update(AWS_ENDPOINT_URL=DEAD_ENDPOINT, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_REGION="us-east-1", HOME=str(tmp_path))
    return env


@pytest.mark.parametrize("mutate,keywords", [
    (_set("environments.staging.cidr", "10.1.0.0/16"), ("overlap",)),
    (_set("lambdas.runtime", "python3.9"), ("python3.12",)),
], ids=["overlapping-vpcs", "python39"])
def test_console_script(tmp_path: Path, mutate: Any, keywords: tuple[str, ...]) -> None:
    """The installed `dbrepl` script (a real process, stdin not a terminal) behaves the same:
    exit 2, one line on stderr, nothing on stdout. Against a dead endpoint any AWS call would
    fail with exit 1 after retries, not 2."""
    spec = _spec(tmp_path, mutate)
    for argv in (["plan", "--suffix", "t1"], ["apply", "--suffix", "t1", "--yes"]):
        p = subprocess.run([_dbrepl(), *argv, "--config", str(spec)], capture_output=True, text=True,
                           env=_subprocess_env(tmp_path), stdin=subprocess.DEVNULL, timeout=60)
        assert p.returncode == 2, p.stderr
        assert p.stdout == ""
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        assert all(k in lines[0] for k in keywords), lines[0]


def test_console_script_apply_without_yes(tmp_path: Path) -> None:
    p = subprocess.run([_dbrepl(), "apply", "--suffix", "t1", "--config", str(_spec(tmp_path))],
                       capture_output=True, text=True, env=_subprocess_env(tmp_path),
                       stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--yes" in lines[0], p.stderr


def _dbrepl() -> str:
    exe = Path(sys.executable).with_name("dbrepl")
    if exe.exists():
        return str(exe)
    import shutil

    found = shutil.which("dbrepl")
    if not found:
        pytest.skip("the dbrepl console script is not installed (pip install -e .)")
    return found


# Protected environments (issue 11, point 1): destroy refuses to delete anything of prod without
# --include-protected: exit 2, one line naming prod and the flag, before any write. It needs a
# destroy plan, so AWS is read (moto in-process) but never written.


@pytest.fixture
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Any:
    from moto import mock_aws

    for k, v in (("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(k, v)
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "DBREPL_SUFFIX", "DBREPL_CONFIG", "DBREPL_DEBUG"):
        monkeypatch.delenv(k, raising=False)
    with mock_aws():
        yield


def _writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every mutating call any dbrepl client makes."""
    writes: list[str] = []
    real = dbrepl.aws.session.SessionFactory.client

    def recording(self: Any, service: str, env: str | None = None) -> Any:
        cli = real(self, service, env)
        if not getattr(cli, "_recorded", False):
            cli.meta.events.register("before-call.*.*", lambda model, **kw: None if model.name.startswith(
                ("Describe", "Get", "List", "Head")) else writes.append(model.name))
            cli._recorded = True
        return cli

    monkeypatch.setattr(dbrepl.aws.session.SessionFactory, "client", recording)
    return writes


def test_destroy_refuses_a_protected_environment(tmp_path: Path, moto_account: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    # A suffix no other test uses: under the session-wide mock of tests/aws, estates of other
    # suffixes share this account.
    # One resource of prod's, as dbrepl tags it: enough for the destroy plan to reach prod.
    boto3.client("ec2").create_vpc(CidrBlock="10.3.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [
        {"Key": "Name", "Value": "prod-vpc-pr0t"}, {"Key": "dbrepl:suffix", "Value": "pr0t"},
        {"Key": "dbrepl:env", "Value": "prod"}, {"Key": "dbrepl:step", "Value": "network"},
        {"Key": "dbrepl:managed-by", "Value": "dbrepl"}, {"Key": "Environment", "Value": "prod"}]}])
    writes = _writes(monkeypatch)
    spec = _spec(tmp_path)
    result = _run(["destroy", "--suffix", "pr0t", "--config", str(spec), "--yes"])
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for k in ("protected", "prod", "--include-protected", "nothing was changed"):
        assert k in lines[0], lines[0]
    assert result.stdout.strip() == ""
    assert writes == []
    vpcs = boto3.client("ec2").describe_vpcs(Filters=[{"Name": "tag:dbrepl:suffix", "Values": ["pr0t"]}])["Vpcs"]
    assert len(vpcs) == 1
    # Only dev: nothing protected in the plan, no flag needed (and nothing of dev to delete).
    ok = _run(["destroy", "--suffix", "pr0t", "--config", str(spec), "--env", "dev", "--yes"])
    assert ok.exit_code == 0 and "Nothing to destroy." in ok.stdout, ok.output
