"""The context a step runs in: the spec, the suffix, the sessions grouped by (account, region),
what is known so far (ids and attributes from discovery and apply), retries and waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from dbrepl.aws import error_code
from dbrepl.aws.partition import partition_of
from dbrepl.aws.session import SessionFactory
from dbrepl.engine.model import SHARED, Observed, Unknown
from dbrepl.errors import WaitTimeout
from dbrepl.spec import Spec

MANAGED_BY = "dbrepl"

Reporter = Callable[[str, dict[str, Any]], None]


class Context:
    """Everything a step needs: the spec, the suffix, sessions, and what is known so far."""

    def __init__(
        self,
        spec: Spec,
        suffix: str,
        sessions: SessionFactory,
        *,
        envs: Iterable[str] | None = None,
        reporter: Reporter | None = None,
        bundle: bytes | None = None,
        reboot: bool = False,
    ) -> None:
        self.spec = spec
        self.suffix = suffix
        self.sessions = sessions
        self.envs = list(envs) if envs else [*spec.environments, SHARED]
        self.reporter = reporter or (lambda event, data: None)
        self._bundle = bundle
        self.observed: dict[str, dict[tuple[str, str], Observed]] = {}
        self._cache: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.timing = spec.timing
        # Set by Engine.destroy_plan: discovery may then read what only destroy removes (the log
        # groups RDS makes), which a plan must neither read nor show.
        self.destroying = False
        # `apply --reboot`: members of protected environments may be rebooted too (aurora).
        self.reboot = reboot
        self.held: list[str] = []

    # -- selection
    def selected(self, env: str) -> bool:
        return env in self.envs or (env == SHARED and SHARED in self.envs)

    @property
    def all_envs(self) -> list[str]:
        return list(self.spec.environments)

    @property
    def hub(self) -> str:
        return self.spec.sync.hub

    def groups(self) -> list[list[str]]:
        """The environments by (account, region): what one batched discovery call can see."""
        out: dict[tuple[str, str], list[str]] = {}
        for env in self.all_envs:
            out.setdefault(self.sessions.group_key(env), []).append(env)
        return list(out.values())

    def each_group(self, fn: Callable[[list[str]], list[Observed]]) -> list[Observed]:
        """`fn(envs)` for each group, the groups side by side (different accounts or regions)."""
        groups = self.groups()
        if len(groups) == 1:
            return list(fn(groups[0]))
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            return [o for part in pool.map(fn, groups) for o in part]

    # -- clients
    def client(self, service: str, env: str | None = None) -> Any:
        if env == SHARED:
            env = self.hub
        return self.sessions.client(service, env)

    def memo(self, key: str, fn: Callable[[], Any]) -> Any:
        """Compute once per run (shared lookups such as the account id)."""
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            lock = self._cache.setdefault(f"lock:{key}", threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = fn()
            return self._cache[key]

    def account_id(self, env: str | None = None) -> str:
        env = self.hub if env in (None, SHARED) else env
        gk = self.sessions.group_key(env)
        return self.memo(
            f"account:{gk}", lambda: self.client("sts", env).get_caller_identity()["Account"]
        )

    def region(self, env: str | None = None) -> str:
        return self.sessions.region_for(self.hub if env in (None, SHARED) else env)

    def partition(self, env: str | None = None) -> str:
        """The AWS partition (aws, aws-cn, aws-us-gov) of env's region: the one its ARNs name.
        Taken from botocore's region data, no call (an account cannot span partitions, so the
        caller's STS ARN would say the same)."""
        return partition_of(self.region(env))

    # -- names and tags
    def tags(self, env: str, step: str, name: str | None = None, environment: str | None = None) -> dict[str, str]:
        t = {
            "dbrepl:suffix": self.suffix,
            "dbrepl:env": env,
            "dbrepl:step": step,
            "dbrepl:managed-by": MANAGED_BY,
            "Environment": environment or env,
        }
        if name is not None:
            t["Name"] = name
        return t

    def owns(self, tags: dict[str, str] | None) -> bool:
        """A resource at one of our names is ours unless someone else's dbrepl tags claim it."""
        if not tags:
            return True
        suffix = tags.get("dbrepl:suffix")
        return suffix is None or suffix == self.suffix

    # -- what is known
    def record(self, step: str, obs: Observed) -> None:
        with self._lock:
            self.observed.setdefault(step, {})[(obs.env, obs.key)] = obs

    def forget_observed(self, step: str, env: str, key: str) -> None:
        with self._lock:
            self.observed.get(step, {}).pop((env, key), None)

    def get(self, step: str, env: str, key: str) -> Observed | None:
        with self._lock:
            return self.observed.get(step, {}).get((env, key))

    def id_of(self, step: str, env: str, key: str) -> Any:
        obs = self.get(step, env, key)
        if obs is None or obs.id is None:
            return Unknown(f"{step}/{env}/{key}")
        return obs.id

    def attr(self, step: str, env: str, key: str, attr: str) -> Any:
        obs = self.get(step, env, key)
        if obs is None or attr not in obs.attrs:
            return Unknown(f"{step}/{env}/{key}.{attr}")
        return obs.attrs[attr]

    @property
    def bundle(self) -> bytes:
        if self._bundle is None:
            from dbrepl.bundle import build_bundle

            self._bundle = build_bundle(self.spec.databases.tls.verified_bundle)
        return self._bundle

    def hold(self, what: str, why: str) -> None:
        """Something apply leaves undone on purpose in this run, with how to do it."""
        with self._lock:
            self.held.append(f"{what}: {why}")
        self.report("held", what=what, message=why)

    # -- time
    def report(self, event: str, **data: Any) -> None:
        self.reporter(event, data)

    def retry(
        self,
        fn: Callable[[], Any],
        *,
        codes: Iterable[str],
        deadline: float,
        what: str,
        before_retry: Callable[[], None] | None = None,
        when: Callable[[BaseException], bool] | None = None,
    ) -> Any:
        """Retry `fn` while it fails with one of `codes` (conditions that clear with time)."""
        codes = set(codes)
        start = time.monotonic()

        def retryable(e: BaseException) -> bool:
            if when is not None:
                return when(e)
            return error_code(e) in codes

        def sleeping(state: Any) -> None:
            self.report(
                "retry", what=what, attempt=state.attempt_number,
                elapsed=time.monotonic() - start, error=error_code(state.outcome.exception()),
            )
            if before_retry is not None:
                before_retry()

        base = self.timing.retry_delay
        retrying = Retrying(
            stop=stop_after_delay(deadline),
            wait=wait_exponential(multiplier=base, min=base, max=max(base * 6, base)),
            retry=retry_if_exception(retryable),
            before_sleep=sleeping,
            reraise=True,
        )
        return retrying(fn)

    def settle(self, fn: Callable[[], Any], what: str, when: Callable[[BaseException], bool] | None = None) -> Any:
        """Retry `fn` for up to `timing.consistency_timeout_seconds` while AWS has not caught up
        with itself: by default an EC2 `*.NotFound` for an id an earlier call just made."""
        return self.retry(fn, codes=(), deadline=self.timing.consistency_timeout_seconds, what=what,
                          when=when or (lambda e: (error_code(e) or "").endswith(".NotFound")))

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        """Poll `check` until true; report elapsed time; WaitTimeout at the deadline."""
        start = time.monotonic()
        last_report = 0.0
        while True:
            if check():
                if time.monotonic() - start > 1:
                    self.report("waited", what=what, elapsed=time.monotonic() - start)
                return
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                raise WaitTimeout(what, elapsed)
            if elapsed - last_report >= 30 or last_report == 0:
                self.report("waiting", what=what, elapsed=elapsed)
                last_report = elapsed or 0.001
            time.sleep(self.timing.poll_delay)
