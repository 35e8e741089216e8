"""Every physical name is checked against its service's rules before any AWS call (issue 18,
point 6): `dbrepl.app.names` has a rule for each function of dbrepl.names and produces each
of them for the spec, so a new resource's name cannot escape the check."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from dbrepl import names
from dbrepl.app.names import RULES, check_names, physical_names
from dbrepl.errors import BadInput
from dbrepl.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = load_spec(ROOT / "config" / "environments.yaml")


def _name_functions() -> set[str]:
    return {n for n, f in inspect.getmembers(names, inspect.isfunction)
            if f.__module__ == names.__name__ and not n.startswith("_")}


def _renamed(spec: Spec, old: str, new: str) -> Spec:
    """`spec` with environment `old` called `new` everywhere."""
    data = spec.model_dump(mode="json", by_alias=True)
    data["environments"] = {new if k == old else k: v for k, v in data["environments"].items()}
    data["peering"] = [[new if e == old else e for e in pair] for pair in data["peering"]]
    for sc in data["sync"]["schedules"]:
        sc["route"] = "->".join(new if e == old else e for e in sc["route"].split("->"))
    if data["sync"]["hub"] == old:
        data["sync"]["hub"] = new
    if data["bucket"]["kms_env"] == old:
        data["bucket"]["kms_env"] = new
    return Spec.model_validate(data)


def test_every_name_function_has_a_rule() -> None:
    assert _name_functions() == set(RULES), "add the new name to RULES in dbrepl/app/names.py"


def test_every_name_function_is_checked() -> None:
    """The default spec (with a schedule) makes physical_names call every function of dbrepl.names."""
    assert SPEC.sync.schedules
    produced = {fn for fn, _ in physical_names(SPEC, "x")}
    assert produced == _name_functions(), "make physical_names yield the new name"


def test_names_are_what_names_py_makes() -> None:
    got = dict((n, fn) for fn, n in physical_names(SPEC, "s1"))
    assert got["dev-aurora-cluster-s1"] == "cluster"
    assert got["db-sync-data-replication-s1"] == "function"
    assert got["data-dev-to-staging-s1"] == "schedule"


@pytest.mark.parametrize("suffix", ["x", "a" * 20, "a-b-c", "1x"])
def test_valid_suffixes_pass(suffix: str) -> None:
    check_names(SPEC, suffix)


def test_longest_names_with_the_longest_suffix_pass() -> None:
    """16-character environment names (the most the spec allows) with a 20-character suffix fit."""
    spec = _renamed(_renamed(SPEC, "dev", "d" * 16), "staging", "s" * 16)
    check_names(spec, "a" * 20)


def test_too_long_names_the_longest_and_the_room() -> None:
    with pytest.raises(BadInput) as e:
        check_names(SPEC, "a" * 50)
    msg = str(e.value)
    assert "S3 bucket name" in msg and "more than the 63" in msg and "at most 32 characters" in msg
    assert "\n" not in msg


def test_rds_identifier_over_63() -> None:
    spec = _renamed(SPEC, "dev", "d" * 16)
    check_names(spec, "a" * 28)  # 16 + 19 + 28 = 63
    with pytest.raises(BadInput, match=r"RDS instance identifier 'd{16}-aurora-instance-1-a{29}' is 64 characters, "
                                       r"more than the 63 .* at most 28 characters"):
        check_names(spec, "a" * 29)


@pytest.mark.parametrize("bad", ["-x", "x-", "a--b"])
def test_rds_pattern_catches_bad_suffixes(bad: str) -> None:
    """What check_suffix now refuses would also fail here (belt and braces)."""
    with pytest.raises(BadInput, match="not a letter then letters, digits and single hyphens"):
        check_names(SPEC, bad)


def test_security_group_named_sg_dash() -> None:
    """An environment called 'sg' makes 'sg-aurora-sg-x', which EC2 refuses."""
    with pytest.raises(BadInput, match=r"security group name 'sg-aurora-sg-x' starts with 'sg-'"):
        check_names(_renamed(SPEC, "dev", "sg"), "x")


def test_a_new_name_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check follows dbrepl.names: a name function that grows past its limit is caught."""
    monkeypatch.setattr(names, "dashboard", lambda s: f"dbrepl-{'x' * 250}-{s}")
    with pytest.raises(BadInput, match="CloudWatch dashboard name"):
        check_names(SPEC, "x")
