#!/usr/bin/env python
"""Provisioner benchmarks (issue 2, "Benchmarks"): API calls and call overlap.

Run from the repository root (takes about 1.5 minutes on 2 cores; see benchmarks/README.md):

    python benchmarks/provision_bench.py [--delay-ms 50] [--long-delay-ms 250] [--repeat N] [--skip-serial]

What it does (all on 127.0.0.1, nothing leaves the machine):

1. Starts a moto server in a subprocess, single-threaded (moto's backends are not
   thread-safe and dbrepl calls AWS from many threads), with AWS managed IAM policies loaded
   and Lambda told not to use Docker; fake credentials, region us-east-1. One uncounted read
   per service warms it up (moto builds each backend on its first request).
2. Writes a copy of config/environments.yaml with `timing.poll_delay: 0` and
   `timing.retry_delay: 0` (everything else as in the file) into a temporary directory.
3. Calls: runs the engine in-process straight against moto, counting every API call with a
   `before-call.*.*` hook on each client (a retried call counts once): apply from an empty
   account, then a no-op plan, with its per-operation breakdown. Target: no-op plan <= 61 (below).
4. Overlap: a threaded proxy in its own process in front of moto delays every request by a
   fixed time; AWS_ENDPOINT_URL points at it. With a fresh suffix per run: apply from empty,
   then a no-op plan, each timed as a whole (a new session factory), once with no delay, once
   at --delay-ms (the issue's 50 ms, where the target is judged) and once at --long-delay-ms;
   all of it first as in a new process (the parsed service models dropped before each run),
   then with the models loaded (as in any later run in the process; the target is judged
   there, the new-process figure is printed beside it). Figure: wall / (calls x delay); 1
   means one call at a time. Target <= 0.3.
   Beside it: the no-delay wall / (calls x delay), the part of the figure that is the
   emulator's and the client's CPU time and does not shrink with more overlap; and the longest
   chain of calls that ran one after another in the long-delay run, the dependency depth,
   which divided by the calls is what the figure tends to when latency dominates. The
   models-loaded runs again with `timing.workers: 1` for comparison (--skip-serial leaves
   that out).
5. Prints a summary table with each figure and whether its target is met.

The exit status is 0 when the benchmark ran (whether or not targets are met), 1 when it could
not run (moto did not start, an apply failed, ...).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

# Fake credentials before anything makes a boto3 session; never real AWS here.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
    AWS_SECURITY_TOKEN="testing", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
)
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_var, None)
# No real config or credentials file may leak in (an endpoint or a profile in ~/.aws).
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

import boto3  # noqa: E402
import yaml  # noqa: E402

import dbrepl.steps  # noqa: E402,F401  (registers the steps)
from dbrepl.aws.session import SessionFactory, forget_models, new_session  # noqa: E402
from dbrepl.engine import Context, Engine, Plan  # noqa: E402
from dbrepl.spec import Spec, load_spec  # noqa: E402

REGION = "us-east-1"
LOOPBACK = "127.0.0.1"
# Issue 2 set 40 for its estate of 69 resources. Since then the estate gained drift reads for
# the security posture (issue 11: GetBucketPolicy 1, GetKeyRotationStatus 3, GetKeyPolicy 3,
# DescribeDBClusterParameterGroups 1, DescribeDBClusterParameters 3) and monitoring (issue 12:
# the schedule group, schedules, scheduler role, topic, subscriptions and dashboard, 9 reads),
# 83 resources in all: 60 reads on AWS. moto answers the tagging API's last page with a
# PaginationToken all the same, so here one more page: 61. Still fewer reads than resources,
# where Terraform's refresh makes at least one per resource.
NOOP_PLAN_TARGET = 61
OVERLAP_TARGET = 0.3

WARM_UP = (("ec2", "describe_vpcs"), ("ec2", "describe_route_tables"), ("rds", "describe_db_clusters"),
           ("kms", "list_aliases"), ("secretsmanager", "list_secrets"), ("ssm", "describe_parameters"),
           ("s3", "list_buckets"), ("iam", "list_roles"), ("lambda", "list_functions"),
           ("logs", "describe_log_groups"), ("cloudwatch", "describe_alarms"), ("sts", "get_caller_identity"),
           ("resourcegroupstaggingapi", "get_resources"))


# --------------------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body: Any = None, timeout: float = 5) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (loopback only)
        raw = r.read()
    return json.loads(raw) if raw else None


class MotoServer:
    """A single-threaded moto server in a subprocess; stopped at exit whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, attempts: int = 3, timeout: float = 60) -> None:
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
        env.pop("AWS_ENDPOINT_URL", None)
        for _ in range(attempts):  # the free port may be taken between probe and bind
            self.port = free_port()
            log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
            self.proc = subprocess.Popen(
                # The sandbox's own moto server (dbrepl.sandbox.serve_aws: one request at a time).
                [sys.executable, "-m", "dbrepl.sandbox", "aws", str(self.port), str(self.log_path.parent)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=str(self.log_path.parent),
            )
            log.close()
            atexit.register(self.stop)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    http_json("GET", f"{self.url}/moto-api/data.json", timeout=2)
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                self.stop()
                continue
            http_json("POST", f"{self.url}/moto-api/config", {"lambda": {"use_docker": False}})
            return
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RuntimeError(f"moto server did not start; its log ends with:\n{tail}")

    def warm_up(self) -> float:
        """One read per service, uncounted: moto builds each backend on its first request
        (EC2, RDS, KMS and the tagging API take seconds), which no later run should pay."""
        t0 = time.perf_counter()
        sess = boto3.Session(region_name=REGION)
        for service, op in WARM_UP:
            getattr(sess.client(service, endpoint_url=self.url), op)()
        return time.perf_counter() - t0

    def reset(self) -> float:
        """Empty every backend (an empty account again), then warm it up again. moto's describe
        calls scan everything it holds, so without this each run would be slower than the last
        (a no-op plan over one estate: 0.29 s; with ten more estates beside it: 0.41 s)."""
        http_json("POST", f"{self.url}/moto-api/reset")
        http_json("POST", f"{self.url}/moto-api/config", {"lambda": {"use_docker": False}})
        return self.warm_up()

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
               "upgrade", "expect", "content-length"}


STATS_PATH = "/__delaying_proxy__/stats"


class DelayingProxy:
    """HTTP proxy on a free loopback port: forwards each request unchanged to `upstream_port`
    after sleeping `delay` seconds, one thread per client connection (so delays overlap exactly
    as much as the client's calls do)."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.requests = 0
        self.errors = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive towards botocore, like AWS

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    for _ in range(1_000_000):
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            for _ in range(1000):  # trailers, up to the blank line
                                if self.rfile.readline() in (b"\r\n", b"\n", b""):
                                    break
                            break
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(parts)
                length = self.headers.get("Content-Length")
                return self.rfile.read(int(length)) if length is not None else None

            def _forward(self) -> None:
                body = self._body()
                if self.path == STATS_PATH:  # the parent asks for the counts; not forwarded
                    with proxy._lock:
                        msg = json.dumps({"requests": proxy.requests, "errors": proxy.errors}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                with proxy._lock:
                    proxy.requests += 1
                time.sleep(proxy.delay)
                conn = http.client.HTTPConnection(LOOPBACK, proxy.upstream_port, timeout=300)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in _HOP_BY_HOP:
                            conn.putheader(k, v)
                    if body is not None:
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, reason, headers = resp.status, resp.reason, resp.getheaders()
                except (OSError, http.client.HTTPException) as e:
                    with proxy._lock:
                        proxy.errors += 1
                    msg = f"proxy: upstream failed: {e}".encode()
                    self.send_response(502)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                finally:
                    conn.close()
                self.send_response_only(status, reason)
                upstream_length = None
                for k, v in headers:
                    if k.lower() == "content-length":
                        upstream_length = v
                    elif k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                if self.command == "HEAD":
                    if upstream_length is not None:  # HEAD: the length of what GET would send
                        self.send_header("Content-Length", upstream_length)
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD" and data:
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 256  # bursts of new connections must not overflow the backlog
            daemon_threads = True

        self.server = Server((LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True, name="delaying-proxy")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> DelayingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


class ProxyProcess:
    """A DelayingProxy in its own process. Latency on the network costs the caller no CPU; a
    proxy in the benchmark's own process would take the interpreter lock from the engine for
    every request it forwards, and so charge the engine for the network."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = 0
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> ProxyProcess:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-proxy", str(self.upstream_port), str(self.delay)],
            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line.strip().isdigit():
            self._proc.kill()
            raise RuntimeError(f"the delaying proxy did not start (said {line.strip()!r})")
        self.port = int(line)
        return self

    def stats(self) -> tuple[int, int]:
        got = http_json("GET", self.url + STATS_PATH)
        return int(got["requests"]), int(got["errors"])

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None:
            if self._proc.stdin:
                self._proc.stdin.close()  # the child serves until its stdin closes
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def serve_proxy(upstream_port: int, delay: float) -> int:
    with DelayingProxy(upstream_port, delay) as proxy:
        print(proxy.port, flush=True)
        sys.stdin.read()
    return 0


@dataclass
class CallCounter:
    """Counts API calls through each client's event system (one per call, retries included once)
    and keeps when each call started and ended."""

    calls: Counter = field(default_factory=Counter)
    spans: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _open: threading.local = field(default_factory=threading.local)

    def hook(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        events = client.meta.events
        events.register("before-call.*.*", lambda model, **kw: self._start(service, model.name))
        events.register("after-call.*.*", lambda **kw: self._end())
        events.register("after-call-error.*.*", lambda **kw: self._end())

    def _start(self, service: str, op: str) -> None:
        with self.lock:
            self.calls[f"{service}:{op}"] += 1
        stack = self._open.__dict__.setdefault("stack", [])
        stack.append(time.perf_counter())

    def _end(self) -> None:
        stack = self._open.__dict__.get("stack")
        if stack:
            span = (stack.pop(), time.perf_counter())
            with self.lock:
                self.spans.append(span)

    def take(self) -> tuple[Counter, list[tuple[float, float]]]:
        with self.lock:
            out, self.calls = self.calls, Counter()
            spans, self.spans = self.spans, []
        return out, spans


def longest_chain(spans: list[tuple[float, float]]) -> int:
    """The most calls that ran strictly one after another (each starting after the previous one
    ended). With a long delay on every call this is the dependency depth: the calls that could
    not overlap, whatever the emulator's speed."""
    spans = sorted(spans, key=lambda s: s[1])
    best: list[int] = []
    for i, (start, _end) in enumerate(spans):
        before = [best[j] for j in range(i) if spans[j][1] <= start]
        best.append(1 + max(before, default=0))
    return max(best, default=0)


@contextlib.contextmanager
def endpoint(url: str) -> Iterator[None]:
    """Point every boto3 client made inside at `url` (clients read AWS_ENDPOINT_URL when made)."""
    old = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = old


def write_spec(workdir: Path, name: str, **timing: Any) -> Path:
    """A copy of config/environments.yaml with the given timing values changed, nothing else."""
    data = yaml.safe_load((ROOT / "config" / "environments.yaml").read_text())
    data.setdefault("timing", {}).update(timing)
    path = workdir / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------- measuring

class TimedSession(boto3.Session):
    """A boto3 session that adds up the time spent making clients (CPU-bound: model loading)."""

    spent: ClassVar[list[float]] = [0.0]
    lock: ClassVar[threading.Lock] = threading.Lock()

    def client(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return super().client(*args, **kwargs)
        finally:
            with TimedSession.lock:
                TimedSession.spent[0] += time.perf_counter() - t0

    @classmethod
    def take(cls) -> float:
        with cls.lock:
            out, cls.spent[0] = cls.spent[0], 0.0
        return out


@dataclass
class Run:
    what: str
    suffix: str
    wall: float
    calls: Counter
    plan: Plan
    client_setup: float = 0.0  # seconds making boto3 clients (inside wall)
    resources: int = 0
    chain: int = 0  # longest run of calls one after another

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class Bench:
    def __init__(self, bundle: bytes) -> None:
        self.bundle = bundle
        self.counter = CallCounter()
        self.cold = True

    def _timed(self, what: str, suffix: str, spec: Spec, fn: Any) -> tuple[Run, Engine]:
        # A new factory per run: sessions and clients (and the endpoint they read) are made afresh.
        # The parsed service models are per process: cold runs drop them first (a new CLI
        # process), warm runs find them (a second run in the same process).
        if self.cold:
            forget_models()
        sessions = SessionFactory(REGION, max_attempts=spec.timing.max_attempts, hooks=[self.counter.hook],
                                  session_maker=lambda r: new_session(r, TimedSession))
        eng = Engine(Context(spec, suffix, sessions, bundle=self.bundle))
        TimedSession.take()
        self.counter.take()
        t0 = time.perf_counter()
        plan = fn(eng)
        wall = time.perf_counter() - t0
        calls, spans = self.counter.take()
        return Run(what, suffix, wall, calls, plan, TimedSession.take(), chain=longest_chain(spans)), eng

    def apply(self, suffix: str, spec: Spec) -> Run:
        run, _ = self._timed("apply from empty", suffix, spec, lambda e: e.apply())
        return run

    def plan(self, suffix: str, spec: Spec) -> Run:
        run, eng = self._timed("no-op plan", suffix, spec, lambda e: e.plan())
        run.resources = sum(len(eng.desired(n)) for n in eng.order)
        return run


def show_changes(p: Plan, limit: int = 20) -> None:
    for c in p.changes[:limit]:
        print(f"      {c.marker} {c.type} {c.env} {c.name}: {', '.join(c.diff) or '-'}")
    if len(p.changes) > limit:
        print(f"      ... and {len(p.changes) - limit} more")


def breakdown(calls: Counter, indent: str = "    ") -> None:
    width = max((len(k) for k in calls), default=0)
    for op, n in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{indent}{op:<{width}}  {n:>4}")


def by_service(calls: Counter) -> str:
    svc: Counter = Counter()
    for op, n in calls.items():
        svc[op.split(":")[0]] += n
    return ", ".join(f"{s} {n}" for s, n in svc.most_common())


@dataclass
class Overlap:
    """One operation (apply from empty or no-op plan) under one workers setting, by delay."""

    label: str  # workers=N
    what: str
    runs: dict[float, Run]  # delay (0 = none) -> the fastest run

    def ratio(self, delay: float) -> float:
        """The issue's figure: wall / (calls x delay)."""
        r = self.runs[delay]
        return r.wall / (r.total * delay) if r.total else float("nan")

    def floor(self, delay: float) -> float:
        """The no-delay wall / (calls x delay): emulator and client CPU, which no overlap removes."""
        r = self.runs[delay]
        return self.runs[0.0].wall / (r.total * delay) if r.total else float("nan")



def overlap_runs(bench: Bench, moto: MotoServer, delays: list[float], spec: Spec, tag: str,
                 repeat: int, cold: bool) -> list[Overlap]:
    """Per delay (0 first), each time with a fresh suffix: apply from empty, then a no-op plan,
    through the proxy; with --repeat N the fastest of N runs counts. `cold`: each run starts
    without parsed service models, as a new process does."""
    label = f"workers={spec.timing.workers}, {'new process' if cold else 'models loaded'}"
    bench.cold = cold
    best: dict[float, list[Run]] = {}
    for d in [0.0, *delays]:
        for rep in range(repeat):
            suffix = f"bench-{tag}{'c' if cold else 'w'}-{int(round(d * 1000))}-{rep}"
            moto.reset()  # every apply from an empty account, every plan over this one estate
            with ProxyProcess(moto.port, d) as proxy, endpoint(proxy.url):
                a = bench.apply(suffix, spec)
                p = bench.plan(suffix, spec)
                requests, errors = proxy.stats()
            for r in (a, p):
                rat = f"; wall/(calls x delay) = {r.wall / (r.total * d):.3f}" if d and r.total else ""
                print(f"  [{label}, delay {d * 1000:>3g} ms] {r.what:<16} {r.total:>4} calls, wall {r.wall:6.2f} s "
                      f"(making boto3 clients {r.client_setup:.2f} s of it), longest chain {r.chain}{rat}")
            if p.plan.changes:
                print(f"  [{label}] WARNING: the plan after apply is not empty ({len(p.plan.changes)} changes):")
                show_changes(p.plan)
            if requests != a.total + p.total or errors:
                print(f"  [{label}] {requests} HTTP requests for {a.total + p.total} API calls (the rest are "
                      f"retries), proxy errors: {errors}")
            if d not in best:
                best[d] = [a, p]
            else:
                best[d] = [min(best[d][0], a, key=lambda r: r.wall), min(best[d][1], p, key=lambda r: r.wall)]
    return [Overlap(label, best[0.0][i].what, {d: best[d][i] for d in best}) for i in (0, 1)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-proxy"]:  # the child ProxyProcess starts
        return serve_proxy(int(argv[1]), float(argv[2]))
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--delay-ms", type=float, default=50.0,
                    help="delay the proxy adds to every request; the target is judged at it (default 50)")
    ap.add_argument("--long-delay-ms", type=float, default=250.0,
                    help="a second, longer delay, where the emulator's own time matters less; 0 to skip "
                         "(default 250)")
    ap.add_argument("--skip-serial", action="store_true", help="leave out the timing.workers=1 comparison runs")
    ap.add_argument("--repeat", type=int, default=1, choices=range(1, 6), metavar="N",
                    help="overlap runs per delay, the fastest counts (1-5, default 1)")
    args = ap.parse_args(argv)
    delay, long_delay = args.delay_ms / 1000.0, args.long_delay_ms / 1000.0
    if not 0 < delay <= 2 or not 0 <= long_delay <= 2:
        ap.error("the delays must be at most 2000 ms (and --delay-ms above 0)")
    delays = [delay] + ([long_delay] if long_delay and long_delay != delay else [])

    # A plain kill (SIGTERM) unwinds like Ctrl-C, so the moto server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at the start (wall times below are only "
          "as quiet as the machine)")
    with tempfile.TemporaryDirectory(prefix="dbrepl-bench-") as tmp:
        work = Path(tmp)
        spec = load_spec(write_spec(work, "environments.yaml", poll_delay=0, retry_delay=0))
        serial_spec = load_spec(write_spec(work, "environments-serial.yaml", poll_delay=0, retry_delay=0, workers=1))
        print(f"spec: config/environments.yaml with timing.poll_delay 0 and retry_delay 0, the rest as is "
              f"(workers {spec.timing.workers}, max_attempts {spec.timing.max_attempts})")

        from dbrepl.bundle import build_bundle

        t0 = time.perf_counter()
        bundle = build_bundle()
        print(f"lambda bundle: {len(bundle)} bytes, built once in {time.perf_counter() - t0:.2f} s "
              "(outside every timing below)")

        moto = MotoServer(work)
        t0 = time.perf_counter()
        try:
            moto.start()
            print(f"moto server (single-threaded) on {moto.url}, up in {time.perf_counter() - t0:.1f} s; "
                  f"warm-up reads (uncounted) {moto.warm_up():.1f} s")
            bench = Bench(bundle)

            # ---------------------------------------------------------------- 1. calls
            print("\n== API calls (engine in-process, straight to moto, no delay) ==")
            with endpoint(moto.url):
                a = bench.apply("bench-calls", spec)
                p = bench.plan("bench-calls", spec)
            print(f"  apply from empty: {a.total} calls, wall {a.wall:.2f} s "
                  f"({a.plan.count('create')} created, {a.plan.count('update')} updated)")
            print(f"    by service: {by_service(a.calls)}")
            print(f"  no-op plan: {p.total} calls, wall {p.wall:.2f} s, over {p.resources} resources "
                  f"({len(p.plan.changes)} changes)")
            if p.plan.changes:
                print("  WARNING: the plan after apply is not empty:")
                show_changes(p.plan)
            print("  no-op plan, calls per operation:")
            breakdown(p.calls)
            calls_apply, calls_plan = a, p

            # ---------------------------------------------------------------- 2. overlap
            shown = " and ".join(f"{d * 1000:g} ms" for d in delays)
            print(f"\n== Overlap: every request through a proxy adding no delay, then {shown} ==")
            results = overlap_runs(bench, moto, delays, spec, "ov", args.repeat, cold=True)
            results += overlap_runs(bench, moto, delays, spec, "ov", args.repeat, cold=False)
            if not args.skip_serial:
                results += overlap_runs(bench, moto, delays, serial_spec, "w1", args.repeat, cold=False)
        except Exception as e:  # noqa: BLE001  (say what failed and exit 1; the server stops below)
            print(f"error: the benchmark failed: {type(e).__name__}: {e}", file=sys.stderr)
            if moto.log_path.exists():
                print("moto log (end):\n" + moto.log_path.read_text(errors="replace")[-1500:], file=sys.stderr)
            return 1
        finally:
            moto.stop()

    # -------------------------------------------------------------------- summary
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, value: str, target: str = "", met: bool | None = None) -> None:
        rows.append((name, value, target, "" if met is None else ("yes" if met else "NO")))

    row("resources in the estate (desired)", str(calls_plan.resources))
    row("API calls, apply from empty", str(calls_apply.total))
    row("API calls, no-op plan", str(calls_plan.total), f"<= {NOOP_PLAN_TARGET}",
        calls_plan.total <= NOOP_PLAN_TARGET)
    row("  Terraform refresh, for comparison", f">= {calls_plan.resources}")
    serial_label = f"workers={serial_spec.timing.workers}, models loaded"
    for o in results:
        if o.label == serial_label and o.what == "no-op plan":
            continue  # discovery does not use timing.workers: these rows would only repeat the above
        # Judged with the models loaded: parsing them is a one-off per process, the same at any
        # delay (see README); the new-process figure is printed beside it with its own verdict.
        judged = o.label == f"workers={spec.timing.workers}, models loaded"
        first_run = o.label == f"workers={spec.timing.workers}, new process"
        for d in delays:
            r = o.runs[d]
            is_target = (judged or first_run) and d == delay
            row(f"overlap {d * 1000:g} ms, {o.what}, {o.label} ({r.total} calls, {r.wall:.2f} s)",
                f"{o.ratio(d):.3f}",
                (f"<= {OVERLAP_TARGET}" if judged else f"(<= {OVERLAP_TARGET})") if is_target else "(reference)",
                (o.ratio(d) <= OVERLAP_TARGET) if is_target else None)
            row(f"  no-delay wall alone ({o.runs[0.0].wall:.2f} s) / (calls x delay)", f"{o.floor(d):.3f}")
        r = o.runs[delays[-1]]
        row(f"  calls one after another, {o.what}, {o.label} (longest chain, {delays[-1] * 1000:g} ms run)",
            f"{r.chain} of {r.total}")
        row("  = the overlap a purely latency-bound run tends to", f"{r.chain / r.total:.3f}" if r.total else "-")

    head = ("figure", "value", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    print("\n== Summary (overlap = wall / (API calls x delay); 1 = one call at a time) ==")
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"\nbenchmark finished in {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
