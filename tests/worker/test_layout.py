"""The package's import graph, read from the source with `ast`: no cycle, and the API
never reaches the node runtime.

Imports inside functions count (a cycle through a function-level import is still a
cycle, only a later one); `if TYPE_CHECKING:` blocks do not, since they never run.
`importlib.import_module("qmulti.node.cli")` in `App.start` is deliberately invisible
here: it is the one door from the API to the runtime, opened only by a running node.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# pyproject's package-dir: folder -> the package it is
FOLDERS = {"worker": "qmulti", "supervisor": "qmulti.supervisor", "pidfiles": "qmulti.pidfiles"}


def package_modules() -> dict[str, Path]:
    """Every module of the package, by its qmulti.* name."""
    modules: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: anywhere, except under `if TYPE_CHECKING:`
    (its `else:` branch does run)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `name` imports, relative and `from pkg import submodule`
    forms resolved."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            targets = [source]
            targets += [f"{source}.{alias.name}" for alias in node.names
                        if f"{source}.{alias.name}" in modules]
        for target in targets:
            # `import qmulti.brokers.redis` runs that module; an unknown name inside
            # the package resolves to its nearest existing parent
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (iterative depth-first search)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        path = [start]
        iters = [iter(sorted(graph[start]))]
        colour[start] = GREY
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                iters.pop()
            elif colour.get(nxt, BLACK) == GREY:
                return [*path[path.index(nxt):], nxt]
            elif colour.get(nxt) == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                iters.append(iter(sorted(graph[nxt])))
    return None


def reaches(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module `start` reaches, each with the module it was reached from."""
    via: dict[str, str] = {}
    todo = [start]
    while todo:
        current = todo.pop()
        for nxt in graph[current]:
            if nxt not in via and nxt != start:
                via[nxt] = current
                todo.append(nxt)
    return via


def is_api(name: str) -> bool:
    runtime = ("qmulti.node", "qmulti.supervisor")
    return not (name in ("qmulti.__main__", "qmulti.demo")
                or any(name == r or name.startswith(r + ".") for r in runtime))


GRAPH = import_graph()


def test_the_graph_is_read_from_every_folder() -> None:
    # a broken walker would make the other tests pass on an empty graph
    assert {"qmulti.app", "qmulti.node.cli", "qmulti.supervisor.cli",
            "qmulti.pidfiles.pidfile", "qmulti.brokers.redis.store"} <= set(GRAPH)
    assert "qmulti.app" in GRAPH["qmulti.node.loader"]
    assert "qmulti.pidfiles" in GRAPH["qmulti.node.cli"] or any(
        m.startswith("qmulti.pidfiles") for m in GRAPH["qmulti.node.cli"])


def test_the_walker_sees_function_level_imports_and_skips_type_checking(
        tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n"
        "    from qmulti.hidden import X\n"
        "else:\n"
        "    import qmulti.shown\n"
        "def f():\n"
        "    from ..up import c\n")
    modules = dict.fromkeys(
        ["qmulti.pkg.mod", "qmulti.pkg.b", "qmulti.hidden", "qmulti.shown", "qmulti.up",
         "qmulti.up.c", "qmulti.pkg", "qmulti"], source)
    assert imports_of("qmulti.pkg.mod", source, modules) == {
        "qmulti.pkg", "qmulti.pkg.b", "qmulti.shown", "qmulti.up", "qmulti.up.c"}


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if is_api(m)))
def test_no_api_module_reaches_the_node(module: str) -> None:
    via = reaches(GRAPH, module)
    for target in via:
        if target == "qmulti.node" or target.startswith("qmulti.node."):
            chain = [target]
            while chain[-1] != module:
                chain.append(via[chain[-1]])
            pytest.fail(f"{module} reaches the node: " + " -> ".join(reversed(chain)))
