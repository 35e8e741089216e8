"""What both handlers do around a run, shared with `--direct` and the sandbox (which run the
handler's code in the CLI's process): time the run, print its EMF metrics line, log its outcome.
On Lambda, stdout and the log records land in the function's log group."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from dbrepl.sync import contract, metrics

logger = logging.getLogger("dbrepl.sync.handlers")


def run_event(kind: str, runner: Callable[..., dict[str, Any]], event: object, *,
              environ: Mapping[str, str] | None = None, emit: Callable[[str], None] | None = None,
              **kw: Any) -> dict[str, Any]:
    """`runner(event, environ=..., **kw)` (run_data_event / run_schema_event), then its metrics
    line to `emit` (default: stdout) and its outcome to the log. The event and the result carry
    no credentials: secrets stay inside the runner."""
    environ = os.environ if environ is None else environ
    started = time.monotonic()
    result = runner(event, environ=environ, **kw)
    line = metrics.emf_line(result, environ.get(contract.ENVIRONMENT_SUFFIX, ""), (time.monotonic() - started) * 1000)
    if line is not None:
        (emit or _stdout)(line)
    rows = f", {result.get('rows_synced', 0)} rows" if kind == "data" else ""
    logger.info("%s sync %s -> %s: %s%s", kind, result.get("source"), result.get("target"), result["status"], rows)
    for warning in result.get("warnings") or []:  # e.g. TLS to an environment is not verified
        logger.warning("%s", warning)
    if result["status"] != "success":
        logger.error("%s sync failed: %s", kind, result.get("error"))
    return result


def _stdout(line: str) -> None:
    print(line, flush=True)
