from __future__ import annotations

import pytest
from moto import mock_aws

from dbrepl.aws.session import SessionFactory
from tests.aws.harness import MOTO_CONFIG, CallLog, Estate, Faults, fast_spec


@pytest.fixture
def aws():
    with mock_aws(config=MOTO_CONFIG):
        yield


@pytest.fixture
def faults():
    return Faults()


@pytest.fixture
def estate(aws, faults):
    log = CallLog()
    sessions = SessionFactory("us-east-1", hooks=[faults.hook, log.hook])
    return Estate(fast_spec(), "t1", sessions, log)


@pytest.fixture(scope="module")
def built():
    """One applied estate shared by the read-only checks of a module."""
    with mock_aws(config=MOTO_CONFIG):
        log = CallLog()
        e = Estate(fast_spec(), "b1", SessionFactory("us-east-1", hooks=[log.hook]), log)
        e.apply()
        yield e
