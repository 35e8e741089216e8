from __future__ import annotations

import os

import pytest

# Fake credentials before anything makes a boto3 session; never real AWS in tests.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
    MOTO_IAM_LOAD_MANAGED_POLICIES="true",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

# moto imports each service's backend lazily on first use; the engine calls services from
# many threads at once, and concurrent first imports can deadlock. Import them up front.
from moto.backends import get_backend  # noqa: E402

for _svc in ("ec2", "rds", "kms", "secretsmanager", "ssm", "s3", "iam", "lambda", "logs", "cloudwatch", "sts",
             "resourcegroupstaggingapi"):
    get_backend(_svc)


# The fast slice for day-to-day work is `pytest -m "not slow"` (a couple of minutes on two
# cores); `pytest` runs everything, as CI does. Slow: the moto-heavy provisioner suites, the
# sandbox, demo, end-to-end and wheel tests (each starts servers or whole processes), the
# million-row and hypothesis-heavy data-sync runs. Measured with --durations on 2026-11-29:
# these modules take ~900 of the suite's ~1050 s.
SLOW_MODULES = (
    "tests/aws/", "tests/test_demo.py", "tests/test_cli_e2e.py", "tests/test_wheel.py", "tests/test_sandbox.py",
    "tests/test_sandbox_restore.py",
    "tests/sync/test_data_large.py", "tests/sync/test_data_property.py",
)


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        where = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if where.startswith(SLOW_MODULES):
            item.add_marker(pytest.mark.slow)


# moto's in-process backends are not thread-safe (dicts mutated while another request
# iterates them); AWS is. The engine calls AWS from many threads, so tests serialise
# moto's dispatch. This changes nothing in dbrepl, only how the emulator takes requests.
import threading  # noqa: E402

from moto.core import botocore_stubber as _stubber  # noqa: E402

_MOTO_LOCK = threading.RLock()
_orig_call = _stubber.BotocoreStubber.__call__


def _serialised(self, event_name, request, **kwargs):
    if request.headers.get("x-dbrepl-test-throttled"):
        return None  # the test harness answered with a throttling error: AWS never saw it
    with _MOTO_LOCK:
        return _orig_call(self, event_name, request, **kwargs)


_stubber.BotocoreStubber.__call__ = _serialised

# moto applies a bucket policy to PutObject ignoring the statements' conditions, so the estate's
# "deny without TLS" statement would refuse every upload; requests here stand for HTTPS ones
# (dbrepl.sandbox.aws_rules: the sandbox's moto server does the same).
from dbrepl.sandbox.aws_rules import secure_transport_patch  # noqa: E402

_owner, _name, _fn = secure_transport_patch()
setattr(_owner, _name, _fn)
