"""The deployed sync functions of an estate: invoke one, or run its handler's code here with
the function's configured environment (`--direct`, and always in the sandbox, where nothing
runs inside moto's Lambda); the last-run records in SSM; the migration scripts bucket."""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dbrepl import names
from dbrepl.aws import error_code, error_reason
from dbrepl.errors import AwsFailure, DbreplError, sync_error
from dbrepl.sync import contract
from dbrepl.sync.errors import SyncError
from dbrepl.sync.handlers.run import run_event

if TYPE_CHECKING:
    from dbrepl.sandbox import Sandbox

# The function in each handler module that runs one event (the handler wraps it for Lambda).
EVENT_RUNNERS = {"schema": "run_schema_event", "data": "run_data_event"}


@dataclass
class Functions:
    """The estate's sync functions, their records and the scripts bucket (all in the hub's
    account and region). In the sandbox (`sandbox`) a function's databases are the stand-ins."""

    spec: Any
    suffix: str
    sessions: Any
    sandbox: Sandbox | None = None
    _account: str | None = field(default=None, repr=False)
    # The EMF lines of the runs made here (run_direct), as a function prints them on Lambda.
    emitted: list[str] = field(default_factory=list, repr=False)

    @property
    def hub(self) -> str:
        return str(self.spec.sync.hub)

    def client(self, service: str) -> Any:
        """The functions, bucket and records all live in the hub's account and region."""
        return self.sessions.client(service, self.hub)

    def function_name(self, kind: str) -> str:
        return names.function(kind, self.suffix)

    def account(self) -> str:
        if self._account is None:
            self._account = str(aws_call(lambda: self.client("sts").get_caller_identity()["Account"],
                                     "read the AWS account id"))
        return self._account

    def bucket(self) -> str:
        return names.bucket(self.suffix, self.account())

    # -- running an event

    def run(self, kind: str, event: dict[str, Any], *, direct: bool,
            progress: Callable[[Any], None] | None = None, **runner_kw: Any) -> dict[str, Any]:
        """`progress` reaches the data handler's code when it runs here (`direct`); an
        invoked function reports nothing until it returns. `runner_kw` (e.g. the schema
        runner's `online_tool`) reaches the handler's code only when it runs here."""
        return (self.run_direct(kind, event, progress=progress, **runner_kw) if direct
                else self.invoke(kind, event))

    def invoke(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke the deployed function (RequestResponse) and return its result body."""
        name = self.function_name(kind)
        client = self._invoke_client()
        resp = aws_call(lambda: self._when_ready(lambda: client.invoke(
            FunctionName=name, InvocationType="RequestResponse", Payload=json.dumps(event).encode())),
            f"invoke function {name}", self.suffix)
        raw = resp["Payload"].read()
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            raise DbreplError(f"function {name} returned something that is not JSON") from None
        if resp.get("FunctionError"):
            msg = payload.get("errorMessage") if isinstance(payload, dict) else None
            raise DbreplError(f"function {name} failed: {msg or resp['FunctionError']} (see its log group "
                              f"{names.log_group(kind, self.suffix)})")
        try:
            body = payload["body"]
            return dict(json.loads(body) if isinstance(body, str) else body)
        except (TypeError, KeyError, ValueError):
            raise DbreplError(f"function {name} answered without a result body; is it dbrepl's handler?") from None

    def _when_ready(self, call: Callable[[], Any]) -> Any:
        """Lambda refuses to invoke a function that is Pending (just made or updated) or Inactive
        (idle for weeks; the refused call starts reactivating it) with ResourceConflictException:
        the function did not run, so asking again is safe, every `timing.retry_delay`, for up to
        `timing.function_timeout_minutes`."""
        timing = self.spec.timing
        deadline = time.monotonic() + timing.function_timeout_minutes * 60
        while True:
            try:
                return call()
            except Exception as exc:
                if error_code(exc) != "ResourceConflictException" or time.monotonic() >= deadline:
                    raise
            time.sleep(timing.retry_delay)

    def _invoke_client(self) -> Any:
        # A sync may take the function's whole timeout; retrying a timed-out invoke would run
        # the sync twice, so one attempt and a read timeout longer than the function's.
        from botocore.config import Config

        cfg = Config(read_timeout=self.spec.lambdas.timeout + 60, connect_timeout=10,
                     retries={"mode": "standard", "total_max_attempts": 1})
        return self.sessions.client("lambda", self.hub, config=cfg)

    def function_environment(self, kind: str) -> dict[str, str]:
        name = self.function_name(kind)
        conf = aws_call(lambda: self.client("lambda").get_function_configuration(FunctionName=name),
                    f"read the configuration of function {name}", self.suffix)
        return dict((conf.get("Environment") or {}).get("Variables") or {})

    def handler_environment(self, variables: dict[str, str]) -> dict[str, str]:
        """A function's `variables` as its code sees them when it runs here: in the sandbox the
        endpoints are the stand-ins; the CA bundle is the spec's (the zip's copy is Lambda's)."""
        environ = dict(variables)
        if self.sandbox is not None:  # in the sandbox: the clusters' MariaDB stand-ins
            environ.update(self.sandbox.database_environment(variables))
        bundle = self.spec.databases.tls.verified_bundle
        environ[contract.TLS_CA_BUNDLE] = str(bundle) if bundle is not None else ""
        return environ

    def run_direct(self, kind: str, event: dict[str, Any],
                   progress: Callable[[Any], None] | None = None, **runner_kw: Any) -> dict[str, Any]:
        """The handler's code in this process, with the function's environment variables
        (`progress`: the data sync's Progress hook; the schema runner takes none). Like the
        handler on Lambda, a run makes one EMF metrics line (kept in `emitted`); in the sandbox
        the run's log lines and that line go to the function's log group, as Lambda's would."""
        environ = {**os.environ, **self.handler_environment(self.function_environment(kind))}
        runner = getattr(handler_module(kind), EVENT_RUNNERS[kind])
        extra = {"progress": progress} if progress is not None else {}
        extra.update(runner_kw)
        request = str(uuid.uuid4())
        started = time.monotonic()
        with _captured(self.sandbox is not None) as lines:
            lines.append((_now_ms(), f"START RequestId: {request} Version: $LATEST"))

            def emit(line: str) -> None:
                self.emitted.append(line)
                lines.append((_now_ms(), line))

            raw = run_event(kind, runner, event, environ=environ, emit=emit, client=self.client, **extra)
        elapsed = (time.monotonic() - started) * 1000
        lines += [(_now_ms(), f"END RequestId: {request}"),
                  (_now_ms(), f"REPORT RequestId: {request}\tDuration: {elapsed:.2f} ms")]
        if self.sandbox is not None:
            self._write_log(kind, lines)
        # What Lambda would have returned: the body is JSON (dates as text).
        return dict(json.loads(json.dumps(raw, default=str)))

    def _write_log(self, kind: str, lines: list[tuple[int, str]]) -> None:
        """The run's lines into a new stream of the function's log group (named as Lambda names them)."""
        group = names.log_group(kind, self.suffix)
        stream = time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + uuid.uuid4().hex
        logs = self.client("logs")
        aws_call(lambda: logs.create_log_stream(logGroupName=group, logStreamName=stream),
                 f"create a log stream in {group}", self.suffix)
        events = [{"timestamp": t, "message": m} for t, m in sorted(lines, key=lambda x: x[0])]
        if events:
            aws_call(lambda: logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events),
                     f"write the run's log to {group}", self.suffix)

    # -- records and scripts

    def records(self) -> list[dict[str, Any]]:
        """The last-sync records of both kinds (contract.record_prefix: `/db-replication/<suffix>/last-*-sync`)."""
        ssm = self.client("ssm")
        out: list[dict[str, Any]] = []
        for kind in contract.RECORD_KINDS:
            path = contract.record_prefix(self.suffix, kind)

            def read(path: str = path) -> list[dict[str, Any]]:
                params: list[dict[str, Any]] = []
                for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True):
                    params.extend(page.get("Parameters", []))
                return params

            for p in aws_call(read, f"read SSM parameters under {path}"):
                try:
                    value = json.loads(p["Value"])
                except ValueError:
                    value = {"status": "unreadable", "error": "the parameter is not JSON"}
                if not isinstance(value, dict):
                    value = {"status": "unreadable", "error": "the parameter is not a JSON object"}
                out.append({"kind": kind, "name": p["Name"], "pair": p["Name"].rsplit("/", 1)[-1], **value})
        out.sort(key=lambda r: (r["kind"], r["pair"]))
        return out

    def push(self, paths: Sequence[Path]) -> tuple[str, list[str]]:
        from dbrepl.sync.migrations import push_scripts

        bucket = self.bucket()
        s3 = self.client("s3")
        keys = aws_call(lambda: push_scripts(s3, bucket, paths), f"upload migration scripts to bucket {bucket}",
                    self.suffix)
        return bucket, list(keys)


    def stored_scripts(self, names: Sequence[str]) -> dict[str, str | None]:
        """The bucket's current content of each script name (None: not in the bucket)."""
        from dbrepl.sync.migrations import DEFAULT_PREFIX

        bucket, s3 = self.bucket(), self.client("s3")

        def read(name: str) -> str | None:
            try:
                return str(s3.get_object(Bucket=bucket, Key=DEFAULT_PREFIX + name)["Body"].read().decode("utf-8"))
            except Exception as exc:
                if error_code(exc) in ("NoSuchKey", "404"):
                    return None
                raise

        return {name: aws_call(functools.partial(read, name), f"read {name} in bucket {bucket}", self.suffix)
                for name in names}

    def restore_script(self, name: str, checksum: str) -> str | None:
        """Make the newest earlier version of script `name` whose checksum is `checksum` (what
        ran) the current one again (a copy of that version: the bucket is versioned, nothing is
        lost); its version id, or None when no version has that content."""
        from dbrepl.sync.migrations import DEFAULT_PREFIX, Script

        bucket, s3, key = self.bucket(), self.client("s3"), DEFAULT_PREFIX + name

        def restore() -> str | None:
            versions: list[dict[str, Any]] = []
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
                versions += [v for v in page.get("Versions", []) if v["Key"] == key]
            versions.sort(key=lambda v: v["LastModified"], reverse=True)
            for v in versions:
                body = s3.get_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])["Body"].read()
                if Script(name, body.decode("utf-8")).checksum != checksum:
                    continue
                if v.get("IsLatest"):
                    return str(v["VersionId"])  # already the current content
                s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key,
                                                                   "VersionId": v["VersionId"]})
                return str(v["VersionId"])
            return None

        return aws_call(restore, f"restore {name} from the versions in bucket {bucket}", self.suffix)


def _now_ms() -> int:
    return int(time.time() * 1000)


def handler_module(kind: str) -> ModuleType:
    """The handler's module inside the installed package (the zip's entry modules re-export it)."""
    return importlib.import_module(contract.handler_package_module(kind))


def aws_call(call: Callable[[], Any], what: str, suffix: str | None = None) -> Any:
    """One AWS call; a failure becomes 'Failed to <what>: <why>'."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except ClientError as exc:
        left = ""
        if error_code(exc) in ("ResourceNotFoundException", "NoSuchBucket") and suffix:
            from dbrepl.invocation import command

            left = f"is estate {suffix} deployed? run `{command('apply', suffix=suffix)}`"
        raise AwsFailure(what, error_reason(exc), left) from None
    except BotoCoreError as exc:
        raise AwsFailure(what, error_reason(exc)) from None
    except SyncError as exc:
        raise sync_error(exc) from None


class _Lines(logging.Handler):
    """Log records as Lambda's Python runtime writes them: [LEVEL] time message."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            self.lines.append((int(record.created * 1000), f"[{record.levelname}]\t{when}Z\t{record.getMessage()}"))
        except Exception:  # a log line never fails the run
            self.handleError(record)


@contextlib.contextmanager
def _captured(on: bool) -> Iterator[list[tuple[int, str]]]:
    """While active (and `on`), INFO and above of every logger also land in the yielded list."""
    lines: list[tuple[int, str]] = []
    if not on:
        yield lines
        return
    root = logging.getLogger()
    level, handler = root.level, _Lines(lines)
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
