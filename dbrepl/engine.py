"""The engine: steps, the change model, planning, and running the step graph.

A step (one module in dbrepl/steps/) says what it wants (`desired`), reads what is there
(`discover`, read-only and batched), and carries out one change at a time (`apply`,
`delete`). The engine diffs desired against observed into `Change`s, runs steps in
dependency order (independent steps and environments side by side) and keeps no state
file: state is the tags on the resources themselves (DESIGN §3).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from dbrepl.aws import error_code
from dbrepl.aws.session import SessionFactory
from dbrepl.errors import AwsFailure, DbreplError, Refused, WaitTimeout
from dbrepl.spec import Spec

SHARED = "shared"
MANAGED_BY = "dbrepl"


class Unknown:
    """A value that exists only after an earlier change is applied (an id, an ARN)."""

    def __init__(self, what: str = "") -> None:
        self.what = what

    def __repr__(self) -> str:
        return "(known after apply)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown)

    def __hash__(self) -> int:
        return 0


def is_unknown(v: Any) -> bool:
    return first_unknown(v) is not None


def first_unknown(v: Any) -> Unknown | None:
    """The first value not known until after apply, inside lists and dicts too."""
    if isinstance(v, Unknown):
        return v
    items = v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else ()
    for x in items:
        found = first_unknown(x)
        if found is not None:
            return found
    return None


@dataclass
class Resource:
    """What a step wants to exist."""

    key: str  # unique within (step, env), e.g. "vpc", "subnet-1", "route:10.2.0.0/16"
    type: str  # CloudFormation type, e.g. AWS::EC2::VPC
    env: str
    name: str  # physical name as a person knows it
    props: dict[str, Any]
    tags: dict[str, str] | None = None  # None: the resource cannot carry tags
    phase: int = 0  # changes of a step run phase by phase (destroy: in reverse)
    replace_on: frozenset[str] = frozenset()  # props that cannot change in place


@dataclass
class Observed:
    """What discovery found, normalised to the same props as `Resource`."""

    key: str
    type: str
    env: str
    name: str
    id: str | None
    props: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # arn, endpoint, state...
    phase: int = 0


@dataclass(frozen=True)
class Change:
    action: str  # create | update | delete | replace
    type: str
    env: str
    name: str
    diff: dict[str, tuple[Any, Any]]
    step: str = ""
    key: str = ""
    phase: int = 0

    @property
    def marker(self) -> str:
        return {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}[self.action]

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "type": self.type,
            "env": self.env,
            "name": self.name,
            "diff": {k: {"old": _jsonable(o), "new": _jsonable(n)} for k, (o, n) in self.diff.items()},
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, Unknown):
        return "(known after apply)"
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in v]
    return v


@dataclass
class Plan:
    changes: list[Change]

    def count(self, action: str) -> int:
        if action == "create":
            return sum(c.action in ("create", "replace") for c in self.changes)
        if action == "delete":
            return sum(c.action in ("delete", "replace") for c in self.changes)
        return sum(c.action == action for c in self.changes)

    @property
    def summary(self) -> dict[str, int]:
        return {a: self.count(a) for a in ("create", "update", "delete")}

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "summary": self.summary}


# --------------------------------------------------------------------------- steps

STEPS: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: make a step known to the engine by its name."""
    if cls.name in STEPS:
        raise ValueError(f"step {cls.name!r} registered twice")
    if not cls.__doc__:  # a step's module docstring documents it
        cls.__doc__ = sys.modules[cls.__module__].__doc__
    STEPS[cls.name] = cls
    return cls


def get_step(name: str) -> type[Step]:
    try:
        return STEPS[name]
    except KeyError:
        raise DbreplError(f"unknown step {name!r}; valid steps: {', '.join(sorted(STEPS))}") from None


class Step:
    """One part of the estate. Subclasses live in dbrepl/steps/, one per module."""

    name: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()
    # For apply, finer than depends_on: {phase: entries} says what a phase needs done first,
    # each entry "step" (all of its phases) or "step:N" (its phases up to N); a phase needs its
    # own entries and those of every earlier phase, and every entry's step is in depends_on.
    # None: every phase needs all of depends_on. Destroy keeps to depends_on, reversed.
    needs: ClassVar[dict[int, tuple[str, ...]] | None] = None
    # IAM actions the step needs; documented and checked by tests.
    permissions: ClassVar[tuple[str, ...]] = ()

    def desired(self, ctx: Context) -> list[Resource]:
        raise NotImplementedError

    def discover(self, ctx: Context) -> list[Observed]:
        """Read-only: what exists for this suffix, confirmed by the service's own API."""
        raise NotImplementedError

    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        """Carry out one create/update; return what now exists."""
        raise NotImplementedError

    def delete(self, ctx: Context, have: Observed) -> None:
        """Delete one resource; a resource already gone counts as deleted."""
        raise NotImplementedError

    def prepare_destroy(self, ctx: Context, doomed: list[Observed]) -> None:  # noqa: B027
        """Hook before a step's deletions (e.g. release what blocks them)."""


# --------------------------------------------------------------------------- context

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

    def forget(self, key: str) -> None:
        with self._lock:
            self._cache.pop(key, None)

    def account_id(self, env: str | None = None) -> str:
        env = self.hub if env in (None, SHARED) else env
        gk = self.sessions.group_key(env)
        return self.memo(
            f"account:{gk}", lambda: self.client("sts", env).get_caller_identity()["Account"]
        )

    def region(self, env: str | None = None) -> str:
        return self.sessions.region_for(self.hub if env in (None, SHARED) else env)

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

            self._bundle = build_bundle()
        return self._bundle

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


# --------------------------------------------------------------------------- diffing

def _norm(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def diff_step(step: str, desired: list[Resource], observed: dict[tuple[str, str], Observed]) -> list[Change]:
    """Pure: desired against observed, field by field."""
    changes: list[Change] = []
    wanted = set()
    for r in desired:
        wanted.add((r.env, r.key))
        have = observed.get((r.env, r.key))
        if have is None:
            d = {k: (None, v) for k, v in r.props.items()}
            changes.append(Change("create", r.type, r.env, r.name, d, step, r.key, r.phase))
            continue
        d = {}
        for k, v in r.props.items():
            if is_unknown(v):
                continue
            old = have.props.get(k)
            if _norm(old) != _norm(v):
                d[k] = (old, v)
        if r.tags is not None:
            current = have.tags or {}
            missing = {k: v for k, v in r.tags.items() if current.get(k) != v}
            if missing:
                d["Tags"] = ({k: current.get(k) for k in missing}, missing)
        if d:
            action = "replace" if set(d) & r.replace_on else "update"
            changes.append(Change(action, r.type, r.env, r.name, d, step, r.key, r.phase))
    for (env, key), have in observed.items():
        if (env, key) not in wanted:
            d = {k: (v, None) for k, v in have.props.items()}
            changes.append(Change("delete", have.type, env, have.name, d, step, key, have.phase))
    return changes


# --------------------------------------------------------------------------- running

class Engine:
    """Runs steps over the dependency graph."""

    def __init__(self, ctx: Context, steps: Iterable[str] | None = None) -> None:
        self.ctx = ctx
        names = list(steps) if steps else list(STEPS)
        self.steps: dict[str, Step] = {n: get_step(n)() for n in names}
        for s in self.steps.values():
            for dep in s.depends_on:
                if dep not in self.steps:
                    raise DbreplError(f"step {s.name!r} depends on unknown step {dep!r}")
            for entries in (s.needs or {}).values():
                for entry in entries:
                    dep, _, upto = entry.partition(":")
                    if dep not in s.depends_on or (upto and not upto.isdigit()):
                        raise DbreplError(f"step {s.name!r} needs {entry!r}: not a phase of a step it depends on")
        self.order = self._topo()

    def _topo(self) -> list[str]:
        done: list[str] = []
        pending = dict(self.steps)
        while pending:
            ready = [n for n, s in pending.items() if all(d in done for d in s.depends_on)]
            if not ready:
                raise DbreplError(f"step dependency cycle among {', '.join(pending)}")
            for n in ready:
                done.append(n)
                pending.pop(n)
        return done

    # -- discovery and planning
    def discover(self) -> None:
        """Run every step's discovery side by side (read-only)."""

        def one(name: str) -> tuple[str, list[Observed]]:
            try:
                return name, self.steps[name].discover(self.ctx)
            except (ClientError, BotoCoreError) as e:
                raise AwsFailure(f"read the {name} resources", _why(e), "nothing was changed") from e

        with ThreadPoolExecutor(max_workers=max(1, len(self.steps))) as pool:
            for name, found in pool.map(one, self.order):
                self.ctx.observed[name] = {}
                for o in found:
                    self.ctx.record(name, o)

    def _select(self, items: Iterable[Any]) -> list[Any]:
        return [x for x in items if self.ctx.selected(x.env)]

    def plan_step(self, name: str) -> list[Change]:
        step = self.steps[name]
        desired = self._select(step.desired(self.ctx))
        observed = {k: o for k, o in self.ctx.observed.get(name, {}).items() if self.ctx.selected(o.env)}
        return diff_step(name, desired, observed)

    def plan(self) -> Plan:
        self.discover()
        changes: list[Change] = []
        for name in self.order:
            changes.extend(self.plan_step(name))
        return Plan(changes)

    def destroy_plan(self) -> Plan:
        self.discover()
        changes = []
        for name in reversed(self.order):
            obs = [o for o in self.ctx.observed.get(name, {}).values() if self.ctx.selected(o.env)]
            for o in sorted(obs, key=lambda o: -o.phase):
                d = {k: (v, None) for k, v in o.props.items()}
                changes.append(Change("delete", o.type, o.env, o.name, d, name, o.key, o.phase))
        return Plan(changes)

    # -- doing
    def apply(self, plan: Plan | None = None) -> Plan:
        """Apply phase by phase over the graph of (step, phase): a phase starts once the phases it
        needs are done (Step.needs), so independent work overlaps across steps; each phase
        re-plans with the ids its parents just made."""
        if plan is None:
            plan = self.plan()
        for name in self.order:  # refuse before anything changes, not halfway through
            self._refuse_replacements(self.steps[name], [c for c in plan.changes if c.step == name])
        phases = {n: self._phases(n) for n in self.order}
        nodes = [(n, p) for n in self.order for p in phases[n]]

        def deps(node: tuple[str, int]) -> set[tuple[str, int]]:
            name, phase = node
            out = {(name, q) for q in phases[name] if q < phase}
            for dep, upto in self._needs(self.steps[name], phase):
                out |= {(dep, q) for q in phases[dep] if upto is None or q <= upto}
            return out

        done: list[Change] = []
        self._run_graph(nodes, deps, lambda node: self._apply_phase(*node, done), lambda node: node[0])
        return Plan(done)

    def destroy(self, plan: Plan | None = None) -> Plan:
        if plan is None:
            plan = self.destroy_plan()
        done: list[Change] = []

        def deps(n: str) -> set[str]:
            return {m for m, s in self.steps.items() if n in s.depends_on}

        self._run_graph(list(reversed(self.order)), deps, lambda name: self._destroy_step(name, done), str)
        return Plan(done)

    def _phases(self, name: str) -> list[int]:
        """The phases a step has here: those of what it wants and of what exists."""
        wanted = {r.phase for r in self._select(self.steps[name].desired(self.ctx))}
        found = {o.phase for o in self.ctx.observed.get(name, {}).values() if self.ctx.selected(o.env)}
        return sorted(wanted | found)

    @staticmethod
    def _needs(step: Step, phase: int) -> list[tuple[str, int | None]]:
        """(step, last phase needed or None for all) that `phase` of `step` waits for."""
        if step.needs is None:
            return [(d, None) for d in step.depends_on]
        out = []
        for p, entries in step.needs.items():
            if p <= phase:
                for entry in entries:
                    dep, _, upto = entry.partition(":")
                    out.append((dep, int(upto) if upto else None))
        return out

    def _run_graph(self, order: list[Any], deps: Callable[[Any], set[Any]], run: Callable[[Any], None],
                   step_of: Callable[[Any], str]) -> None:
        """Run nodes as their dependencies finish, side by side; stop starting new ones at the
        first failure and raise it, naming the steps not finished."""
        finished: set[Any] = set()
        failed: list[BaseException] = []
        running: dict[Future, Any] = {}
        remaining = list(order)
        with ThreadPoolExecutor(max_workers=len(order) or 1) as pool:
            while remaining or running:
                if not failed:
                    for n in list(remaining):
                        if deps(n) <= finished:
                            remaining.remove(n)
                            running[pool.submit(run, n)] = n
                elif not running:
                    break
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in done:
                    n = running.pop(f)
                    exc = f.exception()
                    if exc is not None:
                        failed.append(exc)
                    else:
                        finished.add(n)
        if failed:
            exc = failed[0]
            if not isinstance(exc, Exception):
                raise exc  # a kill (KeyboardInterrupt, SystemExit) goes straight through
            not_run = list(dict.fromkeys(step_of(n) for n in order if n not in finished))
            if isinstance(exc, DbreplError) and not_run:
                raise _with_left(exc, not_run) from exc
            raise exc
        if remaining:
            raise DbreplError(f"steps that can never start (a dependency cycle): {', '.join(map(str, remaining))}")

    def _apply_phase(self, name: str, phase: int, done: list[Change]) -> None:
        step = self.steps[name]
        desired = {(r.env, r.key): r for r in self._select(step.desired(self.ctx))}
        batch = [c for c in self.plan_step(name) if c.phase == phase]
        self._refuse_replacements(step, batch)
        self._check_known(name, batch, desired)

        def one(c: Change) -> None:
            want = desired.get((c.env, c.key))
            self.ctx.report("start", change=c)
            t0 = time.monotonic()
            have = self.ctx.get(name, c.env, c.key)
            try:
                if c.action == "delete":
                    assert have is not None
                    step.delete(self.ctx, have)
                    self.ctx.forget_observed(name, c.env, c.key)
                else:
                    new = step.apply(self.ctx, c, want, have)
                    if new is not None:
                        self.ctx.record(name, new)
            except (ClientError, BotoCoreError) as e:
                raise AwsFailure(f"{_verb(c)} {c.type} {c.name}", _why(e)) from e
            done.append(c)
            self.ctx.report("done", change=c, elapsed=time.monotonic() - t0)

        self._parallel(one, batch)

    def _check_known(self, name: str, batch: list[Change], desired: dict[tuple[str, str], Resource]) -> None:
        """Before any change of a phase: every value it needs exists (ids made by other steps)."""
        for c in batch:
            want = desired.get((c.env, c.key))
            missing = first_unknown(want.props) if want is not None else None
            if missing is None:
                continue
            env = missing.what.split("/")[1] if missing.what.count("/") >= 2 else ""
            if env and not self.ctx.selected(env):
                raise DbreplError(f"{c.type} {c.name} needs {missing.what}, which does not exist yet and is "
                                  f"outside --env: apply {env} first, or run without --env")
            raise DbreplError(f"{c.type} {c.name} needs {missing.what}, which is not made yet: "
                              f"the {name} step's needs are wrong (a bug in dbrepl)")

    def _refuse_replacements(self, step: Step, changes: list[Change]) -> None:
        desired = {(r.env, r.key): r for r in self._select(step.desired(self.ctx))}
        for c in changes:
            if c.action == "replace":
                fields = ", ".join(k for k in c.diff if k in desired[(c.env, c.key)].replace_on)
                raise Refused(
                    f"{c.type} {c.name} would have to be replaced to change {fields}; dbrepl does not "
                    "replace it in place (data or dependants would be lost): change it back in the spec, "
                    "or destroy and apply"
                )

    def _destroy_step(self, name: str, done: list[Change]) -> None:
        step = self.steps[name]
        doomed = [o for o in self.ctx.observed.get(name, {}).values() if self.ctx.selected(o.env)]
        if not doomed:
            return
        try:
            step.prepare_destroy(self.ctx, doomed)
        except (ClientError, BotoCoreError) as e:
            raise AwsFailure(f"prepare {name} for deletion", _why(e)) from e
        for phase in sorted({o.phase for o in doomed}, reverse=True):
            batch = [o for o in doomed if o.phase == phase]

            def one(o: Observed) -> None:
                c = Change("delete", o.type, o.env, o.name, {}, name, o.key, o.phase)
                self.ctx.report("start", change=c)
                t0 = time.monotonic()
                try:
                    step.delete(self.ctx, o)
                except (ClientError, BotoCoreError) as e:
                    raise AwsFailure(f"delete {o.type} {o.name}", _why(e)) from e
                self.ctx.forget_observed(name, o.env, o.key)
                done.append(c)
                self.ctx.report("done", change=c, elapsed=time.monotonic() - t0)

            self._parallel(one, batch)

    def _parallel(self, fn: Callable[[Any], None], items: list[Any]) -> None:
        if not items:
            return
        if len(items) == 1:
            fn(items[0])
            return
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=min(len(items), self.ctx.timing.workers)) as pool:
            futures = [pool.submit(fn, x) for x in items]
            for f in futures:
                exc = f.exception()
                if exc is not None:
                    errors.append(exc)
        for exc in errors:
            if not isinstance(exc, Exception):
                raise exc
        if errors:
            raise errors[0]


def _with_left(exc: DbreplError, not_run: list[str]) -> DbreplError:
    left = f"steps not finished: {', '.join(not_run)}; resources already made were left in place and the next apply picks them up"
    if isinstance(exc, AwsFailure) and not exc.left:
        return AwsFailure(exc.what, exc.why, left)
    if type(exc) is DbreplError:  # a plain one (e.g. a value not made yet): say what was left too
        return DbreplError(f"{exc} ({left})")
    return exc


def _verb(c: Change) -> str:
    return {"create": "create", "update": "update", "delete": "delete", "replace": "replace"}[c.action]


def _why(e: BaseException) -> str:
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip().rstrip(":")
    return str(e)
