"""No import cycle among the shancheng modules: every import statement counts — at module level, inside a function,
under ``if TYPE_CHECKING:``, absolute or relative — so a cycle cannot hide behind a late import.

The graph is read with ``ast`` (nothing is imported): an edge ``a -> b`` for each statement of module ``a`` that
names module ``b`` (``from p import x`` names ``p.x`` when that is a module, else the package ``p``; a name below a
module, ``import p.m.Thing``, is the nearest enclosing module). A package's ``__init__`` is the module of the
package itself. Every strongly connected component of more than one module is reported with one cycle through it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("sdk", "contracts", "chain", "nodes", "apps", "tests/support")  # each holds shancheng/<package>/


def module_files(folders: Iterable[Path]) -> dict[str, Path]:
    """Module name -> file, for every ``*.py`` under ``<folder>/shancheng/`` (generated code excluded)."""
    modules = {}
    for folder in folders:
        for path in sorted((folder / "shancheng").rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            if "__pycache__" in rel.parts or "_generated" in rel.parts:
                continue
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            modules[".".join(parts)] = path
    return modules


def _nearest_module(name: str, modules: Mapping[str, Path]) -> str | None:
    while name not in modules:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the shancheng modules its import statements name (anywhere in the file)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        named: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                named += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                named += [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        targets = {_nearest_module(name, modules) for name in named if name.split(".")[0] == "shancheng"}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) through each strongly connected component of more than one module."""
    return [_a_cycle_through(component, graph) for component in tangles(graph)]


def tangles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each sorted), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph.get(root, ()))))]
        while work:  # Tarjan's algorithm, iterative
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


def _a_cycle_through(component: list[str], graph: Mapping[str, set[str]]) -> list[str]:
    """The shortest cycle from the component's first module back to it (breadth first, inside the component)."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if succ not in came_from:
                    came_from[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no cycle through {start} in its own component")  # a component always has one


def test_no_import_cycle_among_shancheng_modules() -> None:
    graph = import_graph(module_files(ROOT / folder for folder in FOLDERS))
    found = [f"{' -> '.join(_a_cycle_through(tangle, graph))}  (tangled: {' '.join(tangle)})" for tangle in tangles(graph)]
    assert found == [], "import cycles (module level, in functions and under TYPE_CHECKING all count):\n" + "\n".join(
        found)


def test_the_graph_covers_every_distribution() -> None:
    modules = module_files(ROOT / folder for folder in FOLDERS)
    assert {name.split(".")[1] for name in modules} == {"sdk", "contracts", "chain", "nodes", "apps", "testing"}
    assert "shancheng.sdk" in modules and "shancheng.sdk.client" in modules  # packages by their own name


CYCLE_MAKERS = {
    "module level": ("from shancheng.pkg import b\n", "import shancheng.pkg.a\n"),
    "inside a function": ("from shancheng.pkg.b import f\n", "def f():\n    from shancheng.pkg.a import g\n"),
    "under TYPE_CHECKING": (
        "from shancheng.pkg.b import B\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shancheng.pkg.a import A\n",
    ),
    "relative": ("from . import b\n", "from .a import A\n"),
    "through the package": ("from shancheng.pkg import b\n", "from shancheng.pkg import a\n"),
    "a name below a module": ("import shancheng.pkg.b\n", "from shancheng.pkg.a.A import x\n"),
}


@pytest.mark.parametrize("kind", sorted(CYCLE_MAKERS))
def test_the_cycle_check_catches_a_cycle(tmp_path: Path, kind: str) -> None:
    a_source, b_source = CYCLE_MAKERS[kind]
    package = tmp_path / "dist" / "shancheng" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "a.py").write_text(a_source)
    (package / "b.py").write_text(b_source)
    (package / "c.py").write_text("from shancheng.pkg import a, b\n")  # reaches the cycle, is not in it
    found = cycles(import_graph(module_files([tmp_path / "dist"])))
    assert found == [["shancheng.pkg.a", "shancheng.pkg.b", "shancheng.pkg.a"]], found


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path: Path) -> None:
    package = tmp_path / "dist" / "shancheng" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import A\nfrom .b import B\n")
    (package / "a.py").write_text("A = 1\n")
    (package / "b.py").write_text("from .a import A\nB = A\n")
    assert cycles(import_graph(module_files([tmp_path / "dist"]))) == []


def test_a_cycle_of_three_is_reported_in_order(tmp_path: Path) -> None:
    package = tmp_path / "dist" / "shancheng" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("from . import c\n")
    (package / "c.py").write_text("def late():\n    from . import a\n")
    assert cycles(import_graph(module_files([tmp_path / "dist"]))) == [
        ["shancheng.pkg.a", "shancheng.pkg.b", "shancheng.pkg.c", "shancheng.pkg.a"]]
