"""The application layer: what the commands, the demo and the sync runs do, typed and free of
typer and rich (the CLI parses, calls this, and renders).

- `estate`: `load_checked(config, suffix, envs) -> Target`, `open_estate(target, sandbox=...)
  -> Estate` (the session factory, the engine, the functions, the sandbox's stand-ins).
- `functions`: the deployed sync functions (invoke, or run the handler's code here), their
  records in SSM, the migration scripts bucket.
- `sync`: SRC/DST resolution (environment names or DSNs), argument checks, DSN runs, and
  `sync schema|data` / `migrate apply` as one story each (`prepare_*`, then `run`).
- `provision`: `apply` / `destroy` as one story each (`prepare_apply`, then `apply`; ...).
- `demo`: `dbrepl demo`'s whole flow.
- `permissions`: the IAM policies `dbrepl permissions` prints (derived by dbrepl.engine.permissions).

Nothing here imports from dbrepl.cli.

The names below are loaded on first use (PEP 562): `from dbrepl.app import sync` must not
bring in the engine, the spec's models and boto3, which a DSN run never needs (about half a
second of imports; tests/test_cli_imports.py keeps it so).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbrepl.app.estate import Estate, Target, load_checked, open_estate, refuse_unverified_protected
    from dbrepl.engine.preflight import PreflightFailed, refuse_failed

__all__ = ["Estate", "PreflightFailed", "Target", "load_checked", "open_estate", "refuse_failed",
           "refuse_unverified_protected"]


def __getattr__(name: str) -> Any:
    # Plain import statements (not importlib with a string), so tests/test_architecture.py sees the edges.
    module: ModuleType
    if name in ("Estate", "Target", "load_checked", "open_estate", "refuse_unverified_protected"):
        from dbrepl.app import estate as module
    elif name in ("PreflightFailed", "refuse_failed"):
        from dbrepl.engine import preflight as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value
