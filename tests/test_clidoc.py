from pathlib import Path

from dbrepl.clidoc import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_reference_matches_the_app():
    text = render()
    for cmd in ("### `dbrepl plan`", "### `dbrepl apply`", "### `dbrepl destroy`", "### `dbrepl status`",
                "### `dbrepl bundle`", "`--suffix`", "`--detailed-exitcode`"):
        assert cmd in text
    assert DOC.read_text() == text, "docs/cli.md is stale: run `python -m dbrepl.clidoc > docs/cli.md`"
