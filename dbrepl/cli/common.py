"""What every command shares: the consoles, the common options, the error mapping (the only
place exit codes are decided), confirmations, and the sandbox the global `--sandbox` chose."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from typer.core import TyperGroup

try:  # typer >= 0.25 vendors click; older typer uses the click package
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    # The same classes in click's own package: mypy sees both imports and types them as distinct.
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[assignment]

from dbrepl import invocation
from dbrepl.errors import BadInput, DbreplError

if TYPE_CHECKING:
    from rich.console import Console

    from dbrepl.app import Estate
    from dbrepl.app.estate import Spec
    from dbrepl.app.sandbox import Sandbox



class _Console:
    """A rich Console made on first use: a run that prints only JSON (or nothing) never
    imports rich (about 30 ms of every DSN run's start, benchmarks/data_sync_floor.py)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def is_terminal(self) -> bool:
        # What rich would answer, without importing it when the answer is surely no: rich says
        # yes only for a TTY, TTY_COMPATIBLE=1 or FORCE_COLOR (these consoles never force it).
        stream = sys.stderr if self._options.get("stderr") else sys.stdout
        isatty = getattr(stream, "isatty", None)
        try:
            tty = bool(isatty and isatty())
        except ValueError:  # closed
            tty = False
        if self._console is None and not tty and os.environ.get("TTY_COMPATIBLE") != "1" \
                and "FORCE_COLOR" not in os.environ:
            return False
        return bool(self.__getattr__("is_terminal"))

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


def escape(text: str) -> str:
    """rich's markup escape, imported when a human-readable line is printed."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


# Typed as what they stand for: every attribute is the Console's.
out: Console = _Console(highlight=False, soft_wrap=True)  # type: ignore[assignment]
err: Console = _Console(stderr=True, highlight=False, soft_wrap=True)  # type: ignore[assignment]

SuffixOpt = Annotated[str | None, typer.Option("--suffix", "-s", envvar="DBREPL_SUFFIX",
                                               help="Estate suffix (1-20 of a-z, 0-9, '-'); also DBREPL_SUFFIX.")]
# A default that is not the parameter's value (None: "not given") is named with show_default, which
# typer prints in its own "[default: ...]" slot; "[...]" inside help text is rich markup and vanishes.
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", envvar="DBREPL_CONFIG", help="Spec file.",
                                                show_default="config/environments.yaml")]
EnvOpt = Annotated[list[str] | None, typer.Option("--env", "-e", help="Only these environments ('shared' for the "
                                                  "bucket and functions); repeatable.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed without a terminal).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
DirectOpt = Annotated[bool, typer.Option("--direct", help="Run the function's code in this process with its "
                                                          "configured environment, instead of invoking it.")]
DetailedOpt = Annotated[bool, typer.Option("--detailed-exitcode", help="Exit 3 when there were differences.")]
PortOpt = Annotated[int, typer.Option("--port", "-p", min=1, max=65535,
                                      help="Port of the sandbox's AWS endpoint on 127.0.0.1.")]


def one_line(s: str) -> str:
    return " ".join(s.split())


def handled(fn: Any) -> Any:
    """Map dbrepl errors to one line on stderr and an exit code; tracebacks only with DBREPL_DEBUG."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _record_invocation(kwargs)
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, UsageError):
            raise
        except DbreplError as e:
            if os.environ.get("DBREPL_DEBUG"):
                raise
            err.print(f"[red]error:[/] {escape(one_line(str(e)))}")
            raise typer.Exit(e.exit_code) from None
        except BrokenPipeError:  # the reader went away (`| head`): nothing to say, and nowhere to say it
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted: resources already made were left in place; run the same command again")
            raise typer.Exit(130) from None
        except Exception as e:  # a bug: say so in one line, traceback on demand
            if os.environ.get("DBREPL_DEBUG"):
                raise
            err.print(f"[red]error:[/] unexpected {type(e).__name__}: {escape(one_line(str(e)))} "
                      "(set DBREPL_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None

    return wrapper


def _record_invocation(kwargs: dict[str, Any]) -> None:
    """What the hints of this command repeat (dbrepl.invocation): --config and --suffix (the
    sandbox is recorded where the global `--sandbox` is read)."""
    changes: dict[str, Any] = {}
    if "config" in kwargs:
        config = kwargs["config"]
        changes["config"] = str(config) if config is not None else None
    if isinstance(kwargs.get("suffix"), str):
        changes["suffix"] = kwargs["suffix"]
    invocation.record(**changes)


class OneLineUsage(TyperGroup):
    """Usage errors as one line and exit 2, like every other bad input."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        tidy_help(self)
        kwargs["args"], args = hoist_sandbox_flag(args[0] if args else kwargs.get("args")), args[1:]
        previous = invocation.record(argv=tuple(kwargs["args"]), sandbox=False, config=None, suffix=None)
        try:
            rv = super().main(*args, **kwargs)
        except NoArgsIsHelpError as e:
            e.show()
            sys.exit(0)
        except UsageError as e:
            where = f" (see {e.ctx.command_path} --help)" if e.ctx else ""
            from dbrepl.app.sync import redact_text  # a usage error may quote a DSN

            err.print(f"[red]error:[/] {escape(redact_text(one_line(e.format_message())))}{where}")
            sys.exit(2)
        except typer.Abort:
            err.print("Aborted: nothing was changed.")
            sys.exit(1)
        except typer.Exit as e:
            sys.exit(e.exit_code)
        finally:
            invocation.restore(previous)
        sys.exit(rv if isinstance(rv, int) else 0)


# What newer typer (0.2x) prints as <str>, <path>, <list[str]>, in click's words as older typer does.
_TYPE_WORDS = {str: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH"}


def tidy_help(cmd: Any) -> None:
    """Help that reads the same on every typer the project allows (pyproject.toml): no type for
    on/off flags (newer typer prints `<bool>`), TEXT/PATH/INTEGER for values (not `<list[str]>`),
    and usage lines naming arguments `SRC` and `[PATH]` (not `{SRC}`). Older typer already prints
    click's metavars; only what it leaves unset is touched."""
    if getattr(cmd, "_dbrepl_tidy", False):
        return
    cmd._dbrepl_tidy = True
    for p in getattr(cmd, "params", ()):
        _tidy_param(p)
    if hasattr(cmd, "get_help_option"):  # --help itself is made when asked for
        made = cmd.get_help_option

        def help_option(ctx: Any) -> Any:
            opt = made(ctx)
            if opt is not None:
                _tidy_param(opt)
            return opt

        cmd.get_help_option = help_option
    for sub in (getattr(cmd, "commands", None) or {}).values():
        tidy_help(sub)


def _tidy_param(p: Any) -> None:
    desc = getattr(p, "type_descriptor", None)  # typer >= 0.2x; older typer has click's types
    if desc is None:
        return
    ann = get_args(desc.annotation)[0] if desc.is_list and get_args(desc.annotation) else desc.annotation
    word = None if desc.is_choice else "PATH" if desc.is_path else _TYPE_WORDS.get(ann)
    if p.param_type_name == "option" and p.metavar is None:
        p.metavar = "" if getattr(p, "is_flag", False) and not getattr(p, "count", False) else word
    elif p.param_type_name == "argument" and hasattr(p, "_usage_display_name"):
        p.get_usage_pieces = functools.partial(_argument_usage, p)
        if word is not None:
            p.display_type_rich = lambda ctx=None: word


def _argument_usage(p: Any, ctx: Any = None) -> list[str]:
    """click's usage for an argument: NAME when required, [NAME] when not, ... when repeatable."""
    name = p.metavar or (p.name or "").upper()
    if p.metavar is None and p.nargs != 1:
        name += "..."
    return [name if p.required else f"[{name}]"]


def hoist_sandbox_flag(args: Sequence[str] | None) -> list[str]:
    """Move `--sandbox` to the front, so it works after a command too (`dbrepl plan --sandbox`)."""
    args = list(sys.argv[1:] if args is None else args)
    end = args.index("--") if "--" in args else len(args)
    if "--sandbox" not in args[:end]:
        return args
    return ["--sandbox", *(a for i, a in enumerate(args) if not (i < end and a == "--sandbox"))]


def sandbox_of(ctx: typer.Context) -> Sandbox | None:
    """The running sandbox the global `--sandbox` (or DBREPL_SANDBOX=1) chose, else None."""
    return ctx.find_root().obj


def estate(ctx: typer.Context, spec: Spec, suffix: str, envs: list[str] | None = None) -> Estate:
    """The estate on AWS, or in the sandbox when `--sandbox` was given."""
    from dbrepl.app import Target, open_estate

    return open_estate(Target(spec, suffix, envs), sandbox=sandbox_of(ctx))


def confirm(action: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"{action} needs confirmation: pass --yes when not running on a terminal")


def ask(question: str) -> None:
    if not typer.confirm(question, default=False):
        err.print("Nothing was changed.")
        raise typer.Exit(1)
