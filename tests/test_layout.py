"""The shape of the package: no import cycles, the reactor resolved in one place.

Read from the source (``ast``), not by importing: an import cycle that works
today by the luck of import order, or hides behind an import inside a
function, is still a cycle.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import ocd

#: One worker parses the package once for both tests (:func:`modules`).
pytestmark = pytest.mark.xdist_group("layout")

ROOT = Path(ocd.__file__).parent

#: Where a program starts and may resolve the global reactor (twistd has
#: installed its choice by the time ocd.tap.makeService runs). ``task.react``
#: resolves it for the ``ocd`` commands.
REACTOR_RESOLVED_IN = {"ocd.tap"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def modules() -> dict[str, ast.Module]:
    """Every module of the package, parsed once (both tests walk them all)."""
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"), str(p))
            for p in sorted(ROOT.rglob("*.py"))}


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """ocd modules that ``name`` imports anywhere (a lazy import inside a
    function still ties the two modules: it only hides the cycle)."""
    found: set[str] = set()
    is_package = (ROOT.parent / name.replace(".", "/")).is_dir()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = walk(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = walk(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_between_ocd_modules():
    trees = modules()
    known = set(trees)
    graph = {name: imports(name, tree, known) for name, tree in trees.items()}
    # a package's __init__ importing its submodules is not a cycle
    graph = {n: {m for m in deps if not m.startswith(n + ".")} for n, deps in graph.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_global_reactor_is_resolved_only_where_a_program_starts():
    importers = set()
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "twisted.internet" and any(
                    a.name == "reactor" for a in node.names):
                importers.add(name)
            elif isinstance(node, ast.Import) and any(
                    a.name == "twisted.internet.reactor" for a in node.names):
                importers.add(name)
    assert importers <= REACTOR_RESOLVED_IN, importers
