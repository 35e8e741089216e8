"""The CLI reference (docs/cli.md), generated from the app itself so it cannot drift.

Regenerate with `python -m dbrepl.clidoc > docs/cli.md`; tests/test_clidoc.py fails when
the file and the app disagree.
"""

from __future__ import annotations

from typing import Any

import typer


def _params(cmd: Any) -> list[str]:
    rows = []
    for p in cmd.params:
        if getattr(p, "hidden", False) or p.name == "help":
            continue
        if p.param_type_name == "argument":
            name = (p.metavar or p.name or "").upper()
            help_ = " ".join((getattr(p, "help", "") or "").split()).replace("|", "\\|")
            shown = f" (default {p.show_default})" if isinstance(getattr(p, "show_default", None), str) else ""
            rows.append(f"| `{name}` | {help_ or 'argument'}{' (repeatable)' if p.nargs == -1 else ''}{shown} |")
            continue
        flags = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
        help_ = " ".join((getattr(p, "help", "") or "").split()).replace("|", "\\|")
        extra = []
        if getattr(p, "envvar", None):
            extra.append(f"env `{p.envvar}`")
        if getattr(p, "multiple", False):
            extra.append("repeatable")
        default = p.default
        if isinstance(getattr(p, "show_default", None), str):  # a default that is not the value (None)
            extra.append(f"default: {p.show_default}")
        elif default not in (None, False, (), []) and not callable(default):
            extra.append(f"default `{default}`")
        tail = f" ({'; '.join(extra)})" if extra else ""
        rows.append(f"| {flags} | {help_}{tail} |")
    return rows


def _walk(cmd: Any, path: str, out: list[str]) -> None:
    subs = getattr(cmd, "commands", None)
    if subs is not None and path != "dbrepl":
        out.append(f"## `{path}`\n")
        out.append(" ".join((cmd.help or "").split()) + "\n")
    for name, sub in sorted((subs or {}).items()):
        if getattr(sub, "hidden", False):
            continue
        full = f"{path} {name}"
        if getattr(sub, "commands", None) is not None:
            _walk(sub, full, out)
            continue
        out.append(f"### `{full}`\n")
        out.append(" ".join((sub.help or "").split()) + "\n")
        rows = _params(sub)
        if rows:
            out.append("| argument / option | meaning |\n|---|---|")
            out.extend(rows)
            out.append("")


def render(app: typer.Typer | None = None) -> str:
    if app is None:
        from dbrepl.cli import app as main_app

        app = main_app
    root = typer.main.get_command(app)
    out = ["# CLI reference", "",
           "Generated from the app (`python -m dbrepl.clidoc > docs/cli.md`); a test keeps it true.", "",
           " ".join((root.help or "").split()), ""]
    glob = _params(root)
    if glob:
        out += ["Global options (before or after the command):", "", "| option | meaning |", "|---|---|", *glob, ""]
    out.append("Exit codes: 0 done, 1 failed while working, 2 bad input (nothing touched; with `plan "
               "--detailed-exitcode` also: apply would refuse the plan), 3 differences, changes pending or drift "
               "(`--detailed-exitcode`).\n")
    _walk(root, "dbrepl", out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
