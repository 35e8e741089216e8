"""Errors raised by the sync library; the CLI and the handlers map them to messages."""

from __future__ import annotations


class SyncError(Exception):
    """Base for every error of the sync library."""


class InvalidInput(SyncError):
    """Bad event, argument or name: nothing was run."""


class DatabaseError(SyncError):
    """The database refused or failed a statement."""
