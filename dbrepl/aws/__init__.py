"""AWS access: the session factory and small helpers shared by the steps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError


class ItemFailed(ClientError):
    """A call answered 200 but left some items undone (DeleteVpcEndpoints' `Unsuccessful`,
    DeleteObjects' `Errors`): raised as the ClientError AWS did not raise, so retries and error
    wording treat it as the failure it is."""

    def __init__(self, operation: str, code: str, message: str, *, transient: bool = True) -> None:
        super().__init__({"Error": {"Code": code, "Message": message}}, operation)
        self.transient = transient  # whether asking again can help


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ClientError (None for anything else)."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def error_reason(exc: BaseException) -> str:
    """'Code: message' of an AWS error (the message alone when it already names the code), or
    the exception's text: the one way dbrepl words an AWS failure."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code, msg = err.get("Code", ""), err.get("Message", "")
        if not code:
            return msg or str(exc)
        return msg if code in msg else f"{code}: {msg}".strip().rstrip(":")
    return str(exc)


def is_code(exc: BaseException, codes: Iterable[str]) -> bool:
    code = error_code(exc)
    return code is not None and code in set(codes)


def tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def tag_dict(items: Iterable[dict[str, Any]] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {t[key]: t[value] for t in items or ()}


def paginate(client: Any, op: str, result_key: str, **kwargs: Any) -> list[Any]:
    out: list[Any] = []
    for page in client.get_paginator(op).paginate(**kwargs):
        out.extend(page.get(result_key, []))
    return out


def or_none(fn: Any, code: str) -> Any:
    """`fn()`, or None when AWS answers `code` (a resource that is not there, for a read)."""
    try:
        return fn()
    except Exception as e:
        if is_code(e, [code]):
            return None
        raise
