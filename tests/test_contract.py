"""The function contract (dbrepl.sync.contract): what the lambdas step writes is what the
handlers read, the SSM paths, the event schema, the bundle's entry points, and
`dbrepl init` / the spec lookup that say to run it."""

from __future__ import annotations

import ast
import importlib
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dbrepl.bundle import build_bundle, entry_module
from dbrepl.errors import BadInput, SpecError
from dbrepl.init import default_spec_text, write_default_spec
from dbrepl.spec import load_spec
from dbrepl.steps.lambdas import function_environment
from dbrepl.sync import aws, contract
from dbrepl.sync.data import event as data_event
from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.schema import event as schema_event

ROOT = Path(__file__).resolve().parents[1]
SPEC = load_spec(ROOT / "config" / "environments.yaml")
ENVS = list(SPEC.environments)


class Reading(Mapping[str, str]):
    """An environment that notes every variable looked up (present or not)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values, self.read = dict(values), set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.values.get(key, default)

    def __iter__(self) -> Iterator[str]:  # listing is not reading
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def written() -> dict[str, str]:
    """The lambdas step's function environment for the default spec (fake attributes)."""
    ctx = SimpleNamespace(
        all_envs=ENVS, suffix="abc", hub="staging", spec=SPEC, account_id=lambda env: "123456789012",
        attr=lambda step, env, key, attr: f"{step}-{env}-{key}-{attr}")
    return {k: str(v) for k, v in function_environment(ctx).items()}


class Secrets:
    def get_secret_value(self, SecretId: str) -> dict[str, str]:  # noqa: N803
        return {"SecretString": json.dumps({"username": "u", "password": "p"})}


class Ssm:
    def put_parameter(self, **kwargs: Any) -> None:
        self.name = kwargs["Name"]


def test_the_step_writes_exactly_the_contract_variables() -> None:
    assert sorted(written()) == contract.variable_names(ENVS)


def test_what_the_functions_read_is_what_the_step_writes() -> None:
    environ = Reading(written())
    assert aws.known_envs(environ) == sorted(ENVS)
    for env in ENVS:
        aws.endpoint_for_env(env, environ, Secrets())
    assert aws.sync_databases(environ) == list(SPEC.sync.databases)
    assert len(aws.reference_tables(environ)) == len(SPEC.sync.reference_tables)
    ssm = Ssm()
    result: dict[str, Any] = {"source": "dev", "target": "staging"}
    aws.record_run(result, environ, lambda service: ssm, "data", {"status": "success"})
    assert ssm.name == result["record"] == contract.record_name("abc", "data", "dev", "staging")
    data_event.validate_event({"source_env": "dev", "target_env": "staging"}, environ)
    bucket = written()[contract.MIGRATION_BUCKET]  # not through environ: that would count as read
    schema_event.validate_event({"migration_script": f"s3://{bucket}/migrations/V1__a.sql"}, environ)
    # Every variable read is one the step writes, except the optional ports (the sandbox's),
    # the CA bundle of a run outside Lambda and Lambda's own LAMBDA_TASK_ROOT (where the zip's
    # CA bundle lies).
    ports = {contract.port_variable(env) for env in ENVS}
    not_written = {contract.TLS_CA_BUNDLE, contract.LAMBDA_TASK_ROOT}
    assert environ.read - ports - not_written == set(written())
    assert not_written & set(written()) == set()
    assert environ.read & ports == ports


def test_sandbox_rewrites_the_contract_endpoint_variables() -> None:
    assert contract.endpoint_variables("dev") == ("DEV_ENDPOINT", "DEV_PORT")
    endpoint, port = contract.endpoint_variables("staging")
    env = {**written(), endpoint: "127.0.0.1", port: "3308"}
    assert aws.endpoint_for_env("staging", env, Secrets()).port == 3308


def test_ssm_paths() -> None:
    assert contract.record_name("s", "schema", "dev", "staging") == "/db-replication/s/last-schema-sync/dev-to-staging"
    assert contract.record_prefix("s", "data") == "/db-replication/s/last-data-sync"
    assert contract.connection_parameter("prod", "s") == "/db-replication/s/prod/connection-string"
    assert contract.record_name("s", "data", "a", "b").startswith(contract.parameter_prefix("s"))
    with pytest.raises(ValueError):
        contract.record_prefix("s", "other")


def test_event_schema_is_the_event_modules() -> None:
    assert data_event._KEYS is contract.EVENT_KEYS["data"]
    assert schema_event._KEYS is contract.EVENT_KEYS["schema"]
    with pytest.raises(InvalidInput, match="unknown event key"):
        data_event.validate_event({"source_env": "dev", "nope": 1}, {})
    checked = data_event.validate_event({"tables": ["app.t"]}, {})
    assert (checked["source"], checked["target"]) == (contract.DEFAULT_SOURCE_ENV, contract.DEFAULT_TARGET_ENV)


def test_contract_imports_the_standard_library_only() -> None:
    tree = ast.parse(Path(contract.__file__).read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"__future__", "collections.abc"}, modules


def test_bundle_entry_modules_name_the_contract_handlers() -> None:
    z = zipfile.ZipFile(io.BytesIO(build_bundle()))
    for kind, handler in contract.HANDLERS.items():
        name, text = entry_module(kind)
        assert name == handler.split(".")[0] + ".py" and z.read(name) == text
        assert f"dbrepl/sync/handlers/{name}" in z.namelist()
        module = importlib.import_module(contract.handler_package_module(kind))
        assert callable(module.lambda_handler)


def test_init_writes_the_default_spec_with_its_comments(tmp_path: Path) -> None:
    path = write_default_spec(tmp_path / "a" / "b" / "spec.yaml")
    checkout = (ROOT / "config" / "environments.yaml").read_text()
    assert path.read_text(encoding="utf-8") == default_spec_text() == checkout
    assert "# " in default_spec_text()
    assert load_spec(path) == SPEC
    with pytest.raises(BadInput, match="already exists"):
        write_default_spec(path)
    path.write_text("x")
    write_default_spec(path, force=True)
    assert load_spec(path) == SPEC
    with pytest.raises(BadInput, match="is a directory"):
        write_default_spec(tmp_path)
    with pytest.raises(BadInput, match="cannot write"):
        write_default_spec(path / "below-a-file.yaml")


def test_init_defaults_to_the_path_commands_look_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBREPL_CONFIG", raising=False)
    with pytest.raises(SpecError, match=r"no spec found at config/environments.yaml: run `dbrepl init`"):
        load_spec()
    assert write_default_spec() == Path("config/environments.yaml")
    assert load_spec() == SPEC
    monkeypatch.setenv("DBREPL_CONFIG", "elsewhere.yaml")
    with pytest.raises(SpecError, match=r"run `dbrepl init elsewhere.yaml`"):
        load_spec()
