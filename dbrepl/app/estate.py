"""One estate as the commands, the demo and the sync runs use it: the checked spec, the suffix,
the session factory (AWS or the sandbox's) and what is built from them (engine, functions).

    estate = open_estate(load_checked(config, suffix, envs), sandbox=Sandbox.running())
    plan = estate.engine().plan()
    result = estate.functions.run("data", event, direct=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbrepl.errors import BadInput

if TYPE_CHECKING:
    from dbrepl.app.functions import Functions
    from dbrepl.aws.session import SessionFactory
    from dbrepl.engine import Engine
    from dbrepl.sandbox import Bound, Sandbox
    from dbrepl.spec import Spec


@dataclass(frozen=True)
class Target:
    """What a provisioning command works on: the spec, the suffix and the environments."""

    spec: Spec
    suffix: str
    envs: list[str] | None = None  # None: all, and 'shared'


def load_checked(config: Path | None, suffix: str | None, envs: Sequence[str] | None = None) -> Target:
    """The spec, the suffix and `--env` values, each checked (bad input: exit 2, no AWS call)."""
    from dbrepl.app.names import check_names
    from dbrepl.spec import check_suffix, load_spec

    spec = load_spec(config)
    checked = check_suffix(suffix)
    check_names(spec, checked)
    if envs:
        known = [*spec.environments, "shared"]
        for e in envs:
            if e not in known:
                raise BadInput(f"unknown environment {e!r} in --env; choose from {', '.join(known)}")
    return Target(spec, checked, list(envs) if envs else None)


def refuse_unverified_protected(spec: Spec, sandbox: Sandbox | None = None) -> None:
    """Bad input (exit 2, before any call) for plan and apply: a protected environment whose
    connections would not verify the server (no `databases.tls.ca_bundle`), unless the spec says
    `databases.tls.verify: false` itself. In the sandbox the stand-ins are verified against the CA
    it made; a sandbox without stand-ins has no database to connect to."""
    from dbrepl.spec import RDS_CA_BUNDLE_URL

    if sandbox is not None:
        if not sandbox.state.ca_bundle:
            return
        spec = sandbox.effective_spec(spec)
    tls = spec.databases.tls
    protected = [e for e, env in spec.environments.items() if env.protected]
    if not protected or tls.ca_bundle is not None or not tls.verify:
        return
    if sandbox is None:  # no AWS to talk to and a sandbox running: that is the news, not the CA
        _refuse_without_aws(spec)
    which = f"{', '.join(protected)} {'is' if len(protected) == 1 else 'are'} protected"
    raise BadInput(f"databases.tls.ca_bundle: not set while {which}, so connections to it would not verify the "
                   f"server; download the RDS CA bundle ({RDS_CA_BUNDLE_URL}) next to the spec and set "
                   "databases.tls.ca_bundle, or set databases.tls.verify: false to accept unverified TLS")


@dataclass
class Estate:
    spec: Spec
    suffix: str
    sessions: SessionFactory
    envs: list[str] | None = None
    sandbox: Sandbox | None = None
    keep_stand_in_data: bool = False  # the sandbox: deleting a cluster leaves its stand-in's data (demo --keep)
    _functions: Functions | None = field(default=None, repr=False)
    _roles_checked: bool = field(default=False, repr=False)

    def engine(self, reporter: Any = None, *, reboot: bool = False) -> Engine:
        """A new engine over this estate (every environment's role assumed first: a role that
        cannot be assumed is bad input, found before anything is read or changed)."""
        import dbrepl.steps  # noqa: F401  (registers the steps)
        from dbrepl.engine import Context, Engine

        if not self._roles_checked:
            self.sessions.check_roles(list(self.spec.environments))
            self._roles_checked = True
        if self.sandbox is not None:  # the stand-ins' data goes and comes back with their clusters
            reporter = self.sandbox.follow_clusters(reporter, self.sessions, self.keep_stand_in_data)
        return Engine(Context(self.spec, self.suffix, self.sessions, envs=self.envs, reporter=reporter,
                              reboot=reboot))

    @property
    def functions(self) -> Functions:
        """The deployed sync functions, their records and the scripts bucket."""
        if self._functions is None:
            from dbrepl.app.functions import Functions

            self._functions = Functions(self.spec, self.suffix, self.sessions, self.sandbox)
        return self._functions

    def bind_stand_ins(self) -> tuple[list[Bound], list[str]]:
        """In the sandbox: each stand-in gets its cluster's master user (never printed)."""
        if self.sandbox is None:
            return [], []
        wanted = [e for e in (self.envs or self.spec.environments) if e in self.spec.environments]
        return self.sandbox.bind_stand_ins(self.spec, self.suffix, self.sessions, wanted)


def open_estate(target: Target, *, sandbox: Sandbox | None = None) -> Estate:
    """The estate of `target` on AWS (the standard credential chain) or in `sandbox`."""
    from dbrepl.aws.session import SessionFactory

    # In the sandbox the databases are its stand-ins, verified against the CA it made.
    spec = sandbox.effective_spec(target.spec) if sandbox else target.spec
    sessions = sandbox.session_factory(spec) if sandbox else SessionFactory.from_spec(spec)
    try:
        sessions.check_credentials()
        sessions.region_for(None)
    except BadInput:
        if sandbox is None:
            refuse_missing_sandbox_flag()
        raise
    return Estate(spec, target.suffix, sessions, target.envs, sandbox)


def _refuse_without_aws(spec: Spec) -> None:
    from dbrepl.aws.session import SessionFactory

    try:
        sessions = SessionFactory.from_spec(spec)
        sessions.check_credentials()
        sessions.region_for(None)
    except BadInput:
        refuse_missing_sandbox_flag()


def refuse_missing_sandbox_flag(cwd: Path | None = None) -> None:
    """No AWS credentials or region, and a sandbox runs here: one line saying so, with this very
    command line and `--sandbox` (exit 2), instead of AWS advice and "start a sandbox"."""
    from dbrepl.invocation import with_sandbox
    from dbrepl.sandbox import Sandbox

    running = Sandbox.running(cwd)
    if running is not None:
        where = Path(running.state.root).parent.parent
        raise BadInput(f"no AWS credentials or region here, and the sandbox in {where} is running, but --sandbox "
                       f"was not given: run `{with_sandbox()}` (or set DBREPL_SANDBOX=1)")
