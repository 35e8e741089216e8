"""Glue between `dbrepl sync` / `dbrepl migrate` and the sync library.

SRC and DST are environment names from the spec or DSNs (`mysql://user[:password]@host[:port]/db`):

- DSN to DSN: the library runs here, against the two servers; no AWS call.
- environment names: the deployed function is invoked (RequestResponse) with the seed's event,
  or with `direct` its handler code runs in this process with the function's configured
  environment variables (read from Lambda, applied to a copy of os.environ).

Every path returns the function's JSON result shape (`status`: success, invalid, refused,
error), so the CLI renders and maps exit codes in one place. Input is checked before any
connection is opened or any AWS call is made; a bad input raises BadInput (exit 2).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dbrepl import names, sandbox
from dbrepl.errors import AwsFailure, BadInput, DbreplError
from dbrepl.sync.errors import InvalidInput, SyncError
from dbrepl.sync.ident import check_name

if TYPE_CHECKING:  # pymysql is imported only by the commands that connect
    from dbrepl.sync.connection import Endpoint

KINDS = ("schema", "data")
# The handler module in lambda_bundle and the function in it that runs one event.
HANDLER_MODULES = {"schema": "schema_sync", "data": "data_sync"}
EVENT_RUNNERS = {"schema": "run_schema_event", "data": "run_data_event"}


def sync_error(exc: SyncError) -> DbreplError:
    """The sync library's errors in the CLI's tree: InvalidInput is bad input (exit 2)."""
    if isinstance(exc, InvalidInput):
        return BadInput(str(exc))
    return DbreplError(str(exc))


@contextmanager
def library_errors() -> Iterator[None]:
    """Re-raise sync library errors as dbrepl errors (mapped once, by the CLI)."""
    try:
        yield
    except SyncError as exc:
        raise sync_error(exc) from None


# --------------------------------------------------------------------------- SRC and DST

def is_dsn(arg: str) -> bool:
    return arg.startswith("mysql://")


@dataclass(frozen=True)
class Pair:
    """A checked SRC/DST: two endpoints (DSNs) or two environment names of the spec."""

    source: str
    target: str
    source_endpoint: Endpoint | None = None
    target_endpoint: Endpoint | None = None
    spec: Any = None
    suffix: str | None = None

    @property
    def dsn(self) -> bool:
        return self.source_endpoint is not None

    @property
    def label(self) -> str:
        if self.source_endpoint is not None and self.target_endpoint is not None:
            return f"{self.source_endpoint.display()} -> {self.target_endpoint.display()}"
        return f"{self.source} -> {self.target}"


def resolve_pair(src: str, dst: str, *, config: Path | None, suffix: str | None,
                 environ: Mapping[str, str] | None = None) -> Pair:
    """Check SRC and DST (and, for environment names, the spec and the suffix); no I/O but the spec."""
    if is_dsn(src) and is_dsn(dst):
        from dbrepl.sync.connection import parse_dsn

        with library_errors():
            s, d = parse_dsn(src, environ), parse_dsn(dst, environ)
        if (s.host, s.port, s.database) == (d.host, d.port, d.database):
            raise BadInput(f"source and target are the same database ({d.display()})")
        return Pair(s.display(), d.display(), s, d)
    if is_dsn(src) or is_dsn(dst):
        raise BadInput("SRC and DST must both be DSNs (mysql://user@host:port/db) or both environment names")
    spec = load_spec(config)
    for name in (src, dst):
        check_environment(spec, name)
    if src == dst:
        raise BadInput(f"source and target are the same environment ({src})")
    return Pair(src, dst, spec=spec, suffix=check_suffix(suffix))


def load_spec(config: Path | None) -> Any:
    from dbrepl.spec import load_spec as load

    return load(config)


def check_suffix(suffix: str | None) -> str:
    from dbrepl.spec import check_suffix as check

    return check(suffix)


def check_environment(spec: Any, name: str) -> str:
    if name not in spec.environments:
        shown = name if name.isprintable() and len(name) <= 64 else repr(name[:64])
        raise BadInput(f"unknown environment {shown!r}: choose from {', '.join(spec.environments)} "
                       "or give a DSN mysql://user@host:port/database")
    return name


def is_protected(spec: Any, env: str) -> bool:
    return bool(spec is not None and env in spec.environments and spec.environments[env].protected)


def check_databases(databases: Sequence[str]) -> list[str]:
    from dbrepl.sync.schema.apply import database_pairs

    with library_errors():
        return [d for d, _ in database_pairs(list(databases))]


def check_tables(tables: Sequence[str]) -> list[str]:
    """`table` or `database.table`, each part a name MySQL can hold (dbrepl.sync.ident)."""
    from dbrepl.sync.data.tables import check_not_system

    with library_errors():
        for t in tables:
            db, dot, table = t.partition(".")
            if dot:
                check_not_system(check_name(db, "database name"))
                check_name(table, "table name")
            else:
                check_name(t, "table name")
    return list(tables)


def check_verify(verify: str) -> str:
    from dbrepl.sync.data.sync import check_verify as check

    with library_errors():
        return check(verify)


def check_renames(renames: Sequence[str]) -> list[str]:
    from dbrepl.sync.schema.plan import parse_renames

    with library_errors():
        parse_renames(list(renames))
    return list(renames)


# --------------------------------------------------------------------------- DSN runs

def check_definer(definer: str) -> str:
    from dbrepl.sync.schema.objects import check_definer_mode

    with library_errors():
        return check_definer_mode(definer)


def schema_between_dsns(pair: Pair, *, renames: Sequence[str] = (), dry_run: bool = False,
                        allow_destructive: bool = False, definer: str = "omit",
                        progress: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
    """Schema sync of the DSN's database, in this process; the function's result shape."""
    from dbrepl.sync.connection import connect
    from dbrepl.sync.schema import DestructiveChangeRefused, apply_schema, plan_schema

    assert pair.source_endpoint is not None and pair.target_endpoint is not None
    src_db, dst_db = pair.source_endpoint.database, pair.target_endpoint.database
    result: dict[str, Any] = {"status": "error", "kind": "schema", "source": pair.source,
                              "target": pair.target, "databases": [dst_db], "dry_run": dry_run}
    try:
        src = connect(pair.source_endpoint)
        try:
            dst = connect(pair.target_endpoint, select_database=False)
            try:
                plan = plan_schema(src, dst, [(src_db, dst_db)], renames, definer=definer)
                result.update(statements=[s.to_dict() for s in plan.statements], notes=plan.notes,
                              counts=plan.counts())
                applied = apply_schema(dst, plan, allow_destructive=allow_destructive, dry_run=dry_run,
                                       progress=progress)
                result["counts"]["executed"] = len(applied.executed)
                result.update(status="success", converged=applied.converged, seconds=round(applied.seconds, 3))
                if dry_run:
                    result["would_refuse"] = [] if allow_destructive else [
                        c.label() for c in plan.destructive_clauses()]
            finally:
                dst.close()
        finally:
            src.close()
    except DestructiveChangeRefused as exc:
        result.update(status="refused", error=str(exc), refused=[c.label() for c in exc.clauses])
    except SyncError as exc:  # SchemaNotConverged and SchemaApplyFailed among them
        result.update(status="invalid" if isinstance(exc, InvalidInput) else "error", error=str(exc))
    return result


def data_between_dsns(pair: Pair, tables: Sequence[str], *, dry_run: bool = False, verbose: bool = False,
                      progress: Callable[[Any], None] | None = None,
                      verify: str = "changed") -> dict[str, Any]:
    """Data sync of tables of the DSN's database, in this process; the function's result shape."""
    from dbrepl.sync.connection import connect
    from dbrepl.sync.data import resolve_tables, sync_data
    from dbrepl.sync.data.event import success_fields

    assert pair.source_endpoint is not None and pair.target_endpoint is not None
    src_db, dst_db = pair.source_endpoint.database, pair.target_endpoint.database
    assert src_db is not None and dst_db is not None
    result: dict[str, Any] = {"status": "error", "kind": "data", "source": pair.source,
                              "target": pair.target, "dry_run": dry_run, "verify": verify}
    try:
        for t in tables:
            db, dot, _ = t.partition(".")
            if dot and db != src_db:
                raise InvalidInput(f"table {t}: with DSNs only tables of the source database {src_db} are synced")
        src = connect(pair.source_endpoint)
        try:
            dst = connect(pair.target_endpoint)
            try:
                pairs = resolve_tables(src, tables, [src_db])
                result["tables"] = [f"{d}.{t}" for d, t in pairs]
                synced = sync_data(src, dst, pairs, target_databases={src_db: dst_db} if dst_db != src_db else None,
                                   dry_run=dry_run, progress=progress, statements=verbose,
                                   verify=verify)
            finally:
                dst.close()
        finally:
            src.close()
    except InvalidInput as exc:
        result.update(status="invalid", error=str(exc))
        return result
    except SyncError as exc:
        result.update(status="error", error=str(exc))
        return result
    result.update(success_fields(synced))
    return result


# --------------------------------------------------------------------------- the deployed functions

@dataclass
class Estate:
    """AWS side of one estate (suffix): the sync functions, their records and the bucket."""

    spec: Any
    suffix: str
    sessions: Any = None
    _account: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.sessions is None:
            from dbrepl.aws.session import SessionFactory

            if hasattr(SessionFactory, "from_spec"):  # honours per-environment accounts (roles)
                self.sessions = SessionFactory.from_spec(self.spec)
            else:
                regions = {name: e.region for name, e in self.spec.environments.items()}
                self.sessions = SessionFactory(self.spec.region, env_regions=regions,
                                               max_attempts=self.spec.timing.max_attempts)
            self.sessions.check_credentials()

    @property
    def hub(self) -> str:
        return str(self.spec.sync.hub)

    def client(self, service: str) -> Any:
        """The functions, bucket and records all live in the hub's account and region."""
        return self.sessions.client(service, self.hub)

    def function_name(self, kind: str) -> str:
        return names.function(kind, self.suffix)

    def account(self) -> str:
        if self._account is None:
            self._account = str(_aws(lambda: self.client("sts").get_caller_identity()["Account"],
                                     "read the AWS account id"))
        return self._account

    def bucket(self) -> str:
        return names.bucket(self.suffix, self.account())

    # -- running an event

    def run(self, kind: str, event: dict[str, Any], *, direct: bool,
            progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """`progress` reaches the data handler's code when it runs here (`direct`); an
        invoked function reports nothing until it returns."""
        return self.run_direct(kind, event, progress=progress) if direct else self.invoke(kind, event)

    def invoke(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke the deployed function (RequestResponse) and return its result body."""
        name = self.function_name(kind)
        client = self._invoke_client()
        resp = _aws(lambda: client.invoke(FunctionName=name, InvocationType="RequestResponse",
                                          Payload=json.dumps(event).encode()),
                    f"invoke function {name}", self.suffix)
        raw = resp["Payload"].read()
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            raise DbreplError(f"function {name} returned something that is not JSON") from None
        if resp.get("FunctionError"):
            msg = payload.get("errorMessage") if isinstance(payload, dict) else None
            raise DbreplError(f"function {name} failed: {msg or resp['FunctionError']} (see its log group "
                              f"{names.log_group(kind, self.suffix)})")
        try:
            body = payload["body"]
            return dict(json.loads(body) if isinstance(body, str) else body)
        except (TypeError, KeyError, ValueError):
            raise DbreplError(f"function {name} answered without a result body; is it dbrepl's handler?") from None

    def _invoke_client(self) -> Any:
        # A sync may take the function's whole timeout; retrying a timed-out invoke would run
        # the sync twice, so one attempt and a read timeout longer than the function's.
        import boto3
        from botocore.config import Config

        if getattr(self.spec.environments[self.hub], "account", None) is not None:
            # The hub is in another account: only the session factory holds its role.
            # TODO: ask SessionFactory for a client with this config (its read timeout is 60 s).
            return self.client("lambda")
        cfg = Config(read_timeout=self.spec.lambdas.timeout + 60, connect_timeout=10,
                     retries={"mode": "standard", "total_max_attempts": 1})
        return boto3.Session().client("lambda", region_name=self.sessions.region_for(self.hub), config=cfg)

    def function_environment(self, kind: str) -> dict[str, str]:
        name = self.function_name(kind)
        conf = _aws(lambda: self.client("lambda").get_function_configuration(FunctionName=name),
                    f"read the configuration of function {name}", self.suffix)
        return dict((conf.get("Environment") or {}).get("Variables") or {})

    def run_direct(self, kind: str, event: dict[str, Any],
                   progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """The handler's code in this process, with the function's environment variables
        (`progress`: the data sync's Progress hook; the schema runner takes none)."""
        variables = self.function_environment(kind)
        environ = {**os.environ, **variables}
        if (st := sandbox.active_state()) is not None:  # in the sandbox: the clusters' MariaDB stand-ins
            environ.update(sandbox.stand_in_environment(st, variables))
        runner = getattr(handler_module(kind), EVENT_RUNNERS[kind])
        extra = {"progress": progress} if progress is not None else {}
        result = runner(event, environ=environ, client=self.client, **extra)
        # What Lambda would have returned: the body is JSON (dates as text).
        return dict(json.loads(json.dumps(result, default=str)))

    # -- records and scripts

    def records(self) -> list[dict[str, Any]]:
        """The last-sync records of both kinds (`/db-replication/<suffix>/last-*-sync/...`)."""
        ssm = self.client("ssm")
        out: list[dict[str, Any]] = []
        for kind in KINDS:
            path = f"/db-replication/{self.suffix}/last-{kind}-sync"

            def read(path: str = path) -> list[dict[str, Any]]:
                params: list[dict[str, Any]] = []
                for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True):
                    params.extend(page.get("Parameters", []))
                return params

            for p in _aws(read, f"read SSM parameters under {path}"):
                try:
                    value = json.loads(p["Value"])
                except ValueError:
                    value = {"status": "unreadable", "error": "the parameter is not JSON"}
                if not isinstance(value, dict):
                    value = {"status": "unreadable", "error": "the parameter is not a JSON object"}
                out.append({"kind": kind, "name": p["Name"], "pair": p["Name"].rsplit("/", 1)[-1], **value})
        out.sort(key=lambda r: (r["kind"], r["pair"]))
        return out

    def push(self, paths: Sequence[Path]) -> tuple[str, list[str]]:
        from dbrepl.sync.migrations import push_scripts

        bucket = self.bucket()
        s3 = self.client("s3")
        keys = _aws(lambda: push_scripts(s3, bucket, paths), f"upload migration scripts to bucket {bucket}",
                    self.suffix)
        return bucket, list(keys)


def handler_module(kind: str) -> ModuleType:
    """`import schema_sync` / `data_sync` from lambda_bundle, as Lambda imports them."""
    from dbrepl.bundle import HANDLERS_DIR

    path = str(HANDLERS_DIR)
    if not HANDLERS_DIR.is_dir():
        raise DbreplError(f"{HANDLERS_DIR} not found: --direct runs from a checkout of the project")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(HANDLER_MODULES[kind])


def _aws(call: Callable[[], Any], what: str, suffix: str | None = None) -> Any:
    """One AWS call; a failure becomes 'Failed to <what>: <why>'."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        msg = exc.response.get("Error", {}).get("Message", "") or code
        left = ""
        if code in ("ResourceNotFoundException", "NoSuchBucket") and suffix:
            left = f"is estate {suffix} deployed? run dbrepl apply --suffix {suffix}"
        raise AwsFailure(what, f"{code}: {msg}" if code and code not in msg else msg, left) from None
    except BotoCoreError as exc:
        raise AwsFailure(what, str(exc)) from None
    except SyncError as exc:
        raise sync_error(exc) from None


def script_warnings(paths: Sequence[Path]) -> list[str]:
    """`V2__x.sql is not atomic: statement 1 (...) commits implicitly; ...` for each such file
    (reads and splits every file first: a script that does not split is bad input)."""
    from dbrepl.sync.migrations import Script

    warnings = []
    for path in paths:
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path}: cannot read it as UTF-8 text ({exc.__class__.__name__})") from None
        with library_errors():
            warning = Script(path.name, text).atomicity_warning()
        if warning:
            warnings.append(warning)
    return warnings


def check_script_files(files: Sequence[Path]) -> list[Path]:
    """Every file exists and is named V<version>__<words>.sql (all checked before any upload)."""
    from dbrepl.sync.migrations import parse_script_name

    if not files:
        raise BadInput("name at least one script file")
    seen: dict[str, Path] = {}
    for f in files:
        with library_errors():
            parse_script_name(f.name)
        if not f.is_file():
            raise BadInput(f"{f}: no such file")
        if f.name in seen:
            raise BadInput(f"{f.name} is given twice ({seen[f.name]} and {f})")
        seen[f.name] = f
    return list(files)
