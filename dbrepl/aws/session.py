"""One session factory: every AWS call dbrepl makes goes through a client made here.

Per environment a boto3 session (a later issue assumes a role per environment), clients
cached per (environment, service) and shared by threads (boto3 clients are thread-safe,
sessions are not: clients are made under a lock). botocore's standard retry mode handles
throttling; `max_attempts` comes from the spec.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import NoCredentialsError, NoRegionError

from dbrepl.errors import BadInput

ClientHook = Callable[[Any], None]


class SessionFactory:
    """Hands out boto3 clients per environment.

    `hooks` are called with every new client (tests count and fault calls through the
    client's event system; nothing patches boto3 globally).
    """

    def __init__(
        self,
        region: str | None = None,
        *,
        env_regions: dict[str, str | None] | None = None,
        max_attempts: int = 10,
        hooks: list[ClientHook] | None = None,
        session_maker: Callable[[str | None], boto3.Session] | None = None,
    ) -> None:
        self._region = region
        self._env_regions = env_regions or {}
        self._max_attempts = max_attempts
        self.hooks: list[ClientHook] = list(hooks or [])
        self._session_maker = session_maker or (lambda r: boto3.Session(region_name=r))
        self._sessions: dict[str | None, boto3.Session] = {}
        self._clients: dict[tuple[str | None, str], Any] = {}
        self._lock = threading.Lock()

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

    def group_key(self, env: str | None) -> tuple[str, str]:
        """Environments with the same key share an account and region (one batched call)."""
        return ("default", self.region_for(env))

    def client(self, service: str, env: str | None = None) -> Any:
        region = self.region_for(env)
        key = (region, service)
        with self._lock:
            cli = self._clients.get(key)
            if cli is None:
                sess = self._sessions.get(region)
                if sess is None:
                    sess = self._sessions[region] = self._session_maker(region)
                cfg = Config(
                    retries={"mode": "standard", "max_attempts": self._max_attempts},
                    connect_timeout=10,
                    read_timeout=60,
                    max_pool_connections=32,
                )
                cli = sess.client(service, region_name=region, config=cfg)
                for hook in self.hooks:
                    hook(cli)
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
