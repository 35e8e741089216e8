"""The import graph of dbrepl/: no cycle between modules, and each part imports only what it
is allowed to (listed below). Module-level and function-level imports both count: a cycle
hidden inside a function is still a cycle of the design. Imports under `if TYPE_CHECKING:`
are annotations only, never executed, and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dbrepl"

# What each part of dbrepl may import besides itself (a part: dbrepl.X, the first level).
# The sync library ships inside the Lambda bundle: it imports nothing of dbrepl outside itself.
ALLOWED: dict[str, set[str]] = {
    "dbrepl.sync": set(),
    "dbrepl.errors": {"dbrepl.sync"},
    "dbrepl.names": {"dbrepl.sync"},  # the SSM parameter path is the function contract's
    "dbrepl.spec": {"dbrepl.errors", "dbrepl.names"},
    "dbrepl.bundle": {"dbrepl", "dbrepl.sync"},
    "dbrepl.init": {"dbrepl", "dbrepl.errors", "dbrepl.spec"},
    "dbrepl.aws": {"dbrepl.errors", "dbrepl.engine", "dbrepl.spec"},
    "dbrepl.engine": {"dbrepl.aws", "dbrepl.bundle", "dbrepl.errors", "dbrepl.spec", "dbrepl.names",
                      "dbrepl.invocation"},
    "dbrepl.steps": {"dbrepl.aws", "dbrepl.bundle", "dbrepl.engine", "dbrepl.errors", "dbrepl.names",
                     "dbrepl.spec", "dbrepl.sync", "dbrepl.invocation"},
    # How this run was invoked, for hints that run as printed (redacting a DSN with the sync library).
    "dbrepl.invocation": {"dbrepl.sync"},
    "dbrepl.render": {"dbrepl.engine"},
    "dbrepl.status": {"dbrepl.engine", "dbrepl.names"},
    "dbrepl.sandbox": {"dbrepl.aws", "dbrepl.errors", "dbrepl.names", "dbrepl.sync"},
    "dbrepl.app": {"dbrepl.aws", "dbrepl.bundle", "dbrepl.engine", "dbrepl.errors", "dbrepl.names",
                   "dbrepl.sandbox", "dbrepl.spec", "dbrepl.status", "dbrepl.steps", "dbrepl.sync",
                   "dbrepl.init", "dbrepl.invocation"},
    # The CLI parses, calls the application layer and renders; it never reaches into the
    # sync library, the engine or the steps itself.
    # "dbrepl" itself: its __version__, which `dbrepl --version` prints.
    "dbrepl.cli": {"dbrepl", "dbrepl.app", "dbrepl.bundle", "dbrepl.errors", "dbrepl.names", "dbrepl.render",
                   "dbrepl.sandbox", "dbrepl.spec", "dbrepl.status", "dbrepl.init", "dbrepl.invocation"},
    "dbrepl.clidoc": {"dbrepl.cli"},
}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


def _known(name: str) -> str:
    """The module `name` is, or lives in (`dbrepl.x.y.Attr` -> `dbrepl.x.y`)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {_known(a.name) for a in node.names if a.name.split(".")[0] == "dbrepl"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] != "dbrepl":
                continue
            for alias in node.names:  # `from dbrepl.x import y`: y may be a module itself
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else _known(base))
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_graph_is_read():
    # The walk itself must see real edges, or the tests below would pass on nothing.
    assert "dbrepl.app" in GRAPH["dbrepl.cli.common"]
    assert "dbrepl.sandbox.state" in GRAPH["dbrepl.sandbox.control"]
    assert "dbrepl.sync.ident" in GRAPH["dbrepl.sync.data.sync"]
    assert len(GRAPH) > 60


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_each_part_imports_only_what_it_may():
    wrong = []
    for module, deps in sorted(GRAPH.items()):
        part = _part(module)
        if part == "dbrepl":  # the package's own __init__
            continue
        allowed = ALLOWED.get(part)
        assert allowed is not None, f"{part} is a new part of dbrepl: list what it may import in ALLOWED"
        for dep in sorted(deps):
            if _part(dep) != part and _part(dep) not in allowed:
                wrong.append(f"{module} imports {dep}")
    assert not wrong, "imports outside the allowed table:\n" + "\n".join(wrong)
