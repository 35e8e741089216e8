"""Running steps: discovery, planning, and apply/destroy over the graph of (step, phase).

Steps run in dependency order, independent steps and environments side by side; within a
step, the changes of one phase run together. No state file: state is the tags on the
resources themselves (docs/engine.md).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dbrepl.aws import error_reason
from dbrepl.engine.context import Context
from dbrepl.engine.model import Change, Observed, Plan, Resource, diff_step, first_unknown
from dbrepl.engine.preflight import preflight, refuse_failed
from dbrepl.engine.registry import STEPS, Step, get_step
from dbrepl.errors import AwsFailure, DbreplError, ProtectedRefused, Refused, ReplacementRefused


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
                raise AwsFailure(f"read the {name} resources", error_reason(e), "nothing was changed") from e

        with ThreadPoolExecutor(max_workers=max(1, len(self.steps))) as pool:
            for name, found in pool.map(one, self.order):
                self.ctx.observed[name] = {}
                for o in found:
                    self.ctx.record(name, o)

    def desired(self, name: str) -> list[Resource]:
        """What step `name` wants in the selected environments."""
        return [r for r in self.steps[name].desired(self.ctx) if self.ctx.selected(r.env)]

    def observed(self, name: str) -> dict[tuple[str, str], Observed]:
        """What discovery found for step `name` in the selected environments, by (env, key)."""
        return {k: o for k, o in self.ctx.observed.get(name, {}).items() if self.ctx.selected(o.env)}

    def plan_step(self, name: str) -> list[Change]:
        return diff_step(name, self.desired(name), self.observed(name))

    def plan(self) -> Plan:
        self.discover()
        changes: list[Change] = []
        for name in self.order:
            changes.extend(self._mark(name, c) for c in self.plan_step(name))
        notes = [n for name in self.order for n in self.steps[name].notes(self.ctx)]
        return Plan(changes, preflight(self.ctx, changes), notes)

    def _protected(self, name: str, env: str, have: Observed | None) -> bool:
        """Something of a protected environment, or a resource that protects itself."""
        e = self.ctx.spec.environments.get(env)
        return bool(e is not None and e.protected) or (have is not None and self.steps[name].protects(self.ctx, have))

    def _mark(self, name: str, c: Change) -> Change:
        """A delete or replace of a protected resource says so; a replacement says apply refuses it."""
        if c.action == "replace":
            c = dataclasses.replace(c, refused=self._replacement_reason(name, c))
        if c.action not in ("delete", "replace") or not self._protected(name, c.env, self.ctx.get(name, c.env, c.key)):
            return c
        return dataclasses.replace(c, protected=True)

    def _replacement_reason(self, name: str, c: Change) -> str:
        want = next((r for r in self.desired(name) if (r.env, r.key) == (c.env, c.key)), None)
        fields = [k for k in c.diff if want is not None and k in want.replace_on] or list(c.diff)
        what = ", ".join(f"{k} {_short(c.diff[k][0])} -> {_short(c.diff[k][1])}" for k in fields)
        return f"{what} cannot change in place"

    @staticmethod
    def refuse_replacements(plan: Plan, way_out: str = "change the spec back, or destroy and apply again") -> None:
        """Before any change: a plan with a replacement is refused whole (ReplacementRefused, exit 2)."""
        hit = plan.refused
        if not hit:
            return
        names = "; ".join(f"{c.type} {c.name} ({c.refused})" for c in hit)
        raise ReplacementRefused(
            f"apply refused, nothing was changed: {len(hit)} resource(s) would have to be replaced, which dbrepl "
            f"never does (their data or dependants would be lost): {names}; {way_out}")

    def destroy_plan(self) -> Plan:
        """Every resource of the selection, to delete. A protected cluster's final snapshot is
        named here (after the cluster and the time) and the same name is used when deleting."""
        self.ctx.destroying = True  # discovery may read what only destroy removes
        self.discover()
        changes = []
        for name in reversed(self.order):
            for o in sorted(self.observed(name).values(), key=lambda o: -o.phase):
                d = {k: (v, None) for k, v in o.props.items()}
                protected = self._protected(name, o.env, o)
                snapshot = self.steps[name].final_snapshot(self.ctx, o) if protected else None
                if snapshot:
                    o.attrs["final_snapshot"] = snapshot
                changes.append(Change("delete", o.type, o.env, o.name, d, name, o.key, o.phase,
                                      protected=protected, final_snapshot=snapshot))
        # What must outlive the destroy (a key that encrypts a kept snapshot) leaves the plan,
        # and discovery's record, with a note: destroy deletes only what the plan lists.
        kept: list[Change] = []
        notes: list[str] = []
        for c in changes:
            have = self.ctx.get(c.step, c.env, c.key)
            why = self.steps[c.step].retains(self.ctx, have, changes) if have is not None else None
            if why:
                kept.append(c)
                notes.append(why)
                self.ctx.forget_observed(c.step, c.env, c.key)
        gone = {id(c) for c in kept}
        return Plan([c for c in changes if id(c) not in gone], notes=notes)

    @staticmethod
    def refuse_protected(plan: Plan, include_protected: bool) -> None:
        """Before any change: a destroy that would delete anything protected needs
        --include-protected (ProtectedRefused, exit 2, naming the environments)."""
        hit = [c for c in plan.changes if c.protected and c.action in ("delete", "replace")]
        if not hit or include_protected:
            return
        envs = list(dict.fromkeys(c.env for c in hit))
        raise ProtectedRefused(
            f"destroy would delete {len(hit)} resource(s) of protected environment(s) {', '.join(envs)}; "
            "nothing was changed: run again with --include-protected to turn deletion protection off, "
            "keep a final snapshot of each protected cluster and delete them, or leave them out with --env"
        )

    # -- doing
    def apply(self, plan: Plan | None = None) -> Plan:
        """Apply phase by phase over the graph of (step, phase): a phase starts once the phases it
        needs are done (Step.needs), so independent work overlaps across steps; each phase
        re-plans with the ids its parents just made."""
        if plan is None:
            plan = self.plan()
        refuse_failed(plan.findings)  # refuse before anything changes, not halfway through
        self.refuse_replacements(plan)
        for name in self.order:  # a plan made without plan() (no reasons marked)
            self._refuse_replacements(name, [c for c in plan.changes if c.step == name])
        phases = {n: self._phases(n) for n in self.order}
        nodes = [(n, p) for n in self.order for p in phases[n]]

        def deps(node: tuple[str, int]) -> set[tuple[str, int]]:
            name, phase = node
            out = {(name, q) for q in phases[name] if q < phase}
            for dep, upto in self._needs(self.steps[name], phase):
                out |= {(dep, q) for q in phases[dep] if upto is None or q <= upto}
            return out

        done: list[Change] = []
        self._run_graph(nodes, deps, lambda node: self._apply_phase(node[0], node[1], done), lambda node: node[0])
        return Plan(done, notes=list(self.ctx.held))

    def destroy(self, plan: Plan | None = None, *, include_protected: bool = False) -> Plan:
        """Delete the selection, the graph backwards. Refuses, before any change, to delete anything
        protected unless `include_protected` (see `refuse_protected`)."""
        if plan is None:
            plan = self.destroy_plan()
        self.refuse_protected(plan, include_protected)
        done: list[Change] = []

        def deps(n: str) -> set[str]:
            return {m for m, s in self.steps.items() if n in s.depends_on}

        self._run_graph(list(reversed(self.order)), deps, lambda name: self._destroy_step(name, done), str)
        return Plan(done)

    def _phases(self, name: str) -> list[int]:
        """The phases a step has here: those of what it wants and of what exists."""
        wanted = {r.phase for r in self.desired(name)}
        found = {o.phase for o in self.observed(name).values()}
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
        desired = {(r.env, r.key): r for r in self.desired(name)}
        batch = [c for c in self.plan_step(name) if c.phase == phase]
        self._refuse_replacements(name, batch)
        for c in list(batch):
            why = step.held(self.ctx, c)
            if why is not None:
                self.ctx.hold(f"{c.type} {c.name}", why)
                batch.remove(c)
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
                raise AwsFailure(f"{c.action} {c.type} {c.name}", error_reason(e)) from e
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

    def _refuse_replacements(self, name: str, changes: list[Change]) -> None:
        desired = {(r.env, r.key): r for r in self.desired(name)}
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
        doomed = list(self.observed(name).values())
        if not doomed:
            return
        try:
            step.prepare_destroy(self.ctx, doomed)
        except (ClientError, BotoCoreError) as e:
            raise AwsFailure(f"prepare {name} for deletion", error_reason(e)) from e
        for phase in sorted({o.phase for o in doomed}, reverse=True):
            batch = [o for o in doomed if o.phase == phase]

            def one(o: Observed) -> None:
                protected = self._protected(name, o.env, o)
                if protected and "final_snapshot" not in o.attrs:  # a plan made by another engine
                    o.attrs["final_snapshot"] = step.final_snapshot(self.ctx, o)
                c = Change("delete", o.type, o.env, o.name, {}, name, o.key, o.phase,
                           protected=protected, final_snapshot=o.attrs.get("final_snapshot"))
                self.ctx.report("start", change=c)
                t0 = time.monotonic()
                try:
                    step.delete(self.ctx, o)
                except (ClientError, BotoCoreError) as e:
                    raise AwsFailure(f"delete {o.type} {o.name}", error_reason(e)) from e
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
    left = (f"steps not finished: {', '.join(not_run)}; resources already made were left in place "
            "and the next apply picks them up")
    if isinstance(exc, AwsFailure) and not exc.left:
        return AwsFailure(exc.what, exc.why, left)
    if type(exc) is DbreplError:  # a plain one (e.g. a value not made yet): say what was left too
        return DbreplError(f"{exc} ({left})")
    return exc


def _short(v: Any, limit: int = 60) -> str:
    """A value in a one-line message."""
    text = v if isinstance(v, str) else repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."
