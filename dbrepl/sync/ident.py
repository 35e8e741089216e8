"""SQL identifier checks and quoting (DESIGN §2 item 8: never build SQL from raw input)."""

from __future__ import annotations

import re

from dbrepl.sync.errors import InvalidInput

# Names a user may pass for databases, tables and columns. Stricter than MySQL allows on
# purpose: quotes, backticks, semicolons, whitespace and control characters are refused
# before any SQL runs; every name is also checked against the catalogue before use.
_NAME = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_$\-]{0,63}$")


def check_name(name: object, what: str = "name") -> str:
    """Return `name` if it is a plain identifier, else raise InvalidInput naming it."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid {what} {name!r}: use letters, digits, '_', '$' or '-' (at most 64 characters)"
        )
    return name


def quote(name: str) -> str:
    """Quote one identifier with backticks, doubling any backtick inside."""
    return "`" + name.replace("`", "``") + "`"


def qualified(database: str, table: str) -> str:
    return f"{quote(database)}.{quote(table)}"
