"""The engine: steps, the change model, planning, and running the step graph.

A step (one module in dbrepl/steps/) says what it wants (`desired`), reads what is there
(`discover`, read-only and batched), and carries out one change at a time (`apply`,
`delete`). The engine diffs desired against observed into `Change`s, runs steps in
dependency order (independent steps and environments side by side) and keeps no state
file: state is the tags on the resources themselves (docs/engine.md).

Modules, each importing only those before it: `model` (the change model, pure), `context`
(what a step runs in), `registry` (the `Step` base and the registry), `runner` (`Engine`).
"""

from dbrepl.engine.context import MANAGED_BY, Context, Reporter
from dbrepl.engine.model import (
    SHARED,
    Change,
    Observed,
    Plan,
    Resource,
    Unknown,
    diff_step,
    first_unknown,
    is_unknown,
)
from dbrepl.engine.registry import STEPS, Step, get_step, register
from dbrepl.engine.runner import Engine

__all__ = [
    "MANAGED_BY",
    "SHARED",
    "STEPS",
    "Change",
    "Context",
    "Engine",
    "Observed",
    "Plan",
    "Reporter",
    "Resource",
    "Step",
    "Unknown",
    "diff_step",
    "first_unknown",
    "get_step",
    "is_unknown",
    "register",
]
