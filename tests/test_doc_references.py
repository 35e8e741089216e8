"""Nothing in the docs, the README or the shipped files refers to a file that is not in the
repository (issue 19, item 10: DESIGN.md, docs/decisions.md, "the seed template").

Scanned: README.md, docs/**/*.md, dbrepl/**/*.py (docstrings and comments: the whole text) and
dbrepl/environments.yaml. Checked: markdown links to relative targets (from the file's folder),
and repository paths (`docs/x.md`, `tests/x.py`, `benchmarks/x.py`, `config/...`, `dbrepl/...`)
and `*.md` names anywhere in the text (from the repository's root or the file's folder; a glob
such as `tests/sync/test_data_*.py` must match a file).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w./-])((?:docs|tests|benchmarks|config|dbrepl|seeds)/[\w./*-]*[\w*]|[\w-]+\.md)(?![\w*])")
# Files a user makes, named as what to make: not in the repository on purpose.
USER_FILES = {"config/global-bundle.pem"}
# Words that are not files: a design document the project no longer ships.
GONE = re.compile(r"\bDESIGN\b|decisions\.md")


def _scanned() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "dbrepl").rglob("*.py")),
            ROOT / "dbrepl" / "environments.yaml"]


def _missing(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    missing = []
    if path.suffix == ".md":
        for m in LINK.finditer(text):
            target = m.group(1).split("#", 1)[0]
            if target and not re.match(r"[a-z]+:", target) and not (path.parent / target).exists():
                missing.append(f"link {target}")
    for m in PATH.finditer(text):
        ref = m.group(1)
        if ref in USER_FILES or "/" in ref and ref.split("/", 1)[1] == "":
            continue
        if "*" in ref:  # a glob names at least one file
            if not any(ROOT.glob(ref)):
                missing.append(ref)
        elif not (ROOT / ref).exists() and not (path.parent / ref).exists():
            missing.append(ref)
    missing += [f"{m.group(0)!r} (not in the repository)" for m in GONE.finditer(text)]
    return missing


def test_the_scan_sees_files() -> None:
    files = _scanned()
    assert len(files) > 50 and all(f.is_file() for f in files)
    # the patterns find what they are for
    sample = ROOT / "README.md"
    assert any(m.group(1) == "docs/sandbox.md" for m in PATH.finditer(sample.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", _scanned(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_referenced_file_exists(path: Path) -> None:
    assert _missing(path) == []


def test_a_missing_reference_is_found(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("See [the design](../DESIGN.md), `docs/decisions.md` and tests/test_nothing_here.py; "
                   "docs/sandbox.md exists. DESIGN §6.", encoding="utf-8")
    found = _missing(doc)
    assert "link ../DESIGN.md" in found and "docs/decisions.md" in found and "tests/test_nothing_here.py" in found
    assert "docs/sandbox.md" not in found and any("'DESIGN'" in f for f in found)
