"""The change model: what a step wants (`Resource`), what discovery found (`Observed`), the
difference between them (`Change`, gathered in a `Plan`), and values known only after apply
(`Unknown`). Pure data and pure functions: nothing here talks to AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The pseudo-environment of what the estate shares (bucket, functions), kept in the hub.
SHARED = "shared"


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

    @property
    def tag_dict(self) -> dict[str, str]:
        """The tags of a resource that carries tags (what a step asks for its taggable kinds)."""
        if self.tags is None:
            raise TypeError(f"{self.type} {self.name} carries no tags")
        return self.tags


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

    @property
    def found_id(self) -> str:
        """The id of a resource its service names by id (what a step asks for those kinds)."""
        if self.id is None:
            raise TypeError(f"{self.type} {self.name} has no id")
        return self.id


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
    # Deletes or replaces something of a protected environment (or a cluster with deletion
    # protection on): destroy refuses it without --include-protected.
    protected: bool = False
    final_snapshot: str | None = None  # the cluster snapshot destroy takes and keeps
    # Why apply would refuse this change ("CidrBlock a -> b cannot change in place": dbrepl never
    # replaces). plan shows it; apply refuses the whole plan before changing anything.
    refused: str | None = None

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
            **({"protected": True} if self.protected else {}),
            **({"final_snapshot": self.final_snapshot} if self.final_snapshot else {}),
            **({"refused": self.refused} if self.refused else {}),
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
    findings: list[Any] = field(default_factory=list)  # preflight's (dbrepl.engine.preflight.Finding)
    # What a person should know that is not a change (steps' `notes`: a cluster AWS upgraded past
    # the spec, members waiting for a reboot, a setting that does not act on what exists); in a
    # destroy plan, what it leaves alone on purpose (a key kept for a final snapshot) and what to
    # do about it; after apply, what was held back and how to do it.
    notes: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        """Changes of this action; a replacement counts as "replace" only (not create and delete)."""
        return sum(c.action == action for c in self.changes)

    @property
    def summary(self) -> dict[str, int]:
        return {a: self.count(a) for a in ("create", "update", "replace", "delete")}

    @property
    def refused(self) -> list[Change]:
        """The changes apply would refuse (it then refuses the whole plan, before any change)."""
        return [c for c in self.changes if c.refused]

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "summary": self.summary,
                "refused": len(self.refused), "preflight": [f.to_json() for f in self.findings],
                "notes": list(self.notes)}



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
            created: dict[str, tuple[Any, Any]] = {k: (None, v) for k, v in r.props.items()}
            changes.append(Change("create", r.type, r.env, r.name, created, step, r.key, r.phase))
            continue
        d: dict[str, tuple[Any, Any]] = {}
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
