"""The sandbox's AWS: moto's server, one request at a time (its backends are not thread-safe;
dbrepl calls AWS from many threads, AWS itself needs no such care). Run as
`python -m dbrepl.sandbox aws PORT ROOT` (ROOT marks the command line as this sandbox's)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dbrepl.errors import WaitTimeout
from dbrepl.sandbox.procs import log_tail, spawn
from dbrepl.sandbox.state import FAKE_CREDENTIALS, HOST, REGION, START_TIMEOUT, SandboxError

_PKG_PARENT = Path(__file__).resolve().parents[2]


def moto_missing() -> str | None:
    """Why moto's server cannot run here, or None."""
    for mod in ("moto", "werkzeug", "flask"):
        if importlib.util.find_spec(mod) is None:
            return f"the sandbox needs moto's server ({mod} is not installed): pip install 'moto[server]'"
    return None


def _post_json(url: str, body: dict[str, Any], timeout: float = 10) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        r.read()


def start_aws(root: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(MOTO_IAM_LOAD_MANAGED_POLICIES="true", AWS_DEFAULT_REGION=REGION, **FAKE_CREDENTIALS)
    # The server runs the same dbrepl as the command that starts it.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PKG_PARENT), env.get("PYTHONPATH", "")) if p)
    log = root / "aws.log"
    proc = spawn([sys.executable, "-m", "dbrepl.sandbox", "aws", str(port), str(root)], log, env)
    (root / "aws.pid").write_text(f"{proc.pid}\n")
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise SandboxError(f"the moto server exited while starting: {log_tail(root / 'aws.log')}")
        try:
            # Lambda without Docker: CreateFunction works, Invoke only echoes the payload.
            _post_json(f"{url}/moto-api/config", {"lambda": {"use_docker": False}}, timeout=5)
            return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise WaitTimeout(f"the moto server on {url}", START_TIMEOUT) from None
            time.sleep(0.2)


def serve_aws(port: int) -> None:
    """The moto server, one request at a time (its backends are not thread-safe), refusing what
    AWS refuses (dbrepl.sandbox.aws_rules)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    from dbrepl.sandbox.aws_rules import apply_for_good

    apply_for_good()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(HOST, port, app, threaded=False, processes=1, use_reloader=False)
