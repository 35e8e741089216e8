"""The step registry: the `Step` base class, and the `register` decorator that makes each
step module in dbrepl/steps/ known by its name."""

from __future__ import annotations

import sys
from typing import ClassVar

from dbrepl.engine.context import Context
from dbrepl.engine.model import Change, Observed, Resource
from dbrepl.errors import DbreplError

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
    # Whether the step makes only shared resources (in the hub's account and region): its
    # permissions then go to the hub's principal alone (dbrepl.engine.permissions).
    shared_only: ClassVar[bool] = False

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

    def protects(self, ctx: Context, have: Observed) -> bool:
        """Whether `have` guards itself against deletion (e.g. a cluster's deletion protection),
        whatever its environment: destroy then needs --include-protected too."""
        return False

    def final_snapshot(self, ctx: Context, have: Observed) -> str | None:
        """The name of the snapshot destroy takes of `have` (protected only) and keeps; None: none."""
        return None

    def notes(self, ctx: Context) -> list[str]:
        """After discovery, what a plan should say that is no change (selected environments only):
        a cluster AWS upgraded past the spec, members waiting for a reboot, a setting that does
        not act on what exists."""
        return []

    def held(self, ctx: Context, change: Change) -> str | None:
        """Why apply must leave `change` undone in this run (it needs a flag the run lacks), and
        how to do it; None: apply it."""
        return None

    def retains(self, ctx: Context, have: Observed, doomed: list[Change]) -> str | None:
        """Destroy only: why `have` must outlive this destroy (`doomed`: everything else it
        deletes, final snapshots named), as a note saying how to remove it later; None: delete it."""
        return None

    def prepare_destroy(self, ctx: Context, doomed: list[Observed]) -> None:  # noqa: B027
        """Hook before a step's deletions (e.g. release what blocks them)."""

