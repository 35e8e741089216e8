"""One exception tree; only the CLI maps it to exit codes and one-line messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dbrepl.sync.errors import InvalidInput, SyncError


class DbreplError(Exception):
    """Base of every error dbrepl raises on purpose."""

    exit_code = 1


class BadInput(DbreplError):
    """Bad spec, argument or environment: nothing was touched."""

    exit_code = 2


class SpecError(BadInput):
    """The environment spec is invalid."""


class AwsFailure(DbreplError):
    """An AWS call failed while working: 'Failed to <what>: <why>'."""

    def __init__(self, what: str, why: str, left: str = "") -> None:
        self.what, self.why, self.left = what, why, left
        msg = f"Failed to {what}: {why}"
        if left:
            msg += f" ({left})"
        super().__init__(msg)


class WaitTimeout(DbreplError):
    """A resource did not reach the wanted state in time."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"Timed out waiting for {what} after {seconds:.0f} s")


class Refused(DbreplError):
    """dbrepl refuses a change that would lose data without an explicit action."""


class ReplacementRefused(Refused):
    """apply would have to replace a resource (dbrepl never does): refused before any change,
    as bad input (exit 2), naming the resources and the way out."""

    exit_code = 2


class ProtectedRefused(Refused):
    """destroy would delete something of a protected environment without --include-protected:
    refused before any change, as bad input (exit 2)."""

    exit_code = 2


def sync_error(exc: SyncError) -> DbreplError:
    """The sync library's errors in this tree: InvalidInput is bad input (exit 2)."""
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
