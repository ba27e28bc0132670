"""The package's modules import each other downward only: the import graph (module-level and function-level
imports of re_pipeline modules, read from the source) has no cycle, and no module imports from a later layer of
the flow than its own (the layers are the sub-packages, in re_pipeline/__init__.py's order)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "re_pipeline"
LAYERS = [  # earliest first: a module may import its own layer and earlier ones
    ["core", "resources"],
    ["data"],
    ["models"],
    ["evaluation"],
    ["training"],
    ["records"],
    ["submit"],
    ["config"],
    ["pipeline", "predict"],
    ["experiments"],
    ["cli", "__main__"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports anywhere in it (`from .x import y` may name a module `x.y`)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules) for p in paths}


def layer(module: str) -> int:
    """The layer of `module` (re_pipeline.X or re_pipeline.X.Y: by X); the package itself is below everything."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: give its package a place in the flow")


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a later layer than the importer's."""
    return sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read_from_the_source():
    edges = graph()
    assert "re_pipeline.pipeline" in edges["re_pipeline.cli"]
    assert "re_pipeline.data.markers" in edges["re_pipeline.data.features"]
    assert "re_pipeline.core.errors" in edges["re_pipeline.data.io"]


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_package_modules():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_layer_check_finds_a_planted_upward_import():
    planted = {"re_pipeline.data.io": {"re_pipeline.core.errors", "re_pipeline.pipeline"}}
    assert upward(planted) == ["re_pipeline.data.io -> re_pipeline.pipeline"]


def test_every_module_imports_only_from_its_own_layer_or_earlier_ones():
    assert upward(graph()) == []
