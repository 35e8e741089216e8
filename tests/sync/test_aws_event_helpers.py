"""The event and record helpers both sync functions share (dbrepl/sync/aws.py); no I/O."""

from __future__ import annotations

import json

import pytest

from dbrepl.sync import aws
from dbrepl.sync.errors import InvalidInput


@pytest.mark.parametrize("event, message", [
    ([], "must be a JSON object"), ("x", "must be a JSON object"), (None, "must be a JSON object"),
    ({"source_env": "dev", "truncate": True, "zz": 1}, "unknown event key(s): truncate, zz"),
])
def test_check_event_refuses(event, message):
    with pytest.raises(InvalidInput) as exc:
        aws.check_event(event, {"source_env"})
    assert message in str(exc.value)


def test_check_event_and_event_bool_accept():
    event = aws.check_event({"dry_run": True}, {"dry_run", "verbose"})
    assert aws.event_bool(event, "dry_run") is True
    assert aws.event_bool(event, "verbose") is False  # absent: false
    for bad in ("true", 1, None):
        with pytest.raises(InvalidInput, match="dry_run must be true or false"):
            aws.event_bool({"dry_run": bad}, "dry_run")


def test_client_cache_makes_one_client_per_service_on_first_use():
    made = []
    get = aws.client_cache(lambda service: made.append(service) or object())
    assert made == []
    assert get("ssm") is get("ssm")
    get("s3")
    assert made == ["ssm", "s3"]


class FakeSsm:
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.put: dict[str, str] = {}

    def put_parameter(self, Name, Value, Type, Overwrite):  # noqa: N803 - boto3's names
        if self.fail:
            raise RuntimeError("AccessDenied")
        self.put[Name] = Value


def test_record_run_writes_notes_or_reports_failure():
    ssm = FakeSsm()
    result = {"source": "dev", "target": "staging", "status": "success"}
    aws.record_run(result, {}, lambda s: ssm, "data", {"status": "success"})
    assert ssm.put == {} and "record" not in result  # no suffix: no record

    aws.record_run(result, {"ENVIRONMENT_SUFFIX": "abc"}, lambda s: ssm, "data",
                   {"status": "success", "counts": {"rows_synced": 2}})
    name = "/db-replication/abc/last-data-sync/dev-to-staging"
    assert list(ssm.put) == [name] and result["record"] == name
    assert json.loads(ssm.put[name])["timestamp"] == result["recorded_at"]

    failed = {"source": "dev", "target": "staging"}
    aws.record_run(failed, {"ENVIRONMENT_SUFFIX": "abc"}, lambda s: FakeSsm(fail=True), "schema",
                   {"status": "error"})
    assert "AccessDenied" in failed["record_error"] and "record" not in failed

    bad = {"source": "dev", "target": "staging"}
    aws.record_run(bad, {"ENVIRONMENT_SUFFIX": "a/b"}, lambda s: ssm, "data", {"status": "success"})
    assert "suffix" in bad["record_error"] and len(ssm.put) == 1
