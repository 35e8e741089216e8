"""The import graph of dbrepl/: no cycle between modules, and each part imports only what it
is allowed to (listed below). Every import counts: module-level, function-level and those
under `if TYPE_CHECKING:`. A cycle hidden inside a function or behind TYPE_CHECKING is still
a cycle of the design (a type belongs to the module that owns the data, issue 21 point 3),
and a type imported for annotations only still ties the importer to that module."""

from __future__ import annotations

import ast
from pathlib import Path

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
    # The CLI parses, calls the application layer and renders (dbrepl.render is presentation);
    # everything below the app (the spec, the sandbox, the engine, the steps, aws, sync, the
    # bundle, names) it reaches only through dbrepl.app, types included. dbrepl.invocation:
    # how this command was run, which every printed hint repeats (standard library only).
    # "dbrepl" itself: its __version__, which `dbrepl --version` prints.
    "dbrepl.cli": {"dbrepl", "dbrepl.app", "dbrepl.errors", "dbrepl.invocation", "dbrepl.render"},
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


def _imports(name: str, path: Path) -> set[str]:
    return _imports_in(name, path.name == "__init__.py", path.read_text(encoding="utf-8"))


def _imports_in(name: str, is_package: bool, source: str) -> set[str]:
    """The dbrepl modules the module `name` (whose text is `source`) imports, anywhere in it."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
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


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def outside_allowed(graph: dict[str, set[str]], allowed_table: dict[str, set[str]]) -> list[str]:
    """`module imports dep` for every edge of `graph` that leaves its part for one not allowed."""
    wrong = []
    for module, deps in sorted(graph.items()):
        part = _part(module)
        if part == "dbrepl":  # the package's own __init__
            continue
        allowed = allowed_table.get(part)
        assert allowed is not None, f"{part} is a new part of dbrepl: list what it may import in ALLOWED"
        for dep in sorted(deps):
            if _part(dep) != part and _part(dep) not in allowed:
                wrong.append(f"{module} imports {dep}")
    return wrong


def test_the_graph_is_read():
    # The walk itself must see real edges, or the tests below would pass on nothing.
    assert "dbrepl.app" in GRAPH["dbrepl.cli.common"]
    assert "dbrepl.sandbox.state" in GRAPH["dbrepl.sandbox.control"]
    assert "dbrepl.sync.ident" in GRAPH["dbrepl.sync.data.sync"]
    assert len(GRAPH) > 60


def test_imports_under_type_checking_are_edges():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from dbrepl.sync.schema.objects import read_objects\n"
        "    import dbrepl.sync.ident\n"
        "def f():\n"
        "    from .plan import Statement\n"
    )
    assert _imports_in("dbrepl.sync.schema.model", False, source) == {
        "dbrepl.sync.schema.objects", "dbrepl.sync.ident", "dbrepl.sync.schema.plan"}


def test_the_cycle_finder_finds_cycles():
    # A cycle only an annotation closes is found like any other: model -> objects -> model.
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dbrepl.sync.schema.objects import X\n"
    graph = {"dbrepl.sync.schema.model": _imports_in("dbrepl.sync.schema.model", False, source),
             "dbrepl.sync.schema.objects": {"dbrepl.sync.schema.model"}}
    assert find_cycle(graph) == ["dbrepl.sync.schema.model", "dbrepl.sync.schema.objects",
                                 "dbrepl.sync.schema.model"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cli_module_importing_below_the_app_is_refused():
    for deeper in ("dbrepl.sandbox", "dbrepl.spec", "dbrepl.engine.runner", "dbrepl.sync.data.sync",
                   "dbrepl.steps.aurora", "dbrepl.aws.session", "dbrepl.names"):
        graph = {"dbrepl.cli.sync": {"dbrepl.app.sync", "dbrepl.render", deeper}}
        assert outside_allowed(graph, ALLOWED) == [f"dbrepl.cli.sync imports {deeper}"]
    assert outside_allowed({"dbrepl.cli.sync": {"dbrepl.app.sync", "dbrepl.render", "dbrepl.errors"}},
                           ALLOWED) == []


def test_each_part_imports_only_what_it_may():
    wrong = outside_allowed(GRAPH, ALLOWED)
    assert not wrong, "imports outside the allowed table:\n" + "\n".join(wrong)
