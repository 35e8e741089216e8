"""--help as a newcomer reads it (issue 19, item 7): defaults shown, click's metavars (no `<bool>`,
`<list[str]>`, `{SRC}`) on every typer pyproject.toml allows, no help text eaten as rich markup,
and `dbrepl --version`."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer.main
from rich.text import Text
from typer.testing import CliRunner

import dbrepl
from dbrepl.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _help(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    return " ".join(r.output.split())  # the panel wraps; compare words


@pytest.mark.parametrize("command", [(), ("plan",), ("apply",), ("status",), ("init",), ("permissions",),
                                     ("bundle",), ("sync", "schema"), ("sync", "data"), ("migrate", "push"),
                                     ("sandbox", "start")])
def test_help_has_clean_metavars(command: tuple[str, ...]) -> None:
    text = _help(*command)
    assert "<bool>" not in text and "<list[" not in text, text
    assert not re.search(r"\{[A-Z_]+\}", text), text
    assert not re.search(r"<(str|path|int|float)>", text), text


def test_help_shows_the_defaults_that_are_not_the_value() -> None:
    plan = _help("plan")
    assert "Spec file." in plan and "[env var: DBREPL_CONFIG]" in plan
    assert "[default: (config/environments.yaml)]" in plan
    assert "--config -c PATH" in plan and "--suffix -s TEXT" in plan and "--env -e TEXT" in plan
    assert "[default: (read from STS)]" in _help("permissions")
    init = _help("init")
    assert "init [OPTIONS] [PATH]" in init and "[default: (config/environments.yaml)]" in init
    assert "[default: bundle.zip]" in _help("bundle")


def test_usage_names_arguments_as_click_does() -> None:
    assert "sync schema [OPTIONS] SRC DST" in _help("sync", "schema")
    assert "migrate push [OPTIONS] FILE..." in _help("migrate", "push")


def _params(cmd: object, path: str = "dbrepl") -> list[tuple[str, object]]:
    out = [(path, p) for p in getattr(cmd, "params", [])]
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        out.extend(_params(sub, f"{path} {name}"))
    return out


def test_no_help_text_is_rich_markup() -> None:
    """rich drops "[default: x]" from help as a style tag: write defaults with show_default."""
    for where, p in _params(typer.main.get_command(app)):
        text = getattr(p, "help", None) or ""
        assert Text.from_markup(text).plain == text, f"{where} {p.name}: {text!r} loses text as rich markup"


def test_version() -> None:
    r = subprocess.run([sys.executable, "-m", "dbrepl.cli", "--version"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout == f"dbrepl {dbrepl.__version__}\n", (r.stdout, r.stderr)
    r = CliRunner().invoke(app, ["--version", "plan"])
    assert r.exit_code == 0 and r.output == f"dbrepl {dbrepl.__version__}\n"


def test_version_has_one_source() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dbrepl.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", dbrepl.__version__)


def test_typer_is_pinned_to_the_tested_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    typer_dep = next(d for d in deps if d.startswith("typer"))
    assert "<" in typer_dep and ">=" in typer_dep, typer_dep


@pytest.mark.parametrize("command", [("sync",), ("sync", "schema"), ("sync", "data"), ("sync", "status"),
                                     ("migrate",), ("migrate", "apply"), ("sandbox",), ("sandbox", "start")])
def test_a_command_line_naming_a_group_gets_the_same_command(command: tuple[str, ...]) -> None:
    """main() builds only the group a command line names (dbrepl.cli._build): the same help,
    options and root flags as the whole command line gives."""
    from dbrepl.cli import _build, _named_group

    group = _named_group([*command])
    assert group == command[0]
    env = {"COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}
    whole = CliRunner().invoke(app, [*command, "--help"], env=env)
    narrow = CliRunner().invoke(_build(group), [*command, "--help"], env=env)
    assert whole.exit_code == narrow.exit_code == 0
    assert narrow.output == whole.output
    assert _named_group(["--sandbox", *command]) == group
    assert _named_group(["--help", *command]) is None and _named_group(["plan"]) is None
