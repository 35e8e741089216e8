"""Every YAML the project ships loads with the spec's loader, which refuses a key given twice
(YAML keeps the last copy without a word), and the checkout's config/environments.yaml is a
file of its own, equal to the packaged default `dbrepl init` writes (issue 19, item 1)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dbrepl.errors import SpecError
from dbrepl.init import default_spec_text
from dbrepl.spec import load_spec, load_yaml

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", ".dbrepl", ".pytest_cache", ".ruff_cache", "node_modules"}
FENCE = re.compile(r"^```ya?ml\n(.*?)^```", re.M | re.S)


def _shipped_yaml() -> list[Path]:
    found = []
    for p in sorted(ROOT.rglob("*")):
        rel = p.relative_to(ROOT)
        if p.suffix in (".yaml", ".yml") and not SKIP_DIRS & set(rel.parts) and not p.is_dir():
            found.append(p)
    return found


def _doc_examples() -> list[tuple[str, str]]:
    out = []
    for md in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        for i, m in enumerate(FENCE.finditer(md.read_text(encoding="utf-8"))):
            out.append((f"{md.relative_to(ROOT)}#{i}", m.group(1)))
    return out


SHIPPED = _shipped_yaml()


def test_the_shipped_yaml_is_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in SHIPPED}
    assert {"config/environments.yaml", "dbrepl/environments.yaml"} <= names
    assert _doc_examples(), "the docs' yaml examples were not found"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_yaml_has_no_duplicate_key(path: Path) -> None:
    load_yaml(path.read_text(encoding="utf-8"), path)
    if path.name == "environments.yaml":
        load_spec(path)


@pytest.mark.parametrize(("where", "text"), _doc_examples(), ids=lambda x: x if "#" in str(x) else "")
def test_every_yaml_example_in_the_docs_has_no_duplicate_key(where: str, text: str) -> None:
    load_yaml(text, where)


def test_the_checkout_spec_is_a_file_of_its_own_equal_to_the_packaged_default() -> None:
    config = ROOT / "config" / "environments.yaml"
    assert not config.is_symlink(), "config/environments.yaml must not link into the package (editing it " \
                                    "would edit the default `dbrepl init` writes)"
    assert config.read_text(encoding="utf-8") == (ROOT / "dbrepl" / "environments.yaml").read_text(
        encoding="utf-8") == default_spec_text(), "copy dbrepl/environments.yaml to config/environments.yaml"


def test_the_default_spec_names_each_key_once() -> None:
    text = default_spec_text()
    assert text.count("notify:") == 1 and text.count("schedules:") == 1
    assert text.count("# Syncs that run by themselves") == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("a: 1\nb: 2\na: 3\n", r"key a is given twice \(lines 1 and 3\)"),
    ("alarms:\n  notify: []\n  x: 1\n  notify: [a@b.c]\n", r"key alarms\.notify is given twice \(lines 2 and 4\)"),
    ("s:\n  - {route: a, route: b}\n", r"key s\[0\]\.route is given twice \(lines 2 and 2\)"),
    ("e:\n  dev:\n    subnets:\n      - cidr: x\n      - cidr: y\n        cidr: z\n",
     r"key e\.dev\.subnets\[1\]\.cidr is given twice \(lines 5 and 6\)"),
])
def test_a_duplicate_key_is_refused_with_both_lines_and_its_path(text: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        load_yaml(text, "spec.yaml")


def test_same_key_in_different_mappings_is_fine() -> None:
    assert load_yaml("a: {x: 1}\nb: {x: 2}\nc: &n {y: 1}\nd: *n\n", "s") == {
        "a": {"x": 1}, "b": {"x": 2}, "c": {"y": 1}, "d": {"y": 1}}


def test_plan_refuses_a_spec_with_a_duplicate_key(tmp_path: Path) -> None:
    """The newcomer's story: edit the first copy, and plan used to say nothing and use the second."""
    text = default_spec_text().replace(
        "  notify: []\n", "  notify: [ops@example.com]\n  # an old copy\n  notify: []\n", 1)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    first = lines.index("  notify: [ops@example.com]") + 1
    r = subprocess.run([sys.executable, "-m", "dbrepl.cli", "plan", "--suffix", "x", "--config", str(spec)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert f"key alarms.notify is given twice (lines {first} and {first + 2})" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
