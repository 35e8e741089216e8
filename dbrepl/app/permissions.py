"""`dbrepl permissions`: the IAM policies plan/apply/status/destroy need for a spec and suffix,
one per principal (the caller, and each role the spec's environments assume), derived from the
steps' declared permissions by dbrepl.engine.permissions. Reads nothing from AWS but the
caller's account id, and not even that with `account=`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dbrepl.aws import error_reason
from dbrepl.engine.permissions import DEPLOYER, Derived, Principal, derive, policy_size
from dbrepl.errors import BadInput

if TYPE_CHECKING:
    from dbrepl.app.estate import Target
    from dbrepl.aws.session import SessionFactory
    from dbrepl.sandbox import Sandbox

ACCOUNT_RE = re.compile(r"^\d{12}$")


def deployer_policies(target: Target, *, account: str | None = None,
                      sandbox: Sandbox | None = None) -> list[Derived]:
    """The deployer's policy first, then one per role the spec names (in the order of the spec)."""
    import dbrepl.steps  # noqa: F401  (registers the steps)
    from dbrepl.aws.session import DEFAULT, SessionFactory
    from dbrepl.engine.registry import STEPS

    spec, suffix = target.spec, target.suffix
    if account is not None and not ACCOUNT_RE.match(account):
        raise BadInput(f"invalid --account {account!r}: give the 12-digit AWS account id")
    sessions = sandbox.session_factory(spec) if sandbox else SessionFactory.from_spec(spec)
    hub = spec.sync.hub
    by_who: dict[str, list[str]] = {}
    for env in spec.environments:
        who = sessions.identity_for(env)
        by_who.setdefault(DEPLOYER if who == DEFAULT else who, []).append(env)
    caller = account or _caller_account(sessions)
    hub_who = DEPLOYER if sessions.identity_for(hub) == DEFAULT else sessions.identity_for(hub)
    roles = [w for w in by_who if w != DEPLOYER]
    principals = [Principal(DEPLOYER, caller, _regions(sessions, by_who.get(DEPLOYER, [])),
                            tuple(by_who.get(DEPLOYER, [])), hub_who == DEPLOYER, tuple(roles))]
    principals += [Principal(r, r.split(":")[4], _regions(sessions, by_who[r]), tuple(by_who[r]), hub_who == r)
                   for r in roles]
    out = []
    for pr in principals:
        steps = {name: cls.permissions for name, cls in STEPS.items() if pr.hub or not cls.shared_only}
        peers = [(r, o.account) for o in principals if o is not pr for r in o.regions]
        out.append(derive(pr, steps, suffix=suffix, hub_region=sessions.region_for(hub), peers=peers,
                          alarms=alarm_names(target, sessions, pr)))
    return out


def alarm_names(target: Target, sessions: SessionFactory, pr: Principal) -> list[tuple[str, str]]:
    """(region, name) of every alarm `pr` makes (dbrepl.steps.alarms): its environments' replication
    lag alarms, and for the hub's principal the routes' and the functions' alarms."""
    from dbrepl import names
    from dbrepl.steps.alarms import FUNCTION_METRICS

    spec, s = target.spec, target.suffix
    out = [(sessions.region_for(env), names.alarm(env, s)) for env in pr.envs]
    if pr.hub:
        hub_region = sessions.region_for(spec.sync.hub)
        for sc in spec.sync.schedules:
            out += [(hub_region, names.sync_failure_alarm(sc.kind, sc.source, sc.target, s)),
                    (hub_region, names.sync_stale_alarm(sc.kind, sc.source, sc.target, s))]
        out += [(hub_region, names.function_alarm(kind, metric, s))
                for kind in names.FUNCTIONS for metric in FUNCTION_METRICS]
        if spec.sync.schedules:  # the schedules' dead-letter queue's alarm (issue 18)
            out.append((hub_region, names.schedule_dead_letters_alarm(s)))
    return out


def _regions(sessions: SessionFactory, envs: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(sessions.region_for(e) for e in envs))


def _caller_account(sessions: SessionFactory) -> str:
    try:
        sessions.check_credentials()
        return str(sessions.client("sts").get_caller_identity()["Account"])
    except BadInput:
        raise BadInput("no AWS credentials to read the account id from: pass --account ID "
                       "(the 12-digit account the deployer works in)") from None
    except Exception as e:
        raise BadInput(f"could not read the account id ({error_reason(e)}): pass --account ID") from None


def choose(policies: list[Derived], who: str | None) -> Derived:
    """The policy of `who` (DEPLOYER or a role ARN of the spec); bad input names the choices."""
    if who is None:
        return policies[0]
    for d in policies:
        if d.principal.who == who:
            return d
    raise BadInput(f"--role {who!r} is not a role of this spec; choose from: "
                   + ", ".join(d.principal.who for d in policies))


def choose_part(derived: Derived, part: int | None) -> dict:
    """The document to print: the whole policy when it fits one managed policy, else `part`."""
    parts = derived.parts
    if part is None:
        if len(parts) > 1:
            raise BadInput(f"the policy is larger than one managed policy (6144 characters) and comes in "
                           f"{len(parts)} parts: add --part 1 ... --part {len(parts)} and attach each")
        return parts[0]
    if part > len(parts):
        raise BadInput(f"--part {part}: the policy has {len(parts)} part(s)")
    return parts[part - 1]


__all__ = ["DEPLOYER", "Derived", "choose", "choose_part", "deployer_policies", "policy_size"]
