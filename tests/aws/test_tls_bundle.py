"""The CA bundle of `databases.tls` travels in the functions' zip (issue 11, point 5): adding
it (or changing its content) changes the zip's hash, so plan shows a code update of both
functions and nothing else, apply uploads it, and the next plan is empty."""

from __future__ import annotations

import io
import zipfile

from dbrepl.aws.session import SessionFactory
from dbrepl.bundle import build_bundle, code_sha256
from dbrepl.engine import Context, Engine
from dbrepl.names import function
from dbrepl.sandbox.tls import make_server_tls
from dbrepl.spec import Databases, DatabaseTls
from dbrepl.sync import contract
from tests.aws.harness import CallLog, Estate, fast_spec


def test_a_new_ca_bundle_updates_both_functions_code_and_nothing_else(aws, tmp_path) -> None:
    log = CallLog()
    e = Estate(fast_spec(), "tlsbundle1", SessionFactory("us-east-1", hooks=[log.hook]), log)
    e.apply()
    ca = make_server_tls(tmp_path / "a").ca
    spec = e.spec.model_copy(update={"databases": Databases(tls=DatabaseTls(ca_bundle=ca))})

    def engine() -> Engine:  # the zip built from the spec, as apply builds it
        return Engine(Context(spec, e.suffix, e.sessions))

    assert engine().ctx.bundle == build_bundle(ca)
    plan = engine().plan()
    names = {function(kind, e.suffix) for kind in ("schema", "data")}
    assert {(c.action, c.type, c.name) for c in plan.changes} == {
        ("update", "AWS::Lambda::Function", n) for n in names}
    assert all(set(c.diff) == {"CodeSha256"} for c in plan.changes), [c.diff for c in plan.changes]
    engine().apply()
    lam = e.client("lambda")
    for n in names:
        assert lam.get_function(FunctionName=n)["Configuration"]["CodeSha256"] == code_sha256(build_bundle(ca))
    assert engine().plan().changes == []

    # The same path with other content: the hash follows the content, not the name.
    ca.write_bytes(make_server_tls(tmp_path / "b").ca.read_bytes())
    again = engine().plan()
    assert {(c.action, c.name) for c in again.changes} == {("update", n) for n in names}
    assert contract.TLS_CA_FILE in zipfile.ZipFile(io.BytesIO(build_bundle(ca))).namelist()
    e.destroy(include_protected=True)
