"""Schema, data and migration runs between two environments or two DSNs (application layer of
`dbrepl sync` / `dbrepl migrate`; no typer or rich here).

SRC and DST are environment names from the spec or DSNs (`mysql://user[:password]@host[:port]/db`):

- DSN to DSN: the library runs here, against the two servers; no AWS call.
- environment names: the deployed function is invoked (RequestResponse) with the seed's event,
  or its handler code runs in this process with the function's configured environment
  variables (dbrepl.app.functions).

Every path returns the function's JSON result shape (`status`: success, invalid, refused,
error), so the CLI renders and maps exit codes in one place. Input is checked before any
connection is opened or any AWS call is made; a bad input raises BadInput (exit 2).

A command is one story (docs/architecture.md): `prepare_schema|prepare_data|prepare_migrate`
check everything and return a `Prepared` run (what to confirm included; no I/O but the spec),
the CLI asks once, `run(prepared, progress=...)` runs it and returns an `Outcome` (the
result and the metrics lines the run emitted here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbrepl.errors import BadInput, library_errors
from dbrepl.sync.errors import InvalidInput, SyncError
from dbrepl.sync.ident import check_name

if TYPE_CHECKING:  # pymysql is imported only by the commands that connect
    from dbrepl.sandbox import Sandbox
    from dbrepl.sync.connection import Endpoint



# --------------------------------------------------------------------------- SRC and DST

def is_dsn(arg: str) -> bool:
    return arg.startswith("mysql://")


def redact_text(text: str) -> str:
    """`text` with every DSN-like word's password hidden (dbrepl.sync.connection.redact_text)."""
    from dbrepl.sync.connection import redact_text as redact

    return redact(text)


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

    def function(self, kind: str) -> str:
        """The name of the deployed `kind` ("schema", "data") function between environments."""
        from dbrepl.names import function

        return function(kind, self.suffix or "")

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
        if "@" in name or "://" in name:  # a DSN mistyped (mysql:/..., mariadb://...): never its password
            from dbrepl.sync.connection import redact_dsn

            raise BadInput(f"{redact_dsn(name)[:120]!r} is neither an environment of the spec nor a DSN: "
                           "a DSN must look like mysql://user[:password]@host[:port]/database")
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


def check_triggers(triggers: str) -> str:
    from dbrepl.sync.data.triggers import check_triggers as check

    with library_errors():
        return check(triggers)


def check_on_delete(on_delete: str) -> str:
    from dbrepl.sync.data.fkeys import check_on_delete as check

    with library_errors():
        return check(on_delete)


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


@dataclass(frozen=True)
class Locking:
    """How a schema run treats locking ALTERs (issue 20): the limit in bytes, whether blocking
    changes are allowed anyway, the lock wait, and the online tool's settings (None: no tool)."""

    blocking_limit: int
    allow_blocking: bool = False
    lock_wait_timeout: int = 30
    online_tool: str | None = None
    chunk_time: float = 0.5
    max_load: str = "Threads_running=25"
    critical_load: str = "Threads_running=50"


def locking(spec: Any, target: str | None, *, blocking_limit: str | None, allow_blocking: bool,
            online_tool: str | None, lock_wait_timeout: int | None) -> Locking:
    """The run's rules: flags over the spec's `schema` settings over the defaults; a protected
    target allows no blocking change at all (limit 0)."""
    from dbrepl.sync.contract import DEFAULT_BLOCKING_LIMIT, DEFAULT_LOCK_WAIT_TIMEOUT, parse_size

    settings = spec.schema_settings if spec is not None else None
    try:
        limit = parse_size(blocking_limit) if blocking_limit is not None else (
            parse_size(settings.blocking_limit) if settings is not None else DEFAULT_BLOCKING_LIMIT)
    except ValueError as exc:
        raise BadInput(f"--blocking-limit: {exc}") from None
    if is_protected(spec, target or ""):
        limit = 0
    if online_tool is not None and online_tool != "pt-online-schema-change":
        raise BadInput(f"--online-tool {online_tool!r}: the one online tool is pt-online-schema-change")
    if lock_wait_timeout is not None and not 1 <= lock_wait_timeout <= 31536000:
        raise BadInput("--lock-wait-timeout: whole seconds from 1 to 31536000")
    wait = lock_wait_timeout or (settings.lock_wait_timeout if settings is not None else DEFAULT_LOCK_WAIT_TIMEOUT)
    extra = {} if settings is None else {"chunk_time": settings.chunk_time, "max_load": settings.max_load,
                                         "critical_load": settings.critical_load}
    return Locking(limit, allow_blocking, wait, online_tool or (settings.online_tool if settings else None), **extra)


def online_tool_factory(rules: Locking, output: Callable[[str], None] | None) -> Callable[[Any], Any] | None:
    """Makes the online tool for a target endpoint (found on PATH, version checked), or None."""
    if rules.online_tool is None:
        return None
    from dbrepl.sync.schema.ptosc import OnlineTool

    def make(endpoint: Any) -> Any:
        return OnlineTool.find(endpoint, chunk_time=rules.chunk_time, max_load=rules.max_load,
                               critical_load=rules.critical_load, output=output)

    return make


def schema_between_dsns(pair: Pair, *, renames: Sequence[str] = (), dry_run: bool = False,
                        allow_destructive: bool = False, definer: str = "omit",
                        progress: Callable[[int, Any], None] | None = None,
                        rules: Locking | None = None,
                        tool_output: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Schema sync of the DSN's database, in this process; the function's result shape."""
    from dbrepl.sync.connection import connect
    from dbrepl.sync.schema import DestructiveChangeRefused, apply_schema, plan_schema

    rules = rules or locking(None, None, blocking_limit=None, allow_blocking=False, online_tool=None,
                             lock_wait_timeout=None)

    assert pair.source_endpoint is not None and pair.target_endpoint is not None
    src_db, dst_db = pair.source_endpoint.database, pair.target_endpoint.database
    assert src_db is not None and dst_db is not None  # parse_dsn refuses a DSN naming no database
    result: dict[str, Any] = {"status": "error", "kind": "schema", "source": pair.source,
                              "target": pair.target, "databases": [dst_db], "dry_run": dry_run}
    _note_tls(result, pair)
    try:
        src = _connected(result, pair.source_endpoint)
        try:
            dst = _connected(result, pair.target_endpoint, select_database=False)
            try:
                target = pair.target_endpoint
                plan = plan_schema(src, dst, [(src_db, dst_db)], renames, definer=definer,
                                   probe_connect=lambda: connect(target, select_database=False))
                result.update(statements=[s.to_dict() for s in plan.statements], notes=plan.notes,
                              counts=plan.counts(), blocking_limit=rules.blocking_limit)
                make_tool = online_tool_factory(rules, tool_output)
                applied = apply_schema(dst, plan, allow_destructive=allow_destructive, dry_run=dry_run,
                                       progress=progress, blocking_limit=rules.blocking_limit,
                                       allow_blocking=rules.allow_blocking,
                                       lock_wait_timeout=rules.lock_wait_timeout,
                                       online_tool=make_tool(target) if make_tool is not None else None)
                result["counts"]["executed"] = len(applied.executed)
                result.update(status="success", converged=applied.converged, seconds=round(applied.seconds, 3))
                if dry_run:
                    result["would_refuse"] = [] if allow_destructive else [
                        c.label() for c in plan.destructive_clauses()]
                    result["would_block"] = applied.would_block()  # rows in the way (preflight)
                    result["would_refuse_blocking"] = applied.blocking
                    result["online_tool"] = applied.online
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
                      verify: str = "changed", triggers: str = "correct",
                      on_delete: str = "refuse") -> dict[str, Any]:
    """Data sync of tables of the DSN's database, in this process; the function's result shape."""
    from dbrepl.sync.data import resolve_tables, sync_data
    from dbrepl.sync.data.event import failure_fields, success_fields
    from dbrepl.sync.data.triggers import TriggersRefused

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
        _note_tls(result, pair)
        src = _connected(result, pair.source_endpoint)
        try:
            dst = _connected(result, pair.target_endpoint)
            try:
                pairs = resolve_tables(src, tables, [src_db])
                result["tables"] = [f"{d}.{t}" for d, t in pairs]
                synced = sync_data(src, dst, pairs, target_databases={src_db: dst_db} if dst_db != src_db else None,
                                   dry_run=dry_run, progress=progress, statements=verbose,
                                   verify=verify, triggers=triggers, on_delete=on_delete)
            finally:
                dst.close()
        finally:
            src.close()
    except InvalidInput as exc:
        result.update(status="invalid", error=str(exc))
        return result
    except TriggersRefused as exc:
        result.update(status="refused", error=str(exc), refused_triggers=exc.triggers)
        return result
    except SyncError as exc:
        result.update(status="error", error=str(exc), **failure_fields(exc))
        return result
    result.update(success_fields(synced))
    return result


def _note_tls(result: dict[str, Any], pair: Pair) -> None:
    """A DSN run's `tls` ({DSN: verified|unverified|off}): what each connection is set to ask for."""
    result["tls"] = {}
    for endpoint in (pair.source_endpoint, pair.target_endpoint):
        assert endpoint is not None
        result["tls"][endpoint.display()] = endpoint.tls.mode


def _connected(result: dict[str, Any], endpoint: Endpoint, **kw: Any) -> Any:
    """`connect`, then (the handshake done, so what it found is known) the DSN's TLS warning in
    `warnings`: never before a connection failure, when nothing is known about the server's TLS."""
    from dbrepl.sync.connection import DSN_TLS_FIX, connect, handshake_warning

    conn = connect(endpoint, **kw)
    warning = handshake_warning(endpoint.display(), endpoint, conn, DSN_TLS_FIX)
    if warning and warning not in result.get("warnings", []):
        result.setdefault("warnings", []).append(warning)
    return conn


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


def schema_event(pair: Pair, *, dry_run: bool, allow_destructive: bool, databases: Sequence[str] | None,
                 renames: Sequence[str], definer: str, rules: Locking | None = None) -> dict[str, Any]:
    """The schema function's event; optional keys only when they differ from the function's
    defaults (a function deployed before a key existed refuses it)."""
    from dbrepl.sync import contract

    event: dict[str, Any] = {"source_env": pair.source, "target_env": pair.target, "dry_run": dry_run,
                             "allow_destructive": allow_destructive}
    if databases:
        event["databases"] = list(databases)
    if renames:
        event["renames"] = list(renames)
    if definer != contract.DEFAULT_DEFINER:
        event["definer"] = definer
    if rules is not None:
        if rules.blocking_limit != contract.DEFAULT_BLOCKING_LIMIT:
            event["blocking_limit"] = rules.blocking_limit
        if rules.allow_blocking:
            event["allow_blocking"] = True
        if rules.lock_wait_timeout != contract.DEFAULT_LOCK_WAIT_TIMEOUT:
            event["lock_wait_timeout"] = rules.lock_wait_timeout
    return event


def data_event(pair: Pair, *, dry_run: bool, verbose: bool, verify: str, tables: Sequence[str],
               triggers: str = "correct", on_delete: str = "refuse") -> dict[str, Any]:
    """The data function's event (optional keys only when asked for, as for schema_event)."""
    from dbrepl.sync.data.fkeys import DEFAULT_ON_DELETE
    from dbrepl.sync.data.sync import DEFAULT_VERIFY
    from dbrepl.sync.data.triggers import DEFAULT_TRIGGERS

    event: dict[str, Any] = {"source_env": pair.source, "target_env": pair.target, "dry_run": dry_run}
    if verbose:
        event["verbose"] = True
    if verify != DEFAULT_VERIFY:
        event["verify"] = verify
    if triggers != DEFAULT_TRIGGERS:
        event["triggers"] = triggers
    if on_delete != DEFAULT_ON_DELETE:
        event["on_delete"] = on_delete
    if tables:
        event["tables"] = list(tables)
    return event


def migrate_event(env: str, action: str, *, databases: Sequence[str] | None = None, dry_run: bool | None = None,
                  to: str | None = None) -> dict[str, Any]:
    """The schema function's event for `migrate` / `migrate_status` on `env`."""
    event: dict[str, Any] = {"action": action, "target_env": env}
    if dry_run is not None:
        event["dry_run"] = dry_run
    if databases:
        event["databases"] = list(databases)
    if to:
        event["migration_script"] = to
    return event


def check_script_name(name: str) -> str:
    """`V<version>__<words>.sql`, or bad input."""
    from dbrepl.sync.migrations import parse_script_name

    with library_errors():
        parse_script_name(name)
    return name


def check_script_files(files: Sequence[Path]) -> list[Path]:
    """Every file exists and is named V<version>__<words>.sql (all checked before any upload)."""

    if not files:
        raise BadInput("name at least one script file")
    seen: dict[str, Path] = {}
    for f in files:
        check_script_name(f.name)
        if not f.is_file():
            raise BadInput(f"{f}: no such file")
        if f.name in seen:
            raise BadInput(f"{f.name} is given twice ({seen[f.name]} and {f})")
        seen[f.name] = f
    return list(files)


# --------------------------------------------------------------------------- migrations on a DSN

def check_migrate_dsn(target: str, scripts: Path | None, *, environ: Mapping[str, str] | None = None) -> Endpoint:
    """A DSN target of `migrate apply|status|repair` and its `--scripts DIR` (a DSN run has no
    bucket): the DSN parses, the directory exists and its scripts are named and split well."""
    from dbrepl.sync.connection import parse_dsn
    from dbrepl.sync.migrations import LocalScripts, load_scripts

    with library_errors():
        endpoint = parse_dsn(target, environ)
    if scripts is None:
        raise BadInput("a DSN target has no bucket: give the scripts' directory with --scripts DIR")
    if not scripts.is_dir():
        raise BadInput(f"--scripts {scripts}: no such directory (give the directory holding the V*.sql scripts)")
    with library_errors():
        for script in load_scripts(LocalScripts(scripts)):
            script.statements()  # an unterminated quote or comment is bad input, before connecting
    return endpoint


def migrate_on_dsn(endpoint: Endpoint, scripts: Path, action: str, *, dry_run: bool = False,
                   to: str | None = None, realign: bool = True) -> dict[str, Any]:
    """`migrate` / `migrate_status` / `migrate_repair` on the DSN's database with the scripts of a
    local directory, in this process; the schema function's result shape for the same action."""
    from dbrepl.sync.migrations import (
        LocalScripts,
        MigrationChecksumChanged,
        MigrationFailed,
        MigrationHistoryConflict,
        MigrationOrderError,
        apply_migrations,
        migration_status,
        repair_history,
    )

    db = endpoint.database
    assert db is not None
    shown = endpoint.display()
    result: dict[str, Any] = {"status": "error", "kind": "schema", "action": action, "source": str(scripts),
                              "target": shown, "databases": [db], "dry_run": dry_run,
                              "tls": {shown: endpoint.tls.mode}}
    source = LocalScripts(scripts)
    try:
        conn = _connected(result, endpoint)
        try:
            if action == "migrate":
                result["migrations"] = []
                try:
                    run = apply_migrations(conn, db, source, dry_run=dry_run, up_to=to)
                except MigrationFailed as exc:
                    result["migrations"].append(exc.result.to_dict())
                    raise
                result["migrations"].append(run.to_dict())
                result["counts"] = {"applied": len(run.applied), "pending": len(run.pending), "failed": 0}
            elif action == "migrate_status":
                result["status_by_database"] = {db: [s.to_dict() for s in migration_status(conn, db, source)]}
            else:
                result["repairs"] = [repair_history(conn, db, source, realign=realign, dry_run=dry_run).to_dict()]
        finally:
            conn.close()
        result["status"] = "success"
    except (MigrationChecksumChanged, MigrationOrderError, MigrationHistoryConflict) as exc:
        result.update(status="refused", error=str(exc))
    except InvalidInput as exc:
        result.update(status="invalid", error=str(exc))
    except SyncError as exc:  # MigrationFailed among them
        result.update(status="error", error=str(exc))
    return result


def replaced_scripts(paths: Sequence[Path], stored: Mapping[str, str | None]) -> list[str]:
    """The names among `paths` the bucket holds with other statements (checksums differ: a
    re-indented or commented copy is the same script)."""
    from dbrepl.sync.migrations import Script

    return [p.name for p in paths if stored.get(p.name) is not None
            and Script(p.name, str(stored[p.name])).checksum != Script(p.name, p.read_text("utf-8")).checksum]


# --------------------------------------------------------------------------- one run: prepare, then run

@dataclass(frozen=True)
class Confirmation:
    """A protected target's yes, needed before a run changes it."""

    target: str
    what: str  # "change the schema of staging": the question, and the refusal without a terminal


@dataclass(frozen=True)
class Prepared:
    """A checked run, ready to go: everything `run` needs, and what the CLI confirms and renders.
    DSNs (`pair` or `endpoint`) run the library here; environment names run the function's
    `event`, invoked or (`direct`, the sandbox) its handler's code here."""

    kind: str  # "schema", "data" or "migrate"
    label: str  # what the run is between or on, as the rendering names it
    confirm: Confirmation | None = None  # a protected target's yes (never for a dry run)
    pair: Pair | None = None  # sync schema|data
    endpoint: Endpoint | None = None  # migrate on a DSN ...
    scripts: Path | None = None  # ... with the scripts of this directory
    options: dict[str, Any] = field(default_factory=dict)  # the DSN run's keyword arguments
    event: dict[str, Any] | None = None  # environment names: the function's event
    spec: Any = None
    suffix: str | None = None  # None: a DSN run (no estate)
    direct: bool = False
    sandbox: Sandbox | None = None
    rules: Locking | None = None  # a schema run's locking rules (the online tool made at run time)
    function_name: str | None = None  # the function an environment run invokes

    @property
    def here(self) -> bool:
        """Whether the code runs in this process (DSNs, --direct, the sandbox): it reports progress."""
        return self.event is None or self.direct or self.sandbox is not None


@dataclass(frozen=True)
class Outcome:
    """What a run returned (the function's result shape) and the EMF metrics lines it emitted
    here (a run's line belongs in the function's log; the CLI shows it with --verbose)."""

    result: dict[str, Any]
    metrics: list[str] = field(default_factory=list)


def _confirmation(pair_spec: Any, target: str, what: str, dry_run: bool) -> Confirmation | None:
    return None if dry_run or not is_protected(pair_spec, target) else Confirmation(target, what)


def prepare_schema(src: str, dst: str, *, config: Path | None, suffix: str | None,
                   databases: Sequence[str] | None, dry_run: bool, allow_destructive: bool,
                   renames: Sequence[str] | None, definer: str, allow_blocking: bool, blocking_limit: str | None,
                   online_tool: str | None, lock_wait_timeout: int | None, direct: bool = False,
                   sandbox: Sandbox | None = None) -> Prepared:
    """`dbrepl sync schema SRC DST ...` checked (bad input raised before any connection)."""
    pair = resolve_pair(src, dst, config=config, suffix=suffix)
    rules = locking(pair.spec, pair.target, blocking_limit=blocking_limit, allow_blocking=allow_blocking,
                    online_tool=online_tool, lock_wait_timeout=lock_wait_timeout)
    checked_renames = check_renames(renames or [])
    check_definer(definer)
    checked_databases = check_databases(databases) if databases else None
    if pair.dsn and checked_databases:
        raise BadInput("--database goes with environment names; a DSN names its database")
    confirm = _confirmation(pair.spec, pair.target, f"change the schema of {pair.target}", dry_run)
    if pair.dsn:
        return Prepared("schema", pair.label, confirm, pair=pair, options=dict(
            renames=checked_renames, dry_run=dry_run, allow_destructive=allow_destructive, definer=definer,
            rules=rules))
    event = schema_event(pair, dry_run=dry_run, allow_destructive=allow_destructive, databases=checked_databases,
                         renames=checked_renames, definer=definer, rules=rules)
    return Prepared("schema", pair.label, confirm, pair=pair, event=event, spec=pair.spec, suffix=pair.suffix or "",
                    direct=direct, sandbox=sandbox, rules=rules, function_name=pair.function("schema"))


def prepare_data(src: str, dst: str, *, config: Path | None, suffix: str | None, tables: Sequence[str] | None,
                 dry_run: bool, verbose: bool, verify: str, triggers: str, on_delete: str, direct: bool = False,
                 sandbox: Sandbox | None = None) -> Prepared:
    """`dbrepl sync data SRC DST ...` checked (bad input raised before any connection)."""
    verify = check_verify(verify)
    triggers = check_triggers(triggers)
    on_delete = check_on_delete(on_delete)
    pair = resolve_pair(src, dst, config=config, suffix=suffix)
    checked_tables = check_tables(tables or [])
    if pair.dsn and not checked_tables:
        raise BadInput("with DSNs name the tables to sync: --table T (repeatable)")
    confirm = _confirmation(pair.spec, pair.target, f"change the reference data of {pair.target}", dry_run)
    if pair.dsn:
        return Prepared("data", pair.label, confirm, pair=pair, options=dict(
            tables=checked_tables, dry_run=dry_run, verbose=verbose, verify=verify, triggers=triggers,
            on_delete=on_delete))
    event = data_event(pair, dry_run=dry_run, verbose=verbose, verify=verify, tables=checked_tables,
                       triggers=triggers, on_delete=on_delete)
    return Prepared("data", pair.label, confirm, pair=pair, event=event, spec=pair.spec, suffix=pair.suffix or "",
                    direct=direct, sandbox=sandbox, function_name=pair.function("data"))


def prepare_migrate(target: str, *, scripts: Path | None, databases: Sequence[str] | None, to: str | None,
                    dry_run: bool, direct: bool, config: Path | None, suffix: str | None,
                    sandbox: Sandbox | None = None) -> Prepared:
    """`dbrepl migrate apply TARGET ...` checked: an environment (the bucket's scripts, through the
    schema function) or a DSN (the scripts of --scripts DIR, run here)."""
    if to is not None:
        check_script_name(to)
    if is_dsn(target):
        endpoint = check_migrate_dsn_target(target, scripts, databases, direct)
        return Prepared("migrate", endpoint.display(), endpoint=endpoint, scripts=scripts or Path(),
                        options={"dry_run": dry_run, "to": to})
    refuse_scripts_dir(scripts)
    spec, sfx = migrate_target(target, config, suffix)
    checked_databases = check_databases(databases) if databases else None
    confirm = _confirmation(spec, target, f"apply migrations to {target}", dry_run)
    event = migrate_event(target, "migrate", databases=checked_databases, dry_run=dry_run, to=to)
    return Prepared("migrate", target, confirm, event=event, spec=spec, suffix=sfx, direct=direct, sandbox=sandbox)


def run(prepared: Prepared, *, progress: Callable[[Any], None] | None = None,
        tool_output: Callable[[str], None] | None = None) -> Outcome:
    """Run what `prepare_*` checked. `progress`: a data sync's Progress hook (runs here only);
    `tool_output`: each line of the online tool's output (a schema run here)."""
    p = prepared
    if p.pair is not None and p.pair.dsn:
        if p.kind == "schema":
            return Outcome(schema_between_dsns(p.pair, tool_output=tool_output, **p.options))
        return Outcome(data_between_dsns(p.pair, progress=progress, **p.options))
    if p.endpoint is not None:
        return Outcome(migrate_on_dsn(p.endpoint, p.scripts or Path(), "migrate", **p.options))
    assert p.event is not None
    extra: dict[str, Any] = {}
    if p.kind == "schema" and p.rules is not None:
        tool = online_tool_factory(p.rules, tool_output)
        if tool is not None:
            extra["online_tool"] = tool
    return run_function(p.spec, p.suffix or "", "data" if p.kind == "data" else "schema", p.event,
                        direct=p.direct, sandbox=p.sandbox, progress=progress, **extra)


def run_function(spec: Any, suffix: str, kind: str, event: dict[str, Any], *, direct: bool,
                 sandbox: Sandbox | None = None, progress: Callable[[Any], None] | None = None,
                 **runner_kw: Any) -> Outcome:
    """Run a function's event: invoked, or its code here (`direct`, and always in the sandbox;
    `progress` and `runner_kw` reach the code only there).

    The run's EMF metrics line belongs in the function's log (Lambda: the function's stdout; the
    sandbox: the function's log group, where run_direct writes it); a `--direct` run against AWS
    has no function log and drops it. It is returned in the Outcome for the CLI to show (with
    `--verbose`, on stderr), after the run: never into a progress bar."""
    from dbrepl.app.estate import Target, open_estate

    functions = open_estate(Target(spec, suffix, None), sandbox=sandbox).functions
    here = direct or sandbox is not None
    before = len(functions.emitted)
    result = functions.run(kind, event, direct=here, progress=progress, **(runner_kw if here else {}))
    return Outcome(result, functions.emitted[before:])


# --------------------------------------------------------------------------- migration targets

def migrate_target(env: str, config: Path | None, suffix: str | None) -> tuple[Any, str]:
    """An environment target of `migrate`: the spec and the suffix, checked."""
    spec = load_spec(config)
    check_environment(spec, env)
    return spec, check_suffix(suffix)


def check_migrate_dsn_target(target: str, scripts: Path | None, databases: Sequence[str] | None,
                             direct: bool) -> Endpoint:
    """A DSN target's endpoint (scripts from --scripts DIR; --database and --direct refused)."""
    if databases:
        raise BadInput("--database goes with an environment name; a DSN names its database")
    if direct:
        raise BadInput("--direct goes with an environment name; a DSN target always runs here")
    return check_migrate_dsn(target, scripts)


def refuse_scripts_dir(scripts: Path | None) -> None:
    """An environment target's scripts are in the bucket: --scripts is refused."""
    if scripts is not None:
        from dbrepl.invocation import command

        raise BadInput("--scripts goes with a DSN target; an environment's scripts are in the bucket "
                       f"({command('migrate push FILE...')})")
