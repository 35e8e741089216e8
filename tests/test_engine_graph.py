"""The engine's apply graph with stand-in steps (no AWS): a phase starts once what it needs is
done (Step.needs), not when its whole parent steps are; wrong needs fail loudly before any call;
replacements are refused before anything changes."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, ClassVar

import pytest

from dbrepl.aws.session import SessionFactory
from dbrepl.engine import STEPS, Change, Context, Engine, Observed, Plan, Resource, Step
from dbrepl.errors import DbreplError, Refused, ReplacementRefused
from tests.aws.harness import fast_spec


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, int]] = []  # (start|end, step, phase)

    def add(self, what: str, step: str, phase: int) -> None:
        with self.lock:
            self.events.append((what, step, phase))

    def index(self, what: str, step: str, phase: int) -> int:
        return self.events.index((what, step, phase))


class Fake(Step):
    """Wants one resource per phase in dev; applying it records start and end."""

    phases: ClassVar[tuple[int, ...]] = (0, 1)
    refers_to: ClassVar[tuple[str, str] | None] = None  # (step, key) whose id a phase-0 prop holds
    rec: ClassVar[Recorder]
    hold: ClassVar[dict[tuple[str, int], Any]] = {}

    def desired(self, ctx: Context) -> list[Resource]:
        out = []
        for p in self.phases:
            props: dict[str, Any] = {"n": p}
            if p == 0 and self.refers_to:
                props["ref"] = ctx.id_of(self.refers_to[0], "dev", self.refers_to[1])
            out.append(Resource(f"r{p}", "Test::Thing", "dev", f"{self.name}-{p}", props, phase=p))
        return out

    def discover(self, ctx: Context) -> list[Observed]:
        return []

    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed:
        assert want is not None
        self.rec.add("start", self.name, want.phase)
        hold = self.hold.get((self.name, want.phase))
        if hold is not None:
            hold()
        self.rec.add("end", self.name, want.phase)
        return Observed(want.key, want.type, want.env, want.name, f"id-{want.name}", dict(want.props), phase=want.phase)


@pytest.fixture
def make_engine(monkeypatch):
    rec = Recorder()

    def make(*classes: type[Fake]) -> tuple[Engine, Recorder]:
        for cls in classes:
            cls.rec = rec
            monkeypatch.setitem(STEPS, cls.name, cls)
        ctx = Context(fast_spec(), "g1", SessionFactory("us-east-1"), envs=["dev"])
        return Engine(ctx, steps=[c.name for c in classes]), rec

    return make


def test_a_phase_starts_when_its_needs_are_done_not_its_parent_step(make_engine):
    seen_b0 = threading.Event()

    class A(Fake):
        name = "t-a"
        # A's last phase waits until B's first has started: only possible when B does not wait for all of A.
        hold: ClassVar = {("t-a", 1): lambda: seen_b0.wait(10)}

    class B(Fake):
        name = "t-b"
        depends_on = ("t-a",)
        needs: ClassVar = {0: (), 1: ("t-a:0",)}
        refers_to = None

        def apply(self, ctx, change, want, have):
            if want.phase == 0:
                seen_b0.set()
            return super().apply(ctx, change, want, have)

    class C(Fake):
        name = "t-c"
        depends_on = ("t-a",)  # no needs: every phase waits for all of t-a

    eng, rec = make_engine(A, B, C)
    done = eng.apply()
    assert len(done.changes) == 6
    assert seen_b0.is_set()
    assert rec.index("start", "t-b", 0) < rec.index("end", "t-a", 1)  # side by side with its parent
    assert rec.index("end", "t-a", 0) < rec.index("start", "t-b", 1)  # "t-a:0" is waited for
    assert rec.index("end", "t-b", 0) < rec.index("start", "t-b", 1)  # its own phases in order
    assert rec.index("end", "t-a", 1) < rec.index("start", "t-c", 0)  # plain depends_on: all of it


def test_wrong_needs_fail_before_the_change_is_attempted(make_engine):
    class A(Fake):
        name = "t-a"
        hold: ClassVar = {("t-a", 0): lambda: time.sleep(0.3)}

    class D(Fake):
        name = "t-d"
        depends_on = ("t-a",)
        needs: ClassVar = {0: ()}  # wrong: its phase 0 refers to t-a's phase-1 resource
        refers_to = ("t-a", "r1")

    eng, rec = make_engine(A, D)
    with pytest.raises(DbreplError, match=r"t-d-0 needs t-a/dev/r1, which is not made yet"):
        eng.apply()
    assert ("start", "t-d", 0) not in rec.events


def test_needs_must_name_a_phase_of_a_step_depended_on(make_engine):
    class A(Fake):
        name = "t-a"

    class E(Fake):
        name = "t-e"
        needs: ClassVar = {0: ("t-a:0",)}  # t-a is not in depends_on

    with pytest.raises(DbreplError, match="needs 't-a:0'"):
        make_engine(A, E)

    class F(Fake):
        name = "t-f"
        depends_on = ("t-a",)
        needs: ClassVar = {0: ("t-a:first",)}

    with pytest.raises(DbreplError, match="needs 't-a:first'"):
        make_engine(A, F)


def test_a_replacement_is_refused_before_anything_changes(make_engine):
    class R(Fake):
        name = "t-r"
        phases = (0, 1)

        def desired(self, ctx):
            out = super().desired(ctx)
            out[1].replace_on = frozenset({"n"})
            return out

        def discover(self, ctx):  # phase 1's resource exists with a value only a replacement changes
            return [Observed("r1", "Test::Thing", "dev", "t-r-1", "id-old", {"n": 99}, phase=1)]

    class Other(Fake):
        name = "t-other"

    eng, rec = make_engine(R, Other)
    plan = eng.plan()
    assert [(c.name, c.refused) for c in plan.refused] == [("t-r-1", "n 99 -> 1 cannot change in place")]
    assert plan.summary == {"create": 3, "update": 0, "replace": 1, "delete": 0}  # a replace is no create
    with pytest.raises(ReplacementRefused, match=r"Test::Thing t-r-1 \(n 99 -> 1 cannot change in place\)") as e:
        eng.apply()
    assert e.value.exit_code == 2  # bad input: nothing was touched
    assert rec.events == []  # not even the independent step, nor R's phase 0
    # A plan made by hand (no reasons marked) is still refused, step by step, before any change.
    with pytest.raises(Refused, match="t-r-1 would have to be replaced to change n"):
        eng.apply(Plan([dataclasses.replace(c, refused=None) for c in plan.changes]))
    assert rec.events == []


def test_a_value_outside_the_chosen_environments_is_named_with_the_fix(make_engine):
    class A(Fake):
        name = "t-a"

    class G(Fake):
        name = "t-g"
        depends_on = ("t-a",)

        def desired(self, ctx):  # refers to staging's resource; only dev is chosen (--env dev)
            return [Resource("r0", "Test::Thing", "dev", "t-g-0", {"peer": ctx.id_of("t-a", "staging", "r0")})]

    eng, rec = make_engine(A, G)
    with pytest.raises(DbreplError, match=r"t-g-0 needs t-a/staging/r0, which does not exist yet and is outside "
                                          r"--env: apply staging first, or run without --env"):
        eng.apply()
    assert ("start", "t-g", 0) not in rec.events
