"""How plans and status read (issue 19, items 3 and 9), without AWS: replacements counted and
marked refused, no None printed as a change, long JSON summarised, status's summary line and its
full values when piped. The same through moto: tests/aws/test_cli_newcomer.py."""

from __future__ import annotations

import io
import json

from rich.console import Console

from dbrepl.engine import Change, Plan
from dbrepl.render import LONG_VALUE, render_plan, render_status, status_summary

BODY = {"widgets": [{"type": "metric", "properties": {"title": f"widget {i}", "metrics": [["AWS/RDS", "x"]]}}
                    for i in range(60)]}


def _text(plan: Plan) -> str:
    console = Console(record=True, width=200, soft_wrap=True)  # as dbrepl.cli.common.out
    render_plan(console, plan)
    return console.export_text()


def test_a_replacement_is_counted_and_marked_refused() -> None:
    plan = Plan([
        Change("replace", "AWS::EC2::VPC", "dev", "dev-vpc-s", {"CidrBlock": ("10.1.0.0/16", "10.9.0.0/16")},
               "network", "vpc", refused="CidrBlock 10.1.0.0/16 -> 10.9.0.0/16 cannot change in place"),
        Change("update", "AWS::Logs::LogGroup", "shared", "g", {"RetentionInDays": (30, 7)}, "lambdas", "g"),
    ])
    text = _text(plan)
    assert "-/+ AWS::EC2::VPC dev-vpc-s" in text
    assert "refused: CidrBlock 10.1.0.0/16 -> 10.9.0.0/16 cannot change in place; apply refuses this plan" in text
    assert "Plan: 0 to create, 1 to update, 1 to replace, 0 to delete." in text
    assert plan.summary == {"create": 0, "update": 1, "replace": 1, "delete": 0}
    assert plan.to_json()["refused"] == 1 and plan.to_json()["changes"][0]["refused"].startswith("CidrBlock")
    assert "refused" not in plan.to_json()["changes"][1]


def test_no_replacement_keeps_the_summary_short() -> None:
    text = _text(Plan([Change("create", "T", "dev", "n", {"A": (None, 1)})]))
    assert "Plan: 1 to create, 0 to update, 0 to delete." in text and "replace" not in text


def test_a_field_left_to_aws_is_not_printed_as_a_change() -> None:
    text = _text(Plan([Change("create", "AWS::CloudWatch::Alarm", "dev", "a",
                              {"DatapointsToAlarm": (None, None), "Threshold": (None, 1.0)})]))
    assert "DatapointsToAlarm" not in text and "None" not in text and "Threshold: 1.0" in text
    upd = _text(Plan([Change("update", "AWS::CloudWatch::Alarm", "dev", "a", {"DatapointsToAlarm": (None, 3)})]))
    assert "DatapointsToAlarm: (none) -> 3" in upd and "None" not in upd


def test_long_json_is_summarised_with_length_and_hash() -> None:
    size = len(json.dumps(BODY, sort_keys=True))
    assert size > 4000
    text = _text(Plan([Change("create", "AWS::CloudWatch::Dashboard", "shared", "d", {"DashboardBody": (None, BODY)})]))
    line = next(x for x in text.splitlines() if "DashboardBody" in x)
    assert f"(JSON object, {size:,} characters, sha256 " in line and "in full: plan --json" in line
    assert len(line) < LONG_VALUE + 40
    changed = {"widgets": BODY["widgets"][:-1], "start": "-PT3H"}
    upd = _text(Plan([Change("update", "AWS::CloudWatch::Dashboard", "shared", "d",
                             {"DashboardBody": (BODY, changed)})]))
    line = next(x for x in upd.splitlines() if "DashboardBody" in x)
    assert "->" in line and line.endswith("(differs in: start, widgets; in full: plan --json)")
    assert line.count("in full") == 1
    a, b = line.split("->")
    assert a.split("sha256 ")[1][:12] != b.split("sha256 ")[1][:12]


def test_short_values_stay_whole() -> None:
    text = _text(Plan([Change("update", "T", "dev", "n", {"Tags": ({"a": None}, {"a": "1"})})]))
    assert 'Tags: {"a": null} -> {"a": "1"}' in text


STATUS = {
    "suffix": "s", "outputs": {"SchemaReplicationFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:"
                                                               "db-sync-schema-replication-a-rather-long-suffix"},
    "resources": [{"env": "dev", "type": "AWS::EC2::VPC", "name": "dev-vpc-s", "state": "ok"},
                  {"env": "dev", "type": "AWS::Logs::LogGroup", "name": "g", "state": "drifted"},
                  {"env": "dev", "type": "AWS::SNS::Topic", "name": "t", "state": "missing"}],
    "summary": {"ok": 1, "missing": 1, "drifted": 1, "extra": 0},
    "alarms": [{"name": "a1", "env": "dev", "state": "OK"}, {"name": "a2", "env": "dev", "state": "ALARM"},
               {"name": "a3", "env": "dev", "state": "OK"}],
    "routes": [{"route": "dev->staging", "kind": "data", "schedule": "every 1 hour", "last_run": None,
                "age_seconds": None, "status": "never run", "dry_run": False, "rows": None, "statements": None}],
}


def test_status_summary_line() -> None:
    assert status_summary(STATUS) == ("3 resources: 1 ok, 1 drifted, 1 missing, 0 extra; alarms: 3 (1 ALARM, 2 OK); "
                                      "sync routes: 1 (1 never run)")
    unread = {**STATUS, "alarms": [], "routes": [], "routes_error": "denied"}
    assert status_summary(unread).endswith("; alarms: 0; sync routes: unreadable")


def test_status_piped_keeps_every_value_whole() -> None:
    buf = io.StringIO()
    render_status(Console(file=buf, width=80), STATUS)  # a file: not a terminal
    text = buf.getvalue()
    assert STATUS["outputs"]["SchemaReplicationFunctionArn"] in text and "…" not in text
    assert text.strip().splitlines()[-1] == status_summary(STATUS)


def test_status_on_a_terminal_fits_the_terminal() -> None:
    buf = io.StringIO()
    render_status(Console(file=buf, width=80, force_terminal=True, color_system=None), STATUS)
    assert max(len(x) for x in buf.getvalue().splitlines()) <= 80
