"""Status: the seed's Outputs plus each resource's state, from one read-only discovery."""

from __future__ import annotations

from typing import Any

from dbrepl import names
from dbrepl.engine import SHARED, Engine, diff_step


def estate_status(engine: Engine) -> dict[str, Any]:
    ctx = engine.ctx
    engine.discover()
    notes = [n for step in engine.order for n in engine.steps[step].notes(ctx)]
    resources = []
    for step in engine.order:
        desired = engine.desired(step)
        observed = engine.observed(step)
        changes = {(c.env, c.key): c for c in diff_step(step, desired, observed)}
        for r in desired:
            c = changes.get((r.env, r.key))
            state = "ok" if c is None else ("missing" if c.action == "create" else "drifted")
            resources.append({"step": step, "env": r.env, "type": r.type, "name": r.name, "state": state,
                              "drift": sorted(c.diff) if c is not None and state == "drifted" else []})
        for (env, key), o in observed.items():
            if (env, key) in changes and changes[(env, key)].action == "delete":
                resources.append({"step": step, "env": env, "type": o.type, "name": o.name, "state": "extra",
                                  "drift": []})
    outputs: dict[str, Any] = {}
    for env in ctx.all_envs:
        ep = ctx.attr("aurora", env, "cluster", "endpoint")
        outputs[f"{env.capitalize()}AuroraClusterEndpoint"] = ep if isinstance(ep, str) else None
    b = ctx.get("bucket", SHARED, "bucket")
    outputs["MigrationScriptsBucketName"] = b.name if b else None
    for kind, label in (("schema", "SchemaReplicationFunctionArn"), ("data", "DataReplicationFunctionArn")):
        f = ctx.get("lambdas", SHARED, f"fn-{kind}")
        outputs[label] = f.id if f else None
    alarms = [{"name": o.name, "env": o.env, "state": o.attrs.get("state") or "unknown"}
              for step in engine.order for o in engine.observed(step).values() if o.type == "AWS::CloudWatch::Alarm"]
    alarms.sort(key=lambda a: a["name"])
    return {"suffix": ctx.suffix, "outputs": outputs, "resources": resources, "alarms": alarms,
            "summary": {s: sum(r["state"] == s for r in resources) for s in ("ok", "missing", "drifted", "extra")},
            "notes": notes,
            "functions": {k: names.function(k, ctx.suffix) for k in ("schema", "data")}}
