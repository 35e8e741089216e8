"""SQL identifier checks and quoting (docs/corrections.md, item 8: never build SQL from raw input).

Names reach SQL only through quote()/qualified(), which backtick-quote them (doubling any
backtick inside), so a name cannot break out of its quotes whatever it holds. check_name()
therefore accepts what MySQL and MariaDB accept for a quoted name: spaces, quotes,
backticks, reserved words, non-ASCII letters. It refuses only what no server can store
(empty, longer than 64 characters, outside the Basic Multilingual Plane, a trailing space)
and control characters, which have no place in a name a person types. Every name is also
checked against the catalogue before use.
"""

from __future__ import annotations

import re

from dbrepl.sync.errors import InvalidInput

# Identifiers dbrepl makes up itself (environment suffixes and such): plain words only.
_PLAIN = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_$\-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(name: object, what: str = "name") -> str:
    """Return `name` if MySQL can hold it as a (quoted) identifier, else raise InvalidInput.

    Database names may not contain '.', which separates them from table names in
    `database.table`; MySQL allows it, dbrepl's own notation does not.
    """
    problem = None
    if not isinstance(name, str) or not name:
        problem = "expected a non-empty name"
    elif len(name) > 64:
        problem = "longer than 64 characters"
    elif _CONTROL.search(name):
        problem = "control characters are not allowed"
    elif any(ord(ch) > 0xFFFF for ch in name):
        problem = "characters outside the Basic Multilingual Plane cannot be stored in a name"
    elif name.endswith(" "):
        problem = "a name cannot end with a space"
    elif what.startswith("database") and "." in name:
        problem = "a database name cannot contain '.' here (it separates database.table)"
    if problem:
        raise InvalidInput(f"invalid {what} {name!r}: {problem}")
    return name  # type: ignore[return-value]  # a non-empty str: any other value set `problem`


def check_plain_name(name: object, what: str = "name") -> str:
    """Return `name` if it is a plain word (letters, digits, '_', '$', '-'), else raise."""
    if not isinstance(name, str) or not _PLAIN.match(name):
        raise InvalidInput(
            f"invalid {what} {name!r}: use letters, digits, '_', '$' or '-' (at most 64 characters)"
        )
    return name


def quote(name: str) -> str:
    """Quote one identifier with backticks, doubling any backtick inside."""
    return "`" + name.replace("`", "``") + "`"


def qualified(database: str, table: str) -> str:
    return f"{quote(database)}.{quote(table)}"
