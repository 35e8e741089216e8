"""`dbrepl apply` and `dbrepl destroy`, each one story (docs/architecture.md, "One command, one
story"): `prepare_apply` / `prepare_destroy` check the input, open the estate and make the plan,
refusing before anything is shown what the command never does; the CLI renders the plan and asks
once; `apply` / `destroy` carry the plan out and return what was done, for the CLI to render."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbrepl.errors import BadInput

if TYPE_CHECKING:
    from dbrepl.app.estate import Estate, Target
    from dbrepl.engine import Engine
    from dbrepl.engine.model import Plan
    from dbrepl.engine.preflight import PreflightFailed
    from dbrepl.sandbox import Bound, Sandbox


def _refuse_unasked(action: str, can_ask: bool) -> None:
    """Nothing that changes the estate runs unconfirmed: without --yes it needs a terminal to ask on."""
    if not can_ask:
        raise BadInput(f"{action} needs confirmation: pass --yes when not running on a terminal")


def replacement_way_out(target: Target, refused: list[Any]) -> str:
    """What to do about replacements, as commands that run as printed (this run's --sandbox and --config)."""
    from dbrepl.invocation import command

    envs = [f"--env {e}" for e in dict.fromkeys(c.env for c in refused)]
    protected = "--include-protected" if any(c.protected for c in refused) else ""
    return (f"change the spec back, or destroy and apply again, losing their data: "
            f"`{command('destroy', *envs, protected, suffix=target.suffix)}`, "
            f"then `{command('apply', suffix=target.suffix)}`")


# --------------------------------------------------------------------------- apply

@dataclass
class PreparedApply:
    """An apply's plan, checked: a replacement was refused already (before anything is shown); a
    failed preflight check is `refusal`, which the CLI raises once it has shown the findings."""

    target: Target
    estate: Estate
    engine: Engine
    plan: Plan
    refusal: PreflightFailed | None = None

    @property
    def question(self) -> str | None:
        """What to ask before applying (None: nothing would change)."""
        return f"Apply these changes to estate {self.target.suffix}?" if self.plan.changes else None


@dataclass
class Applied:
    """What apply did (`done`: None when nothing had to change) and, in the sandbox, the stand-ins
    given their clusters' master users (with notes)."""

    done: Plan | None
    bound: list[Bound] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The stand-ins could not be given their users: raised after what was applied is shown.
    bind_error: Exception | None = None


def prepare_apply(config: Path | None, suffix: str | None, envs: list[str] | None, *, sandbox: Sandbox | None,
                  reboot: bool, can_ask: bool, progress: Any = None) -> PreparedApply:
    """The spec checked (bad input before any AWS call; without a way to confirm too), the estate
    opened (every role assumed), its plan made (`progress`: the engine's reporter)."""
    from dbrepl.app.estate import load_checked, open_estate, refuse_unverified_protected
    from dbrepl.engine.preflight import PreflightFailed, refuse_failed

    target = load_checked(config, suffix, envs)
    refuse_unverified_protected(target.spec, sandbox)
    _refuse_unasked("apply", can_ask)
    est = open_estate(target, sandbox=sandbox)
    engine = est.engine(reporter=progress, reboot=reboot)
    plan = engine.plan()
    # exit 2 before anything is shown as going to happen
    engine.refuse_replacements(plan, replacement_way_out(target, plan.refused))
    refusal = None
    try:
        refuse_failed(plan.findings)
    except PreflightFailed as exc:
        refusal = exc
    return PreparedApply(target, est, engine, plan, refusal)


def apply(prepared: PreparedApply) -> Applied:
    """Apply the plan (when it changes anything), then, in the sandbox, give each stand-in its
    cluster's master user: also when nothing changed, for a stand-in restarted or rebuilt since."""
    if prepared.refusal is not None:
        raise prepared.refusal
    done = prepared.engine.apply(prepared.plan) if prepared.plan.changes else None
    try:
        bound, notes = prepared.estate.bind_stand_ins()
    except Exception as exc:  # noqa: BLE001 - the apply happened: shown first, then this error
        return Applied(done, bind_error=exc)
    return Applied(done, bound, notes)


# --------------------------------------------------------------------------- destroy

@dataclass
class PreparedDestroy:
    """A destroy's plan, checked (protected resources refused without --include-protected)."""

    target: Target
    engine: Engine
    plan: Plan
    include_protected: bool = False

    @property
    def question(self) -> str | None:
        """What to ask before destroying (None: nothing to delete)."""
        if not self.plan.changes:
            return None
        return f"Destroy estate {self.target.suffix}? Databases, secrets and scripts will be deleted for good."


def prepare_destroy(config: Path | None, suffix: str | None, envs: list[str] | None, *, sandbox: Sandbox | None,
                    include_protected: bool, can_ask: bool, progress: Any = None) -> PreparedDestroy:
    """The spec checked (bad input before any AWS call; without a way to confirm too), the estate
    opened and everything of the selection listed to delete (`progress`: the engine's reporter)."""
    from dbrepl.app.estate import load_checked, open_estate

    target = load_checked(config, suffix, envs)
    _refuse_unasked("destroy", can_ask)
    engine = open_estate(target, sandbox=sandbox).engine(reporter=progress)
    plan = engine.destroy_plan()
    engine.refuse_protected(plan, include_protected)  # before anything is shown as going to happen
    return PreparedDestroy(target, engine, plan, include_protected)


def destroy(prepared: PreparedDestroy) -> Plan:
    """Delete what the plan lists; what was deleted (a protected cluster's change names its final snapshot)."""
    return prepared.engine.destroy(prepared.plan, include_protected=prepared.include_protected)
