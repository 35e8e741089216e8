"""Test harness for the provisioner: moto in-process, call counting, faults, kills.

Everything hooks into boto3 clients through the session factory's `hooks` (botocore's
event system); nothing patches boto3 globally.
"""

from __future__ import annotations

import copy
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

import dbrepl.steps  # noqa: F401
from dbrepl.aws.session import SessionFactory
from dbrepl.engine import Context, Engine, Plan
from dbrepl.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parents[2]
THROTTLED_HEADER = "x-dbrepl-test-throttled"
READ_PREFIXES = ("Describe", "Get", "List", "Head")
MOTO_CONFIG = {"iam": {"load_aws_managed_policies": True}, "lambda": {"use_docker": False}}


_BUNDLE: list[bytes] = []


def bundle() -> bytes:
    """Built once per test session (the code under test does not change mid-run)."""
    if not _BUNDLE:
        from dbrepl.bundle import build_bundle

        _BUNDLE.append(build_bundle())
    return _BUNDLE[0]


def fast_spec(**timing: Any) -> Spec:
    spec = load_spec(ROOT / "config" / "environments.yaml")
    t = {"poll_delay": 0.0, "retry_delay": 0.0, **timing}
    return spec.model_copy(update={"timing": spec.timing.model_copy(update=t)})


class Killed(BaseException):
    """Stands in for the process dying: not an Exception, so nothing may swallow it."""


@dataclass
class CallLog:
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    kill_after: int | None = None

    def hook(self, client: Any) -> None:
        client.meta.events.register("before-call.*.*", self._before)

    def _before(self, model: Any, **kw: Any) -> None:
        with self.lock:
            if self.kill_after is not None and len(self.calls) >= self.kill_after:
                raise Killed(f"killed after {self.kill_after} calls")
            self.calls.append(model.name)

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()

    @property
    def mutating(self) -> list[str]:
        return [c for c in self.calls if not c.startswith(READ_PREFIXES)]

    def counter(self) -> Counter:
        return Counter(self.calls)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kw: Any):
        yield self._body


def _ok(body: dict) -> tuple[Any, dict]:
    """A before-call short-circuit: HTTP 200 with `body`, the request never sent."""

    class Http:
        status_code = 200
        headers: dict = {}

    return Http(), {**body, "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "injected"}}


class Faults:
    """Inject AWS errors moto never produces.

    `fail(op, code, message, times)` makes operation `op` fail `times` times with a
    ClientError (before-call short-circuit, as the service would answer);
    `throttle(rate)` answers a share of all requests at the HTTP layer with the protocol's
    throttling error, so botocore's own standard-mode retry handles them.
    """

    def __init__(self, seed: int = 7) -> None:
        self.rules: dict[str, list[Any]] = {}
        self.answers: dict[str, list[Any]] = {}  # op -> [fn(params) -> parsed body | None, times]
        self.rewrites: dict[str, list[Any]] = {}  # op -> [response fn, request fn | None, times]
        self.refusals: dict[str, list[Any]] = {}  # op -> [fn(params) -> (code, message) | None, times]
        self.rate = 0.0
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter = Counter()

    def fail(self, op: str, code: str, message: str = "", times: int = 1, status: int = 400,
             when: Callable[[dict], bool] | None = None) -> None:
        """`when(params)`, if given, decides per call whether AWS would refuse it (e.g. only a
        db.serverless instance in a cluster without a capacity range); calls it spares go through
        and are not counted."""
        self.rules[op] = [code, message, times, status, when]

    def refuse(self, op: str, fn: Callable[[dict], tuple[str, str] | None], times: int = 1_000) -> None:
        """Fail `op` with `fn(params)` = (code, message) when AWS would refuse that call and moto
        does not (e.g. a restore from a snapshot whose KMS key is pending deletion); `fn` returns
        None to let the call through (not counted)."""
        self.refusals[op] = [fn, times]

    def answer(self, op: str, fn: Callable[[dict], dict | None], times: int = 1) -> None:
        """Answer `op` with HTTP 200 and `fn(params)` instead of sending it (AWS did nothing), for
        the answers that are failures in a 200 (DeleteVpcEndpoints' `Unsuccessful`). `fn` returns
        None to let a call through (not counted)."""
        self.answers[op] = [fn, times]

    def rewrite(self, op: str, response: Callable[[dict, dict], bool], *,
                request: Callable[[dict], None] | None = None, times: int = 1) -> None:
        """Let `op` reach the emulator, then change its answer in place: `response(parsed, params)`
        returns True when it changed something (counted against `times`). `request(params)` may
        first change what is sent (e.g. hold back keys the answer then reports as failed), for as
        long as the rule has times left; returning False it sends nothing (an empty 200 answer,
        which `response` then fills). States AWS reports and moto never does (Pending, Failed,
        incompatible-network) and per-item errors (DeleteObjects' `Errors`) are made this way."""
        self.rewrites[op] = [response, request, times]

    def throttle(self, rate: float) -> None:
        self.rate = rate

    def hook(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.*.*", self._before_parameter_build)
        client.meta.events.register("before-call.*.*", self._before_call)
        client.meta.events.register("after-call.*.*", self._after_call)
        protocol = client.meta.service_model.protocol
        # First in line, so the in-process emulator (also a before-send handler) can see the mark
        # and leave a throttled request unserved, as AWS does (see tests/conftest.py).
        client.meta.events.register_first("before-send.*.*",
                                          lambda request, **kw: self._before_send(protocol, request))

    def _before_parameter_build(self, params: dict, model: Any, context: dict, **kw: Any) -> None:
        try:
            context["faults.params"] = copy.deepcopy(params)  # as the caller gave them
        except Exception:  # a stream body: the top level is enough
            context["faults.params"] = dict(params)
        with self.lock:
            rule = self.rewrites.get(model.name)
            if not rule or rule[2] <= 0 or rule[1] is None:
                return
        if rule[1](params) is False:  # nothing left to send: AWS does nothing, answer() below says so
            context["faults.hold"] = True

    def _after_call(self, parsed: dict, model: Any, context: dict, **kw: Any) -> None:
        with self.lock:
            rule = self.rewrites.get(model.name)
            if not rule or rule[2] <= 0 or "Error" in parsed:
                return
            if rule[0](parsed, context.get("faults.params") or {}):
                rule[2] -= 1
                self.injected[model.name] += 1

    def _answer(self, model: Any, context: dict) -> Any:
        with self.lock:
            rule = self.answers.get(model.name)
            if not rule or rule[1] <= 0:
                return None
            body = rule[0](context.get("faults.params") or {})
            if body is None:
                return None
            rule[1] -= 1
            self.injected[model.name] += 1
        return _ok(body)

    def _refusal(self, model: Any, context: dict) -> tuple[str, str] | None:
        with self.lock:
            rule = self.refusals.get(model.name)
            if not rule or rule[1] <= 0:
                return None
        said = rule[0](context.get("faults.params") or {})  # outside the lock: it may call AWS itself
        if said is not None:
            with self.lock:
                rule[1] -= 1
                self.injected[model.name] += 1
        return said

    def _before_call(self, model: Any, context: dict | None = None, **kw: Any) -> Any:
        answered = self._answer(model, context or {})
        if answered is not None:
            return answered
        if (context or {}).get("faults.hold"):
            return _ok({})
        refusal = self._refusal(model, context or {})
        if refusal is not None:
            code, message, status = *refusal, 400
        else:
            rule = self.rules.get(model.name)
            if rule and rule[4] is not None and not rule[4]((context or {}).get("faults.params") or {}):
                return None  # outside the lock: the condition may ask the emulator
            with self.lock:
                rule = self.rules.get(model.name)
                if not rule or rule[2] <= 0:
                    return None
                rule[2] -= 1
                self.injected[model.name] += 1
            code, message, _, status, _ = rule

        class Http:
            status_code = status
            headers: dict = {}

        return Http(), {"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "injected"}}

    def _before_send(self, protocol: str, request: Any) -> Any:
        with self.lock:
            if self.rate <= 0 or self.rng.random() >= self.rate:
                return None
            self.injected["throttle"] += 1
        request.headers[THROTTLED_HEADER] = "1"
        headers: dict[str, str] = {}
        status = 400
        if protocol == "ec2":
            status = 503
            body = (b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                    b"</Message></Error></Errors><RequestID>x</RequestID></Response>")
        elif protocol == "query":
            body = (b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded"
                    b"</Message></Error><RequestId>x</RequestId></ErrorResponse>")
        elif protocol == "json":
            headers["x-amzn-ErrorType"] = "ThrottlingException"
            body = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
        elif protocol == "rest-json":
            status = 429
            headers["x-amzn-ErrorType"] = "TooManyRequestsException"
            body = b'{"message":"Rate exceeded"}'
        elif protocol == "rest-xml":
            status = 503
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        else:  # smithy-rpc-v2-cbor and anything new: a 503 is transient for botocore too
            status = 503
            body = b""
        return AWSResponse(request.url, status, headers, _Raw(body))


class LingeringReplica:
    """A secret replica AWS is still removing after RemoveRegionsFromReplication answered (moto
    removes it at once): the next `polls` DescribeSecret answers still list it, and DeleteSecret
    meanwhile fails as AWS's does while a replica remains. `deletes_refused` counts those."""

    def __init__(self, region: str, polls: int) -> None:
        self.region, self.polls = region, polls
        self.left = 0
        self.deletes_refused = 0
        self.lock = threading.Lock()

    def hook(self, client: Any) -> None:
        client.meta.events.register("after-call.*.*", self._after)
        client.meta.events.register("before-call.*.*", self._before)

    def _after(self, parsed: dict, model: Any, **kw: Any) -> None:
        with self.lock:
            if model.name == "RemoveRegionsFromReplication" and "Error" not in parsed:
                self.left = self.polls
            elif model.name == "DescribeSecret" and self.left > 0 and "Error" not in parsed:
                self.left -= 1
                parsed.setdefault("ReplicationStatus", []).append(
                    {"Region": self.region, "Status": "InSync", "StatusMessage": "Replication succeeded"})

    def _before(self, model: Any, **kw: Any) -> Any:
        with self.lock:
            if model.name != "DeleteSecret" or self.left <= 0:
                return None
            self.deletes_refused += 1

        class Http:
            status_code = 400
            headers: dict = {}

        return Http(), {"Error": {"Code": "InvalidRequestException",
                                  "Message": "You can't delete secret that has replicas. Remove the replicas first."},
                        "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "injected"}}


@dataclass
class Estate:
    """A suffix in the mocked account, with helpers to plan, apply and destroy it."""

    spec: Spec
    suffix: str
    sessions: SessionFactory
    log: CallLog

    def engine(self, envs: list[str] | None = None, spec: Spec | None = None, reboot: bool = False) -> Engine:
        return Engine(Context(spec or self.spec, self.suffix, self.sessions, envs=envs, bundle=bundle(),
                              reboot=reboot))

    def plan(self, **kw: Any) -> Plan:
        return self.engine(**kw).plan()

    def apply(self, **kw: Any) -> Plan:
        return self.engine(**kw).apply()

    def destroy(self, *, include_protected: bool = False, **kw: Any) -> Plan:
        return self.engine(**kw).destroy(include_protected=include_protected)

    def client(self, service: str) -> Any:
        return self.sessions.client(service)


def vpc_quota(value: float) -> Any:
    """moto's Service Quotas answer for VPCs per region (L-F678F1CE, AWS's default 5), changed
    while the returned context lasts: preflight checks the quota before every apply."""
    from unittest import mock

    from moto.servicequotas.resources.default_quotas.vpc import VPC_DEFAULT_QUOTAS

    item = next(q for q in VPC_DEFAULT_QUOTAS if q["QuotaCode"] == "L-F678F1CE")
    return mock.patch.dict(item, {"Value": value})


def forget_automated_snapshots(rds: Any) -> None:
    """moto keeps a deleted cluster's automated snapshot (AWS removes it with the cluster);
    recreating the cluster within the same minute then collides on its name."""
    for snap in rds.describe_db_cluster_snapshots(SnapshotType="automated")["DBClusterSnapshots"]:
        rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=snap["DBClusterSnapshotIdentifier"])


def policy_allows(document: dict[str, Any], action: str, arn: str) -> bool:
    """Whether an identity policy (Allow statements only, as dbrepl derives them) allows `action` on `arn`."""
    from tests.aws.iam_enforced import _iam_match

    for st in document["Statement"]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if action in acts and any(_iam_match(r, arn) for r in res):
            return True
    return False


def as_aws_checks(faults: Faults, document: dict[str, Any], account: str) -> None:
    """Answer as AWS does for a caller holding `document`, where moto does not look (issue 18):
    GetFunction leaves out Tags unless the caller may lambda:ListTags the function; a secret's
    replica ends Failed unless the caller may kms:Encrypt with the replica's key (Secrets Manager
    encrypts it with the caller's rights; ReplicateSecretToRegions, CreateSecret with replicas)."""
    forever = 10**9

    def function_tags(parsed: dict, params: dict) -> bool:
        arn = (parsed.get("Configuration") or {}).get("FunctionArn", "")
        if "Tags" in parsed and not policy_allows(document, "lambda:ListTags", arn):
            del parsed["Tags"]
            return True
        return False

    def replicas(parsed: dict, params: dict) -> bool:
        changed = False
        for secret in [parsed, *(parsed.get("SecretList") or [])]:
            for r in secret.get("ReplicationStatus") or []:
                key = r.get("KmsKeyId") or ""
                if not key.startswith("arn:"):
                    key = f"arn:aws:kms:{r['Region']}:{account}:{key if '/' in key else 'key/' + key}"
                if r.get("Status") != "Failed" and not policy_allows(document, "kms:Encrypt", key):
                    r.update(Status="Failed", StatusMessage="Access to KMS is not allowed")
                    changed = True
        return changed

    faults.rewrite("GetFunction", function_tags, times=forever)
    faults.rewrite("DescribeSecret", replicas, times=forever)
    faults.rewrite("ListSecrets", replicas, times=forever)
