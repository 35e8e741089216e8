"""How this run of dbrepl was invoked, so every next-step hint it prints runs as printed (issue 19).

The CLI records, once per command, whether the sandbox was chosen (`--sandbox` or
DBREPL_SANDBOX=1), the spec given (`--config` or DBREPL_CONFIG) and the suffix; `command()` then
renders a hint with the same prefix and options:

    command("migrate apply dev", suffix="demo")  ->  dbrepl --sandbox migrate apply dev --suffix demo --config my.yaml

Outside the CLI (the library, tests) nothing is recorded and hints read `dbrepl ...` plainly. A
module global, not a context variable: the engine prints from its worker threads, and one process
runs one command. No imports beyond the standard library (the CLI's start stays lean).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Invocation:
    sandbox: bool = False
    config: str | None = None  # as given (relative paths stay relative: the hint runs from the same directory)
    suffix: str | None = None
    argv: tuple[str, ...] = field(default=())  # the arguments after `dbrepl`, --sandbox hoisted


_current = Invocation()


def current() -> Invocation:
    return _current


def record(**changes: Any) -> Invocation:
    """Update what is known of this run (the CLI calls it; returns the previous record)."""
    global _current
    previous = _current
    _current = replace(_current, **changes)
    return previous


def restore(previous: Invocation) -> None:
    global _current
    _current = previous


def quote(word: object) -> str:
    return shlex.quote(str(word))


def command(words: str, *extra: str, suffix: str | None | bool = True, config: bool = True,
            sandbox: bool | None = None) -> str:
    """`dbrepl [--sandbox] WORDS [--suffix S] [--config PATH] EXTRA...` as this run was invoked.

    `words` is the command and its arguments, already quoted where needed; `suffix` True takes
    this run's suffix, a string names one, False/None leaves it out; `config` False leaves the
    spec out (commands that take none); `sandbox` None follows this run."""
    inv = _current
    parts = ["dbrepl"]
    if inv.sandbox if sandbox is None else sandbox:
        parts.append("--sandbox")
    parts.append(words)
    sfx = inv.suffix if suffix is True else suffix or None
    if sfx:
        parts += ["--suffix", quote(sfx)]
    if config and inv.config:
        parts += ["--config", quote(inv.config)]
    parts += [e for e in extra if e]
    return " ".join(parts)


def with_sandbox(argv: Sequence[str] | None = None) -> str:
    """This very command line with `--sandbox` added."""
    from dbrepl.sync.connection import redact_text  # an argument may be a DSN with a password

    args = [a for a in (_current.argv if argv is None else argv) if a != "--sandbox"]
    return redact_text(" ".join(["dbrepl", "--sandbox", *(quote(a) for a in args)]))
