"""One session factory: every AWS call dbrepl makes goes through a client made here.

Per environment a boto3 session: the caller's own, or, when the spec names an `account`,
one that assumes that role through STS and refreshes the credentials before they expire.
Clients are cached per (identity, region, service) and shared by threads (boto3 clients
are thread-safe, sessions are not: clients are made under a lock). botocore's standard
retry mode handles throttling; `max_attempts` comes from the spec.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from dbrepl.errors import BadInput

ClientHook = Callable[[Any], None]
DEFAULT = "default"


_models_lock = threading.Lock()
_models: list[botocore.loaders.Loader] = []
_frozen: set[str] = set()  # services whose parsed models were moved out of the collector's way
_gc_hold = {"depth": 0, "was_enabled": True}  # clients being made now; collection before the first


class _Paths(list):
    """A search path list that keeps one copy of each path: boto3 appends its own data path to
    the loader of every session it wraps, and this loader is shared by all of them."""

    def append(self, item: Any) -> None:
        if item not in self:
            super().append(item)


class _JSONFiles(botocore.loaders.JSONFileLoader):
    """botocore's JSON file loader, minus `object_pairs_hook=OrderedDict` (dicts keep their
    order): a third less time parsing the models, which is most of making a client."""

    def load_file(self, file_path: str) -> Any:
        for ext, opener in ((".json", open), (".json.gz", gzip.open)):
            path = file_path + ext
            if os.path.isfile(path):
                with opener(path, "rb") as fh:
                    return json.loads(fh.read())
        return None


def shared_loader() -> botocore.loaders.Loader:
    """The process's one botocore data loader (it caches what it parses)."""
    with _models_lock:
        if not _models:
            try:
                extra = botocore.session.Session().get_config_variable("data_path")  # AWS_DATA_PATH or config
            except ProfileNotFound:  # AWS_PROFILE names no profile: the sandbox ignores it anyway
                extra = os.environ.get("AWS_DATA_PATH")
            loader = botocore.loaders.Loader(
                extra_search_paths=([os.path.expanduser(os.path.expandvars(p)) for p in extra.split(os.pathsep)]
                                    if extra else None),
                file_loader=_JSONFiles())
            loader._search_paths = _Paths(loader.search_paths)
            _models.append(loader)
        return _models[0]


def forget_models() -> None:
    """Drop the parsed service models, as in a new process (benchmarks measure both)."""
    with _models_lock:
        _models.clear()
        _frozen.clear()


@contextmanager
def _parsing(service: str) -> Iterator[None]:
    """Making a client parses its service's JSON into ~10^5 long-lived objects, which sets off
    full garbage collections that walk every object in the process: a third of the ~0.4 s a
    dozen clients cost, and, once a collection is due, up to 0.5 s in the middle of a run.
    Collection waits while a model is parsed; after the first parse of a service, everything
    alive is moved out of the collector's way (gc.freeze: the models live as long as the
    process). At most once per service per process, so little else is frozen with them."""
    with _models_lock:  # factories in other threads may be parsing too: the last one out restores
        if _gc_hold["depth"] == 0:
            _gc_hold["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_hold["depth"] += 1
    try:
        yield
        with _models_lock:
            first = service not in _frozen
            _frozen.add(service)
        if first:
            gc.freeze()
    finally:
        with _models_lock:
            _gc_hold["depth"] -= 1
            if _gc_hold["depth"] == 0 and _gc_hold["was_enabled"]:
                gc.enable()


def new_session(region: str | None, cls: type[boto3.Session] = boto3.Session, *,
                credentials: tuple[str, str] | None = None) -> boto3.Session:
    """A boto3 session that shares the process's models: on the default credential chain, or,
    with `credentials` (key id, secret), on those alone, reading no profile, config or
    credentials file of the user's (the sandbox: nothing can send a call to real AWS)."""
    isolated = None
    if credentials is not None:  # (config name, environment variable, default, conversion)
        isolated = {"profile": (None, None, None, None), "config_file": (None, None, os.devnull, None),
                    "credentials_file": (None, None, os.devnull, None)}
    bs = botocore.session.get_session(isolated)
    bs.register_component("data_loader", shared_loader())
    if credentials is not None:
        bs.set_credentials(*credentials)
    return cls(botocore_session=bs, region_name=region)


@dataclass(frozen=True)
class RoleSpec:
    role_arn: str
    external_id: str | None = None
    session_name: str = "dbrepl"


class SessionFactory:
    """Hands out boto3 clients per environment.

    `hooks` are called with every new client (tests count and fault calls through the
    client's event system; nothing patches boto3 globally). `endpoint_url` and `credentials`
    send every call to an emulator (the sandbox) with its fake credentials; nothing else of
    the process's environment then decides where a call goes.
    """

    def __init__(
        self,
        region: str | None = None,
        *,
        env_regions: dict[str, str | None] | None = None,
        env_roles: Mapping[str, RoleSpec | None] | None = None,
        max_attempts: int = 10,
        hooks: list[ClientHook] | None = None,
        session_maker: Callable[[str | None], boto3.Session] | None = None,
        endpoint_url: str | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._region = region
        self._env_regions = env_regions or {}
        self._env_roles = {k: v for k, v in (env_roles or {}).items() if v is not None}
        self._max_attempts = max_attempts
        self.hooks: list[ClientHook] = list(hooks or [])
        self.endpoint_url = endpoint_url
        self._session_maker = session_maker or (lambda region: new_session(region, credentials=credentials))
        self._sessions: dict[tuple[str, str], boto3.Session] = {}
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_spec(cls, spec: Any, default_region: str | None = None, **kw: Any) -> SessionFactory:
        """`default_region`: where environments with no region of their own live when the
        spec names none either (the sandbox's region, instead of AWS_REGION)."""
        regions = {name: e.region for name, e in spec.environments.items()}
        roles = {name: RoleSpec(e.account.role_arn, e.account.external_id, e.account.session_name)
                 for name, e in spec.environments.items() if e.account is not None}
        return cls(spec.region or default_region, env_regions=regions, env_roles=roles,
                   max_attempts=spec.timing.max_attempts, **kw)

    # -- where an environment lives
    def region_for(self, env: str | None) -> str:
        region = self._env_regions.get(env or "") or self._region
        if region:
            return region
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            return region
        sess = boto3.Session()
        if sess.region_name:
            return sess.region_name
        raise BadInput("no AWS region: set AWS_REGION (or region: in the spec)")

    def identity_for(self, env: str | None) -> str:
        role = self._env_roles.get(env or "")
        return role.role_arn if role else DEFAULT

    def group_key(self, env: str | None) -> tuple[str, str]:
        """Environments with the same key share an account and region (one batched call)."""
        return (self.identity_for(env), self.region_for(env))

    # -- sessions and clients
    def _base(self, region: str) -> boto3.Session:
        key = (DEFAULT, region)
        sess = self._sessions.get(key)
        if sess is None:
            sess = self._sessions[key] = self._session_maker(region)
        return sess

    def _session(self, env: str | None, region: str) -> boto3.Session:
        role = self._env_roles.get(env or "")
        if role is None:
            return self._base(region)
        key = (role.role_arn, region)
        sess = self._sessions.get(key)
        if sess is None:
            sts = self.client("sts", None, region=region)

            def fetch() -> dict[str, str]:
                kw: dict[str, Any] = {"RoleArn": role.role_arn, "RoleSessionName": role.session_name,
                                      "DurationSeconds": 3600}
                if role.external_id:
                    kw["ExternalId"] = role.external_id
                c = sts.assume_role(**kw)["Credentials"]
                return {"access_key": c["AccessKeyId"], "secret_key": c["SecretAccessKey"],
                        "token": c["SessionToken"], "expiry_time": c["Expiration"].isoformat()}

            # Refreshed by botocore shortly before expiry: long Aurora waits outlive one hour.
            creds = RefreshableCredentials.create_from_metadata(fetch(), fetch, "sts-assume-role")
            sess = self._session_maker(region)
            sess._session._credentials = creds
            self._sessions[key] = sess
        return sess

    def client(self, service: str, env: str | None = None, *, region: str | None = None,
               config: Config | None = None) -> Any:
        """The environment's client of `service` (one per account, region and service).
        With `config` (merged over the default), a client of its own, not shared."""
        region = region or self.region_for(env)
        identity = self.identity_for(env)
        key = (identity, region, service)
        with self._lock:
            cli = None if config is not None else self._clients.get(key)
            if cli is None:
                sess = self._session(env, region)
                cfg = Config(
                    retries={"mode": "standard", "max_attempts": self._max_attempts},
                    connect_timeout=10,
                    read_timeout=60,
                    max_pool_connections=32,
                )
                if config is not None:
                    cfg = cfg.merge(config)
                with _parsing(service):
                    cli = sess.client(service, region_name=region, config=cfg, endpoint_url=self.endpoint_url)
                for hook in self.hooks:
                    hook(cli)
                if config is None:
                    self._clients[key] = cli
            return cli

    def check_credentials(self) -> None:
        """Fail early, before any change, when no credentials can be found."""
        sess = self._session_maker(self.region_for(None))
        try:
            if sess.get_credentials() is None:
                raise NoCredentialsError()
        except (NoCredentialsError, NoRegionError):
            raise BadInput(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or use the sandbox (dbrepl sandbox start)"
            ) from None

    def check_roles(self, envs: list[str]) -> None:
        """Assume every environment's role now: a role that cannot be assumed is bad input."""
        seen: set[tuple[str, str]] = set()
        for env in envs:
            role = self._env_roles.get(env)
            if role is None:
                continue
            key = (role.role_arn, self.region_for(env))
            if key in seen:
                continue
            seen.add(key)
            try:
                with self._lock:
                    self._session(env, key[1])
            except (ClientError, BotoCoreError) as e:
                why = e.response.get("Error", {}).get("Message", str(e)) if isinstance(e, ClientError) else str(e)
                raise BadInput(
                    f"environments.{env}.account.role_arn {role.role_arn}: cannot be assumed ({why}); "
                    "check the role's trust policy and external id"
                ) from None
