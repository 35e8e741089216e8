"""`dbrepl init [PATH]`: write the default spec (with its comments) to start from.

The default spec is package data (dbrepl/environments.yaml), so this works from a wheel; it
is never read in place of a missing spec: commands that find none say to run `dbrepl init`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dbrepl.errors import BadInput
from dbrepl.spec import DEFAULT_CONFIG, PACKAGED_SPEC


def default_spec_text() -> str:
    """The packaged default spec, comments included."""
    return resources.files("dbrepl").joinpath(PACKAGED_SPEC).read_text(encoding="utf-8")


def write_default_spec(path: Path | str | None = None, force: bool = False) -> Path:
    """Write the default spec to `path` (default config/environments.yaml), creating its folders.

    An existing file is kept unless `force`; a path that cannot be written is BadInput (exit 2).
    """
    path = Path(path) if path else DEFAULT_CONFIG
    if path.is_dir():
        raise BadInput(f"{path} is a directory: name the spec file, e.g. {path / DEFAULT_CONFIG.name}")
    if path.exists() and not force:
        raise BadInput(f"{path} already exists: keep it, or pass --force to overwrite it with the default spec")
    text = default_spec_text()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise BadInput(f"{path}: cannot write the spec ({e.strerror or e.__class__.__name__})") from None
    return path
