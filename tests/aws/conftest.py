from __future__ import annotations

import itertools

import pytest
from moto import mock_aws

from dbrepl.aws.session import SessionFactory
from tests.aws.harness import MOTO_CONFIG, CallLog, Estate, Faults, fast_spec, vpc_quota

_suffixes = itertools.count(1)


@pytest.fixture(scope="module")
def aws():
    """One mocked account per test module (moto loads IAM's managed policies once per module,
    about 2 s).

    Tests stay independent by giving each estate its own suffix: dbrepl never sees or
    touches another suffix's resources, which test_two_suffixes checks directly. Not one
    account for the whole session: every estate a test leaves behind is listed again by every
    later discovery (moto filters by tag in Python), so a session-wide account made the suite
    slow down as it went, test after test, to past CI's limit.
    """
    # Many suffixes, 3 VPCs each, share this account and region: a quota as if increased, or
    # preflight would rightly refuse the second estate (tests/test_preflight.py checks the default).
    with mock_aws(config=MOTO_CONFIG), vpc_quota(1000):
        yield


@pytest.fixture
def faults():
    return Faults()


@pytest.fixture
def estate(aws, faults):
    log = CallLog()
    sessions = SessionFactory("us-east-1", hooks=[faults.hook, log.hook])
    return Estate(fast_spec(), f"t{next(_suffixes)}", sessions, log)


@pytest.fixture(scope="module")
def built(aws):
    """One applied estate shared by the read-only checks of a module."""
    log = CallLog()
    e = Estate(fast_spec(), "b1", SessionFactory("us-east-1", hooks=[log.hook]), log)
    e.apply()
    return e
