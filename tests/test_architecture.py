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


# --------------------------------------------------------------------------- one command, one story
# Issue 21 point 2: these commands read top to bottom as parse -> one `prepare_*` of dbrepl.app
# (a plan or request object, what to confirm included) -> confirm once (the CLI) -> one
# run/apply/destroy of the same app module (a result object) -> render. The calls a command makes
# into dbrepl.app are counted through the CLI helpers it calls (its own module's functions and
# classes, those of other cli modules: `estate(ctx, ...)` of cli/common opens the estate, so a
# command calling it climbs down too), in source order.

STORIES = {
    "sync schema": ("dbrepl.cli.sync", "sync_schema"),
    "sync data": ("dbrepl.cli.sync", "sync_data"),
    "migrate apply": ("dbrepl.cli.migrate", "migrate_apply"),
    "apply": ("dbrepl.cli.provision", "apply"),
    "destroy": ("dbrepl.cli.provision", "destroy"),
}
RUNS = {"run", "apply", "destroy"}  # what carries a prepared plan out


def _outside_functions(tree: ast.AST) -> list[ast.AST]:
    """The nodes of a module not inside a function or class (its module-level imports among them)."""
    found, todo = [], list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _bindings(nodes: list[ast.AST], module: str, is_package: bool) -> dict[str, str]:
    """{local name: the dbrepl name it is bound to} for the imports among `nodes`."""
    package = module if is_package else module.rpartition(".")[0]
    bound: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "dbrepl":
                    bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] == "dbrepl":
                for a in node.names:
                    bound[a.asname or a.name] = f"{base}.{a.name}"
    return bound


def _dotted(node: ast.AST) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute) and (head := _dotted(node.value)) is not None:
        return [*head, node.attr]
    return None


def story_calls(sources: dict[str, str], module: str, function: str) -> list[str]:
    """The dbrepl.app functions `module.function` calls (`sources`: {cli module: its text}),
    in source order, through the CLI helpers it calls, transitively."""
    trees = {m: ast.parse(text) for m, text in sources.items()}
    defs = {m: {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            for m, tree in trees.items()}
    top = {m: _bindings(_outside_functions(tree), m, False) for m, tree in trees.items()}
    seen: set[tuple[str, str]] = set()

    def calls(m: str, name: str) -> list[str]:
        seen.add((m, name))
        node = defs[m][name]
        bound = {**top[m], **_bindings(list(ast.walk(node)), m, False)}
        found: list[str] = []
        for call in sorted((c for c in ast.walk(node) if isinstance(c, ast.Call)),
                           key=lambda c: (c.lineno, c.col_offset)):
            parts = _dotted(call.func)
            if not parts:
                continue
            if parts[0] in bound:
                full = ".".join([bound[parts[0]], *parts[1:]])
            elif len(parts) == 1 and parts[0] in defs[m]:
                full = f"{m}.{parts[0]}"
            else:
                continue
            if full.startswith("dbrepl.app."):
                found.append(full)
                continue
            helper_module, _, helper = full.rpartition(".")
            if helper in defs.get(helper_module, {}) and (helper_module, helper) not in seen:
                found += calls(helper_module, helper)
        return found

    return calls(module, function)


def story_problem(calls: list[str]) -> str | None:
    """Why the app calls `calls` of a command are not one story (None: they are)."""
    if (len(calls) == 2 and calls[0].rpartition(".")[2].startswith("prepare")
            and calls[1].rpartition(".")[2] in RUNS and calls[0].rpartition(".")[0] == calls[1].rpartition(".")[0]):
        return None
    return ("calls into dbrepl.app should be exactly one prepare_*() then one run()/apply()/destroy() of the "
            f"same module; found: {', '.join(calls) or 'none'}")


CLI_SOURCES = {name: path.read_text(encoding="utf-8") for name, path in MODULES.items()
               if name.startswith("dbrepl.cli")}


def test_each_command_is_one_story():
    wrong = []
    for command, (module, function) in STORIES.items():
        problem = story_problem(story_calls(CLI_SOURCES, module, function))
        if problem:
            wrong.append(f"dbrepl {command} ({module}.{function}): {problem}")
    assert not wrong, "\n".join(wrong)


def test_the_stories_are_read():
    # The walk must see the real calls, or the rule above would pass on nothing.
    assert story_calls(CLI_SOURCES, "dbrepl.cli.sync", "sync_data") == ["dbrepl.app.sync.prepare_data",
                                                                        "dbrepl.app.sync.run"]
    assert story_calls(CLI_SOURCES, "dbrepl.cli.provision", "destroy") == [
        "dbrepl.app.provision.prepare_destroy", "dbrepl.app.provision.destroy"]


# `sync data` as it was before issue 21: the pair resolved, the protection read for the question,
# the event built, the function run through a CLI helper that opens the estate (cli/common's).
_CLIMBING = {
    "dbrepl.cli.common": (
        "from dbrepl.app import Target, open_estate\n"
        "def estate(ctx, spec, suffix):\n"
        "    return open_estate(Target(spec, suffix, None))\n"
        "def err(*a):\n"
        "    pass\n"),
    "dbrepl.cli.sync": (
        "from dbrepl.app import sync as runner\n"
        "from dbrepl.cli.common import err, estate\n"
        "def confirm_target(spec, target, yes):\n"
        "    if yes or not runner.is_protected(spec, target):\n"
        "        return\n"
        "def run_env(ctx, spec, suffix, event):\n"
        "    return estate(ctx, spec, suffix).functions.run('data', event, direct=False)\n"
        "def sync_data(ctx, src, dst, yes):\n"
        "    pair = runner.resolve_pair(src, dst, config=None, suffix=None)\n"
        "    confirm_target(pair.spec, pair.target, yes)\n"
        "    event = runner.data_event(pair)\n"
        "    result = run_env(ctx, pair.spec, pair.suffix, event)\n"
        "    err(result)\n"),
}


def test_a_command_climbing_back_down_is_not_a_story():
    calls = story_calls(_CLIMBING, "dbrepl.cli.sync", "sync_data")
    assert calls == ["dbrepl.app.sync.resolve_pair", "dbrepl.app.sync.is_protected", "dbrepl.app.sync.data_event",
                     "dbrepl.app.open_estate", "dbrepl.app.Target"]
    assert story_problem(calls) is not None


def test_the_story_rule_holds_only_for_prepare_then_run():
    good = ("from dbrepl.app import sync as runner\n"
            "from dbrepl.cli.common import err\n"
            "def sync_data(src, dst, yes):\n"
            "    prepared = runner.prepare_data(src, dst)\n"
            "    ran = runner.run(prepared, progress=None)\n"
            "    err(ran.result)\n")
    assert story_calls({"dbrepl.cli.sync": good}, "dbrepl.cli.sync", "sync_data") == [
        "dbrepl.app.sync.prepare_data", "dbrepl.app.sync.run"]
    assert story_problem(["dbrepl.app.sync.prepare_data", "dbrepl.app.sync.run"]) is None
    assert story_problem(["dbrepl.app.provision.prepare_apply", "dbrepl.app.provision.apply"]) is None
    for bad in (
        ["dbrepl.app.sync.run", "dbrepl.app.sync.prepare_data"],  # the wrong way round
        ["dbrepl.app.sync.prepare_data", "dbrepl.app.sync.check_tables", "dbrepl.app.sync.run"],  # one more
        ["dbrepl.app.sync.prepare_data"],  # never run
        ["dbrepl.app.sync.prepare_data", "dbrepl.app.provision.apply"],  # another module's run
        ["dbrepl.app.sync.prepare_data", "dbrepl.app.sync.run", "dbrepl.app.sync.run"],  # run twice
    ):
        assert story_problem(bad) is not None, bad
    # A helper of the command's own module, calling the app, is counted (here: a second run).
    helper = good.replace("    err(ran.result)\n", "    again(prepared)\n") + (
        "def again(prepared):\n    return runner.run(prepared)\n")
    calls = story_calls({"dbrepl.cli.sync": helper}, "dbrepl.cli.sync", "sync_data")
    assert calls == ["dbrepl.app.sync.prepare_data", "dbrepl.app.sync.run", "dbrepl.app.sync.run"]
    assert story_problem(calls) is not None
