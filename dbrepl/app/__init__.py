"""The application layer: what the commands, the demo and the sync runs do, typed and free of
typer and rich (the CLI parses, calls this, and renders).

- `estate`: `load_checked(config, suffix, envs) -> Target`, `open_estate(target, sandbox=...)
  -> Estate` (the session factory, the engine, the functions, the sandbox's stand-ins).
- `functions`: the deployed sync functions (invoke, or run the handler's code here), their
  records in SSM, the migration scripts bucket.
- `sync`: SRC/DST resolution (environment names or DSNs), argument checks, DSN runs.
- `demo`: `dbrepl demo`'s whole flow.
- `permissions`: the IAM policies `dbrepl permissions` prints (derived by dbrepl.engine.permissions).

Nothing here imports from dbrepl.cli.
"""

from dbrepl.app.estate import Estate, Target, load_checked, open_estate, refuse_unverified_protected
from dbrepl.engine.preflight import PreflightFailed, refuse_failed

__all__ = ["Estate", "PreflightFailed", "Target", "load_checked", "open_estate", "refuse_failed",
           "refuse_unverified_protected"]
