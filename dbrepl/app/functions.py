"""The deployed sync functions of an estate: invoke one, or run its handler's code here with
the function's configured environment (`--direct`, and always in the sandbox, where nothing
runs inside moto's Lambda); the last-run records in SSM; the migration scripts bucket."""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dbrepl import names
from dbrepl.aws import error_code, error_reason
from dbrepl.errors import AwsFailure, DbreplError, sync_error
from dbrepl.sync import contract
from dbrepl.sync.errors import SyncError

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
            progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """`progress` reaches the data handler's code when it runs here (`direct`); an
        invoked function reports nothing until it returns."""
        return self.run_direct(kind, event, progress=progress) if direct else self.invoke(kind, event)

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

    def run_direct(self, kind: str, event: dict[str, Any],
                   progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """The handler's code in this process, with the function's environment variables
        (`progress`: the data sync's Progress hook; the schema runner takes none)."""
        variables = self.function_environment(kind)
        environ = {**os.environ, **variables}
        if self.sandbox is not None:  # in the sandbox: the clusters' MariaDB stand-ins
            environ.update(self.sandbox.database_environment(variables))
        runner = getattr(handler_module(kind), EVENT_RUNNERS[kind])
        extra = {"progress": progress} if progress is not None else {}
        result = runner(event, environ=environ, client=self.client, **extra)
        # What Lambda would have returned: the body is JSON (dates as text).
        return dict(json.loads(json.dumps(result, default=str)))

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
            left = f"is estate {suffix} deployed? run dbrepl apply --suffix {suffix}"
        raise AwsFailure(what, error_reason(exc), left) from None
    except BotoCoreError as exc:
        raise AwsFailure(what, error_reason(exc)) from None
    except SyncError as exc:
        raise sync_error(exc) from None
